"""The discriminator's normalization (``models.normalization``): its outputs and its
closed-form gradient against Keras' ``LayerNormalization`` differentiated by the backend's
own autodiff, and the properties the closed form must have."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from models.normalization import ImageNormalization

pytestmark = pytest.mark.backend


def value_and_input_gradient(layer: keras.layers.Layer, x: np.ndarray, g: np.ndarray):
    """(layer(x), d sum(layer(x) * g) / dx), by the backend's autodiff."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        x = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
            loss = tf.reduce_sum(tf.cast(y, "float32") * g)
        return np.asarray(y, "float32"), np.asarray(tape.gradient(loss, x))
    if backend == "jax":
        import jax

        def loss(x):
            y = layer(x)
            return (y.astype("float32") * g).sum(), y

        (_, y), grad = jax.value_and_grad(loss, has_aux=True)(x)
        return np.asarray(y, "float32"), np.asarray(grad)
    pytest.skip(f"no gradient helper for the {backend} backend")


def keras_layer_norm() -> keras.layers.Layer:
    return keras.layers.LayerNormalization(axis=(1, 2, 3), center=False, scale=False)


@pytest.mark.parametrize("shape", [(3, 5, 4, 6), (2, 14, 14, 32), (4, 1, 1, 3)])
def test_outputs_and_gradients_are_those_of_keras_layer_normalization(shape):
    rng = np.random.default_rng(0)
    # Per-image offsets and scales, so that the mean and the variance matter.
    x = (rng.standard_normal(shape) * rng.uniform(0.1, 5, (shape[0], 1, 1, 1)) + rng.uniform(-3, 3, (shape[0], 1, 1, 1)))
    x = x.astype("float32")
    g = rng.standard_normal(shape).astype("float32")
    y, dx = value_and_input_gradient(ImageNormalization(), x, g)
    want_y, want_dx = value_and_input_gradient(keras_layer_norm(), x, g)
    np.testing.assert_allclose(y, want_y, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dx, want_dx, rtol=1e-4, atol=1e-5 * np.abs(want_dx).max())


def test_each_image_is_normalized_and_its_gradient_ignores_shifts_and_scales():
    """y has zero mean and (nearly, for the epsilon) unit variance per image; adding a
    constant to an image or scaling it does not change y, so the gradient is orthogonal to
    both directions: it sums to zero over each image and is orthogonal to x - mean."""
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((3, 7, 7, 8)) * 4 + 2).astype("float32")
    g = rng.standard_normal(x.shape).astype("float32")
    y, dx = value_and_input_gradient(ImageNormalization(), x, g)
    np.testing.assert_allclose(y.mean(axis=(1, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(y.var(axis=(1, 2, 3)), 1, atol=1e-3)  # var / (var + 1e-3), var ~ 16
    centered = x - x.mean(axis=(1, 2, 3), keepdims=True)
    scale = np.abs(dx).sum(axis=(1, 2, 3))
    np.testing.assert_allclose(dx.sum(axis=(1, 2, 3)) / scale, 0, atol=1e-5)
    np.testing.assert_allclose((dx * centered).sum(axis=(1, 2, 3)) / (scale * np.abs(centered).max()), 0, atol=1e-4)


def test_it_computes_in_float32_and_returns_the_compute_dtype():
    rng = np.random.default_rng(2)
    x = (rng.standard_normal((2, 4, 4, 3)) * 1000 + 5000).astype("float32")  # bfloat16 would lose it
    layer = ImageNormalization(dtype="mixed_bfloat16")
    y = layer(keras.ops.cast(x, "bfloat16"))
    assert keras.backend.standardize_dtype(y.dtype) == "bfloat16"
    want = np.asarray(keras_layer_norm()(np.asarray(keras.ops.cast(x, "bfloat16"), "float32")))
    np.testing.assert_allclose(np.asarray(y, "float32"), want, atol=0.02)


def test_it_saves_and_loads_with_its_epsilon():
    layer = ImageNormalization(epsilon=0.5, name="norm")
    restored = ImageNormalization.from_config(layer.get_config())
    assert (restored.epsilon, restored.name) == (0.5, "norm")
    x = np.arange(8, dtype="float32").reshape(1, 2, 2, 2)
    np.testing.assert_allclose(np.asarray(restored(x)), (x - 3.5) / np.sqrt(x.var() + 0.5), rtol=1e-6)
