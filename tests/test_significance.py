"""Welch's t-test from summary statistics and Holm's adjustment, against known answers."""

import math

import numpy as np
import pytest
from scipy import stats

from benchmark.reporting.significance import format_p, holm, welch_p

A = np.array([1.0, 1.2, 0.9])
B = np.array([1.5, 1.9, 1.4, 1.7])


def test_welch_from_summary_statistics_matches_scipy_on_the_raw_values():
    reference = stats.ttest_ind(A, B, equal_var=False).pvalue
    p = welch_p(A.mean(), A.std(ddof=1), len(A), B.mean(), B.std(ddof=1), len(B))
    assert p == pytest.approx(reference, rel=1e-10)
    assert 0.005 < p < 0.05  # the worked example: a real, moderate difference


def test_welch_by_hand_with_satterthwaite_degrees_of_freedom():
    va, vb = A.var(ddof=1) / len(A), B.var(ddof=1) / len(B)
    t = (A.mean() - B.mean()) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(A) - 1) + vb**2 / (len(B) - 1))
    by_hand = 2 * stats.t.sf(abs(t), df)
    assert welch_p(A.mean(), A.std(ddof=1), 3, B.mean(), B.std(ddof=1), 4) == pytest.approx(by_hand)


def test_no_test_with_one_seed_or_without_spread():
    assert math.isnan(welch_p(1.0, float("nan"), 1, 2.0, 0.1, 3))
    assert math.isnan(welch_p(1.0, 0.1, 3, 2.0, 0.1, 1))
    assert math.isnan(welch_p(1.0, 0.0, 3, 2.0, 0.0, 3))


def test_identical_groups_give_p_one_and_a_larger_gap_a_smaller_p():
    assert welch_p(1.0, 0.2, 3, 1.0, 0.2, 3) == pytest.approx(1.0)
    assert welch_p(1.0, 0.2, 3, 1.5, 0.2, 3) > welch_p(1.0, 0.2, 3, 2.0, 0.2, 3)


def test_holm_hand_computed_example():
    # Sorted: 0.005 (x4 = 0.02), 0.01 (x3 = 0.03), 0.03 (x2 = 0.06), 0.04 (x1 = 0.04 -> running max 0.06).
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])


def test_holm_caps_at_one_leaves_nan_out_of_m_and_keeps_a_single_p():
    np.testing.assert_allclose(holm([0.5, 0.6]), [1.0, 1.0])
    adjusted = holm([float("nan"), 0.02, 0.04])  # m = 2
    assert math.isnan(adjusted[0])
    np.testing.assert_allclose(adjusted[1:], [0.04, 0.04])
    np.testing.assert_allclose(holm([0.03]), [0.03])
    assert holm([]).shape == (0,)


def test_holm_is_never_below_the_raw_p_and_never_above_bonferroni():
    p = np.random.default_rng(0).random(7) / 10
    adjusted = holm(p)
    assert (adjusted >= p).all() and (adjusted <= np.minimum(1, 7 * p) + 1e-12).all()


def test_p_values_are_written_with_their_precision():
    assert format_p(0.0004) == "p < 0.001"
    assert format_p(0.0031) == "p = 0.003"
    assert format_p(0.412) == "p = 0.41"
