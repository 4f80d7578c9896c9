"""Tests of differences between models over seeds: Welch's t-test and Holm's adjustment.

The findings compare the best model of a score with each other model. Every comparison is a
Welch t-test of the two models' per-seed values (unequal variances), computed from the
summary's mean, sample std and seed count; the family of comparisons of one score is then
Holm-adjusted so that the chance of any false claim in it stays below the level.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

#: Level at which an adjusted p-value counts as a difference.
ALPHA = 0.05


def welch_p(mean1: float, std1: float, n1: int, mean2: float, std2: float, n2: int) -> float:
    """Two-sided p-value of Welch's t-test from each group's mean, sample std (ddof 1) and size.

    NaN when either group has fewer than two values (no spread to test against) or when the
    test is undefined (both groups constant).
    """
    if n1 < 2 or n2 < 2 or any(pd.isna(v) for v in (mean1, std1, mean2, std2)):
        return float("nan")
    if std1 == 0 and std2 == 0:
        return float("nan")
    result = stats.ttest_ind_from_stats(mean1, std1, n1, mean2, std2, n2, equal_var=False)
    return float(result.pvalue)


def holm(pvalues: list[float] | np.ndarray) -> np.ndarray:
    """Holm's step-down adjustment of ``m`` p-values (NaN entries are left out of ``m``).

    With p sorted ascending, ``adj_(i) = max_{j <= i} min(1, (m - j + 1) p_(j))`` (1-based),
    returned in the input order.
    """
    p = np.asarray(pvalues, dtype=float)
    adjusted = np.full(p.shape, np.nan)
    tested = np.flatnonzero(~np.isnan(p))
    m = len(tested)
    running = 0.0
    for j, index in enumerate(tested[np.argsort(p[tested], kind="stable")]):
        running = max(running, min(1.0, (m - j) * p[index]))
        adjusted[index] = running
    return adjusted


def format_p(p: float) -> str:
    """``p = 0.003``, ``p = 0.41``, ``p < 0.001``."""
    if p < 0.001:
        return "p < 0.001"
    return f"p = {p:.3f}" if p < 0.01 else f"p = {p:.2f}"
