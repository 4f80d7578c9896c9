"""Two-sided, per-image sharpness gaps (benchmark.scoring.sharpness) against values computed
by hand, and against image sets that must score worse than real ones."""

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from benchmark.scoring import sharpness
from benchmark.scoring.sharpness import ImageStats, image_stats, paired_gaps, ring_power, set_gaps


def test_relative_sharpness_of_one_image_by_hand():
    rng = np.random.default_rng(0)
    image = rng.random((1, 9, 7, 1))
    x = image[0, ..., 0]
    lap = x[:-2, 1:-1] + x[2:, 1:-1] + x[1:-1, :-2] + x[1:-1, 2:] - 4 * x[1:-1, 1:-1]
    stats = image_stats(image)
    assert stats.log_sharpness[0] == pytest.approx(np.log(lap.var() / x.var()))
    assert stats.log_contrast[0] == pytest.approx(np.log(x.std()))


def test_white_noise_has_relative_sharpness_twenty():
    # Laplacian weights 1, 1, 1, 1, -4 on independent pixels: variance 20 sigma^2, over sigma^2.
    noise = np.random.default_rng(1).normal(0.5, 0.1, (300, 32, 32, 1))
    assert np.exp(np.median(image_stats(noise).log_sharpness)) == pytest.approx(20.0, rel=0.03)


def test_contrast_leaves_sharpness_and_spectrum_unchanged_and_shows_in_contrast():
    images = np.random.default_rng(2).random((40, 12, 12, 3))
    for a, b in ((0.2, 0.5), (-1.0, 2.0)):
        gaps = paired_gaps(image_stats(a + b * images), image_stats(images))
        assert gaps["sharpness_gap"] == pytest.approx(0.0, abs=1e-9)
        assert gaps["spectral_gap"] == pytest.approx(0.0, abs=1e-9)
        assert gaps["contrast_gap"] == pytest.approx(abs(np.log(b)))


def test_set_gaps_are_wasserstein_distances_of_the_per_image_logs():
    rings = np.zeros((4, 2))
    real = ImageStats(np.array([0.0, 1.0, 2.0, 3.0]), np.zeros(4), rings)
    shifted = ImageStats(real.log_sharpness + 0.5, np.full(4, -0.25), rings + 1.0)
    gaps = set_gaps(shifted, real)
    assert gaps["sharpness_gap"] == pytest.approx(0.5)
    assert gaps["contrast_gap"] == pytest.approx(0.25)
    assert gaps["spectral_gap"] == pytest.approx(1.0)


def test_a_mixture_of_blurry_and_noisy_images_cannot_cancel():
    real = ImageStats(np.zeros(100), np.zeros(100), np.zeros((100, 1)))
    mixed = ImageStats(np.r_[np.full(50, -1.0), np.full(50, 1.0)], np.zeros(100), np.zeros((100, 1)))
    assert np.mean(mixed.log_sharpness) == np.mean(real.log_sharpness)  # the set means agree...
    assert set_gaps(mixed, real)["sharpness_gap"] == pytest.approx(1.0)  # ...the distributions do not


def test_identical_sets_score_zero_and_constant_images_infinity():
    images = np.random.default_rng(3).random((20, 8, 8, 1))
    stats = image_stats(images)
    assert set(set_gaps(stats, stats).values()) == {0.0}
    assert set(paired_gaps(stats, stats).values()) == {0.0}
    flat = images.copy()
    flat[3] = 0.4
    assert set(set_gaps(image_stats(flat), stats).values()) == {float("inf")}
    assert set(paired_gaps(image_stats(flat), stats).values()) == {float("inf")}


def test_paired_gaps_need_one_reconstruction_per_original():
    stats = image_stats(np.random.default_rng(4).random((5, 8, 8, 1)))
    with pytest.raises(ValueError, match="4 reconstructions for 5 originals"):
        paired_gaps(image_stats(np.random.default_rng(5).random((4, 8, 8, 1))), stats)


@pytest.mark.parametrize("shape", [(12, 12), (9, 9), (8, 12), (11, 6)])
def test_ring_power_matches_a_full_plane_computation(shape):
    images = np.random.default_rng(5).random((3, *shape, 2))
    height, width = shape
    side = min(shape)
    for i, image in enumerate(images):
        expected = np.zeros(side // 2)
        for c in range(2):
            x = image[..., c] - image[..., c].mean()
            power = np.abs(np.fft.fft2(x)) ** 2 / (height * width)
            for u in range(height):
                for v in range(width):
                    k = round(np.hypot(min(u, height - u) * side / height, min(v, width - v) * side / width))
                    if 1 <= k <= side // 2:
                        expected[k - 1] += power[u, v]
        np.testing.assert_allclose(ring_power(images)[i], expected, rtol=1e-10)


def test_a_single_frequency_lands_in_its_ring():
    n = 16
    wave = np.cos(2 * np.pi * 3 * np.arange(n) / n)[None, :] * np.ones((n, 1))  # 3 cycles along the width
    power = ring_power(wave[None, :, :, None])[0]
    assert np.argmax(power) == 3 - 1  # rings start at k = 1
    assert np.count_nonzero(power > 1e-12) == 1


def _colour_draw(seed: int, n: int = 200) -> np.ndarray:
    """32x32 colour images: smooth random fields with one sharp-edged flat square each."""
    rng = np.random.default_rng(seed)
    x = gaussian_filter(rng.random((n, 32, 32, 3)), sigma=(0, 2, 2, 0))
    x = (x - x.min()) / (x.max() - x.min())
    for i in range(n):
        top, left = rng.integers(0, 20, size=2)
        x[i, top : top + 12, left : left + 12] = rng.random(3)
    return x


@pytest.mark.parametrize("gap", ["sharpness_gap", "spectral_gap"])
def test_colour_blur_noise_and_luma_cancelling_noise_score_worse_than_another_draw(gap):
    real, other = _colour_draw(0), _colour_draw(1)
    rng = np.random.default_rng(2)
    # Noise along (1, -0.299/0.587, 0) in RGB leaves the luma 0.299 R + 0.587 G + 0.114 B unchanged.
    delta = rng.normal(0.0, 0.06, real.shape[:3])[..., None] * np.array([1.0, -0.299 / 0.587, 0.0])
    distorted = {
        "blur 1": gaussian_filter(real, sigma=(0, 1, 1, 0)),
        "noise 0.1": np.clip(real + rng.normal(0.0, 0.1, real.shape), 0, 1),
        "luma-free noise": real + delta,
    }
    reference = image_stats(real)
    baseline = set_gaps(image_stats(other), reference)[gap]
    assert baseline < 0.15
    for name, images in distorted.items():
        assert set_gaps(image_stats(images), reference)[gap] > 2 * baseline + 0.1, name


@pytest.mark.mnist
def test_mnist_blur_and_noise_are_monotone_and_a_mixture_is_worse_than_real(data_dir):
    from benchmark.data.datasets import load_dataset
    from benchmark.scoring.controls import add_noise, blur

    data = load_dataset("mnist", data_dir)
    test = image_stats(data.x_test[:3000])
    real = np.asarray(data.x_train[:3000])
    rng = np.random.default_rng(0)
    for gap in ("sharpness_gap", "spectral_gap"):
        score = {"real": set_gaps(image_stats(real), test)[gap]}
        score |= {f"blur {s}": set_gaps(image_stats(blur(real, s)), test)[gap] for s in (0.5, 1, 2)}
        score |= {f"noise {s}": set_gaps(image_stats(add_noise(real, s, rng)), test)[gap] for s in (0.05, 0.1, 0.2)}
        mixed = np.concatenate([blur(real[:1500], 1.5), add_noise(real[1500:], 0.1, rng)])
        score["mixture"] = set_gaps(image_stats(mixed), test)[gap]
        assert score["real"] < score["blur 0.5"] < score["blur 1"] < score["blur 2"], (gap, score)
        assert score["real"] < score["noise 0.05"] < score["noise 0.1"] < score["noise 0.2"], (gap, score)
        assert score["mixture"] > 5 * score["real"], (gap, score)


def test_the_module_states_the_filter_it_uses():
    image = np.zeros((1, 5, 5, 1))
    image[0, 2, 2, 0] = 1.0
    response = sharpness.laplacian(image)[0, ..., 0]
    np.testing.assert_array_equal(response, [[0, 1, 0], [1, -4, 1], [0, 1, 0]])
