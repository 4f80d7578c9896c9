"""Score a trained model on a dataset's test split (the metrics of ``benchmark.metrics``)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np

from benchmark import metrics
from benchmark.config import CLASSIFIER_TRAIN_SIZE, DEFAULT_IS_SAMPLES
from benchmark.data import Dataset
from benchmark.likelihood import likelihood_scores

if TYPE_CHECKING:
    from benchmark.frechet import FeatureClassifier

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
    for a in range(len(y)):
        if len(pairs) == n_pairs:
            break
        if a in used:
            continue
        b = next((b for b in range(a + 1, len(y)) if b not in used and y[b] != y[a]), None)
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
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Every score of ``model`` on ``data``'s test split.

    Returns ``(scores, arrays)``: the scalar scores of a result row, and the per-image arrays
    behind them (latent means, sharpness per image, sample images, latent interpolations) for
    figures. With a ``classifier`` (``benchmark.frechet``), ``fd_sample`` is the Fréchet
    distance between prior samples and the test images in its feature space, reported with
    the classifier's test accuracy (``fd_classifier_acc``) and the distance of real training
    images (``fd_real``), its floor. ``nll_is`` and ``bits_per_dim`` are the importance-sampled
    likelihood with ``is_samples`` samples (``benchmark.likelihood``); ``notes`` says why a
    score is NaN.
    """
    x_test, y_test = data.x_test, data.y_test
    z_test = batched(model.encode, x_test)  # (n_test, latent_dim)
    recon = batched(model.decode, z_test)  # (n_test, H, W, C) in [0, 1]
    rng = np.random.default_rng(seed)
    z_prior = rng.standard_normal((len(x_test), model.latent_dim)).astype(np.float32)
    samples = batched(model.decode, z_prior)

    sharp = {
        "real": metrics.laplacian_variance(x_test),
        "recon": metrics.laplacian_variance(recon),
        "sample": metrics.laplacian_variance(samples),
    }
    real = float(sharp["real"].mean())
    scores = {
        "recon_mse": metrics.recon_mse(x_test, recon),
        "recon_bce": metrics.recon_bce(x_test, recon),
        "sharpness_real": real,
        "sharpness_recon": float(sharp["recon"].mean()),
        "sharpness_sample": float(sharp["sample"].mean()),
    }
    scores["blurriness_recon"] = metrics.blurriness(scores["sharpness_recon"], real)
    scores["blurriness_sample"] = metrics.blurriness(scores["sharpness_sample"], real)
    if classifier is not None:
        # As many samples as test images, the sample size ``fd_real`` is computed with.
        scores["fd_sample"] = classifier.distance(samples, x_test)
        scores["fd_real"] = classifier.real_fd
        scores["fd_classifier_acc"] = classifier.test_accuracy

    # Classifiers train on the latent means of a fixed subset of the training split.
    pick = np.random.default_rng(0).permutation(len(data.x_train))[:CLASSIFIER_TRAIN_SIZE]
    z_train = batched(model.encode, data.x_train[pick])
    y_train = data.y_train[pick]
    scores["latent_acc_logreg"] = metrics.latent_acc_logreg(z_train, y_train, z_test, y_test)
    scores["latent_acc_knn"] = metrics.latent_acc_knn(z_train, y_train, z_test, y_test)

    if model.variational:
        terms = [model.elbo_terms(x_test[i : i + EVAL_BATCH]) for i in range(0, len(x_test), EVAL_BATCH)]
        nll = np.concatenate([np.asarray(t[0]) for t in terms])
        kl = np.concatenate([np.asarray(t[1]) for t in terms])
        scores["neg_elbo"] = float(np.mean(nll + kl))
        scores["kl"] = float(np.mean(kl))

    start = time.perf_counter()
    likelihood, notes = likelihood_scores(model, x_test, samples=is_samples, seed=seed)
    scores.update(likelihood)
    scores["nll_is_seconds"] = time.perf_counter() - start
    scores["notes"] = "; ".join(notes)

    pairs = interpolation_pairs(y_test, INTERP_PAIRS)
    arrays = {
        "z_test": z_test,
        "y_test": y_test,
        "sharpness_real": sharp["real"],
        "sharpness_recon": sharp["recon"],
        "sharpness_sample": sharp["sample"],
        "samples": samples[:64],
        "recon": recon[:64],
        "interp_pairs": pairs,
        "interpolations": interpolate(model, x_test, pairs),
    }
    return scores, arrays
