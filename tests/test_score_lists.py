"""Every column that reports/README.md calls a score is summarised and explained in the report,
so the documentation, the summary tables and the report cannot drift apart."""

from __future__ import annotations

import re
from pathlib import Path

from benchmark.aggregate import SUMMARY_SCORES
from benchmark.report import SCORE_HELP

README = Path(__file__).resolve().parents[1] / "reports" / "README.md"


def documented_scores() -> list[str]:
    """The columns of the README's score table whose row says which way is better."""
    section = README.read_text().split("## Scores", 1)[1].split("\n## ", 1)[0]
    scores = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or cells[0] in ("column", "---") or not cells[-1]:
            continue
        scores += [name for name in re.findall(r"`([^`]+)`", cells[0]) if "*" not in name]
    return scores


def test_the_readme_lists_scores() -> None:
    assert {"recon_mse", "fd_sample", "neg_elbo", "kl"} <= set(documented_scores())


def test_every_documented_score_is_in_the_summary_and_the_report() -> None:
    missing = [s for s in documented_scores() if s not in SUMMARY_SCORES]
    assert not missing, f"documented as scores but not summarised: {missing}"
    unexplained = [s for s in SUMMARY_SCORES if s not in SCORE_HELP]
    assert not unexplained, f"summarised but not explained in the report: {unexplained}"
