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


# --- two-sided sharpness and the power spectrum --------------------------------------------


def test_sharpness_gap_is_symmetric_in_log_ratio():
    assert metrics.sharpness_gap(1.0, 1.0) == 0.0
    assert metrics.sharpness_gap(0.5, 1.0) == pytest.approx(np.log(2))
    assert metrics.sharpness_gap(2.0, 1.0) == pytest.approx(np.log(2))  # over-sharp: as bad as blurred
    assert metrics.sharpness_gap(0.0, 1.0) == float("inf")


def test_white_noise_has_a_flat_spectrum_and_a_known_laplacian_variance():
    sigma = 0.3
    noise = np.random.default_rng(0).normal(0.0, sigma, (4000, 16, 16, 1))
    spectrum = metrics.radial_power_spectrum(noise)
    assert spectrum.shape == (8,)
    # E|FFT|^2 / (H W) = sigma^2 at every frequency but DC (removed with the mean).
    np.testing.assert_allclose(spectrum, sigma**2, rtol=0.03)
    # Laplacian weights 1, 1, 1, 1, -4 on independent pixels: variance 20 sigma^2.
    assert metrics.sharpness(noise) == pytest.approx(20 * sigma**2, rel=0.02)


def test_a_single_frequency_lands_in_its_ring():
    n = 16
    x = np.arange(n)
    wave = np.cos(2 * np.pi * 3 * x / n)[None, :] * np.ones((n, 1))  # 3 cycles along the width
    spectrum = metrics.radial_power_spectrum(wave[None, :, :, None])
    assert np.argmax(spectrum) == 3 - 1  # rings start at k = 1
    assert np.count_nonzero(spectrum > 1e-12) == 1


def test_a_contrast_change_by_a_moves_both_gaps_by_two_log_a():
    images = np.random.default_rng(1).random((50, 12, 12, 1))
    real_sharp, real_spectrum = metrics.sharpness(images), metrics.radial_power_spectrum(images)
    for a in (0.5, 2.0):
        scaled = a * images
        assert metrics.sharpness_gap(metrics.sharpness(scaled), real_sharp) == pytest.approx(2 * abs(np.log(a)))
        assert metrics.spectral_gap(metrics.radial_power_spectrum(scaled), real_spectrum) == pytest.approx(2 * abs(np.log(a)))


def test_spectral_gap_of_identical_sets_is_zero_and_of_constants_infinite():
    images = np.random.default_rng(2).random((20, 8, 8, 1))
    spectrum = metrics.radial_power_spectrum(images)
    assert metrics.spectral_gap(spectrum, spectrum) == 0.0
    flat = metrics.radial_power_spectrum(np.full((5, 8, 8, 1), 0.3))
    assert metrics.spectral_gap(flat, spectrum) == float("inf")


def test_luminance_weights_colour_channels():
    rgb = np.zeros((1, 2, 2, 3))
    rgb[..., 1] = 1.0
    np.testing.assert_allclose(metrics.luminance(rgb), 0.587)
    grey = np.random.default_rng(3).random((2, 4, 4, 1))
    np.testing.assert_allclose(metrics.luminance(grey), grey[..., 0])


@pytest.fixture(scope="module")
def mnist_gaps(data_dir):
    """Sharpness and spectral gaps against the MNIST test images of distorted copies of them.

    The reference "real" entry is 10,000 training images: what a perfect generator scores.
    """
    from scipy.ndimage import gaussian_filter

    from benchmark.data.datasets import load_dataset

    data = load_dataset("mnist", data_dir)
    test = data.x_test.astype(np.float64)
    rng = np.random.default_rng(0)
    sets = {
        "real": data.x_train[:10_000],
        "blur 0.5": gaussian_filter(test, sigma=(0, 0.5, 0.5, 0)),
        "blur 1": gaussian_filter(test, sigma=(0, 1, 1, 0)),
        "blur 2": gaussian_filter(test, sigma=(0, 2, 2, 0)),
        "noise 0.1": np.clip(test + rng.normal(0.0, 0.1, test.shape), 0, 1),
        "binarized": (test > 0.5).astype(np.float64),
        "uniform": rng.random(test.shape),
    }
    sharp, spectrum = metrics.sharpness(test), metrics.radial_power_spectrum(test)
    gaps = {
        name: (
            metrics.sharpness_gap(metrics.sharpness(images), sharp),
            metrics.spectral_gap(metrics.radial_power_spectrum(images), spectrum),
        )
        for name, images in sets.items()
    }
    gaps["identical"] = (
        metrics.sharpness_gap(sharp, sharp),
        metrics.spectral_gap(spectrum, spectrum),
    )
    return gaps


@pytest.mark.mnist
@pytest.mark.parametrize("measure", [0, 1], ids=["sharpness_gap", "spectral_gap"])
def test_mnist_blur_grows_both_gaps_monotonically(mnist_gaps, measure):
    blur = [mnist_gaps[f"blur {s}"][measure] for s in ("0.5", "1", "2")]
    assert mnist_gaps["real"][measure] < blur[0] < blur[1] < blur[2]
    assert mnist_gaps["identical"][measure] == 0.0


@pytest.mark.mnist
@pytest.mark.parametrize("measure", [0, 1], ids=["sharpness_gap", "spectral_gap"])
@pytest.mark.parametrize("distortion", ["noise 0.1", "binarized", "uniform"])
def test_mnist_noise_and_binarization_score_worse_than_real(mnist_gaps, measure, distortion):
    # Real training images are within a few hundredths of the test images; each distortion
    # is several times further (measured: 0.3 to 2.2).
    assert mnist_gaps["real"][measure] < 0.05
    assert mnist_gaps[distortion][measure] > 5 * mnist_gaps["real"][measure]
    assert mnist_gaps["uniform"][measure] > mnist_gaps["noise 0.1"][measure]


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


@pytest.mark.parametrize("shape", [(12, 12), (9, 9), (8, 12), (11, 6)])
def test_radial_spectrum_matches_a_full_plane_computation(shape):
    images = np.random.default_rng(5).random((7, *shape, 1))
    height, width = shape
    grey = images[..., 0] - images[..., 0].mean(axis=(1, 2), keepdims=True)
    power = np.mean(np.abs(np.fft.fft2(grey)) ** 2, axis=0) / (height * width)
    side = min(shape)
    expected = []
    for k in range(1, side // 2 + 1):
        ring = [power[i, j] for i in range(height) for j in range(width)
                if round(np.hypot(min(i, height - i) * side / height, min(j, width - j) * side / width)) == k]  # fmt: skip
        expected.append(np.mean(ring))
    np.testing.assert_allclose(metrics.radial_power_spectrum(images), expected, rtol=1e-10)


@pytest.mark.parametrize("measure", [0, 1], ids=["sharpness_gap", "spectral_gap"])
def test_colour_images_blurred_or_noisy_score_worse_than_another_draw(measure):
    """32x32 colour images (smooth random fields with sharp-edged squares): a second draw of
    the same kind is close; blur and pixel noise, on every channel, are far."""
    from scipy.ndimage import gaussian_filter

    def draw(seed: int, n: int = 300) -> np.ndarray:
        rng = np.random.default_rng(seed)
        x = gaussian_filter(rng.random((n, 32, 32, 3)), sigma=(0, 2, 2, 0))
        x = (x - x.min()) / (x.max() - x.min())
        for i in range(n):  # one flat square per image, in a random colour and place
            top, left = rng.integers(0, 20, size=2)
            x[i, top : top + 12, left : left + 12] = rng.random(3)
        return x

    real, other = draw(0), draw(1)
    rng = np.random.default_rng(2)
    distorted = {
        "blur 1": gaussian_filter(real, sigma=(0, 1, 1, 0)),
        "noise 0.1": np.clip(real + rng.normal(0.0, 0.1, real.shape), 0, 1),
    }

    def gap(images: np.ndarray) -> float:
        if measure == 0:
            return metrics.sharpness_gap(metrics.sharpness(images), metrics.sharpness(real))
        return metrics.spectral_gap(metrics.radial_power_spectrum(images), metrics.radial_power_spectrum(real))

    assert gap(real) == 0.0
    assert gap(other) < 0.1
    for name, images in distorted.items():
        assert gap(images) > 3 * gap(other) + 0.2, name
