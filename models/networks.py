"""The convolutional encoder/decoder backbone every model uses, so comparisons are fair.

The backbone grows with the image (``backbone_for``):

- images smaller than 32x32 (MNIST's 28x28, the 8x8 digits): two stride-2 3x3 convolutions
  (32, 64 filters) and a dense layer of 256 units; about 7 MFLOP per 28x28 image forward.
- images of 32x32 and more (CIFAR-10, SVHN, CelebA 64x64): a DCGAN-style stack of three
  stride-2 5x5 convolutions (64, 128, 256 filters), as in Larsen et al.'s CelebA model
  (64x64 -> 32 -> 16 -> 8), and a dense layer of 512 units.

Encoder: the convolutions (stride 2 while both sides are even), the dense layer, then one
head (autoencoder) or a mean and a log-variance head (VAEs). The decoder mirrors it (dense,
dense to the encoder's last map, transposed convolutions) and returns logits;
``sigmoid(logits)`` is the image in [0, 1].

The VAE-GAN adds a discriminator (``build_discriminator``): the encoder's convolutions and
one more, each normalized, with leaky ReLUs, and a linear real/fake logit. It also returns
an intermediate feature map, the learned space its reconstruction error lives in.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
from keras import layers

from models.conv_transpose import Conv2DTranspose
from models.normalization import ImageNormalization


@dataclass(frozen=True)
class Backbone:
    """Filters of the stride-2 convolutions, their kernel size, and the dense layer's units."""

    filters: tuple[int, ...]
    kernel: int
    hidden: int


#: Images smaller than ``LARGE_SIDE`` pixels on a side.
SMALL = Backbone(filters=(32, 64), kernel=3, hidden=256)
#: Images of at least ``LARGE_SIDE`` pixels on both sides.
DCGAN = Backbone(filters=(64, 128, 256), kernel=5, hidden=512)
LARGE_SIDE = 32


def backbone_for(image_shape: tuple[int, int, int]) -> Backbone:
    """``DCGAN`` for images of at least 32x32, else ``SMALL``."""
    height, width, _ = image_shape
    return DCGAN if min(height, width) >= LARGE_SIDE else SMALL


def downsampling_steps(image_shape: tuple[int, int, int]) -> int:
    """How many stride-2 steps both sides of the image allow exactly (at most one per filter
    count of the backbone).

    28x28 -> 14 -> 7, 8x8 -> 4 -> 2, 32x32 -> 16 -> 8 -> 4, 64x64 -> 32 -> 16 -> 8; an odd
    side allows none, so the decoder can always return the input's exact shape.
    """
    height, width, _ = image_shape
    steps, limit = 0, len(backbone_for(image_shape).filters)
    while steps < limit and height % 2 == 0 and width % 2 == 0:
        height, width, steps = height // 2, width // 2, steps + 1
    return steps


def build_encoder(
    image_shape: tuple[int, int, int], latent_dim: int, *, variational: bool, name: str = "encoder"
) -> keras.Model:
    """(batch, H, W, C) -> z of shape (batch, latent_dim), or [z_mean, z_log_var] if variational."""
    net = backbone_for(image_shape)
    inputs = keras.Input(shape=image_shape)
    x = inputs
    for filters in net.filters[: downsampling_steps(image_shape)]:
        x = layers.Conv2D(filters, net.kernel, strides=2, padding="same", activation="relu")(x)
    x = layers.Flatten()(x)
    x = layers.Dense(net.hidden, activation="relu")(x)
    if not variational:
        return keras.Model(inputs, layers.Dense(latent_dim, name="z")(x), name=name)
    z_mean = layers.Dense(latent_dim, name="z_mean")(x)
    z_log_var = layers.Dense(latent_dim, name="z_log_var")(x)
    return keras.Model(inputs, [z_mean, z_log_var], name=name)


def build_decoder(
    image_shape: tuple[int, int, int], latent_dim: int, *, name: str = "decoder"
) -> keras.Model:
    """(batch, latent_dim) -> logits of shape (batch, H, W, C)."""
    net = backbone_for(image_shape)
    height, width, channels = image_shape
    steps = downsampling_steps(image_shape)
    base_h, base_w = height // 2**steps, width // 2**steps
    base_filters = net.filters[steps - 1] if steps else net.filters[0]

    inputs = keras.Input(shape=(latent_dim,))
    x = layers.Dense(net.hidden, activation="relu")(inputs)
    x = layers.Dense(base_h * base_w * base_filters, activation="relu")(x)
    x = layers.Reshape((base_h, base_w, base_filters))(x)
    # The encoder's convolutions in reverse; the last one outputs the logits at full size.
    out_channels = [*reversed(net.filters[: steps - 1]), channels] if steps else [channels]
    for filters in out_channels[:-1]:
        x = Conv2DTranspose(filters, net.kernel, strides=2, padding="same", activation="relu")(x)
    logits = Conv2DTranspose(
        channels, net.kernel, strides=2 if steps else 1, padding="same", name="logits"
    )(x)
    return keras.Model(inputs, logits, name=name)


def build_discriminator(
    image_shape: tuple[int, int, int], *, feature_layer: int = 2, name: str = "discriminator"
) -> keras.Model:
    """(batch, H, W, C) -> [features (batch, h, w, c) of block ``feature_layer``, logit (batch, 1)].

    Blocks of a convolution (the backbone's kernel), a normalization and a leaky ReLU (slope
    0.2, the usual choice for GAN discriminators): one per filter count of the backbone (32,
    64 for small images; 64, 128, 256 for large ones), at stride 2 where the encoder halves
    the image, and one more with the last filter count after it; a linear layer on the
    flattened last map gives the logit of "real". ``feature_layer`` picks the block whose
    output is returned; the default, 2, is the middle of the small network, as in Larsen et
    al. (2016): deep enough to be invariant to small shifts, shallow enough to keep the
    image's layout.

    The normalization (``models.normalization``) scales each image's whole map to zero mean
    and unit variance, without parameters or batch statistics. It plays the part of the
    paper's batch normalization: the features keep one scale while the discriminator trains,
    so a squared error on them keeps one weight against the KL term; and, unlike batch
    normalization, it behaves the same in training and inference. About 3 MFLOP per 28x28 image forward.
    """
    net = backbone_for(image_shape)
    steps = downsampling_steps(image_shape)
    # The encoder's halvings, then one more (28 -> 14 -> 7 -> 4 for MNIST).
    blocks = [(filters, 2 if i < steps else 1) for i, filters in enumerate(net.filters)]
    blocks.append((net.filters[-1], 2 if steps else 1))
    if not 1 <= feature_layer <= len(blocks):
        raise ValueError(f"feature_layer must be in 1..{len(blocks)}, got {feature_layer}")

    inputs = keras.Input(shape=image_shape)
    x = inputs
    for i, (filters, strides) in enumerate(blocks, start=1):
        x = layers.Conv2D(filters, net.kernel, strides=strides, padding="same", name=f"{name}_conv{i}")(x)
        x = ImageNormalization()(x)
        x = layers.LeakyReLU(0.2)(x)
        if i == feature_layer:
            features = x
    logit = layers.Dense(1, name=f"{name}_logit")(layers.Flatten()(x))
    return keras.Model(inputs, [features, logit], name=name)
