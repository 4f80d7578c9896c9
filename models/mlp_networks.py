"""Fully connected encoder and decoder: the networks of Burda et al. (2016), one stochastic layer.

Encoder: the flattened image (H*W*C values, 784 for MNIST), dense layers of ``hidden`` units
with tanh, then a mean and a log-variance head of ``latent_dim`` units each. Decoder: dense
layers of ``hidden`` units with tanh from z, then one logit per pixel value, reshaped to the
image. With the paper's (200, 200) and 50 latent units on MNIST: about 0.87 MFLOP per image
forward through both, some 8 times fewer than the convolutional backbone of ``models.networks``.

Burda et al. output the standard deviation through exp; a log-variance head is the same
family (log-variance = 2 log std), and it is what ``models.vae.VAE`` reads.
"""

from __future__ import annotations

import math

import keras
from keras import layers

#: Burda et al.'s deterministic layers between the data and the stochastic layer.
BURDA_HIDDEN = (200, 200)


def build_mlp_encoder(
    image_shape: tuple[int, int, int],
    latent_dim: int,
    hidden: tuple[int, ...] = BURDA_HIDDEN,
    *,
    name: str = "encoder",
) -> keras.Model:
    """(batch, H, W, C) -> [z_mean, z_log_var], each (batch, latent_dim)."""
    inputs = keras.Input(shape=image_shape)
    x = layers.Flatten()(inputs)
    for units in hidden:
        x = layers.Dense(units, activation="tanh")(x)
    z_mean = layers.Dense(latent_dim, name="z_mean")(x)
    z_log_var = layers.Dense(latent_dim, name="z_log_var")(x)
    return keras.Model(inputs, [z_mean, z_log_var], name=name)


def build_mlp_decoder(
    image_shape: tuple[int, int, int],
    latent_dim: int,
    hidden: tuple[int, ...] = BURDA_HIDDEN,
    *,
    name: str = "decoder",
) -> keras.Model:
    """(batch, latent_dim) -> logits of shape (batch, H, W, C)."""
    inputs = keras.Input(shape=(latent_dim,))
    x = inputs
    for units in hidden:
        x = layers.Dense(units, activation="tanh")(x)
    logits = layers.Dense(math.prod(image_shape), name="logits")(x)
    return keras.Model(inputs, layers.Reshape(image_shape)(logits), name=name)
