"""Scores of a trained model, each a short function of arrays.

Images are (n, H, W, C) float arrays in [0, 1]; latent codes are (n, latent_dim). Every
score is computed on the test split with z = the encoder's mean.

``sharpness`` (the mean Laplacian variance of the luminance, Tolstikhin et al.'s measure) and
``blurriness`` are descriptive; the two-sided, per-image sharpness gaps that are ranked are in
``benchmark.scoring.sharpness``.
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

#: Clipping of predicted probabilities in ``recon_bce``, so a saturated pixel costs at most
#: -log(1e-7) = 16.1 nats instead of infinity.
BCE_EPS = 1e-7

#: The 3x3 Laplacian of the sharpness measure (Tolstikhin et al., Wasserstein Auto-Encoders).
LAPLACIAN = np.array([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])


def recon_mse(x: np.ndarray, x_hat: np.ndarray) -> float:
    """Mean over images of the per-image mean squared error over pixels (pixel units^2)."""
    x, x_hat = _flat(x), _flat(x_hat)
    return float(np.mean(np.mean((x - x_hat) ** 2, axis=1)))


def recon_bce(x: np.ndarray, p: np.ndarray) -> float:
    """Mean over images of the binary cross-entropy summed over pixels (nats per image).

    ``p`` are the reconstruction's pixel probabilities; grey ``x`` are target probabilities.
    """
    x, p = _flat(x).astype(np.float64), np.clip(_flat(p), BCE_EPS, 1 - BCE_EPS)
    return float(np.mean(-np.sum(x * np.log(p) + (1 - x) * np.log1p(-p), axis=1)))


def laplacian_variance(images: np.ndarray) -> np.ndarray:
    """(n, H, W, C) -> (n,): variance of each image's 3x3 Laplacian response, valid padding.

    Computed on the image's ``luminance`` (colour images: ITU-R BT.601 luma), 1,000 images
    at a time.
    """
    return np.concatenate(
        [_laplacian_variance(luminance(images[i : i + 1000])) for i in range(0, len(images), 1000)]
        or [np.zeros(0)]
    )


def _laplacian_variance(grey: np.ndarray) -> np.ndarray:
    """(n, H, W) float64 -> (n,)."""
    height, width = grey.shape[1:]
    response = sum(
        LAPLACIAN[i, j] * grey[:, i : height - 2 + i, j : width - 2 + j]
        for i in range(3)
        for j in range(3)
        if LAPLACIAN[i, j]
    )
    return response.reshape(len(grey), -1).var(axis=1)


def sharpness(images: np.ndarray) -> float:
    """Mean over images of ``laplacian_variance`` (higher is sharper)."""
    return float(np.mean(laplacian_variance(images)))


def blurriness(sharpness_model: float, sharpness_real: float) -> float:
    """1 - sharpness_model / sharpness_real: 0 is as sharp as real data, towards 1 blurrier."""
    return 1.0 - sharpness_model / sharpness_real


def luminance(images: np.ndarray) -> np.ndarray:
    """(n, H, W, C) -> (n, H, W) float64: the image itself for C = 1, ITU-R BT.601 luma
    (0.299 R + 0.587 G + 0.114 B) for C = 3, the channel mean otherwise."""
    images = np.asarray(images, dtype=np.float64)
    if images.shape[-1] == 3:
        return images @ np.array([0.299, 0.587, 0.114])
    return images.mean(axis=-1)


def active_units(z_mean: np.ndarray, threshold: float = 0.01) -> int:
    """Number of latent dimensions u with Cov_x(E_q[z_u]) > ``threshold`` (Burda et al. 2016).

    ``z_mean`` (n, latent_dim) are posterior means of n images; the variance over images is
    the unbiased one. The threshold is on the scale of a N(0, I) prior: a dimension whose
    posterior mean barely moves with x carries no information (it is "collapsed").
    """
    z_mean = np.asarray(z_mean, np.float64)
    if len(z_mean) < 2:
        raise ValueError(f"need at least 2 latent codes, got {len(z_mean)}")
    return int(np.sum(z_mean.var(axis=0, ddof=1) > threshold))


def gaussian_kl_per_dim(z_mean: np.ndarray, z_log_var: np.ndarray) -> np.ndarray:
    """(n, latent_dim) posterior parameters -> (latent_dim,): the mean over images of
    KL(N(mean_u, exp(log_var_u)) || N(0, 1)) per dimension, in nats. Summed over dimensions
    it is the mean KL of the ELBO."""
    mean, log_var = np.asarray(z_mean, np.float64), np.asarray(z_log_var, np.float64)
    return np.mean(0.5 * (mean**2 + np.exp(log_var) - log_var - 1.0), axis=0)


def latent_acc_logreg(z_train, y_train, z_test, y_test) -> float:
    """Test accuracy of a logistic regression on standardized latent codes."""
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    return float(clf.fit(z_train, y_train).score(z_test, y_test))


def latent_acc_knn(z_train, y_train, z_test, y_test, n_neighbors: int = 5) -> float:
    """Test accuracy of a k-nearest-neighbours classifier (Euclidean, in latent space)."""
    clf = KNeighborsClassifier(n_neighbors=n_neighbors)
    return float(clf.fit(z_train, y_train).score(z_test, y_test))


def mean_over_columns(score, z_train, y_train, z_test, y_test, columns) -> float:
    """The mean of ``score`` (e.g. ``latent_acc_logreg``) over label ``columns`` of (n, k)
    attribute labels: one binary classifier per attribute."""
    return float(np.mean([score(z_train, y_train[:, c], z_test, y_test[:, c]) for c in columns]))


def _flat(images) -> np.ndarray:
    images = np.asarray(images)
    return images.reshape(len(images), -1)
