"""Bernoulli VAE: binary cross-entropy from logits, summed over pixels."""

from __future__ import annotations

import keras

from models.losses import bernoulli_log_pmf, bernoulli_nll
from models.registry import register_model
from models.vae import VAE


@keras.saving.register_keras_serializable(package="vaebench")
class BernoulliVAE(VAE):
    """p(x|z) = Bernoulli(sigmoid(logits)) per pixel.

    Grey pixels are used as they are: an intensity x in [0, 1] is the target probability of
    the cross-entropy (no binarization), so every model sees the same data. The loss is then
    the cross-entropy, which exceeds the negative log-likelihood of binary data by the
    entropy of the grey pixels; it is still minimised by sigmoid(logits) = x.

    As a likelihood (``log_likelihood``) it is a probability of binary images only, such as
    ``binarized_mnist``; on grey images the importance-sampled likelihood is undefined.
    """

    likelihood_support = "binary"

    def reconstruction_nll(self, x, logits):
        return bernoulli_nll(x, logits)

    def log_likelihood(self, x, logits):
        return bernoulli_log_pmf(x, logits)


@register_model
def vae_bernoulli(image_shape, latent_dim: int = 16, beta: float = 1.0, **config) -> BernoulliVAE:
    return BernoulliVAE(image_shape, latent_dim, beta=beta, **config)
