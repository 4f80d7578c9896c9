"""Control image sets: degraded copies of held-out real images whose right order is known.

Every run scores these sets with the code that scores a model's samples and reconstructions
(``benchmark.scoring.image_sets``), in the same feature space and against the same test
images, so that each ranked score can be checked on the run's own data and budget before its
ranking is believed. They are built from the validation split (never the test split, which
is the reference), from a fixed draw, so every run of a dataset gets the same controls.

=============  =================================================================  ========
family         images                                                              paired
=============  =================================================================  ========
``real``       ``n`` validation images (``control_size``)                           identity
``blur``       the same images, Gaussian blur of sigma 0.5, 1 and 2 px             yes
``noise``      the same images plus N(0, sigma^2) pixel noise, sigma 0.05, 0.1,    yes
               0.2, clipped to [0, 1]
``contrast``   the same images with contrast x 0.7 about each image's mean         yes
``mixture``    the first half blurred (sigma 1.5), the second half noisy (0.1)     yes
``blob``       the mean training image plus N(0, 0.1^2) noise, clipped             no
``one_class``  the validation images of the most frequent class (class labels     no
               only)
``copies``     ``n`` training images: what memorisation looks like               no
=============  =================================================================  ========

"paired" controls are also scored as reconstructions of the ``real`` images they degrade
(``recon`` kind); ``real`` is then the perfect reconstruction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

from benchmark.data.dataset import Dataset

BLUR_SIGMAS = (0.5, 1.0, 2.0)
NOISE_SIGMAS = (0.05, 0.1, 0.2)
CONTRAST = 0.7
MIXTURE = (1.5, 0.1)  # blur sigma of the first half, noise sigma of the second
BLOB_NOISE = 0.1
#: Seed of the draws and the noise: the controls of a dataset are the same in every run.
CONTROL_SEED = 20200101
#: Images per control set, at most: enough for every score's order to show (their checks
#: compare controls with each other at one size), few enough that the twelve sets cost seconds.
MAX_IMAGES = 2000
#: Control sets smaller than this are skipped (precision, recall and KID need a few images).
MIN_IMAGES = 8


@dataclass(frozen=True)
class Control:
    """One control set: ``images`` (n, H, W, C) in [0, 1]; ``originals`` the real images they
    degrade, one for one, or None where there are none (``blob``, ``one_class``, ``copies``)."""

    family: str
    level: float | None
    images: np.ndarray
    originals: np.ndarray | None = None

    @property
    def name(self) -> str:
        """``blur 1``, ``noise 0.05``, ``real``."""
        return self.family if self.level is None else f"{self.family} {self.level:g}"


def blur(images: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of each image and channel (sigma in pixels; edges reflected)."""
    return gaussian_filter(np.asarray(images, np.float32), sigma=(0, sigma, sigma, 0), mode="reflect")


def add_noise(images: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Images plus N(0, sigma^2) per pixel, clipped to [0, 1]."""
    noisy = np.asarray(images, np.float32) + rng.normal(0.0, sigma, np.shape(images)).astype(np.float32)
    return np.clip(noisy, 0.0, 1.0)


def scale_contrast(images: np.ndarray, factor: float) -> np.ndarray:
    """``mean + factor (x - mean)`` per image: the same picture with less contrast, no blur."""
    x = np.asarray(images, np.float32)
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    return mean + factor * (x - mean)


def mean_image(x: np.ndarray) -> np.ndarray:
    """(H, W, C): the mean of ``x`` (n, H, W, C), read 1,000 images at a time."""
    total = np.zeros(x.shape[1:], np.float64)
    for i in range(0, len(x), 1000):
        total += np.asarray(x[i : i + 1000], np.float64).sum(axis=0)
    return (total / max(len(x), 1)).astype(np.float32)


def control_size(data: Dataset) -> int:
    """Images per control set: as many as the test split has, at most the validation split's
    and ``MAX_IMAGES``."""
    return min(data.n_val, len(data.x_test), MAX_IMAGES)


def build_controls(data: Dataset, n: int | None = None) -> tuple[list[Control], list[str]]:
    """The control sets of ``data`` (``data.fixed()`` for binarized data), ``n`` images each
    (default ``control_size``), and notes on those that were skipped."""
    notes: list[str] = []
    n = control_size(data) if n is None else min(n, data.n_val)
    if n < MIN_IMAGES:
        return [], [f"controls: the validation split has {data.n_val} images, too few (need {MIN_IMAGES})"]
    rng = np.random.default_rng(CONTROL_SEED)
    pick = np.sort(rng.permutation(data.n_val)[:n])
    real = np.asarray(data.x_val[pick], np.float32)
    controls = [Control("real", None, real, real)]
    controls += [Control("blur", s, blur(real, s), real) for s in BLUR_SIGMAS]
    controls += [Control("noise", s, add_noise(real, s, rng), real) for s in NOISE_SIGMAS]
    controls.append(Control("contrast", CONTRAST, scale_contrast(real, CONTRAST), real))
    half = n // 2
    mixed = np.concatenate([blur(real[:half], MIXTURE[0]), add_noise(real[half:], MIXTURE[1], rng)])
    controls.append(Control("mixture", None, mixed, real))
    blob = add_noise(np.broadcast_to(mean_image(data.x_train), real.shape), BLOB_NOISE, rng)
    controls.append(Control("blob", None, blob))
    labels = None if data.y_val is None else np.asarray(data.y_val)[pick]
    if labels is None or labels.ndim != 1:
        notes.append("controls: one_class needs class labels (this dataset has none or attributes)")
    else:
        values, counts = np.unique(labels, return_counts=True)
        one = real[labels == values[np.argmax(counts)]]
        if len(one) >= MIN_IMAGES:
            controls.append(Control("one_class", None, one))
        else:
            notes.append(f"controls: one_class has {len(one)} images, too few (need {MIN_IMAGES})")
    copies = np.sort(rng.permutation(len(data.x_train))[: min(n, len(data.x_train))])
    controls.append(Control("copies", None, np.asarray(data.x_train[copies], np.float32)))
    return controls, notes
