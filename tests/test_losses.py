"""The loss terms against independent computations (numpy/scipy, Monte Carlo)."""

import numpy as np
import pytest
from keras import ops
from scipy import stats

from models import losses


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
