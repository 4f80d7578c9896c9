"""The Fréchet distance against closed forms, and the cached feature classifier on digits."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import linalg

from benchmark.data.datasets import load_digits
from benchmark.scoring import frechet
from benchmark.scoring.frechet import (
    ClassifierConfig,
    frechet_distance,
    frechet_distance_features,
    gaussian_stats,
)


def reference_fd(mu1, s1, mu2, s2) -> float:
    """The textbook formula with a general matrix square root (scipy.linalg.sqrtm)."""
    covmean = linalg.sqrtm(s1 @ s2).real
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * covmean))


def random_covariance(rng: np.random.Generator, d: int) -> np.ndarray:
    a = rng.standard_normal((d, d))
    return a @ a.T + 0.1 * np.eye(d)


def test_identical_feature_sets_are_at_distance_zero():
    features = np.random.default_rng(0).standard_normal((500, 16))
    assert frechet_distance_features(features, features) == pytest.approx(0.0, abs=1e-8)


def test_diagonal_gaussians_match_the_closed_form():
    mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.0])
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 0.25])
    # Commuting (diagonal) covariances: Tr((S1 S2)^1/2) = sum sqrt(a * b).
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-10)


def test_equal_covariances_leave_the_squared_mean_distance():
    cov = random_covariance(np.random.default_rng(1), 5)
    shift = np.array([1.0, -2.0, 0.5, 0.0, 3.0])
    assert frechet_distance(np.zeros(5), cov, shift, cov) == pytest.approx(shift @ shift, rel=1e-8)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), d=st.integers(1, 12))
def test_full_covariances_match_sqrtm_and_the_distance_is_symmetric(seed, d):
    rng = np.random.default_rng(seed)
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    s1, s2 = random_covariance(rng, d), random_covariance(rng, d)
    fd = frechet_distance(mu1, s1, mu2, s2)
    assert fd >= 0
    assert fd == pytest.approx(reference_fd(mu1, s1, mu2, s2), rel=1e-6, abs=1e-8)
    assert fd == pytest.approx(frechet_distance(mu2, s2, mu1, s1), rel=1e-8, abs=1e-10)


def test_singular_covariances_give_a_finite_real_distance():
    # ReLU features are often dead (always 0): a covariance with zero rows and columns.
    rng = np.random.default_rng(2)
    f1, f2 = np.maximum(rng.standard_normal((300, 8)), 0), np.maximum(rng.standard_normal((300, 8)) + 0.5, 0)
    f1[:, :3] = 0.0
    f2[:, :2] = 0.0
    fd = frechet_distance_features(f1, f2)
    assert np.isfinite(fd) and isinstance(fd, float) and fd > 0


def test_sample_estimate_approaches_the_population_distance():
    rng = np.random.default_rng(3)
    mu1, mu2 = np.zeros(4), np.array([0.5, 0.0, -0.5, 1.0])
    s1, s2 = random_covariance(rng, 4), random_covariance(rng, 4)
    x1 = rng.multivariate_normal(mu1, s1, size=40_000)
    x2 = rng.multivariate_normal(mu2, s2, size=40_000)
    expected = reference_fd(mu1, s1, mu2, s2)
    assert frechet_distance_features(x1, x2) == pytest.approx(expected, rel=0.05)


def test_gaussian_stats_need_two_vectors():
    mean, cov = gaussian_stats(np.array([[1.0, 2.0], [3.0, 6.0]]))
    np.testing.assert_allclose(mean, [2.0, 4.0])
    np.testing.assert_allclose(cov, [[2.0, 4.0], [4.0, 8.0]])
    with pytest.raises(ValueError, match="at least 2"):
        gaussian_stats(np.ones((1, 3)))


def test_short_training_splits_are_repeated_to_a_minimum_epoch_length():
    config = ClassifierConfig()
    assert config.repeats(60_000) == 1
    assert config.repeats(1437) * 1437 >= config.min_epoch_steps * config.batch_size
    assert (config.repeats(1437) - 1) * 1437 < config.min_epoch_steps * config.batch_size


def test_the_cache_key_changes_with_the_config_data_and_backend():
    base = ClassifierConfig()
    key = base.key("digits", 1437, "tensorflow")
    assert key.startswith("digits-n1437-")
    assert ClassifierConfig(features=32).key("digits", 1437, "tensorflow") != key
    assert base.key("digits", 1000, "tensorflow") != key
    assert base.key("digits", 1437, "jax") != key
    assert base.key("digits", 1437, "tensorflow") == key


# --- the classifier, trained once on digits -----------------------------------------------


@pytest.fixture(scope="module")
def digits():
    return load_digits()


@pytest.fixture(scope="module")
def classifier(digits, tmp_path_factory):
    return frechet.load_or_train(digits, tmp_path_factory.mktemp("fd_cache"))


def test_classifier_is_accurate_enough_to_trust_its_features(classifier):
    assert classifier.test_accuracy > 0.9
    assert classifier.path.is_file() and classifier.path.with_suffix(".json").is_file()
    record = json.loads(classifier.path.with_suffix(".json").read_text())
    assert record["dataset"] == "digits" and record["n_train"] == 1437


def test_fd_tells_real_images_from_noise_and_blur(classifier, digits):
    rng = np.random.default_rng(0)
    noise = rng.random(digits.x_test.shape).astype(np.float32)
    blurred = np.clip(0.5 * digits.x_test + 0.25, 0, 1)
    assert classifier.real_fd < classifier.distance(blurred, digits.x_test) < classifier.distance(noise, digits.x_test)


def test_a_cached_classifier_is_loaded_not_retrained(classifier, digits, monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("the cached classifier should have been loaded")

    monkeypatch.setattr(frechet, "train_classifier", no_training)
    again = frechet.load_or_train(digits, classifier.path.parent)
    np.testing.assert_allclose(again.features(digits.x_test[:50]), classifier.features(digits.x_test[:50]), rtol=1e-5, atol=1e-6)
    assert again.test_accuracy == pytest.approx(classifier.test_accuracy)


def test_cache_dir_defaults_beside_the_run_folder(tmp_path, monkeypatch):
    monkeypatch.delenv(frechet.CACHE_DIR_ENV, raising=False)
    assert frechet.cache_dir_for(tmp_path / "runs" / "smoke") == (tmp_path / "runs" / ".cache").resolve()
    monkeypatch.setenv(frechet.CACHE_DIR_ENV, str(tmp_path / "elsewhere"))
    assert frechet.cache_dir_for(tmp_path / "runs" / "smoke") == tmp_path / "elsewhere"


def test_attribute_labels_train_a_multi_label_classifier(tmp_path):
    """Binary attributes (CelebA's kind of label): one sigmoid output each, learnt together."""
    from benchmark.data.dataset import Dataset

    rng = np.random.default_rng(0)
    x = rng.random((600, 8, 8, 3)).astype(np.float32)
    # Attribute 0: the red channel is bright; attribute 1: the top half is brighter than the bottom.
    y = np.stack([x[..., 0].mean(axis=(1, 2)) > 0.5, x[:, :4].mean(axis=(1, 2, 3)) > x[:, 4:].mean(axis=(1, 2, 3))], 1)
    data = Dataset("attrs", x[:500], y[:500].astype(np.int64), x[500:], y[500:].astype(np.int64), source="test")
    config = frechet.ClassifierConfig(epochs=3, min_epoch_steps=100)
    fc = frechet.load_or_train(data, tmp_path, config)
    assert fc.model.output.shape[-1] == 2
    assert fc.test_accuracy > 0.8  # chance is 0.5 per attribute
    assert fc.features(data.x_test).shape == (100, config.features)
