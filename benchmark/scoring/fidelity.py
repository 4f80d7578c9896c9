"""Sample quality in a feature space: precision and recall, and the kernel distance KID.

Features are (n, d) arrays, e.g. ``FeatureClassifier.features`` of real test images and of
decoded samples; these scores complement the Fréchet distance, which mixes fidelity with
coverage and is biased at small n.

- Precision and recall (Kynkäänniemi et al. 2019, "Improved Precision and Recall Metric for
  Assessing Generative Models"): the real manifold is the union of balls around each real
  feature vector with the radius of its k-th nearest real neighbour. Precision is the fraction
  of samples inside the real manifold (fidelity), recall the fraction of real images inside the
  samples' manifold (coverage). Both in [0, 1], higher is better.
- KID (Bińkowski et al. 2018, "Demystifying MMD GANs"): the unbiased estimate of MMD^2 with
  the cubic polynomial kernel k(x, y) = (x.y / d + 1)^3, averaged over random subsets, with the
  standard error of that mean. Squared kernel units, lower is better, 0 for equal
  distributions (an unbiased estimate, so it can be slightly negative).
"""

from __future__ import annotations

import numpy as np
from sklearn.neighbors import NearestNeighbors

#: Neighbours that set a ball's radius (the paper's default).
PR_NEIGHBOURS = 3
#: Neighbours of the balls of coverage (Naeem et al. 2020 recommend k = 5).
COVERAGE_NEIGHBOURS = 5

#: KID subsets and their size (as in the StyleGAN metrics code, with half the subsets).
KID_SUBSETS = 50
KID_SUBSET_SIZE = 1000

#: Rows of the distance matrix computed at once in ``manifold_coverage`` (bounded memory).
_CHUNK = 1000


def knn_radii(features: np.ndarray, k: int = PR_NEIGHBOURS) -> np.ndarray:
    """(n, d) -> (n,): Euclidean distance of each vector to its k-th nearest other vector.

    Raises ``ValueError`` with fewer than k + 1 vectors.
    """
    features = np.asarray(features, np.float64)
    if len(features) < k + 1:
        raise ValueError(f"{len(features)} feature vectors are too few for k = {k} neighbours")
    # The query points are the fitted points: the first neighbour is the point itself.
    distances, _ = NearestNeighbors(n_neighbors=k + 1).fit(features).kneighbors(features)
    return distances[:, k]


def knn_radii_for(features: np.ndarray, ks: tuple[int, ...]) -> dict[int, np.ndarray]:
    """``{k: knn_radii(features, k)}`` for several k from one neighbour search."""
    features = np.asarray(features, np.float64)
    top = max(ks)
    if len(features) < top + 1:
        raise ValueError(f"{len(features)} feature vectors are too few for k = {top} neighbours")
    distances, _ = NearestNeighbors(n_neighbors=top + 1).fit(features).kneighbors(features)
    return {k: distances[:, k] for k in ks}


def coverage(real: np.ndarray, fake: np.ndarray, real_radii: np.ndarray) -> float:
    """Coverage (Naeem et al. 2020): the fraction of real vectors (n, d) whose k-NN ball
    (``real_radii``, (n,)) holds at least one of the ``fake`` vectors (m, d); in [0, 1].

    Unlike recall, it is built from balls around *real* points only, so a few outlying
    samples cannot inflate it, and samples piled in one region (a blurry average, one class)
    cover only the balls there. Identical distributions give about 1 - 2^-k.
    """
    fake = np.asarray(fake, np.float64)
    if len(fake) < 1:
        raise ValueError("coverage needs at least one sample")
    nearest, _ = NearestNeighbors(n_neighbors=1).fit(fake).kneighbors(np.asarray(real, np.float64))
    return float(np.mean(nearest[:, 0] <= np.asarray(real_radii, np.float64) * (1 + 1e-12)))


def manifold_coverage(points: np.ndarray, centres: np.ndarray, radii: np.ndarray) -> float:
    """Fraction of ``points`` (n, d) inside at least one ball ``(centres (m, d), radii (m,))``.

    Exact: every point is compared with every centre, ``_CHUNK`` points at a time. A point p
    is inside ball i when ``|p|^2 - 2 p.c_i + |c_i|^2 <= r_i^2``, i.e. when
    ``min_i (|c_i|^2 - r_i^2 - 2 p.c_i) <= -|p|^2``: one matrix product of [p, 1] with
    [-2 c_i, |c_i|^2 - r_i^2] and a minimum per row.
    """
    points, centres = np.asarray(points, np.float64), np.asarray(centres, np.float64)
    offset = np.sum(centres**2, axis=1) - np.asarray(radii, np.float64) ** 2  # (m,)
    augmented = np.concatenate([-2.0 * centres, offset[:, None]], axis=1)  # (m, d + 1)
    points_sq = np.sum(points**2, axis=1)  # (n,)
    # A point on a centre with radius 0 is on the sphere: allow the product's rounding error.
    slack = 1e-9 * (1.0 + points_sq)
    inside = np.zeros(len(points), dtype=bool)
    for i in range(0, len(points), _CHUNK):
        chunk = np.concatenate([points[i : i + _CHUNK], np.ones((len(points[i : i + _CHUNK]), 1))], axis=1)
        inside[i : i + _CHUNK] = (chunk @ augmented.T).min(axis=1) <= -points_sq[i : i + _CHUNK] + slack[i : i + _CHUNK]
    return float(np.mean(inside))


def precision_recall(
    real: np.ndarray,
    fake: np.ndarray,
    k: int = PR_NEIGHBOURS,
    *,
    real_radii: np.ndarray | None = None,
) -> tuple[float, float]:
    """Precision and recall of ``fake`` (m, d) against ``real`` (n, d) features, each in [0, 1].

    Parameters
    ----------
    real, fake : arrays of shape (n, d) and (m, d)
        Feature vectors of real images and of samples.
    k : int, default=3
        The k-th nearest neighbour sets each ball's radius.
    real_radii : array of shape (n,), optional
        ``knn_radii(real, k)``, when already computed for another sample set.

    Raises ``ValueError`` when either set has fewer than k + 1 vectors.
    """
    if real_radii is None:
        real_radii = knn_radii(real, k)
    fake_radii = knn_radii(fake, k)
    return manifold_coverage(fake, real, real_radii), manifold_coverage(real, fake, fake_radii)


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(n, d), (m, d) -> (n, m): k(x, y) = (x.y / d + 1)^3."""
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """The unbiased estimate of MMD^2 between samples ``x`` (n, d) and ``y`` (m, d), cubic kernel.

    Mean of k over distinct pairs within x, plus the same within y, minus twice the mean of k
    over all pairs across (Gretton et al. 2012, eq. 3).
    """
    n, m = len(x), len(y)
    kxx, kyy, kxy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)  # (n, n), (m, m), (n, m)
    within_x = (kxx.sum() - np.trace(kxx)) / (n * (n - 1))
    within_y = (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    return float(within_x + within_y - 2.0 * kxy.mean())


def kid(
    real: np.ndarray,
    fake: np.ndarray,
    *,
    n_subsets: int = KID_SUBSETS,
    subset_size: int = KID_SUBSET_SIZE,
    seed: int = 0,
) -> tuple[float, float]:
    """KID of ``fake`` (m, d) against ``real`` (n, d): (mean, standard error) over subsets.

    Each of ``n_subsets`` subsets draws ``s = min(subset_size, max(2, min(n, m) // 2))``
    vectors of each set without replacement (independently of the other subsets) and gives
    one ``mmd2_unbiased``. The standard error is the subsets' standard deviation over
    sqrt(min(n_subsets, min(n, m) // s)): subsets that share vectors are not independent, and
    the mean over them is no more precise than that of the disjoint subsets the data could
    fill (at 10,000 test images: 10 of 1,000). Squared kernel units; lower is better. Raises
    ``ValueError`` with fewer than 2 vectors in a set.

    The estimate is unbiased for two independent samples. Sets that share vectors (a set
    scored against itself) put each shared vector's self-pair into the cross term, which
    lowers the value by about 2 (mean k(x, x) - mean k(x, x')) / n: -0.0005 for 10,000
    standard normal vectors in 16 dimensions.
    """
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    smaller = min(len(real), len(fake))
    if smaller < 2:
        raise ValueError(f"KID needs at least 2 feature vectors per set, got {len(real)} and {len(fake)}")
    # At most half of the smaller set, so that subsets differ and their spread means something.
    size = min(subset_size, max(2, smaller // 2))
    rng = np.random.default_rng(seed)
    values = np.array([
        mmd2_unbiased(real[rng.choice(len(real), size, replace=False)], fake[rng.choice(len(fake), size, replace=False)])
        for _ in range(n_subsets)
    ])  # fmt: skip
    # The mean of overlapping subsets knows no more than the smaller // size disjoint ones
    # its vectors would fill: counting those, not n_subsets, keeps the error honest.
    independent = min(n_subsets, max(1, smaller // size))
    se = float(values.std(ddof=1) / np.sqrt(independent)) if n_subsets > 1 else float("nan")
    return float(values.mean()), se
