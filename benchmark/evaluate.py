"""Score a trained model on a dataset's test split (the metrics of ``benchmark.metrics``)."""

from __future__ import annotations

import numpy as np

from benchmark import metrics
from benchmark.config import CLASSIFIER_TRAIN_SIZE
from benchmark.data import Dataset

EVAL_BATCH = 1000


def batched(fn, x: np.ndarray, batch_size: int = EVAL_BATCH) -> np.ndarray:
    """Apply ``fn`` to ``x`` in batches along axis 0 and concatenate the numpy results."""
    return np.concatenate([np.asarray(fn(x[i : i + batch_size])) for i in range(0, len(x), batch_size)])


def evaluate_model(model, data: Dataset, *, seed: int) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Every score of ``model`` on ``data``'s test split.

    Returns ``(scores, arrays)``: the scalar scores of a result row, and the per-image arrays
    behind them (latent means, sharpness per image, sample images) for figures.
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

    arrays = {
        "z_test": z_test,
        "y_test": y_test,
        "sharpness_real": sharp["real"],
        "sharpness_recon": sharp["recon"],
        "sharpness_sample": sharp["sample"],
        "samples": samples[:64],
        "recon": recon[:64],
    }
    return scores, arrays
