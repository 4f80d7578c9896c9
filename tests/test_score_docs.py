"""The score table of reports/README.md against the summary: every documented score is summarised
with the documented direction, and every summarised score is documented."""

import re
from pathlib import Path

from benchmark.reporting.aggregate import SUMMARY_SCORES, results_frame, summary_frame

README = Path(__file__).resolve().parents[1] / "reports" / "README.md"
DIRECTIONS = {"lower", "higher", "descriptive"}


def score_table() -> dict[str, str]:
    """{column: better} of every row of the README's table under "## Scores"."""
    text = README.read_text().split("## Scores", 1)[1].split("\n## ", 1)[0]
    table = {}
    for line in text.splitlines():
        if not line.startswith("| `"):
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        assert len(cells) == 3, line
        for name in re.findall(r"`([A-Za-z0-9_]+)`", cells[0]):
            table[name] = cells[2]
    return table


def test_the_table_parses_and_has_the_known_rows():
    table = score_table()
    assert table["recon_mse"] == "lower" and table["latent_acc_knn"] == "higher" and table["kl"] == "descriptive"
    assert table["n_train"] == "" and "kid_sample_se" in table and "has_prior" in table
    assert set(table.values()) <= DIRECTIONS | {""}


def test_every_documented_score_is_summarised_in_its_direction_and_back():
    documented = {name: better for name, better in score_table().items() if better}
    assert documented == SUMMARY_SCORES


def test_every_summary_score_is_a_column_of_the_summary():
    rows = [{"dataset": "d", "model": m, "seed": s, "status": "ok", "has_prior": True,
             **{score: float(i + s + (m == "b")) for i, score in enumerate(SUMMARY_SCORES)}}
            for m in ("a", "b") for s in range(2)]  # fmt: skip
    summary = summary_frame(results_frame(rows))
    for score, direction in SUMMARY_SCORES.items():
        assert {f"{score}_mean", f"{score}_std", f"{score}_ci95"} <= set(summary.columns), score
        assert (f"{score}_rank" in summary.columns) == (direction != "descriptive"), score


def test_every_summary_score_is_explained_in_the_report():
    from benchmark.reporting.report import SCORE_HELP

    unexplained = [s for s in SUMMARY_SCORES if s not in SCORE_HELP]
    assert not unexplained, f"summarised but not explained in the report: {unexplained}"
