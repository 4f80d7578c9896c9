"""The run's controls as tables a person reads: per dataset, every control set's value of each
checked score, and which scores the controls let the run rank (``benchmark.scoring.verdicts``).

Control sets are never models: they appear only here, never among the ranks, the findings or
the trends.
"""

from __future__ import annotations

import pandas as pd

from benchmark.scoring.scores import BY_NAME, SCORES
from benchmark.scoring.verdicts import SPACE, verdicts

#: The columns of the controls tables: a score of ``controls.csv`` by kind, and its title.
COLUMNS = (
    ("recon", "sharpness_gap", "sharpness_gap_recon"),
    ("recon", "spectral_gap", "spectral_gap_recon"),
    ("sample", "sharpness_gap", "sharpness_gap_sample"),
    ("sample", "contrast_gap", "contrast_gap_sample"),
    ("sample", "spectral_gap", "spectral_gap_sample"),
    ("sample", "fd", "fd_sample"),
    ("sample", "kid", "kid_sample"),
    ("sample", "precision", "precision_sample"),
    ("sample", "recall", "recall_sample"),
    ("sample", "coverage", "coverage_sample"),
)


def _space_label(row: pd.Series) -> str:
    limits = [f"{k} {int(row[k])}" for k in ("train_limit", "test_limit") if k in row and pd.notna(row[k])]
    return f"{row['dataset']}" + (f" ({', '.join(limits)})" if limits else "")


def controls_frames(controls: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """``[(feature space label, table)]``: one row per control set, one column per checked
    score (values as the summary shows them; ``–`` where the kind does not apply)."""
    out = []
    for _, rows in controls.groupby(list(SPACE), dropna=False, sort=False):
        first = rows.iloc[0]
        names = list(dict.fromkeys(rows["control"]))
        table = pd.DataFrame({"control": names, "images": [int(rows.loc[rows["control"] == n, "n"].iloc[0]) for n in names]})
        for kind, column, title in COLUMNS:
            if column not in rows:
                continue
            part = rows[rows["kind"] == kind].set_index("control")[column]
            d = BY_NAME[title].decimals
            table[title] = [f"{part[n]:.{d}f}" if n in part.index and pd.notna(part[n]) else "–" for n in names]
        out.append((_space_label(first), table))
    return out


def verdict_lines(controls: pd.DataFrame) -> list[tuple[str, list[str], list[tuple[str, str]]]]:
    """Per feature space: ``(label, ranked scores, [(unranked score, reason)])`` of the scores
    the controls check (the descriptive ones, such as precision, are listed with their
    reason too)."""
    table = verdicts(controls)
    out = []
    for _, rows in table.groupby(list(SPACE), dropna=False, sort=False):
        ranked, unranked = [], []
        for _, r in rows.iterrows():
            score = BY_NAME[r["score"]]
            if r["status"] == "fail":
                why = r["reason"] if score.ranked else f"descriptive; its controls: {r['reason']}"
                unranked.append((r["score"], why))
            elif score.ranked:
                ranked.append(r["score"] + (" (unchecked)" if r["status"] == "unchecked" else ""))
        out.append((_space_label(rows.iloc[0]), ranked, unranked))
    return out


def controls_text(controls: pd.DataFrame) -> str:
    """The controls tables and verdicts as Markdown, for the terminal and ``controls.md``."""
    parts = []
    verdict = {label: (ranked, unranked) for label, ranked, unranked in verdict_lines(controls)}
    for label, table in controls_frames(controls):
        parts.append(f"Controls, {label}:\n\n{table.to_markdown(index=False)}\n")
        ranked, unranked = verdict.get(label, ([], []))
        parts.append(f"Ranked (its controls order as they must): {', '.join(ranked) or 'none'}.")
        parts += [f"Not ranked: {score}: {why}." for score, why in unranked]
        parts.append("")
    other = [s.name for s in SCORES if s.ranked and not s.checks]
    parts.append(f"Not image-set scores, no control applies (ranked): {', '.join(other)}.")
    return "\n".join(parts)
