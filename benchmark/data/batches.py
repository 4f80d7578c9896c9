"""Batches of any array that reads row by row (an ``ndarray``, an ``ImageArray``) for Keras."""

from __future__ import annotations

import keras
import numpy as np


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
