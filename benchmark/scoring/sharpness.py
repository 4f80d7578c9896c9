"""Two-sided sharpness of image sets, per image, against real images.

Images are (n, H, W, C) float arrays in [0, 1]. Three quantities are measured on every image
``x`` (all its channels count, so colour noise that luma weights would cancel is seen):

- *relative sharpness* ``s(x) = sum_c var(Lap(x_c)) / sum_c var(x_c)``: the variance of the
  3x3 Laplacian response (valid padding, Tolstikhin et al.'s filter) relative to the image's
  own pixel variance. Dimensionless and unchanged by contrast (``a + b x`` has the same
  ``s``), so that losing contrast is not mistaken for losing sharpness;
- *contrast* ``std(x)``, the pixel standard deviation over all pixels and channels;
- the *relative ring spectrum*: the power of the mean-free image, summed over channels, in
  rings k = 1..K of radius k cycles per image (K = Nyquist of the shorter side), divided by
  the image's power over those rings: how its variation spreads over frequency, again
  independent of contrast.

Gaps, in natural-log units, lower is better, 0 for real images:

- of a *sample set* against real images: the 1-D Wasserstein distance between the sets'
  distributions of ``log s`` (``sharpness_gap``) and of ``log std`` (``contrast_gap``), and the
  mean over rings of that distance for the log relative ring power (``spectral_gap``).
  Distributions, not set means: a set half blurred and half noisy cannot average out to real;
- of *reconstructions*, each paired with its own original: the mean over images of
  ``|log s(x~) - log s(x)|``, of ``|log std(x~) - log std(x)|``, and of the RMS over rings of
  the log relative ring power's difference.

A constant image has neither sharpness nor contrast: its logs are -inf and any gap of its set
is inf, the worst value, never dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.stats import wasserstein_distance

#: Images processed at once (bounded memory on large sets).
CHUNK = 1000
#: A pixel variance (summed over channels, [0, 1] pixels) below this is a constant image: the
#: round-off of a mean leaves ~1e-33, while one grey level in a 64x64 image gives ~1e-9.
CONSTANT_VARIANCE = 1e-12


@dataclass(frozen=True)
class ImageStats:
    """Per-image measurements of a set of n images.

    ``log_sharpness`` (n,), ``log_contrast`` (n,), ``log_rings`` (n, K); -inf for constant
    images.
    """

    log_sharpness: np.ndarray
    log_contrast: np.ndarray
    log_rings: np.ndarray

    def __len__(self) -> int:
        return len(self.log_sharpness)


def laplacian(images: np.ndarray) -> np.ndarray:
    """(n, H, W, C) -> (n, H - 2, W - 2, C): the 3x3 Laplacian [[0,1,0],[1,-4,1],[0,1,0]], valid."""
    x = np.asarray(images, np.float64)
    return x[:, :-2, 1:-1] + x[:, 2:, 1:-1] + x[:, 1:-1, :-2] + x[:, 1:-1, 2:] - 4.0 * x[:, 1:-1, 1:-1]


@lru_cache(maxsize=16)
def _ring_matrix(height: int, width: int) -> np.ndarray:
    """(H * (W // 2 + 1), K) weights that sum an rfft2 power plane into rings k = 1..K.

    A column of the half plane stands for itself and its mirror (weight 2), except the first
    and, for even W, the last. Frequencies are in cycles per image along each side, scaled to
    the shorter side; the corners beyond radius K are left out.
    """
    side = min(height, width)
    top = side // 2
    fy = np.fft.fftfreq(height)[:, None] * side
    fx = np.fft.rfftfreq(width)[None, :] * side
    ring = np.rint(np.sqrt(fy**2 + fx**2)).astype(int).ravel()
    mirror = np.full(width // 2 + 1, 2.0)
    mirror[0] = 1.0
    if width % 2 == 0:
        mirror[-1] = 1.0
    weight = np.broadcast_to(mirror, (height, width // 2 + 1)).ravel()
    matrix = np.zeros((len(ring), top))
    keep = (ring >= 1) & (ring <= top)
    matrix[np.flatnonzero(keep), ring[keep] - 1] = weight[keep]
    return matrix


def ring_power(images: np.ndarray) -> np.ndarray:
    """(n, H, W, C) -> (n, K): each image's power per ring (pixel units^2), channels summed.

    The image's mean is removed per channel; power is ``|FFT|^2 / (H W)`` (by Parseval it sums
    to the image's summed squared deviation), summed over the ring's frequencies.
    """
    x = np.asarray(images, np.float64)
    x = x - x.mean(axis=(1, 2), keepdims=True)
    height, width = x.shape[1:3]
    power = np.abs(np.fft.rfft2(x, axes=(1, 2))) ** 2 / (height * width)  # (n, H, W//2+1, C)
    power = power.sum(axis=-1).reshape(len(x), -1)
    return power @ _ring_matrix(height, width)


def _log(values: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.log(values)
    return np.where(np.isnan(out), -np.inf, out)


def image_stats(images: np.ndarray) -> ImageStats:
    """The per-image measurements of ``images`` (n, H, W, C), ``CHUNK`` images at a time."""
    parts = []
    for i in range(0, len(images), CHUNK):
        x = np.asarray(images[i : i + CHUNK], np.float64)
        n = len(x)
        pixel_var = x.reshape(n, -1, x.shape[-1]).var(axis=1).sum(axis=1)  # (n,) summed over channels
        lap_var = laplacian(x).reshape(n, -1, x.shape[-1]).var(axis=1).sum(axis=1)
        rings = ring_power(x)
        varies = pixel_var > CONSTANT_VARIANCE
        with np.errstate(divide="ignore", invalid="ignore"):
            sharp = np.where(varies, lap_var / pixel_var, 0.0)
            relative = np.where(varies[:, None], rings / rings.sum(axis=1, keepdims=True), 0.0)
        contrast = np.where(varies, np.sqrt(x.reshape(n, -1).var(axis=1)), 0.0)
        parts.append((_log(sharp), _log(contrast), _log(relative)))
    if not parts:
        return ImageStats(np.zeros(0), np.zeros(0), np.zeros((0, 1)))
    return ImageStats(*(np.concatenate(p) for p in zip(*parts, strict=True)))


def _w1(a: np.ndarray, b: np.ndarray) -> float:
    """1-D Wasserstein distance of two samples; inf when either holds -inf or NaN."""
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        return float("inf")
    return float(wasserstein_distance(a, b))


def set_gaps(model: ImageStats, real: ImageStats) -> dict[str, float]:
    """``sharpness_gap``, ``contrast_gap`` and ``spectral_gap`` of a sample set against real
    images: distances between their per-image distributions (natural-log units)."""
    rings = [_w1(model.log_rings[:, k], real.log_rings[:, k]) for k in range(real.log_rings.shape[1])]
    return {
        "sharpness_gap": _w1(model.log_sharpness, real.log_sharpness),
        "contrast_gap": _w1(model.log_contrast, real.log_contrast),
        "spectral_gap": float(np.mean(rings)),
    }


def _paired(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|a - b| elementwise, inf where either is not finite."""
    with np.errstate(invalid="ignore"):
        diff = np.abs(a - b)
    return np.where(np.isfinite(a) & np.isfinite(b), diff, np.inf)


def paired_gaps(recon: ImageStats, original: ImageStats) -> dict[str, float]:
    """The same three gaps of reconstructions, each against its own original (the i-th image of
    ``recon`` reconstructs the i-th of ``original``): means over images of the per-image
    distance, natural-log units."""
    if len(recon) != len(original):
        raise ValueError(f"{len(recon)} reconstructions for {len(original)} originals")
    rings = _paired(recon.log_rings, original.log_rings)
    return {
        "sharpness_gap": float(np.mean(_paired(recon.log_sharpness, original.log_sharpness))),
        "contrast_gap": float(np.mean(_paired(recon.log_contrast, original.log_contrast))),
        "spectral_gap": float(np.mean(np.sqrt(np.mean(rings**2, axis=1)))),
    }
