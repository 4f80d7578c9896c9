"""Per-image loss terms, written from the math. Every function returns shape (batch,).

Images are (batch, H, W, C) in [0, 1]; latent tensors are (batch, latent_dim). Units are nats.
"""

from __future__ import annotations

import math

from keras import ops

LOG_2PI = math.log(2.0 * math.pi)


def _sum_per_image(values):
    """Sum every axis but the first: (batch, ...) -> (batch,)."""
    return ops.sum(ops.reshape(values, (ops.shape(values)[0], -1)), axis=1)


def gaussian_kl(z_mean, z_log_var):
    """KL(N(mean, exp(log_var)) || N(0, I)) in closed form, summed over latent dimensions.

    KL = 0.5 * sum_j (mean_j^2 + var_j - log var_j - 1).
    """
    return 0.5 * ops.sum(ops.square(z_mean) + ops.exp(z_log_var) - z_log_var - 1.0, axis=-1)


def gaussian_nll(x, mean, obs_std: float):
    """-log N(x; mean, obs_std^2 I), summed over pixels.

    Per pixel: 0.5 * ((x - mean)^2 / obs_std^2 + log(2 pi obs_std^2)). ``obs_std`` is the
    observation noise in pixel units ([0, 1] scale); it sets the weight of the squared error
    against the KL term: 1 / (2 obs_std^2) per pixel.
    """
    var = obs_std**2
    per_pixel = 0.5 * (ops.square(x - mean) / var + LOG_2PI + math.log(var))
    return _sum_per_image(per_pixel)


def bernoulli_nll(x, logits):
    """-log Bernoulli(x; sigmoid(logits)), summed over pixels: binary cross-entropy from logits.

    Per pixel: softplus(l) - x * l, the numerically stable form of
    -(x log p + (1 - x) log(1 - p)) with p = sigmoid(l). For grey x in (0, 1) this is the
    cross-entropy with x read as a probability; its minimum is the entropy of x, not 0.
    """
    return _sum_per_image(ops.softplus(logits) - x * logits)


def squared_error(x, x_hat):
    """Sum of squared errors over pixels."""
    return _sum_per_image(ops.square(x - x_hat))
