"""The loss terms against independent computations (numpy/scipy, Monte Carlo)."""

import numpy as np
import pytest
from keras import ops
from scipy import stats

from models import losses

#: Written with keras.ops: checked on every backend.
pytestmark = pytest.mark.backend

def _np(x):
    return np.asarray(ops.convert_to_numpy(x), dtype=np.float64)


def test_gaussian_kl_matches_monte_carlo():
    rng = np.random.default_rng(0)
    mean = rng.normal(size=(3, 4)).astype(np.float32)
    log_var = rng.normal(scale=0.5, size=(3, 4)).astype(np.float32)
    closed = _np(losses.gaussian_kl(mean, log_var))

    # KL = E_q[log q(z) - log p(z)], estimated with 200k samples per row.
    std = np.exp(0.5 * log_var)
    z = mean[:, None, :] + std[:, None, :] * rng.standard_normal((3, 200_000, 4))
    log_q = stats.norm.logpdf(z, mean[:, None, :], std[:, None, :]).sum(-1)
    log_p = stats.norm.logpdf(z).sum(-1)
    monte_carlo = (log_q - log_p).mean(axis=1)

    assert closed.shape == (3,)
    np.testing.assert_allclose(closed, monte_carlo, rtol=0.02, atol=0.01)


def test_gaussian_kl_is_zero_only_at_the_prior():
    zero = _np(losses.gaussian_kl(np.zeros((2, 5), "float32"), np.zeros((2, 5), "float32")))
    np.testing.assert_allclose(zero, 0.0, atol=1e-7)
    shifted = _np(losses.gaussian_kl(np.ones((1, 5), "float32"), np.zeros((1, 5), "float32")))
    np.testing.assert_allclose(shifted, [2.5], rtol=1e-6)  # 0.5 * 5 * 1^2


def test_bernoulli_nll_matches_hand_computation():
    x = np.array([[[[0.0], [1.0]], [[0.25], [0.9]]]], dtype=np.float32)  # (1, 2, 2, 1)
    logits = np.array([[[[-2.0], [3.0]], [[0.5], [-1.0]]]], dtype=np.float32)
    p = 1 / (1 + np.exp(-logits.astype(np.float64)))
    expected = -(x * np.log(p) + (1 - x) * np.log(1 - p)).sum()
    np.testing.assert_allclose(_np(losses.bernoulli_nll(x, logits)), [expected], rtol=1e-6)


def test_bernoulli_nll_is_finite_for_saturated_logits():
    x = np.array([[1.0, 0.0]], dtype=np.float32)
    logits = np.array([[-200.0, 200.0]], dtype=np.float32)
    # -log sigmoid(-200) = 200 and -log(1 - sigmoid(200)) = 200: exact, not inf.
    np.testing.assert_allclose(_np(losses.bernoulli_nll(x, logits)), [400.0], rtol=1e-6)


@pytest.mark.parametrize("obs_std", [0.1, 1.0])
def test_gaussian_nll_matches_scipy(obs_std):
    rng = np.random.default_rng(1)
    x = rng.random((2, 4, 4, 1)).astype(np.float32)
    mean = rng.random((2, 4, 4, 1)).astype(np.float32)
    expected = -stats.norm.logpdf(x, mean, obs_std).reshape(2, -1).sum(axis=1)
    np.testing.assert_allclose(_np(losses.gaussian_nll(x, mean, obs_std)), expected, rtol=1e-5)


def test_squared_error_sums_per_image():
    x = np.zeros((2, 2, 2, 1), np.float32)
    x_hat = np.full((2, 2, 2, 1), 0.5, np.float32)
    x_hat[1] = 1.0
    np.testing.assert_allclose(_np(losses.squared_error(x, x_hat)), [1.0, 4.0])


# -- the discretized Gaussian and the normal CDF ---------------------------------------------


def test_log_ndtr_matches_scipy_in_both_tails():
    from scipy import special

    t = np.concatenate([np.linspace(-40, 40, 4001), [-1e3, 0.0]]).astype(np.float32)
    got = _np(losses.log_ndtr(t))
    expected = special.log_ndtr(t.astype(np.float64))
    np.testing.assert_allclose(got, expected, rtol=2e-6, atol=1e-7)


def test_log_normal_interval_matches_scipy_cdf_differences():
    rng = np.random.default_rng(0)
    a = rng.normal(scale=6.0, size=20000)
    b = a + np.exp(rng.uniform(-9, 2, size=a.shape))  # widths from 1e-4 to 7
    a, b = a.astype(np.float32).astype(np.float64), b.astype(np.float32).astype(np.float64)
    # Independent: a difference of CDFs (of survival functions above 0), in float64.
    upper = a > 0
    mass = np.where(upper, stats.norm.sf(a) - stats.norm.sf(b), stats.norm.cdf(b) - stats.norm.cdf(a))
    got = _np(losses.log_normal_interval(a.astype(np.float32), b.astype(np.float32)))
    np.testing.assert_allclose(got, np.log(mass), rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("std", [0.003, 0.05, 0.3, 2.0])
def test_discretized_gaussian_matches_scipy_and_sums_to_one(std):
    levels = np.arange(256, dtype=np.float64) / 255  # every 8-bit value
    half = 0.5 / 255
    for mean in (0.0, 0.2, 0.5013, 0.97):
        x = levels.astype(np.float32).reshape(1, 16, 16, 1)
        logp = _np(losses.discretized_gaussian_log_pmf(x, np.float32(mean), np.float32(std))).ravel()
        lo = np.where(levels == 0, -np.inf, levels - half)
        hi = np.where(levels == 1, np.inf, levels + half)
        expected = stats.norm.cdf(hi, mean, std) - stats.norm.cdf(lo, mean, std)
        big = expected > 1e-30  # where the float64 difference of CDFs still has digits
        np.testing.assert_allclose(np.exp(logp)[big], expected[big], rtol=1e-4, atol=1e-9)
        assert np.exp(logp).sum() == pytest.approx(1.0, abs=1e-5)
        nll = _np(losses.discretized_gaussian_nll(x, np.float32(mean), np.float32(std)))
        np.testing.assert_allclose(nll, [-logp.sum()], rtol=1e-6)


def test_discretized_gaussian_prefers_the_right_mean_and_is_a_probability():
    x = np.array([[0.0, 1.0, 128 / 255]], np.float32)
    good = _np(losses.discretized_gaussian_nll(x, np.array([[0.0, 1.0, 0.5]], np.float32), 0.01))
    bad = _np(losses.discretized_gaussian_nll(x, np.array([[0.3, 0.6, 0.1]], np.float32), 0.01))
    assert 0 <= good[0] < bad[0]
    # The end bins reach to infinity: a mean beyond the range gives them almost all the mass.
    edge = _np(losses.discretized_gaussian_nll(x[:, :2], np.array([[-0.5, 1.5]], np.float32), 0.01))
    np.testing.assert_allclose(edge, [0.0], atol=1e-6)
