"""The latent mixture sampler, and the scores of a unit on data too small or too uniform for
them: NaN with a note, never an exception."""

import dataclasses

import numpy as np
import pytest

import models
from benchmark.data.datasets import load_digits
from benchmark.scoring import sampling
from benchmark.scoring.evaluate import GMM_COLUMNS, evaluate_model

# --- the mixture -------------------------------------------------------------------------------


def test_the_mixture_recovers_well_separated_clusters():
    rng = np.random.default_rng(0)
    centres = 10.0 * rng.normal(size=(10, 3))
    z = centres[np.repeat(np.arange(10), 200)] + 0.1 * rng.normal(size=(2000, 3))
    gmm = sampling.fit_latent_gmm(z)
    assert gmm.n_components == 10 and gmm.covariance_type == "full"
    found = gmm.means_[np.argsort(gmm.means_[:, 0])]
    np.testing.assert_allclose(found, centres[np.argsort(centres[:, 0])], atol=0.05)
    draws = sampling.sample_latent_gmm(gmm, 500, seed=1)
    assert draws.shape == (500, 3) and draws.dtype == np.float32
    # Shuffled: the first 64 draws come from many components, not one.
    nearest = np.argmin(((draws[:64, None, :] - centres[None]) ** 2).sum(-1), axis=1)
    assert len(np.unique(nearest)) >= 6


def test_the_mixture_is_a_function_of_the_codes():
    z = np.random.default_rng(1).normal(size=(300, 4))
    a, b = sampling.fit_latent_gmm(z), sampling.fit_latent_gmm(z.copy())
    np.testing.assert_array_equal(sampling.sample_latent_gmm(a, 50, seed=0), sampling.sample_latent_gmm(b, 50, seed=0))


@pytest.mark.parametrize(
    ("z", "reason"),
    [
        (np.random.default_rng(0).normal(size=(9, 4)), "9 training latents are fewer than the 10"),
        (np.ones((100, 4)), "constant"),
        (np.repeat(np.eye(4), 25, axis=0), "fewer distinct values"),
        (np.full((20, 2), np.nan), "not all finite"),
    ],
    ids=["too-few", "constant", "four-points", "nan"],
)
def test_degenerate_latents_are_refused_with_a_reason(z, reason):
    with pytest.raises(sampling.DegenerateLatents, match=reason):
        sampling.fit_latent_gmm(z)


def test_a_failing_fit_is_reported_as_degenerate(monkeypatch):
    def fail(self, z):
        raise ValueError("ill-defined empirical covariance")

    monkeypatch.setattr(sampling.GaussianMixture, "fit", fail)
    with pytest.raises(sampling.DegenerateLatents, match=r"could not be fitted \(ill-defined"):
        sampling.fit_latent_gmm(np.random.default_rng(0).normal(size=(100, 3)))


# --- scores of a unit, in pixel features --------------------------------------------------------


@dataclasses.dataclass
class PixelFeatures:
    """Stands in for the trained feature classifier: the features are the pixels."""

    real_fd: float = 0.0
    test_accuracy: float = 1.0

    def features(self, images: np.ndarray) -> np.ndarray:
        return np.asarray(images, np.float64).reshape(len(images), -1)


class ConstantEncoder:
    """A model whose latent means do not depend on the image; it decodes noise."""

    latent_dim = 4
    variational = False
    has_prior = False

    def encode(self, x):
        return np.zeros((len(x), self.latent_dim), np.float32)

    def decode(self, z):
        rng = np.random.default_rng(0)
        return rng.random((len(z), 8, 8, 1)).astype(np.float32)


@pytest.fixture(scope="module")
def digits():
    return load_digits()


@pytest.fixture(scope="module")
def vae():
    return models.create_model("vae_bernoulli", (8, 8, 1), 4, seed=0)


def _small(data, n_train=None, n_test=None, classes=None):
    if classes is not None:
        train, test = np.isin(data.y_train, classes), np.isin(data.y_test, classes)
        data = dataclasses.replace(data, x_train=data.x_train[train], y_train=data.y_train[train],
                                   x_test=data.x_test[test], y_test=data.y_test[test])  # fmt: skip
    return dataclasses.replace(data, x_train=data.x_train[:n_train], y_train=data.y_train[:n_train],
                               x_test=data.x_test[:n_test], y_test=data.y_test[:n_test])  # fmt: skip


@pytest.mark.backend
def test_a_variational_model_gets_every_score(vae, digits):
    scores, arrays = evaluate_model(vae, _small(digits, 400, 100), seed=0, classifier=PixelFeatures())
    columns = ["sharpness_gap_recon", "sharpness_gap_sample", "spectral_gap_recon", "spectral_gap_sample",
               "precision_sample", "recall_sample", "kid_sample", "kid_sample_se", *GMM_COLUMNS,
               "active_units", "latent_acc_logreg"]  # fmt: skip
    assert all(np.isfinite(scores[c]) for c in columns), {c: scores[c] for c in columns}
    # The only note: a Bernoulli likelihood is no likelihood of grey digits (see test_likelihood).
    assert [n for n in scores["notes"].split("; ") if n and not n.startswith("nll_is:")] == []
    assert scores["has_prior"] is True
    assert 0 <= scores["active_units"] <= 4
    assert arrays["kl_per_dim"].shape == (4,)
    # The KL per dimension sums to the ELBO's KL (the same posterior, computed apart).
    assert arrays["kl_per_dim"].sum() == pytest.approx(scores["kl"], rel=1e-4)
    assert arrays["samples_gmm"].shape == (64, 8, 8, 1)


def test_the_autoencoder_has_no_prior_and_no_active_units(digits):
    ae = models.create_model("ae", (8, 8, 1), 4, seed=0)
    scores, arrays = evaluate_model(ae, _small(digits, 200, 50), seed=0, classifier=PixelFeatures())
    assert scores["has_prior"] is False
    assert np.isfinite(scores["fd_sample_gmm"]) and np.isfinite(scores["precision_sample_gmm"])
    assert np.isnan(scores["active_units"]) and scores["notes"].startswith("active_units:")
    assert "kl_per_dim" not in arrays


def test_too_few_test_images_for_three_neighbours(vae, digits):
    scores, _ = evaluate_model(vae, _small(digits, 400, 3), seed=0, classifier=PixelFeatures())
    for column in ("precision_sample", "recall_sample", "coverage_sample", "precision_sample_gmm", "recall_sample_gmm"):
        assert np.isnan(scores[column])
    assert "precision, recall, coverage (every sample set): 3 feature vectors are too few for k = 5" in scores["notes"]
    # What 3 images can support is still scored.
    assert np.isfinite(scores["kid_sample"]) and np.isfinite(scores["fd_sample"]) and np.isfinite(scores["sharpness_gap_sample"])


def test_a_single_test_image(vae, digits):
    scores, _ = evaluate_model(vae, _small(digits, 400, 1), seed=0, classifier=PixelFeatures())
    for column in ("fd_sample", "kid_sample", "precision_sample", "active_units", "fd_sample_gmm"):
        assert np.isnan(scores[column]), column
    for reason in ("fd (sample): need at least 2", "kid (sample): KID needs at least 2", "active_units: need at least 2"):
        assert reason in scores["notes"]


def test_fewer_training_latents_than_mixture_components(vae, digits):
    scores, arrays = evaluate_model(vae, _small(digits, 6, 50), seed=0, classifier=PixelFeatures())
    assert all(np.isnan(scores[c]) for c in GMM_COLUMNS)
    assert f"{', '.join(GMM_COLUMNS)}: 6 training latents are fewer than the 10 mixture components" in scores["notes"]
    assert arrays["samples_gmm"].shape == (0, 8, 8, 1)
    assert np.isfinite(scores["fd_sample"])


def test_constant_latent_means(digits):
    scores, _ = evaluate_model(ConstantEncoder(), _small(digits, 200, 50), seed=0, classifier=PixelFeatures())
    assert all(np.isnan(scores[c]) for c in GMM_COLUMNS)
    assert "the training latents are constant: the mixture is degenerate" in scores["notes"]
    assert np.isfinite(scores["precision_sample"])


def test_a_single_class_dataset(vae, digits):
    scores, _ = evaluate_model(vae, _small(digits, classes=[3]), seed=0, classifier=PixelFeatures())
    assert np.isnan(scores["latent_acc_logreg"])
    assert "latent_acc_logreg: " in scores["notes"] and "class" in scores["notes"]
    assert np.isfinite(scores["recall_sample"]) and np.isfinite(scores["fd_sample_gmm"])


def test_constant_images_have_no_gap_but_a_note(digits):
    class Flat(ConstantEncoder):
        def encode(self, x):
            return np.random.default_rng(0).normal(size=(len(x), self.latent_dim)).astype(np.float32)

        def decode(self, z):
            return np.full((len(z), 8, 8, 1), 0.5, np.float32)

    scores, _ = evaluate_model(Flat(), _small(digits, 200, 50), seed=0)
    # No sharpness at all: the worst gap there is, never a NaN that a mean would drop.
    assert scores["sharpness_gap_sample"] == float("inf") and scores["spectral_gap_recon"] == float("inf")
    assert "sharpness_gap, contrast_gap, spectral_gap (sample): constant images" in scores["notes"]


# --- the wiring of the scores: a "model" whose images are real ---------------------------------


class RealImages:
    """Reconstructs every test image exactly and "samples" distinct real images it was not
    scored against (``pool``, in order, over every call): each score of a perfect generator
    is then known. ``encode`` gives an image's index in the test split."""

    variational = False
    has_prior = True

    def __init__(self, test: np.ndarray, pool: np.ndarray):
        self.test, self.pool, self.latent_dim, self.next = test, pool, 2, 0
        self.index = {image.tobytes(): i for i, image in enumerate(test)}

    def encode(self, x):
        ids = np.array([self.index.get(np.asarray(image, np.float32).tobytes(), -1) for image in x], np.float32)
        # The second coordinate spreads the codes, so a mixture can be fitted to them.
        return np.stack([ids, np.random.default_rng(len(x)).normal(size=len(x))], axis=1).astype(np.float32)

    def decode(self, z):
        ids = z[:, 0]
        if np.all(ids >= 0) and np.all(ids == np.round(ids)) and np.all(ids < len(self.test)):
            return self.test[ids.astype(int)]  # reconstructions of test images
        out = self.pool[self.next : self.next + len(z)]
        self.next += len(z)
        return out


@pytest.mark.backend
@pytest.mark.parametrize("one_class", [False, True], ids=["real", "one-class"])
def test_each_score_is_wired_to_the_right_sets(digits, one_class):
    test = np.asarray(digits.x_test, np.float32)
    pool = np.asarray(digits.x_train, np.float32)
    if one_class:
        pool = np.concatenate([pool[digits.y_train == 3]] * 8)
    scores, _ = evaluate_model(RealImages(test, pool), digits, seed=0, classifier=PixelFeatures())
    assert scores["recon_mse"] == 0 and scores["sharpness_gap_recon"] == 0 and scores["spectral_gap_recon"] == 0
    if not one_class:
        # Real images against real images: the scores of a perfect generator.
        assert scores["precision_sample"] > 0.8 and scores["recall_sample"] > 0.8 and scores["coverage_sample"] > 0.85
        assert abs(scores["kid_sample"]) < 3 * scores["kid_sample_se"] + 1e-3
        assert scores["sharpness_gap_sample"] < 0.15 and scores["spectral_gap_sample"] < 0.15
    else:
        # One digit of ten: each sample is realistic (precision) but covers a tenth (recall, coverage).
        assert scores["precision_sample"] > 0.8
        assert scores["recall_sample"] < 0.3 and scores["coverage_sample"] < 0.3
        assert scores["kid_sample"] > 10 * scores["kid_sample_se"]
