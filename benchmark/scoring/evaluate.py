"""Score a trained model on a dataset's test split (the metrics of ``benchmark.scoring.metrics``,
``benchmark.scoring.fidelity`` and ``benchmark.scoring.sampling``).

Sample sets. ``sample`` are decodings of z ~ N(0, I), the prior of the variational models
(``has_prior``); for a model without a prior they measure the scale of its latent space, not
the model, and are reported but not ranked. ``sample_gmm`` are decodings of draws from a
10-component Gaussian mixture fitted to the training latent means (``benchmark.scoring.sampling``):
every model has them. Each set has as many images as the test split.

Scores that cannot be computed on a unit's data (too few images for k = 3 neighbours, too few
or constant latent codes for the mixture, a single class) are NaN, and the row's ``notes``
says why, one "; "-joined reason per group of scores; they never stop the run.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np
from threadpoolctl import threadpool_limits

from benchmark.data.dataset import Dataset
from benchmark.running.config import CLASSIFIER_TRAIN_SIZE, DEFAULT_IS_SAMPLES
from benchmark.scoring import metrics, sampling
from benchmark.scoring.image_sets import (
    FEATURE_SCORES,
    guarded,
    make_reference,
    reconstruction_scores,
    sample_set_scores,
)
from benchmark.scoring.likelihood import likelihood_scores

if TYPE_CHECKING:
    from benchmark.scoring.frechet import FeatureClassifier

EVAL_BATCH = 1000

#: Latent interpolations saved for figures: pairs of test images, images per path (ends included).
INTERP_PAIRS = 6
INTERP_STEPS = 10


def batched(fn, x: np.ndarray, batch_size: int = EVAL_BATCH) -> np.ndarray:
    """Apply ``fn`` to ``x`` in batches along axis 0 and concatenate the numpy results."""
    return np.concatenate([np.asarray(fn(x[i : i + batch_size])) for i in range(0, len(x), batch_size)])


def interpolation_pairs(y: np.ndarray, n_pairs: int) -> np.ndarray:
    """(n_pairs, 2) test indices: each unused image paired with the next one of another class.

    Fewer pairs when the labels run out (e.g. a single class).
    """
    pairs, used = [], set()
    y = np.asarray(y).reshape(len(y), -1)  # attribute labels: another class = other attributes
    for a in range(len(y)):
        if len(pairs) == n_pairs:
            break
        if a in used:
            continue
        b = next((b for b in range(a + 1, len(y)) if b not in used and not np.array_equal(y[b], y[a])), None)
        if b is not None:
            pairs.append((a, b))
            used.update((a, b))
    return np.array(pairs, dtype=np.int64).reshape(-1, 2)


def interpolate(model, x: np.ndarray, pairs: np.ndarray, steps: int = INTERP_STEPS) -> np.ndarray:
    """Decode straight lines between the latent means of image pairs.

    ``x`` (n, H, W, C), ``pairs`` (p, 2) indices into it -> images (p, steps, H, W, C); the
    first and last image of each path are the pair's reconstructions.
    """
    if len(pairs) == 0:
        return np.zeros((0, steps, *x.shape[1:]), np.float32)
    z = np.asarray(model.encode(x[pairs.ravel()])).reshape(len(pairs), 2, -1)  # (p, 2, latent)
    t = np.linspace(0.0, 1.0, steps, dtype=np.float32)[None, :, None]  # (1, steps, 1)
    path = (1 - t) * z[:, :1] + t * z[:, 1:]  # (p, steps, latent)
    images = np.asarray(model.decode(path.reshape(-1, z.shape[-1])))
    return images.reshape(len(pairs), steps, *x.shape[1:])


def evaluate_model(
    model,
    data: Dataset,
    *,
    seed: int,
    classifier: FeatureClassifier | None = None,
    is_samples: int = DEFAULT_IS_SAMPLES,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Every score of ``model`` on ``data``'s test split.

    Returns ``(scores, arrays)``: the scores of a result row, and the per-image arrays behind
    them (latent means, sharpness per image, sample images, latent interpolations, KL per
    latent dimension) for figures.

    Columns (``S`` is a sample set, ``sample`` or ``sample_gmm``; ``R`` is ``recon`` or ``S``):

    - ``recon_mse`` (pixel units^2), ``recon_bce`` (nats per image): lower is better.
    - ``sharpness_real``, ``sharpness_R``: mean Laplacian variance of the luminance (pixel
      units^2, [0, 1] range, Tolstikhin et al.'s measure), descriptive; ``blurriness_R`` =
      1 - sharpness_R / sharpness_real, signed, descriptive.
    - ``sharpness_gap_R``, ``contrast_gap_R``, ``spectral_gap_R`` (``benchmark.scoring.sharpness``,
      natural-log units, 0 = real, lower is better): for ``recon`` each reconstruction against
      its own original; for a sample set the distance between its per-image distributions
      and the test images'. Infinite (the worst) for constant images.
    - With a ``classifier`` (``benchmark.scoring.frechet``), in its feature space against the
      test images: ``fd_S`` (Fréchet distance, squared feature units; floor ``fd_real``, with
      the classifier's accuracy ``fd_classifier_acc``), ``kid_S`` and its standard error
      ``kid_S_se`` (squared kernel units), ``precision_S``, ``recall_S`` (k = 3) and
      ``coverage_S`` (k = 5), fractions in [0, 1] (``benchmark.scoring.image_sets``).
    - ``latent_acc_logreg``, ``latent_acc_knn``: accuracy of classifiers of the test latent
      means, trained on those of a fixed subset of the training split; higher is better. On
      attribute labels (CelebA), the mean accuracy over ``data.probes`` (Smiling, Male,
      Eyeglasses), one binary classifier per attribute.
    - ``active_units`` (variational models): latent dimensions whose posterior mean varies
      over the test images by more than 0.01 (Burda et al. 2016), descriptive.
    - ``neg_elbo``, ``kl`` (variational models): nats per image, descriptive.
    - ``nll_is`` (nats per image) and ``bits_per_dim``: the importance-weighted bound with
      ``is_samples`` samples under the model's discrete pixel likelihood
      (``benchmark.scoring.likelihood``); lower is better; NaN where the likelihood is undefined.
    - ``has_prior`` (bool), ``notes`` (str, empty when no score is missing).
    """
    # One BLAS thread for the numpy and scikit-learn scores: their matrices are small (at most
    # 1,000 x 10,000), where threads cost more than they gain on a busy machine (measured on 2
    # shared cores: a 360 x 360 kernel 5x faster), and single-threaded sums do not depend on
    # the core count. Keras' own ops do not use this BLAS.
    with threadpool_limits(limits=1, user_api="blas"):
        return _evaluate(model, data, seed=seed, classifier=classifier, is_samples=is_samples)


def _evaluate(
    model, data: Dataset, *, seed: int, classifier: FeatureClassifier | None, is_samples: int
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    notes: list[str] = []
    # The test split is read whole (as float32) for the scores; the training split only in
    # the subset the latent classifiers use.
    x_test, y_test = np.asarray(data.x_test, np.float32), data.y_test
    n_test = len(x_test)
    z_test = batched(model.encode, x_test)  # (n_test, latent_dim)
    recon = batched(model.decode, z_test)  # (n_test, H, W, C) in [0, 1]
    rng = np.random.default_rng(seed)
    z_prior = rng.standard_normal((n_test, model.latent_dim)).astype(np.float32)
    images = {"recon": recon, "sample": batched(model.decode, z_prior)}

    # The latent classifiers and the mixture use the latent means of one fixed training subset.
    pick = np.random.default_rng(0).permutation(len(data.x_train))[:CLASSIFIER_TRAIN_SIZE]
    z_train = batched(model.encode, data.x_train[pick])
    y_train = data.y_train[pick]
    try:
        gmm = sampling.fit_latent_gmm(z_train)
        images["sample_gmm"] = batched(model.decode, sampling.sample_latent_gmm(gmm, n_test, seed=seed))
    except sampling.DegenerateLatents as exc:
        notes.append(f"{', '.join(GMM_COLUMNS)}: {exc}")

    scores = image_scores(images, x_test, classifier, seed=seed, notes=notes)
    for column, probe in (("latent_acc_logreg", metrics.latent_acc_logreg), ("latent_acc_knn", metrics.latent_acc_knn)):
        scores[column] = guarded(notes, column, lambda p=probe: latent_probe(p, data, z_train, y_train, z_test, y_test))

    posterior_scores, arrays = posterior_terms(model, x_test, z_test, notes)
    scores |= posterior_scores
    start = time.perf_counter()
    likelihood, likelihood_notes = likelihood_scores(model, x_test, samples=is_samples, seed=seed)
    scores |= likelihood | {"is_samples": is_samples, "nll_is_seconds": time.perf_counter() - start}
    notes += likelihood_notes
    scores["has_prior"] = bool(model.has_prior)
    scores["notes"] = "; ".join(notes)
    arrays |= figure_arrays(model, data, x_test, z_test, images)
    return scores, arrays


def image_scores(
    images: dict[str, np.ndarray],
    x_test: np.ndarray,
    classifier: FeatureClassifier | None,
    *,
    seed: int,
    notes: list[str],
) -> dict[str, Any]:
    """The scores of the reconstructions and of each sample set against the test images.

    ``images`` maps ``recon``, ``sample`` and (when the mixture was fitted) ``sample_gmm`` to
    (n_test, H, W, C) images in [0, 1]; ``x_test`` (n_test, H, W, C) are the originals.
    Without a ``classifier`` the feature-space scores are left out; a missing ``sample_gmm``
    gives NaN. Reasons for NaN scores are appended to ``notes``.
    """
    ref = make_reference(x_test, classifier, notes)
    scores: dict[str, Any] = {"sharpness_real": ref.sharpness}
    recon_scores = reconstruction_scores(images["recon"], x_test, notes=notes, reference=ref)
    scores |= {f"recon_{k}" if k in ("mse", "bce") else f"{k}_recon": v for k, v in recon_scores.items()}
    if classifier is not None:
        scores["fd_real"] = classifier.real_fd
        scores["fd_classifier_acc"] = classifier.test_accuracy
    for name in ("sample", "sample_gmm"):
        if name in images:
            set_scores = sample_set_scores(images[name], ref, seed=seed, notes=notes, label=name)
        else:  # the mixture could not be fitted: NaN, with the note above
            set_scores = dict.fromkeys(SET_SCORES, float("nan"))
        if classifier is None:
            set_scores = {k: v for k, v in set_scores.items() if k not in FEATURE_SCORES}
        scores |= {f"{k}_{name}" if k != "kid_se" else f"kid_{name}_se": v for k, v in set_scores.items()}
    return scores


def posterior_terms(
    model, x_test: np.ndarray, z_test: np.ndarray, notes: list[str]
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """``neg_elbo`` and ``kl`` (nats per image, mean over ``x_test``) and ``active_units`` of
    a variational model, with its ``kl_per_dim`` (latent_dim,) array; for any other model
    ``active_units`` is NaN (the reason appended to ``notes``) and there are no arrays.

    ``x_test`` (n_test, H, W, C) images, ``z_test`` (n_test, latent_dim) their latent means.
    """
    if not model.variational:
        notes.append("active_units: defined for models with a posterior q(z|x) and a N(0, I) prior")
        return {"active_units": float("nan")}, {}
    terms = [model.elbo_terms(x_test[i : i + EVAL_BATCH]) for i in range(0, len(x_test), EVAL_BATCH)]
    nll = np.concatenate([np.asarray(t[0]) for t in terms])
    kl = np.concatenate([np.asarray(t[1]) for t in terms])
    scores = {
        "neg_elbo": float(np.mean(nll + kl)),
        "kl": float(np.mean(kl)),
        "active_units": guarded(notes, "active_units", lambda: metrics.active_units(z_test)),
    }
    return scores, {"kl_per_dim": kl_per_dim(model, x_test)}


def figure_arrays(
    model, data: Dataset, x_test: np.ndarray, z_test: np.ndarray, images: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """The arrays behind a unit's figures: latent means ``z_test`` (n_test, latent_dim) with
    one label per image, sharpness per image (pixel units^2), up to 64 images of each set
    (N, H, W, C) and the latent interpolations (pairs, steps, H, W, C)."""
    y_test, recon = data.y_test, images["recon"]
    pairs = interpolation_pairs(y_test, INTERP_PAIRS)
    empty = np.zeros((0, *x_test.shape[1:]), np.float32)
    return {
        "z_test": z_test,
        # One label per image for the latent figure: the class, or the first probed attribute.
        "y_test": y_test if y_test.ndim == 1 else y_test[:, data.label_names.index(data.probes[0])],
        "sharpness_real": metrics.laplacian_variance(x_test),
        "sharpness_recon": metrics.laplacian_variance(recon),
        "sharpness_sample": metrics.laplacian_variance(images["sample"]),
        "samples": images["sample"][:64],
        "samples_gmm": images["sample_gmm"][:64] if "sample_gmm" in images else empty,
        "recon": recon[:64],
        "interp_pairs": pairs,
        "interpolations": interpolate(model, x_test, pairs),
    }


#: The scores of one sample set (``image_sets.sample_set_scores``), without the set's suffix.
SET_SCORES = ("sharpness", "blurriness", "sharpness_gap", "contrast_gap", "spectral_gap", *FEATURE_SCORES)

#: The scores of the mixture's samples: NaN together when the mixture cannot be fitted.
GMM_COLUMNS = (
    "fd_sample_gmm", "precision_sample_gmm", "recall_sample_gmm", "coverage_sample_gmm", "kid_sample_gmm",
    "sharpness_gap_sample_gmm", "contrast_gap_sample_gmm", "spectral_gap_sample_gmm",
)  # fmt: skip


def latent_probe(score, data: Dataset, z_train, y_train, z_test, y_test) -> float:
    """``score`` of classifiers of the latent codes: of the class, or for attribute labels
    (CelebA) the mean over ``data.probes``, one binary classifier per attribute."""
    if np.ndim(y_train) == 1:
        return score(z_train, y_train, z_test, y_test)
    columns = [data.label_names.index(name) for name in data.probes]
    if not columns:
        raise ValueError(f"{data.name} has attribute labels but no attributes to predict")
    return metrics.mean_over_columns(score, z_train, y_train, z_test, y_test, columns)


def kl_per_dim(model, x: np.ndarray) -> np.ndarray:
    """(latent_dim,) nats: KL(q(z_u|x) || N(0, 1)) per latent dimension u, mean over ``x``.

    Uses the encoder's two heads, ``[z_mean, z_log_var]``, of a variational model.
    """
    heads = [model.encoder(x[i : i + EVAL_BATCH]) for i in range(0, len(x), EVAL_BATCH)]
    z_mean = np.concatenate([np.asarray(h[0]) for h in heads])
    z_log_var = np.concatenate([np.asarray(h[1]) for h in heads])
    return metrics.gaussian_kl_per_dim(z_mean, z_log_var)
