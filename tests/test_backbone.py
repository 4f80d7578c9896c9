"""The backbone that grows with the image: exact output shapes, FLOPs against a hand count,
and the small backbone of MNIST-sized images as it was."""

import keras
import pytest

from models.flops import forward_flops
from models.networks import (
    DCGAN,
    SMALL,
    backbone_for,
    build_decoder,
    build_discriminator,
    build_encoder,
)


def conv(out_side: int, kernel: int, c_in: int, c_out: int) -> int:
    """FLOPs of a convolution: 2 per multiply-add, one kernel per output pixel."""
    return 2 * out_side**2 * kernel**2 * c_in * c_out


def dense(n_in: int, n_out: int) -> int:
    return 2 * n_in * n_out


@pytest.mark.parametrize("shape", [(28, 28, 1), (32, 32, 3), (64, 64, 3), (8, 8, 1)])
def test_the_decoder_returns_the_input_shape(shape):
    encoder = build_encoder(shape, 8, variational=True)
    decoder = build_decoder(shape, 8)
    assert tuple(decoder.output.shape[1:]) == shape
    assert tuple(encoder.output[0].shape[1:]) == (8,)
    features, logit = build_discriminator(shape).output
    assert tuple(logit.shape[1:]) == (1,) and features.shape[-1] in backbone_for(shape).filters


def test_the_rule_picks_the_backbone_by_image_side():
    assert backbone_for((28, 28, 1)) is SMALL and backbone_for((8, 8, 1)) is SMALL
    assert backbone_for((32, 32, 3)) is DCGAN and backbone_for((64, 64, 3)) is DCGAN


def test_flops_of_the_64x64_backbone_match_a_hand_count():
    latent = 128
    # Encoder: 5x5 stride-2 convolutions 3 -> 64 -> 128 -> 256 (64 -> 32 -> 16 -> 8), dense 512,
    # two heads.
    encoder = conv(32, 5, 3, 64) + conv(16, 5, 64, 128) + conv(8, 5, 128, 256)
    encoder += dense(8 * 8 * 256, 512) + 2 * dense(512, latent)
    # Decoder: dense 512, dense 8x8x256, transposed convolutions 256 -> 128 -> 64 -> 3 (each
    # input pixel scatters a full kernel).
    decoder = dense(latent, 512) + dense(512, 8 * 8 * 256)
    decoder += conv(8, 5, 256, 128) + conv(16, 5, 128, 64) + conv(32, 5, 64, 3)
    # Discriminator: 64, 128, 256 at stride 2, then 256 at stride 2 again (8 -> 4), logit.
    disc = conv(32, 5, 3, 64) + conv(16, 5, 64, 128) + conv(8, 5, 128, 256) + conv(4, 5, 256, 256)
    disc += dense(4 * 4 * 256, 1)
    shape = (64, 64, 3)
    assert forward_flops(build_encoder(shape, latent, variational=True)) == encoder
    assert forward_flops(build_decoder(shape, latent)) == decoder
    assert forward_flops(build_discriminator(shape)) == disc


def test_the_mnist_backbone_is_the_small_one_layer_for_layer():
    shape, latent = (28, 28, 1), 16
    encoder = build_encoder(shape, latent, variational=True)
    convs = [layer for layer in encoder.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [(c.filters, c.kernel_size, c.strides) for c in convs] == [(32, (3, 3), (2, 2)), (64, (3, 3), (2, 2))]
    hand = conv(14, 3, 1, 32) + conv(7, 3, 32, 64) + dense(7 * 7 * 64, 256) + 2 * dense(256, latent)
    assert forward_flops(encoder) == hand
    decoder = dense(latent, 256) + dense(256, 7 * 7 * 64) + conv(7, 3, 64, 32) + conv(14, 3, 32, 1)
    assert forward_flops(build_decoder(shape, latent)) == decoder
    disc = conv(14, 3, 1, 32) + conv(7, 3, 32, 64) + conv(4, 3, 64, 64) + dense(4 * 4 * 64, 1)
    assert forward_flops(build_discriminator(shape)) == disc
