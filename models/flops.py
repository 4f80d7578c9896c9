"""Floating-point operations of the networks, counted from their layers' shapes.

Only multiply-adds of dense, convolution and transposed-convolution layers are counted (2
FLOPs each); activations, biases and element-wise losses are a few percent and left out.
"""

from __future__ import annotations

import math

import keras


def layer_flops(layer: keras.layers.Layer) -> int:
    """Forward FLOPs per example of one layer (0 for layers without weights)."""
    if isinstance(layer, keras.Model):
        return forward_flops(layer)
    if isinstance(layer, keras.layers.Dense):
        fan_in, units = layer.kernel.shape
        return 2 * fan_in * units
    if isinstance(layer, keras.layers.Conv2DTranspose):
        height, width = layer.input.shape[1:3]  # each input pixel scatters a full kernel
        return 2 * height * width * math.prod(layer.kernel.shape)
    if isinstance(layer, keras.layers.Conv2D):
        height, width = layer.output.shape[1:3]
        return 2 * height * width * math.prod(layer.kernel.shape)
    return 0


def forward_flops(network: keras.Model) -> int:
    """Forward FLOPs per example of a functional network."""
    return sum(layer_flops(layer) for layer in network.layers)
