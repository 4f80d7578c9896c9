"""Whether each ranked score passes its checks on the run's control sets.

``controls.csv`` (written by ``benchmark.running.controls_run``) has one row per feature
space (dataset, train_limit, test_limit), control set and kind (``sample``: scored as samples
against the test images; ``recon``: as reconstructions of the real images it degrades), with
one column per control score. ``verdicts`` turns it into one row per feature space and summary
score: ``status`` ``pass``, ``fail`` (with the failed checks in ``reason``) or ``unchecked``
(no control scores, e.g. no feature classifier).
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from benchmark.scoring.scores import LOWER, SCORES, Monotone, NotBetter, Score, Worse

#: The columns that name a feature space: its scores are comparable with each other.
SPACE = ("dataset", "train_limit", "test_limit")


def better_direction(score: Score) -> str:
    """``lower`` or ``higher``: the direction a score would be ranked in (descriptive scores
    with control checks, such as precision, are checked as their authors rank them)."""
    return score.sense or score.direction


#: Values closer than this (relative) are a tie: float32 rounding must not decide a check.
TIE = 1e-6


def _compare(value: float, real: float, lower: bool) -> int:
    """1 if ``value`` is worse than ``real``, -1 if better, 0 for a tie; an infinite value is
    worse than any finite one. NaN compares as a tie (nothing to check)."""
    if np.isnan(value) or np.isnan(real) or value == real:
        return 0
    if np.isfinite(value) and np.isfinite(real) and abs(value - real) <= TIE * max(abs(value), abs(real), 1e-12):
        return 0
    worse = value > real if lower else value < real
    return 1 if worse else -1


def _worse(value: float, real: float, lower: bool) -> bool:
    return _compare(value, real, lower) > 0


def check_score(rows: pd.DataFrame, score: Score) -> tuple[str, str]:
    """``(status, reason)`` of ``score`` on one feature space's control ``rows``."""
    if not score.checks:
        return "unchecked", ""
    kind, column = score.control
    rows = rows[rows["kind"] == kind]
    if column not in rows or rows.empty or rows[column].isna().all():
        return "unchecked", "no control scores"
    lower = better_direction(score) == LOWER
    real_rows = rows.loc[rows["family"] == "real", column]
    if real_rows.empty or real_rows.isna().all():
        return "unchecked", "no score for the real control"
    real = float(real_rows.iloc[0])
    d = score.decimals
    failures: dict[str, str] = {}  # by control (or pair): the first failed check speaks for it
    for check in score.checks:
        for family in check.families:
            group = rows[rows["family"] == family].sort_values("level", na_position="first")
            values = [(r["control"], float(r[column])) for _, r in group.iterrows() if not np.isnan(r[column])]
            for name, value in values:
                versus = _compare(value, real, lower)
                if isinstance(check, (NotBetter, Worse)) and versus < 0:
                    failures.setdefault(name, f"scores {name} better than real ({value:.{d}f} vs {real:.{d}f})")
                elif isinstance(check, Worse) and versus == 0:
                    failures.setdefault(name, f"does not tell {name} from real ({value:.{d}f} vs {real:.{d}f})")
            if isinstance(check, Monotone):
                for (a, va), (b, vb) in itertools.pairwise(values):
                    if not _worse(vb, va, lower):
                        failures.setdefault(f"{a}|{b}", f"scores {b} ({vb:.{d}f}) no worse than {a} ({va:.{d}f})")
    return ("fail", "; ".join(failures.values())) if failures else ("pass", "")


def verdicts(controls: pd.DataFrame) -> pd.DataFrame:
    """One row per feature space and summary score with control checks:
    ``[*SPACE, "score", "status", "reason"]``."""
    out = []
    if controls is None or controls.empty:
        return pd.DataFrame(columns=[*SPACE, "score", "status", "reason"])
    for space, rows in controls.groupby(list(SPACE), dropna=False, sort=True):
        for score in SCORES:
            if score.checks:
                status, reason = check_score(rows, score)
                out.append({**dict(zip(SPACE, space, strict=True)), "score": score.name, "status": status,
                            "reason": reason})  # fmt: skip
    return pd.DataFrame(out, columns=[*SPACE, "score", "status", "reason"])


def failed_scores(table: pd.DataFrame, dataset: str) -> dict[str, str]:
    """``{score: reason}`` of the scores that failed their controls on ``dataset`` (any of its
    feature spaces)."""
    if table is None or table.empty:
        return {}
    rows = table[(table["dataset"] == dataset) & (table["status"] == "fail")]
    return dict(zip(rows["score"], rows["reason"], strict=True))

