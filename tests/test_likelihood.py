"""The importance-sampled likelihood against closed forms, and binarized MNIST.

The known answer: a linear-Gaussian model, p(z) = N(0, I), p(x|z) = N(Wz + b, s^2 I), whose
marginal is p(x) = N(x; b, W W^T + s^2 I). With orthogonal columns of W its posterior is a
diagonal Gaussian, so it can be the proposal exactly: every importance weight is then p(x).
"""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
from scipy import stats

import models
from benchmark.data.dataset import Dataset, binarize
from benchmark.data.datasets import binarized, load_dataset
from benchmark.running.train import epoch_images, epoch_order
from benchmark.scoring.likelihood import likelihood_scores, log_importance_weights, nll_is

DIM, LATENT, NOISE = 6, 3, 0.5


class LinearGaussian:
    """p(z) = N(0, I), p(x|z) = N(W z + b, NOISE^2 I), x of shape (n, DIM); q(z|x) diagonal.

    ``shift`` and ``scale`` move the proposal away from the true posterior (0 and 1: exact).
    """

    def __init__(self, shift: float = 0.0, scale: float = 1.0):
        rng = np.random.default_rng(0)
        q, _ = np.linalg.qr(rng.standard_normal((DIM, LATENT)))  # orthonormal columns
        self.w = q * np.array([2.0, 1.0, 0.5])  # (DIM, LATENT), W^T W diagonal
        self.b = rng.standard_normal(DIM)
        self.shift, self.scale = shift, scale
        self.post_var = 1.0 / (1.0 + np.sum(self.w**2, axis=0) / NOISE**2)  # (LATENT,)

    def posterior_params(self, x):
        mean = (x - self.b) @ self.w * self.post_var / NOISE**2
        log_var = np.log(self.post_var * self.scale**2) * np.ones_like(mean)
        return mean + self.shift, log_var

    def decoder(self, z):
        return np.asarray(z, np.float64) @ self.w.T + self.b

    def log_likelihood(self, x, mean):
        return stats.norm.logpdf(np.asarray(x, np.float64), mean, NOISE).sum(axis=1)

    def sample(self, n: int, seed: int = 1) -> np.ndarray:
        rng = np.random.default_rng(seed)
        z = rng.standard_normal((n, LATENT))
        return (self.decoder(z) + NOISE * rng.standard_normal((n, DIM))).astype(np.float32)

    def exact_nll(self, x) -> np.ndarray:
        cov = self.w @ self.w.T + NOISE**2 * np.eye(DIM)
        return -stats.multivariate_normal(self.b, cov).logpdf(np.asarray(x, np.float64))

    def neg_elbo(self, x) -> np.ndarray:
        """-ELBO in closed form: E_q[-log p(x|z)] + KL(q || p)."""
        mean, log_var = self.posterior_params(np.asarray(x, np.float64))
        var = np.exp(log_var)
        resid = x - mean @ self.w.T - self.b
        expected_sq = np.sum(resid**2, axis=1) + np.sum(var * np.sum(self.w**2, axis=0), axis=1)
        nll = 0.5 * expected_sq / NOISE**2 + 0.5 * DIM * math.log(2 * math.pi * NOISE**2)
        kl = 0.5 * np.sum(mean**2 + var - log_var - 1.0, axis=1)
        return nll + kl


@pytest.mark.backend
def test_true_posterior_gives_the_exact_likelihood_at_every_k():
    model = LinearGaussian()
    x = model.sample(50)
    exact = model.exact_nll(x)
    for k in (1, 10, 100):
        np.testing.assert_allclose(nll_is(model, x, samples=k, seed=0), exact, atol=1e-4)


@pytest.mark.backend
def test_estimate_approaches_the_exact_value_as_k_grows():
    model = LinearGaussian(shift=0.4, scale=1.6)  # a poor proposal: a wide gap at K = 1
    x = model.sample(200)
    exact = float(model.exact_nll(x).mean())
    gap = {k: float(nll_is(model, x, samples=k, seed=0).mean()) - exact for k in (1, 10, 100, 1000)}
    assert gap[1] > 0.5  # the ELBO's gap
    assert gap[1] > gap[10] > gap[100] > gap[1000] > -0.01  # a bound that tightens
    assert gap[1000] < 0.05


def test_k1_is_the_elbo_in_expectation():
    model = LinearGaussian(shift=0.3, scale=1.3)
    x = np.repeat(model.sample(20), 500, axis=0)  # 500 independent draws per point
    estimate = nll_is(model, x, samples=1, seed=0).reshape(20, 500)
    mean, se = estimate.mean(axis=1), estimate.std(axis=1, ddof=1) / math.sqrt(500)
    closed = model.neg_elbo(x[::500])
    assert np.all(np.abs(mean - closed) < 4 * se + 1e-6)


@pytest.mark.backend
def test_log_weights_are_seeded_and_chunking_does_not_matter():
    model = LinearGaussian(shift=0.2)
    x = model.sample(7)
    a = log_importance_weights(model, x, samples=9, seed=3, max_decode=4096)  # every image in one call
    np.testing.assert_array_equal(a, log_importance_weights(model, x, samples=9, seed=3, max_decode=4096))
    for max_decode in (9, 4, 1):  # one image a call; then 4 samples, then 1, a call
        chunked = log_importance_weights(model, x, samples=9, seed=3, max_decode=max_decode)
        np.testing.assert_allclose(chunked, a, rtol=1e-6, atol=1e-6)
    c = log_importance_weights(model, x, samples=9, seed=4)
    assert a.shape == (7, 9) and not np.allclose(a, c)


def _binary_digits() -> Dataset:
    from sklearn.datasets import load_digits

    images = (load_digits().images.astype(np.float32) / 16.0)[..., None]
    labels = load_digits().target.astype(np.int64)
    data = Dataset("digits", images[:1500], labels[:1500], images[1500:], labels[1500:], "sklearn")
    return binarized(data)


def _train_briefly(name: str, data: Dataset, images, jit: bool, **config) -> keras.Model:
    """``name`` (latent 4) after 10 epochs of ``images(epoch)`` from ``data``."""
    keras.utils.set_random_seed(0)
    model = models.create_model(name, data.image_shape, latent_dim=4, seed=0, **config)
    model.compile(optimizer=model.make_optimizer(), jit_compile=jit)
    for epoch in range(10):
        model.fit(images(epoch), batch_size=64, epochs=1, verbose=0)
    return model


@pytest.fixture(scope="module")
def trained_bernoulli(harness_jit):
    """A Bernoulli VAE trained briefly on binarized digits, and the binary test images."""
    data = _binary_digits()
    model = _train_briefly("vae_bernoulli", data, lambda epoch: epoch_images(data, 0, epoch), harness_jit)
    return model, data.x_test


def _eight_bit_digits() -> Dataset:
    """The digits on the 8-bit grid k / 255 (their own 17 levels, rounded to it)."""
    from sklearn.datasets import load_digits

    images = (np.round(load_digits().images / 16.0 * 255) / 255).astype(np.float32)[..., None]
    labels = load_digits().target.astype(np.int64)
    return Dataset("digits", images[:1500], labels[:1500], images[1500:], labels[1500:], "sklearn")


@pytest.fixture(scope="module")
def trained_gaussian(harness_jit):
    """A Gaussian VAE with learned noise (its loss is then the discretized likelihood that
    ``nll_is`` estimates), trained briefly on 8-bit digits, and the test images."""
    data = _eight_bit_digits()
    model = _train_briefly("vae_mse", data, lambda epoch: data.x_train, harness_jit, obs_noise="scalar")
    return model, data.x_test


def assert_a_bound_that_tightens(name: str, model, x) -> dict[int, float]:
    """For ``model``, a ``name`` trained briefly: K = 1 is the model's own -ELBO up to Monte Carlo error; the bound falls with K and is
    below the -ELBO at K = 100; an untrained model scores worse. Returns the means by K."""
    x = np.tile(x, (4, 1, 1, 1))  # each test image 4 times: 4 independent estimates
    nll, kl = (np.asarray(keras.ops.convert_to_numpy(t)) for t in model.elbo_terms(x))
    neg_elbo = float(np.mean(nll + kl))
    per_image = {k: nll_is(model, x, samples=k, seed=0) for k in (1, 10, 100)}
    by_k = {k: float(v.mean()) for k, v in per_image.items()}
    assert abs(by_k[1] - neg_elbo) < 4 * per_image[1].std(ddof=1) / math.sqrt(len(x))
    # Falls with K, by more than its Monte Carlo error from 1 to 10; weakly after that.
    gain = per_image[1] - per_image[10]
    assert gain.mean() > 3 * gain.std(ddof=1) / math.sqrt(len(x))
    assert by_k[100] < by_k[10] + 0.01
    assert by_k[100] < neg_elbo
    fresh = models.create_model(name, x.shape[1:], latent_dim=4, seed=0)
    assert float(nll_is(fresh, x, samples=10, seed=0).mean()) > by_k[10] + 5
    return by_k


@pytest.mark.backend
def test_nll_is_is_below_neg_elbo_and_falls_with_k(trained_bernoulli):
    assert_a_bound_that_tightens("vae_bernoulli", *trained_bernoulli)


def best_bin_nll(x: np.ndarray, std: float) -> np.ndarray:
    """The least -log P(x|z) any decoder mean in [0, 1] can reach with noise ``std``, per
    image (nats): each pixel's mean on its own value (interior bins, mass 2 Phi(h/std) - 1
    for half-width h = 1/510) or at 0 / 1 (the open end bins, mass Phi(h/std)). P(x) is an
    average of P(x|z), so -log P(x) is at least this."""
    h = 0.5 / 255
    end = (x < h) | (x > 1 - h)
    mass = np.where(end, stats.norm.cdf(h / std), 2 * stats.norm.cdf(h / std) - 1)
    return -np.log(mass).reshape(len(x), -1).sum(axis=1)


@pytest.mark.backend
def test_gaussian_nll_is_is_a_bound_of_the_discretized_likelihood(trained_gaussian):
    """vae_mse's ``nll_is`` is the probability of 8-bit pixels: the same checks as the
    Bernoulli VAE's, and it cannot beat the closed-form best a decoder could do."""
    model, x = trained_gaussian
    by_k = assert_a_bound_that_tightens("vae_mse", model, x)
    std = float(keras.ops.convert_to_numpy(model.observation_std()))
    floor = float(best_bin_nll(x, std).mean())
    assert 0 < floor < by_k[100]
    # The floor is a real one: a decoder that returns each image itself scores it.
    own_logits = np.log(x + 1e-7) - np.log1p(1e-7 - x)  # sigmoid(own_logits) = x
    exact = -keras.ops.convert_to_numpy(model.log_likelihood(x, own_logits))
    np.testing.assert_allclose(exact.mean(), floor, rtol=1e-3)


def test_scores_and_notes_per_likelihood(trained_bernoulli):
    model, x = trained_bernoulli
    scores, notes = likelihood_scores(model, x, samples=5, seed=0)
    assert notes == [] and np.isfinite(scores["nll_is"])
    assert scores["bits_per_dim"] == pytest.approx(scores["nll_is"] / (64 * math.log(2)))

    grey = (np.round(x * 0.5 * 255) / 255).astype(np.float32)  # 8-bit grey levels
    scores, notes = likelihood_scores(model, grey, samples=5, seed=0)
    assert math.isnan(scores["nll_is"]) and math.isnan(scores["bits_per_dim"])
    assert len(notes) == 1 and "binary" in notes[0] and "BernoulliVAE" in notes[0]

    gaussian = models.create_model("vae_mse", (8, 8, 1), latent_dim=4, seed=0)
    for images in (grey, x):  # 8-bit data, and binary data, which lie on the 8-bit grid
        scores, notes = likelihood_scores(gaussian, images, samples=5, seed=0)
        assert notes == [] and np.isfinite(scores["nll_is"]) and scores["nll_is"] > 0
    scores, notes = likelihood_scores(
        gaussian, x * (13 / 16), samples=5, seed=0
    )  # digits-like levels
    assert math.isnan(scores["nll_is"]) and "8-bit" in notes[0]

    for name in ("vae_gan", "ae"):
        other = models.create_model(name, (8, 8, 1), latent_dim=4, seed=0)
        scores, notes = likelihood_scores(other, x, samples=5, seed=0)
        assert math.isnan(scores["nll_is"]) and "no likelihood of pixel values" in notes[0]


# -- learned observation noise ---------------------------------------------------------------


@pytest.mark.parametrize("mode, shape", [("scalar", ()), ("pixel", (8, 8, 1))])
def test_learned_noise_trains_saves_and_loads(mode, shape, tmp_path, harness_jit):
    keras.utils.set_random_seed(0)
    model = models.create_model(
        "vae_mse", (8, 8, 1), latent_dim=4, seed=0, obs_noise=mode, obs_std=0.3
    )
    model.compile(optimizer=model.make_optimizer(), jit_compile=harness_jit)
    x = (np.random.default_rng(0).integers(0, 256, (64, 8, 8, 1)) / 255).astype(np.float32)
    start = np.asarray(keras.ops.convert_to_numpy(model.observation_std()))
    assert start.shape == shape
    np.testing.assert_allclose(start, 0.3, rtol=1e-6)
    history = model.fit(x, batch_size=16, epochs=5, verbose=0)
    assert np.isfinite(history.history["loss"]).all() and "obs_std" in history.history
    moved = np.asarray(keras.ops.convert_to_numpy(model.observation_std()))
    assert np.mean(np.abs(moved - 0.3)) > 1e-3  # each step moves log obs_std by up to 1e-3
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(loaded.observation_std()), moved, rtol=1e-6
    )
    assert loaded.get_config() == model.get_config()


def test_learned_noise_rejects_an_unknown_mode():
    with pytest.raises(ValueError, match="obs_noise"):
        models.create_model("vae_mse", (8, 8, 1), obs_noise="per_channel")


# -- binarization ----------------------------------------------------------------------------


def test_training_images_are_drawn_afresh_each_epoch_and_reproducibly():
    data = _binary_digits()
    n = len(data.x_train)

    def by_image(seed: int, epoch: int) -> np.ndarray:
        """Epoch ``epoch``'s training images, put back in the dataset's order."""
        return epoch_images(data, seed, epoch)[np.argsort(epoch_order(seed, epoch, n))]

    first, second = by_image(0, 0), by_image(0, 1)
    assert first.dtype == np.float32 and set(np.unique(first)) == {0.0, 1.0}
    # The same image, other pixels: a new draw, not only another order.
    assert 0.02 < np.mean(first != second) < 0.5
    np.testing.assert_array_equal(by_image(0, 1), second)  # what a resumed unit sees
    assert not np.array_equal(by_image(1, 0), first)
    # Each draw keeps to the image: a pixel that is 0 (or 1) in the probabilities stays so.
    assert np.all(first[data.x_train == 0] == 0) and np.all(first[data.x_train == 1] == 1)


def test_binarize_draws_bernoulli_of_the_intensity():
    p = np.linspace(0, 1, 11, dtype=np.float32)
    draws = binarize(np.tile(p, (20000, 1)), seed=0)
    assert set(np.unique(draws)) <= {0.0, 1.0}
    np.testing.assert_allclose(draws.mean(axis=0), p, atol=0.015)
    assert draws[:, 0].max() == 0 and draws[:, -1].min() == 1


def test_binarized_mnist_test_split_is_fixed_and_binary(data_dir):
    a = load_dataset("binarized_mnist", data_dir)
    b = load_dataset("binarized_mnist", data_dir)
    mnist = load_dataset("mnist", data_dir)
    assert a.binarize and a.name == "binarized_mnist" and a.x_test.shape == (10000, 28, 28, 1)
    np.testing.assert_array_equal(a.x_test, b.x_test)
    assert set(np.unique(a.x_test)) == {0.0, 1.0}
    np.testing.assert_array_equal(a.x_train, mnist.x_train)  # probabilities, drawn per epoch
    assert abs(a.x_test.mean() - mnist.x_test.mean()) < 0.002
    fixed = a.subset(100, 50).fixed()
    assert set(np.unique(fixed.x_train)) == {0.0, 1.0} and not fixed.binarize


# -- the preset and the flag -----------------------------------------------------------------


def test_likelihood_preset_and_is_samples_flag():
    from benchmark.cli import build_parser, resolve
    from benchmark.running.config import DEFAULT_IS_SAMPLES

    run = resolve(build_parser().parse_args(["--preset", "likelihood"]), "tensorflow")
    assert run.models == ("vae_bernoulli",) and run.datasets == ("binarized_mnist",)
    assert (run.batch_size, run.latent_dim, run.is_samples) == ((100,), (50,), (5000,))
    assert {u.is_samples for u in run.units()} == {5000}
    flagged = resolve(
        build_parser().parse_args(["--preset", "likelihood", "--is-samples", "7"]), "tensorflow"
    )
    assert flagged.is_samples == (7,) and flagged.units()[0].unit_id != run.units()[0].unit_id
    quick = resolve(build_parser().parse_args(["--preset", "quick"]), "tensorflow")
    assert quick.is_samples == (DEFAULT_IS_SAMPLES,) and quick.latent_dim == (16,)
