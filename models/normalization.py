"""The discriminator's normalization, with its backward pass written in closed form.

``ImageNormalization`` scales each image's whole activation map to zero mean and unit
variance: ``keras.layers.LayerNormalization(axis=(1, 2, 3), center=False, scale=False)``,
same epsilon, statistics in float32, outputs in the compute dtype. Keras' layer leaves the
backward pass to autodiff through its mean and variance, which in TensorFlow's graph mode is
a chain of small element-wise and reduction ops over the map, several passes over memory.
With y = (x - mean) / sqrt(var + eps), the gradient has a closed form (the terms through
the mean and the variance fold into two means):

    dL/dx = (dL/dy - mean(dL/dy) - y * mean(dL/dy * y)) / sqrt(var + eps)

means over each image's (H, W, C). The VAE-GAN's training step is 8-10% faster with it on
TensorFlow and 2% on JAX (README, performance section); its outputs and gradients are
Keras' layer's (``tests/test_normalization.py``).
"""

from __future__ import annotations

import keras
from keras import layers, ops

#: Each image's whole map: (H, W, C) of a channels-last batch.
IMAGE_AXES = (1, 2, 3)


def normalize_images(x, epsilon: float):
    """(batch, H, W, C) float32 -> the same shape, each image at zero mean and unit variance."""

    @ops.custom_gradient
    def forward(x):
        centered = x - ops.mean(x, axis=IMAGE_AXES, keepdims=True)
        inv_std = ops.rsqrt(ops.mean(ops.square(centered), axis=IMAGE_AXES, keepdims=True) + epsilon)
        y = centered * inv_std

        def grad(*args, upstream=None):
            dy = args[0] if upstream is None else upstream
            mean_dy = ops.mean(dy, axis=IMAGE_AXES, keepdims=True)
            mean_dy_y = ops.mean(dy * y, axis=IMAGE_AXES, keepdims=True)
            return inv_std * (dy - mean_dy - y * mean_dy_y)

        return y, grad

    return forward(x)


@keras.saving.register_keras_serializable(package="vaebench")
class ImageNormalization(layers.Layer):
    """Each image's (H, W, C) map at zero mean and unit variance; no weights.

    (batch, H, W, C) -> (batch, H, W, C) in the layer's compute dtype, computed in float32.
    """

    def __init__(self, epsilon: float = 1e-3, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def call(self, inputs):
        outputs = normalize_images(ops.cast(inputs, "float32"), self.epsilon)
        return ops.cast(outputs, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}
