"""Metrics against values computed by hand."""

import numpy as np
import pytest

from benchmark.scoring import metrics


def test_recon_mse_is_per_image_mean_then_average():
    x = np.zeros((2, 2, 2, 1))
    x_hat = np.zeros((2, 2, 2, 1))
    x_hat[0, 0, 0, 0] = 1.0  # image 0: one pixel off by 1 -> 1/4
    x_hat[1] = 0.5  # image 1: every pixel off by 0.5 -> 0.25
    assert metrics.recon_mse(x, x_hat) == pytest.approx(0.25)


def test_recon_bce_in_nats_per_image():
    x = np.array([[1.0, 0.0]])
    p = np.array([[0.5, 0.25]])
    expected = -(np.log(0.5) + np.log(0.75))
    assert metrics.recon_bce(x, p) == pytest.approx(expected)


def test_recon_bce_clips_certain_mistakes():
    assert metrics.recon_bce(np.array([[1.0]]), np.array([[0.0]])) == pytest.approx(-np.log(1e-7))


def test_laplacian_variance_of_a_single_dot():
    image = np.zeros((1, 5, 5, 1))
    image[0, 2, 2, 0] = 1.0
    # Valid 3x3 response: centre -4, its four neighbours 1, the four corners 0.
    response = np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=float)
    assert metrics.laplacian_variance(image) == pytest.approx([response.var()])


def test_laplacian_variance_ignores_constants_and_linear_ramps():
    flat = np.full((1, 6, 6, 1), 0.7)
    ramp = np.tile(np.linspace(0, 1, 6), (6, 1))[None, :, :, None]
    np.testing.assert_allclose(metrics.laplacian_variance(np.concatenate([flat, ramp])), 0, atol=1e-12)


def test_laplacian_variance_of_grey_in_three_channels_is_that_of_the_grey_image():
    grey = np.random.default_rng(0).random((2, 6, 6, 1))
    colour = np.repeat(grey, 3, axis=-1)
    np.testing.assert_allclose(metrics.laplacian_variance(colour), metrics.laplacian_variance(grey))


def test_laplacian_variance_of_colour_is_that_of_its_luminance():
    rgb = np.random.default_rng(1).random((3, 8, 8, 3))
    luma = metrics.luminance(rgb)[..., None]
    np.testing.assert_allclose(metrics.laplacian_variance(rgb), metrics.laplacian_variance(luma))
    # A pattern in the blue channel alone counts for 0.114 of its amplitude, not a third.
    blue = np.zeros((1, 8, 8, 3))
    blue[0, ::2, :, 2] = 1.0
    stripes = blue[..., 2:]
    np.testing.assert_allclose(metrics.laplacian_variance(blue), 0.114**2 * metrics.laplacian_variance(stripes))


def test_blurring_lowers_sharpness():
    rng = np.random.default_rng(0)
    images = (rng.random((4, 12, 12, 1)) > 0.5).astype(float)
    blurred = (images + np.roll(images, 1, axis=1) + np.roll(images, 1, axis=2)) / 3
    assert metrics.sharpness(blurred) < metrics.sharpness(images)


def test_blurriness_relative_to_real():
    assert metrics.blurriness(0.25, 1.0) == pytest.approx(0.75)
    assert metrics.blurriness(1.0, 1.0) == 0.0


def _clusters(n_per_class: int, separation: float, seed: int):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(3), n_per_class)
    centres = separation * np.eye(3, 4)
    return centres[labels] + rng.normal(size=(len(labels), 4)), labels


@pytest.mark.parametrize("score", [metrics.latent_acc_logreg, metrics.latent_acc_knn])
def test_latent_classifiers_separate_clusters_and_not_noise(score):
    z_train, y_train = _clusters(100, 20.0, 0)
    z_test, y_test = _clusters(50, 20.0, 1)
    assert score(z_train, y_train, z_test, y_test) == 1.0
    shuffled = np.random.default_rng(2).permutation(y_test)
    assert score(z_train, y_train, z_test, shuffled) < 0.6  # chance is 1/3


def test_luminance_weights_colour_channels():
    rgb = np.zeros((1, 2, 2, 3))
    rgb[..., 1] = 1.0
    np.testing.assert_allclose(metrics.luminance(rgb), 0.587)
    grey = np.random.default_rng(3).random((2, 4, 4, 1))
    np.testing.assert_allclose(metrics.luminance(grey), grey[..., 0])


# --- latent health ---------------------------------------------------------------------------


def test_active_units_count_dimensions_whose_mean_varies():
    rng = np.random.default_rng(4)
    z = np.concatenate([rng.normal(0, 1.0, (500, 3)), rng.normal(0, 0.01, (500, 2)), np.zeros((500, 1))], axis=1)
    assert metrics.active_units(z) == 3  # variances 1, 1, 1 | 1e-4, 1e-4 | 0
    assert metrics.active_units(z, threshold=1e-5) == 5
    with pytest.raises(ValueError, match="at least 2"):
        metrics.active_units(z[:1])


def test_kl_per_dim_matches_the_closed_form_and_sums_to_the_kl():
    mean = np.array([[1.0, 0.0], [0.0, 0.0]])
    log_var = np.array([[0.0, np.log(4.0)], [0.0, 0.0]])
    # Dim 0: KLs 0.5 * 1 and 0 -> mean 0.25. Dim 1: 0.5 * (4 - log 4 - 1) and 0.
    expected = [0.25, 0.25 * (3 - np.log(4.0))]
    np.testing.assert_allclose(metrics.gaussian_kl_per_dim(mean, log_var), expected)
