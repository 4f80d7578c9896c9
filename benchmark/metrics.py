"""Scores of a trained model, each a short function of arrays.

Images are (n, H, W, C) float arrays in [0, 1]; latent codes are (n, latent_dim). Every
score is computed on the test split with z = the encoder's mean.
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

    Colour images are averaged over channels to greyscale first.
    """
    grey = np.asarray(images, dtype=np.float64).mean(axis=-1)  # (n, H, W)
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


def latent_acc_logreg(z_train, y_train, z_test, y_test) -> float:
    """Test accuracy of a logistic regression on standardized latent codes."""
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    return float(clf.fit(z_train, y_train).score(z_test, y_test))


def latent_acc_knn(z_train, y_train, z_test, y_test, n_neighbors: int = 5) -> float:
    """Test accuracy of a k-nearest-neighbours classifier (Euclidean, in latent space)."""
    clf = KNeighborsClassifier(n_neighbors=n_neighbors)
    return float(clf.fit(z_train, y_train).score(z_test, y_test))


def _flat(images) -> np.ndarray:
    images = np.asarray(images)
    return images.reshape(len(images), -1)
