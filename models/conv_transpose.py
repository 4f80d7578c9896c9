"""Keras' ``Conv2DTranspose``, with a kernel gradient that XLA computes fast on a CPU.

XLA's CPU backend has no fast kernel for the weight gradient of a transposed convolution
and falls back to a generic loop: 744-785 ms for a batch of 32 through the 5x5 decoder
layers of 64x64 images, against 16-38 ms for the same numbers written as below, and 12 ms
against 1 ms for MNIST's 7x7 layer (JAX 0.10 on a 2-core AVX-512 CPU). That loop was most
of a JAX training step on a CPU. So on JAX with a CPU the layer computes the gradient
itself; elsewhere (TensorFlow, a GPU) it is Keras' layer unchanged.

The rewrite: a transposed convolution is the adjoint of the strided convolution with the
same kernel, ``<convT(x, w), g> = <x, conv(g, w)>``, so its kernel gradient is that of
``conv(g, w)`` against ``x``: a convolution of the padded ``g`` (batch and channels
swapped) with ``x`` as kernel, dilated by the stride.
"""

from __future__ import annotations

import functools

import keras
from keras import layers, ops


@functools.cache
def xla_on_cpu() -> bool:
    """JAX computes on a CPU (its default device), where XLA lacks the fast kernel gradient."""
    return keras.backend.backend() == "jax" and keras.distribution.list_devices()[0].startswith("cpu")


def conv_transpose_kernel_gradient(x, g, kernel_shape: tuple[int, ...], strides: int):
    """d<conv_transpose(x, w), g>/dw for a "same" channels-last transposed convolution.

    x: (batch, h, w, in) inputs; g: (batch, strides*h, strides*w, out) gradient of the
    outputs; returns (kh, kw, out, in), the layout of ``Conv2DTranspose.kernel``.
    """
    kh, kw = kernel_shape[:2]
    h, w = x.shape[1], x.shape[2]
    pads = []
    for k, n, big in ((kh, h, g.shape[1]), (kw, w, g.shape[2])):
        before = max(k - strides, 0) // 2  # the "same" padding of the strided convolution
        pads.append((before, k + strides * (n - 1) - big - before))  # leaves k outputs
    padded = ops.pad(g, ((0, 0), *pads, (0, 0)))
    grad = ops.conv(
        ops.transpose(padded, (3, 1, 2, 0)),  # (out, H, W, batch)
        ops.transpose(x, (1, 2, 0, 3)),  # (h, w, batch, in)
        strides=1,
        padding="valid",
        dilation_rate=strides,
    )  # (out, kh, kw, in)
    return ops.transpose(grad, (1, 2, 0, 3))


@keras.saving.register_keras_serializable(package="vaebench")
class Conv2DTranspose(layers.Conv2DTranspose):
    """``keras.layers.Conv2DTranspose`` (same arguments, weights and outputs); under XLA on
    a CPU, a "same", undilated, channels-last layer takes the kernel gradient above."""

    def call(self, inputs):
        fast_path = (xla_on_cpu() and self.padding == "same" and self.data_format == "channels_last"
                     and self.output_padding is None and set(self.dilation_rate) == {1}
                     and len(set(self.strides)) == 1 and min(self.kernel_size) >= self.strides[0])  # fmt: skip
        if not fast_path:
            return super().call(inputs)
        outputs = strided_adjoint(inputs, self.kernel, self.strides[0])
        if self.use_bias:
            outputs = ops.add(outputs, self.bias)
        return outputs if self.activation is None else self.activation(outputs)


def strided_adjoint(x, kernel, strides: int):
    """``ops.conv_transpose(x, kernel, strides, "same")`` with the gradients written out."""

    @ops.custom_gradient
    def forward(x, kernel):
        def grad(*args, upstream=None):
            g = args[0] if upstream is None else upstream
            grad_x = ops.conv(g, kernel, strides=strides, padding="same")
            return grad_x, conv_transpose_kernel_gradient(x, g, tuple(kernel.shape), strides)

        return ops.conv_transpose(x, kernel, strides=strides, padding="same"), grad

    return forward(x, kernel)
