"""Deterministic autoencoder: the baseline without a prior on z."""

from __future__ import annotations

import keras
from keras import ops

from models.base import Autoencoder
from models.losses import squared_error
from models.networks import build_decoder, build_encoder
from models.precision import as_float32
from models.registry import register_model


@keras.saving.register_keras_serializable(package="vaebench")
class AE(Autoencoder):
    """Encoder -> z -> decoder, trained on the per-image sum of squared errors."""

    def __init__(self, image_shape, latent_dim: int, **kwargs):
        super().__init__(image_shape, latent_dim, **kwargs)
        self.encoder = build_encoder(self.image_shape, self.latent_dim, variational=False)
        self.decoder = build_decoder(self.image_shape, self.latent_dim)

    def call(self, x, training=False):
        """The decoder's logits, float32 for the loss."""
        return as_float32(self.decoder(self.encoder(x, training=training), training=training))

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        return ops.mean(squared_error(x, ops.sigmoid(y_pred)))


@register_model
def ae(image_shape, latent_dim: int = 16, **config) -> AE:
    return AE(image_shape, latent_dim, **config)
