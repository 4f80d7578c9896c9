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


#: Levels of 8-bit data: pixel values k / 255, k = 0..255.
PIXEL_LEVELS = 256

# Coefficients of the Chebyshev fit to erfc(z) = tau * exp(-z^2 + P(tau)), tau = 1 / (1 + z/2),
# z >= 0, fractional error below 1.2e-7 everywhere (Press et al., Numerical Recipes, 2nd ed.,
# section 6.2, ``erfcc``). In this form log erfc is a polynomial plus a logarithm: no
# underflow in the far tail, where erfc itself is below the smallest float32.
_ERFC_COEFFS = (
    -1.26551223, 1.00002368, 0.37409196, 0.09678418, -0.18628806,
    0.27886807, -1.13520398, 1.48851587, -0.82215223, 0.17087277,
)  # fmt: skip


def _log_erfc_nonneg(z):
    """log erfc(z) for z >= 0, relative error of erfc below 1.2e-7."""
    tau = 1.0 / (1.0 + 0.5 * z)
    poly = ops.zeros_like(z)
    for c in reversed(_ERFC_COEFFS):
        poly = c + tau * poly
    return ops.log(tau) - ops.square(z) + poly


def _log1mexp(a):
    """log(1 - exp(a)) for a <= 0 (Maechler 2012): expm1 near 0, log1p further out."""
    near = ops.minimum(a, -1e-30)  # the branch not taken must stay finite (its gradient too)
    far = ops.minimum(a, -math.log(2.0))
    return ops.where(a > -math.log(2.0), ops.log(-ops.expm1(near)), ops.log1p(-ops.exp(far)))


def log_ndtr(t):
    """log Phi(t), the log of the standard normal CDF, elementwise, accurate in both tails.

    Lower half (t <= 0): log(erfc(-t / sqrt 2) / 2). Upper half: log(1 - Phi(-t)). Each
    branch sees its argument clipped to its half, so neither produces an inf or a NaN
    gradient for the other.
    """
    lower = _log_erfc_nonneg(-ops.minimum(t, 0.0) / math.sqrt(2.0)) - math.log(2.0)
    upper_tail = _log_erfc_nonneg(ops.maximum(t, 0.0) / math.sqrt(2.0)) - math.log(2.0)
    return ops.where(t <= 0.0, lower, _log1mexp(ops.minimum(upper_tail, -1e-30)))


# Three-point Gauss-Legendre rule on [-1, 1]: nodes and weights.
_GL_NODES = (-math.sqrt(0.6), 0.0, math.sqrt(0.6))
_GL_WEIGHTS = (5.0 / 9.0, 8.0 / 9.0, 5.0 / 9.0)


def log_normal_bin(center, width):
    """log(Phi(center + width/2) - Phi(center - width/2)), elementwise, for width > 0.

    Two regimes, both free of the cancellation of a plain difference of CDFs:

    - a narrow bin, width * (|center| + 1) <= 1/2: the density integrated by a three-point
      Gauss-Legendre rule, in logs: log phi(center) + log((width/2) sum_i w_i
      exp(-center u_i - u_i^2 / 2)), with u_i the nodes scaled to the bin. The integrand
      varies by at most a factor e^(1/4) over the bin, and the rule is exact to degree 5:
      relative error below 2e-7.
    - a wider bin: log Phi(hi) + log(1 - exp(log Phi(lo) - log Phi(hi))), with the bin
      reflected to the lower half when its centre lies above 0, so that Phi(hi) is not
      close to 1 there and the two logs differ by about 1/4 or more.

    Each regime sees inputs clipped to its own domain, so the one not taken stays finite
    (and so do gradients through ``where``).
    """
    limit = 0.5 / (ops.abs(center) + 1.0)  # the widest narrow bin
    narrow = width <= limit
    # Narrow: quadrature of phi(center + u) = phi(center) exp(-center u - u^2 / 2).
    w_n = ops.minimum(width, limit)
    total = 0.0
    for node, weight in zip(_GL_NODES, _GL_WEIGHTS, strict=True):
        u = 0.5 * w_n * node
        total = total + weight * ops.exp(-center * u - 0.5 * ops.square(u))
    log_narrow = -0.5 * ops.square(center) - 0.5 * LOG_2PI + ops.log(0.5 * w_n * total)
    # Wide: difference of log CDFs on the lower half.
    w_w = ops.maximum(width, limit)
    reflect = center > 0.0
    hi = ops.where(reflect, -center, center) + 0.5 * w_w
    lo = hi - w_w
    log_hi = log_ndtr(hi)
    log_wide = log_hi + _log1mexp(ops.minimum(log_ndtr(lo) - log_hi, -1e-30))
    return ops.where(narrow, log_narrow, log_wide)


def log_normal_interval(a, b):
    """log(Phi(b) - Phi(a)), elementwise, for a < b (see ``log_normal_bin``)."""
    return log_normal_bin(0.5 * (a + b), b - a)


def discretized_gaussian_log_pmf(x, mean, std, levels: int = PIXEL_LEVELS):
    """log P(x) per pixel for x on the grid k / (levels - 1), same shape as ``x``.

    P(x) is the mass of N(mean, std^2) on x's bin: the interval of width 1 / (levels - 1)
    centred on x, with the first bin extended to -inf and the last to +inf, so the masses of
    the ``levels`` values sum to 1. ``mean`` and ``std`` broadcast against ``x``.
    """
    half = 0.5 / (levels - 1)
    center = (x - mean) / std  # the bin in units of std
    width = 2.0 * half / std
    first = x < half  # the value 0: (-inf, half]
    last = x > 1.0 - half  # the value 1: [1 - half, inf)
    return ops.where(
        first,
        log_ndtr(center + 0.5 * width),
        ops.where(last, log_ndtr(-(center - 0.5 * width)), log_normal_bin(center, width)),
    )


def discretized_gaussian_nll(x, mean, std, levels: int = PIXEL_LEVELS):
    """-log P(x|mean, std) summed over pixels: the Gaussian integrated over each pixel's bin.

    A likelihood of discrete data (8-bit pixels, ``levels`` = 256, or binary ones, which lie
    on that grid): each pixel's value k / 255 gets the mass of N(mean, std^2) on
    [x - 1/510, x + 1/510], the two end bins reaching to -inf and +inf. Bounded below by 0,
    unlike a density, so a learned ``std`` cannot shrink towards 0 for unbounded gain.
    """
    return -_sum_per_image(discretized_gaussian_log_pmf(x, mean, std, levels))


def bernoulli_log_pmf(x, logits):
    """log Bernoulli(x; sigmoid(logits)) summed over pixels, for x in {0, 1}: (batch,)."""
    return -bernoulli_nll(x, logits)
