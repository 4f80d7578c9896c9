"""The variational autoencoder shared by the likelihood variants (``vae_mse``, ``vae_bernoulli``).

q(z|x) = N(z_mean, exp(z_log_var)), prior N(0, I), and a decoder p(x|z) whose negative
log-likelihood each subclass defines in ``reconstruction_nll``. The training loss per image,
averaged over the batch, is E_q[-log p(x|z)] (one reparameterized sample) + beta * KL: the
negative ELBO at ``beta = 1``, the beta-VAE objective otherwise (Higgins et al., 2017). Scores
use the true negative ELBO (``elbo_terms``), whatever ``beta``.

Each subclass also gives ``log_likelihood``: log p(x|z) as a probability of discrete pixel
values (the set named by ``likelihood_support``), the term the importance-sampled likelihood
of ``benchmark.scoring.likelihood`` is built from, so that it means the same for every model.
"""

from __future__ import annotations

import keras
from keras import ops

from models.base import Autoencoder
from models.losses import gaussian_kl
from models.networks import build_decoder, build_encoder
from models.precision import as_float32


class GaussianPosterior:
    """q(z|x) = N(z_mean, exp(z_log_var)) from an encoder with a mean and a log-variance head."""

    def encode(self, x, training: bool = False):
        z_mean, _ = self.encoder(x, training=training)
        return as_float32(z_mean)

    def posterior_params(self, x, training: bool = False):
        """(z_mean, z_log_var) of q(z|x), each (batch, latent_dim), float32."""
        z_mean, z_log_var = self.encoder(x, training=training)
        return as_float32(z_mean), as_float32(z_log_var)

    def sample_posterior(self, z_mean, z_log_var):
        """Reparameterization: z = mean + exp(log_var / 2) * eps, eps ~ N(0, I), all in the
        dtype of ``z_mean`` (the compute dtype: bfloat16 under mixed precision)."""
        dtype = keras.backend.standardize_dtype(z_mean.dtype)
        eps = keras.random.normal(ops.shape(z_mean), dtype=dtype, seed=self.noise)
        return z_mean + ops.exp(0.5 * z_log_var) * eps


class VAE(GaussianPosterior, Autoencoder):
    """A VAE with KL weight ``beta`` (>= 0; 1 is the ELBO, larger trades reconstruction for a
    posterior closer to the prior, smaller the reverse)."""

    variational = True
    has_prior = True
    #: The discrete pixel values ``log_likelihood`` is a distribution over: "binary" ({0, 1})
    #: or "8bit" (k / 255); ``benchmark.scoring.likelihood`` checks the data against it.
    likelihood_support: str | None = None

    def __init__(self, image_shape, latent_dim: int, beta: float = 1.0, **kwargs):
        super().__init__(image_shape, latent_dim, **kwargs)
        if not beta >= 0:
            raise ValueError(f"beta must be >= 0, got {beta}")
        self.beta = float(beta)
        self.encoder = build_encoder(self.image_shape, self.latent_dim, variational=True)
        self.decoder = build_decoder(self.image_shape, self.latent_dim)
        # A tracked generator, so each step draws new noise (and JAX carries its state).
        self.noise = keras.random.SeedGenerator(self.seed)
        self.nll_tracker = keras.metrics.Mean(name="nll")
        self.kl_tracker = keras.metrics.Mean(name="kl")

    def reconstruction_nll(self, x, logits):
        """-log p(x|z) per image, (batch,), from the decoder's logits."""
        raise NotImplementedError

    def log_likelihood(self, x, logits):
        """log p(x|z) per image, (batch,), as a probability of the discrete pixel values of
        ``likelihood_support``, from the decoder's logits (batch, H, W, C)."""
        raise NotImplementedError

    def call(self, x, training=False):
        """q(z|x) and the decoder's logits for one sample of it, all float32 for the losses."""
        z_mean, z_log_var = self.encoder(x, training=training)
        z = self.sample_posterior(z_mean, z_log_var)
        return {
            "z_mean": as_float32(z_mean),
            "z_log_var": as_float32(z_log_var),
            "logits": as_float32(self.decoder(z, training=training)),
        }

    def elbo_terms(self, x):
        """(nll, kl), each (batch,) in nats: the two terms of the negative ELBO of ``x``."""
        out = self(x)
        return self.reconstruction_nll(x, out["logits"]), gaussian_kl(out["z_mean"], out["z_log_var"])

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        nll = self.reconstruction_nll(x, y_pred["logits"])
        kl = gaussian_kl(y_pred["z_mean"], y_pred["z_log_var"])
        self.nll_tracker.update_state(nll)
        self.kl_tracker.update_state(kl)
        return ops.mean(nll + self.beta * kl)

    def get_config(self):
        return {**super().get_config(), "beta": self.beta}
