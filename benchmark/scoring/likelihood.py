"""Importance-sampled negative log-likelihood: the IWAE bound (Burda et al., 2016).

For an image x and K samples z_k ~ q(z|x),

    nll_is(x) = -log (1/K) sum_k exp(log p(x|z_k) + log p(z_k) - log q(z_k|x))

in nats. Its expectation is an upper bound on -log p(x) that falls as K grows and equals the
negative ELBO at K = 1 (in expectation); as K -> infinity it tends to -log p(x). log p(x|z) is
the model's ``log_likelihood``: a probability of discrete pixel values, so that the figure
means the same for every model on the same data ("binary" or "8bit" data, see ``SUPPORTS``).

The log-weights are computed in float32 by the model, summed and averaged in float64 with a
log-sum-exp; images and samples are taken in chunks, so that memory stays bounded whatever K.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from keras import ops
from scipy.special import logsumexp

#: Decoded images per decoder call: the memory bound (logits and repeated images, about
#: ``2 * MAX_DECODE * D * 4`` bytes, 25 MB for 28x28 images).
MAX_DECODE = 4096

LOG_2PI = math.log(2.0 * math.pi)


def _binary(x: np.ndarray) -> bool:
    return bool(np.all((x == 0) | (x == 1)))


def _eight_bit(x: np.ndarray) -> bool:
    levels = np.asarray(x, np.float64) * 255.0
    return bool(
        np.all((levels >= 0) & (levels <= 255) & (np.abs(levels - np.round(levels)) < 1e-3))
    )


#: Each discrete likelihood's set of pixel values: a test of the data, and why it fails.
SUPPORTS: dict[str, tuple[Callable[[np.ndarray], bool], str]] = {
    "binary": (
        _binary,
        "its likelihood is a probability of binary pixels (0 or 1) and these are not binary "
        "(on grey pixels the cross-entropy is not a likelihood)",
    ),
    "8bit": (
        _eight_bit,
        "its likelihood is a probability of 8-bit pixels (k/255) and these are not",
    ),
}


def log_importance_weights(
    model, x: np.ndarray, *, samples: int, seed: int, max_decode: int = MAX_DECODE
) -> np.ndarray:
    """log p(x|z_k) + log p(z_k) - log q(z_k|x) for z_k ~ q(z|x): (n, samples), float64.

    ``model`` gives ``posterior_params(x) -> (z_mean, z_log_var)``, ``decoder(z)`` and
    ``log_likelihood(x, decoder_output) -> (batch,)``; p(z) = N(0, I). ``x`` is (n, H, W, C).
    The noise comes from ``numpy.random.default_rng(seed)``, drawn image after image and
    sample after sample whatever the chunking: the same call gives the same weights, and
    ``max_decode`` changes only how many are decoded at once.
    """
    if samples < 1:
        raise ValueError(f"samples must be at least 1, got {samples}")
    rng = np.random.default_rng(seed)
    chunk = min(samples, max_decode)  # samples decoded per image and call
    images = max(1, max_decode // chunk)  # images per call
    out = np.empty((len(x), samples), np.float64)
    for start in range(0, len(x), images):
        xb = np.asarray(x[start : start + images], np.float32)  # (b, H, W, C)
        b = len(xb)
        mean, log_var = (
            np.asarray(ops.convert_to_numpy(t), np.float64) for t in model.posterior_params(xb)
        )
        std = np.exp(0.5 * log_var)
        noise = rng.standard_normal((b, samples, mean.shape[-1]))  # (b, samples, latent)
        for k0 in range(0, samples, chunk):
            kc = min(chunk, samples - k0)
            eps = noise[:, k0 : k0 + kc]  # (b, kc, latent)
            z = mean[:, None] + std[:, None] * eps
            flat = z.reshape(b * kc, -1).astype(np.float32)
            decoded = ops.cast(model.decoder(flat), "float32")  # float32 under any precision
            log_px = model.log_likelihood(np.repeat(xb, kc, axis=0), decoded)
            log_px = np.asarray(ops.convert_to_numpy(log_px), np.float64).reshape(b, kc)
            log_pz = -0.5 * np.sum(np.square(z) + LOG_2PI, axis=-1)
            log_qz = -0.5 * np.sum(np.square(eps) + LOG_2PI + log_var[:, None], axis=-1)
            out[start : start + b, k0 : k0 + kc] = log_px + log_pz - log_qz
    return out


def nll_is(
    model, x: np.ndarray, *, samples: int, seed: int, max_decode: int = MAX_DECODE
) -> np.ndarray:
    """The importance-weighted bound of each image, -log mean_k exp(log w_k): (n,), nats."""
    log_w = log_importance_weights(model, x, samples=samples, seed=seed, max_decode=max_decode)
    return -(logsumexp(log_w, axis=1) - math.log(samples))


def likelihood_issue(model, x: np.ndarray) -> str | None:
    """Why ``nll_is`` is undefined for ``model`` on images ``x``, or None when it is defined."""
    support = getattr(model, "likelihood_support", None)
    name = type(model).__name__
    if support is None:
        return f"nll_is: {name} has no likelihood of pixel values"
    holds, why = SUPPORTS[support]
    if not holds(x):
        return f"nll_is: {name}: {why}"
    return None


def likelihood_scores(
    model, x: np.ndarray, *, samples: int, seed: int
) -> tuple[dict[str, float], list[str]]:
    """``nll_is`` (mean over images, nats) and ``bits_per_dim`` of ``model`` on ``x``.

    Returns ``(scores, notes)``: NaN scores and one note saying why where the likelihood is
    undefined (no pixel likelihood, or data outside its support). ``bits_per_dim`` is
    nll_is / (D ln 2), D the number of pixel values of an image.
    """
    issue = likelihood_issue(model, x)
    if issue is not None:
        return {"nll_is": math.nan, "bits_per_dim": math.nan}, [issue]
    value = float(np.mean(nll_is(model, x, samples=samples, seed=seed)))
    dims = int(np.prod(x.shape[1:]))
    return {"nll_is": value, "bits_per_dim": value / (dims * math.log(2.0))}, []
