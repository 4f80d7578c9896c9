"""Batches of any array that reads row by row (an ``ndarray``, an ``ImageArray``) for Keras."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np


def array_batches(x: np.ndarray, batch_size: int) -> dict[str, Any]:
    """``fit``/``predict`` arguments that feed the rows of ``x`` in order, ``batch_size`` at a
    time, the last batch possibly smaller: the batches that ``x=x, batch_size=batch_size``
    gives, from a pipeline that does not tune itself.

    On TensorFlow, a ``tf.data`` pipeline with tf.data's autotuning off, run by one thread of
    its own. The pipeline Keras builds for an array tunes its parallelism while it runs: on a
    2-core CPU, epochs of a plain ``fit`` fed by it ran at half speed at random (14 of 28),
    with both cores half idle; with autotuning off, none of 28 did (see the README's
    performance section). Other backends read the arrays without ``tf.data``, as Keras does.
    """
    if keras.backend.backend() != "tensorflow":
        return {"x": x, "batch_size": batch_size}
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices(x).batch(batch_size)
    options = tf.data.Options()
    options.autotune.enabled = False
    options.threading.private_threadpool_size = 1
    # As Keras does for arrays: no rewriting of the pipeline, which would serialize the arrays.
    options.experimental_optimization.apply_default_optimizations = False
    return {"x": dataset.with_options(options)}


class ImageBatches(keras.utils.PyDataset):
    """Batches ``x[order[i*b:(i+1)*b]]`` (and of ``y``) of any array ``fit``/``predict`` can
    read batch by batch: an ``ImageArray`` stays unread until its batch is asked for.

    ``order`` (n,) indices, default 0..n-1; ``shuffle_seed`` draws a new order after every
    epoch (for the feature classifier).
    """

    def __init__(self, x, batch_size: int, order: np.ndarray | None = None, y=None, shuffle_seed: int | None = None):
        super().__init__()
        self.x, self.y, self.batch_size = x, y, batch_size
        self.order = np.arange(len(x)) if order is None else np.asarray(order)
        self.rng = None if shuffle_seed is None else np.random.default_rng(shuffle_seed)
        if self.rng is not None:
            self.order = self.rng.permutation(self.order)

    def __len__(self) -> int:
        return -(-len(self.order) // self.batch_size)

    def __getitem__(self, index: int):
        pick = self.order[index * self.batch_size : (index + 1) * self.batch_size]
        return (self.x[pick],) if self.y is None else (self.x[pick], self.y[pick])

    def on_epoch_end(self):
        if self.rng is not None:
            self.order = self.rng.permutation(self.order)
