"""What the harness needs from every model: encode to a latent mean, decode to an image."""

from __future__ import annotations

import keras
from keras import ops

from models.flops import forward_flops
from models.precision import as_float32


class Autoencoder(keras.Model):
    """Base class of every vaebench model.

    Subclasses build ``self.encoder`` and ``self.decoder`` (see ``models.networks``) and a
    training loss in ``compute_loss``. Images are (batch, H, W, C) in [0, 1].

    Parameters
    ----------
    image_shape : tuple of int
        (H, W, C) of the training images.
    latent_dim : int
        Size of the latent code.
    seed : int or None, default=None
        Seed of the model's own noise (reparameterization, prior samples).
    """

    #: True for models with q(z|x) and a KL term; they implement ``elbo_terms``.
    variational = False

    #: True for models trained with a prior p(z) (N(0, I)) that decoding its draws samples
    #: from; a model without one (the autoencoder) is sampled through a fitted mixture only.
    has_prior = False

    def __init__(self, image_shape, latent_dim: int, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.image_shape = tuple(int(s) for s in image_shape)
        self.latent_dim = int(latent_dim)
        self.seed = seed

    def make_optimizer(self) -> keras.optimizers.Optimizer:
        """The optimizer the harness compiles this model with."""
        return keras.optimizers.Adam(learning_rate=1e-3)

    def encode(self, x, training: bool = False):
        """(batch, H, W, C) -> latent code (batch, latent_dim), float32; the posterior mean for VAEs."""
        return as_float32(self.encoder(x, training=training))

    def decode(self, z, training: bool = False):
        """(batch, latent_dim) -> image in [0, 1], (batch, H, W, C), float32."""
        return ops.sigmoid(as_float32(self.decoder(z, training=training)))

    def reconstruct(self, x):
        """Decode the latent code (posterior mean) of ``x``."""
        return self.decode(self.encode(x))

    def train_flops_per_sample(self) -> int:
        """FLOPs of one training example: a forward and a backward pass (about twice the
        forward) through encoder and decoder. Models with more passes per step override it."""
        return 3 * (forward_flops(self.encoder) + forward_flops(self.decoder))

    def build(self, input_shape=None):
        # The sub-networks are built at construction; nothing is left to create.
        self.built = True

    def get_config(self):
        return {
            **super().get_config(),
            "image_shape": list(self.image_shape),
            "latent_dim": self.latent_dim,
            "seed": self.seed,
        }
