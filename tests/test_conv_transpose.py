"""The transposed convolution of the decoders: Keras' layer, with a kernel gradient written
out for XLA on a CPU (``models.conv_transpose``). The gradient is checked against a sum
written by hand on both backends, and the layer against Keras' own layer and autodiff on
JAX, where it takes that gradient (forced on here, whatever the device)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from models import conv_transpose
from models.conv_transpose import Conv2DTranspose, conv_transpose_kernel_gradient

pytestmark = pytest.mark.backend


def gradients(layer: keras.layers.Layer, x: np.ndarray, g: np.ndarray) -> list[np.ndarray]:
    """d sum(layer(x) * g) with respect to the layer's weights, then to ``x`` (JAX)."""
    import jax

    def loss(values, x):
        return (layer.stateless_call(values, [], x)[0] * g).sum()

    weights, x_grad = jax.grad(loss, argnums=(0, 1))([v.value for v in layer.trainable_variables], x)
    return [np.asarray(grad) for grad in [*weights, x_grad]]


CASES = {  # (side, in, out, kernel, strides): the decoders' layers, and edge cases
    "5x5-stride2": (8, 16, 8, 5, 2),
    "3x3-stride2-odd": (7, 6, 4, 3, 2),
    "3x3-stride1": (5, 3, 2, 3, 1),
    "4x4-stride2": (4, 3, 5, 4, 2),
}


@pytest.mark.parametrize(("side", "c_in", "c_out", "kernel", "strides"), CASES.values(), ids=CASES.keys())
def test_outputs_and_gradients_are_those_of_keras_layer(monkeypatch, side, c_in, c_out, kernel, strides):
    if keras.backend.backend() != "jax":
        pytest.skip("the written-out gradient is taken on JAX only (the JAX pass runs this)")
    monkeypatch.setattr(conv_transpose, "xla_on_cpu", lambda: True)  # the written-out gradient
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, side, side, c_in)).astype("float32")
    reference = keras.layers.Conv2DTranspose(c_out, kernel, strides=strides, padding="same", activation="relu")
    layer = Conv2DTranspose(c_out, kernel, strides=strides, padding="same", activation="relu")
    reference.build(x.shape)
    layer.build(x.shape)
    reference.bias.assign(rng.standard_normal(c_out).astype("float32"))  # some units off, some on
    layer.set_weights(reference.get_weights())
    expected = np.asarray(reference(x))
    np.testing.assert_allclose(np.asarray(layer(x)), expected, rtol=1e-6, atol=1e-6)
    g = rng.standard_normal(expected.shape).astype("float32")
    for got, want, name in zip(gradients(layer, x, g), gradients(reference, x, g), ("kernel", "bias", "x"), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max(), err_msg=name)


def test_the_kernel_gradient_matches_a_sum_written_by_hand():
    """d<convT(x, w), g>/dw[a, b, o, i] = sum over images and pixels p, q of
    g[2p + a, 2q + b, o] * x[p, q, i] for a 3x3 kernel at stride 2 ("same" pads the
    strided convolution by 0 before and 1 after)."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 3, 2)).astype("float32")
    g = rng.standard_normal((2, 6, 6, 4)).astype("float32")
    want = np.zeros((3, 3, 4, 2))
    for a in range(3):
        for b in range(3):
            for p in range(3):
                for q in range(3):
                    r, c = 2 * p + a, 2 * q + b
                    if 0 <= r < 6 and 0 <= c < 6:
                        want[a, b] += np.einsum("no,ni->oi", g[:, r, c], x[:, p, q])
    got = np.asarray(conv_transpose_kernel_gradient(x, g, (3, 3, 4, 2), 2))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_the_layer_saves_and_loads(tmp_path):
    model = keras.Sequential([keras.Input((4, 4, 2)), Conv2DTranspose(3, 3, strides=2, padding="same")])
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert isinstance(loaded.layers[0], Conv2DTranspose)
    x = np.ones((1, 4, 4, 2), "float32")
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(model(x)))
