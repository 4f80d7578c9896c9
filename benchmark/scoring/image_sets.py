"""The scores of one set of images against the test images: the code that scores a model's
samples and reconstructions, and the run's control sets (``benchmark.scoring.controls``).

A ``Reference`` holds what every set is compared with: the test images, their per-image
sharpness measurements and, with a feature classifier, their features and k-NN radii.

Sample-set scores (keys without the set's suffix): ``sharpness`` (mean Laplacian variance,
pixel units^2, descriptive), ``blurriness`` (1 - sharpness / sharpness of the test images,
descriptive), ``sharpness_gap``, ``contrast_gap``, ``spectral_gap``
(``benchmark.scoring.sharpness``), and in the classifier's features ``fd``, ``kid``,
``kid_se``, ``precision``, ``recall``, ``coverage`` (``benchmark.scoring.fidelity``).
Reconstruction scores: ``mse``, ``bce``, ``sharpness``, ``blurriness`` and the paired gaps.

A score the data cannot support (too few images, a single class) is NaN and a note says why.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from benchmark.scoring import fidelity, metrics, sharpness
from benchmark.scoring.frechet import frechet_distance_features

if TYPE_CHECKING:
    from benchmark.scoring.frechet import FeatureClassifier

#: The scores of a sample set computed in the classifier's feature space.
FEATURE_SCORES = ("fd", "kid", "kid_se", "precision", "recall", "coverage")


@dataclass
class Reference:
    """The test images as every image set is scored against them.

    ``radii``: each test feature vector's distance to its k-th nearest other one, for
    ``fidelity.PR_NEIGHBOURS`` (precision, recall) and ``fidelity.COVERAGE_NEIGHBOURS``.
    """

    images: np.ndarray  # (n, H, W, C)
    stats: sharpness.ImageStats
    sharpness: float  # mean Laplacian variance (pixel units^2)
    classifier: FeatureClassifier | None = None
    features: np.ndarray | None = None  # (n, d)
    radii: dict[int, np.ndarray] | None = None
    _subsets: dict[int, tuple[np.ndarray, dict[int, np.ndarray]]] = field(default_factory=dict)

    def balls(self, m: int) -> tuple[np.ndarray, dict[int, np.ndarray]]:
        """The reference features and k-NN radii that a set of ``m`` images is compared with in
        precision, recall and coverage: all of them for ``m >= n``, else ``m`` of them (a fixed
        draw). The k-NN balls of those scores shrink as the reference grows, so sets are
        compared with a reference of their own size, as their authors do (a model's sample sets
        have as many images as the test split: all of it)."""
        n = len(self.features)
        if m >= n:
            return self.features, self.radii
        if m not in self._subsets:
            pick = np.sort(np.random.default_rng(0).permutation(n)[:m])
            ks = tuple(self.radii)
            self._subsets[m] = (self.features[pick], fidelity.knn_radii_for(self.features[pick], ks))
        return self._subsets[m]


def make_reference(images: np.ndarray, classifier: FeatureClassifier | None, notes: list[str]) -> Reference:
    """The ``Reference`` of test ``images`` (n, H, W, C); notes say what could not be computed."""
    images = np.asarray(images, np.float32)
    ref = Reference(images, sharpness.image_stats(images), metrics.sharpness(images), classifier)
    if classifier is not None:
        ref.features = classifier.features(images)
        ks = (fidelity.PR_NEIGHBOURS, fidelity.COVERAGE_NEIGHBOURS)
        ref.radii = guarded(notes, "precision, recall, coverage (every sample set)", lambda: fidelity.knn_radii_for(ref.features, ks), None)
    return ref


def sample_set_scores(images: np.ndarray, ref: Reference, *, seed: int, notes: list[str], label: str) -> dict[str, Any]:
    """The scores of ``images`` (m, H, W, C) as samples of the test images' distribution.

    ``label`` names the set in notes (``sample``, ``blur 1``).
    """
    sharp = metrics.sharpness(images)
    scores: dict[str, Any] = {
        "sharpness": sharp,
        "blurriness": metrics.blurriness(sharp, ref.sharpness),
        **sharpness.set_gaps(sharpness.image_stats(images), ref.stats),
    }
    _note_infinite(scores, notes, label)
    if ref.classifier is None:
        return scores
    features = ref.classifier.features(images)
    nan = float("nan")
    scores["fd"] = guarded(notes, f"fd ({label})", lambda: frechet_distance_features(features, ref.features))
    scores["kid"], scores["kid_se"] = guarded(notes, f"kid ({label})",
                                              lambda: fidelity.kid(ref.features, features, seed=seed), (nan, nan))  # fmt: skip
    if ref.radii is None:
        scores |= {"precision": nan, "recall": nan, "coverage": nan}
        return scores
    try:
        real, radii = ref.balls(len(features))
    except ValueError as exc:
        notes.append(f"precision, recall, coverage ({label}): {exc}")
        return scores | {"precision": nan, "recall": nan, "coverage": nan}
    scores["precision"], scores["recall"] = guarded(
        notes, f"precision, recall ({label})",
        lambda: fidelity.precision_recall(real, features, real_radii=radii[fidelity.PR_NEIGHBOURS]), (nan, nan),
    )  # fmt: skip
    scores["coverage"] = guarded(notes, f"coverage ({label})",
                                 lambda: fidelity.coverage(real, features, radii[fidelity.COVERAGE_NEIGHBOURS]))  # fmt: skip
    return scores


def reconstruction_scores(recon: np.ndarray, originals: np.ndarray, *, notes: list[str], label: str = "recon",
                          reference: Reference | None = None) -> dict[str, Any]:  # fmt: skip
    """The scores of ``recon`` (n, H, W, C) as reconstructions of ``originals`` (n, H, W, C),
    image for image: errors, sharpness, and the paired gaps. ``reference``: the ``Reference``
    of ``originals``, when it has been computed already."""
    sharp = metrics.sharpness(recon)
    if reference is None or reference.images is not originals:
        reference = Reference(originals, sharpness.image_stats(originals), metrics.sharpness(originals))
    scores = {
        "mse": metrics.recon_mse(originals, recon),
        "bce": metrics.recon_bce(originals, recon),
        "sharpness": sharp,
        "blurriness": metrics.blurriness(sharp, reference.sharpness),
        **sharpness.paired_gaps(sharpness.image_stats(recon), reference.stats),
    }
    _note_infinite(scores, notes, label)
    return scores


def _note_infinite(scores: dict[str, Any], notes: list[str], label: str) -> None:
    infinite = [k for k in ("sharpness_gap", "contrast_gap", "spectral_gap") if scores.get(k) == float("inf")]
    if infinite:
        notes.append(f"{', '.join(infinite)} ({label}): constant images, no sharpness or contrast: "
                     "infinite, counted as the worst value")  # fmt: skip


def guarded(notes: list[str], what: str, compute: Callable[[], Any], fill: Any = float("nan")) -> Any:
    """``compute()``, or ``fill`` with a note naming ``what`` when the data cannot support the
    score (a ``ValueError`` or ``LinAlgError`` from too few images, one class, ...)."""
    try:
        return compute()
    except (ValueError, np.linalg.LinAlgError) as exc:
        notes.append(f"{what}: {exc}")
        return fill
