"""The ``Dataset`` type every stage shares: train, validation and test splits of images in
[0, 1] and their labels, and the binarization of ``binarized_mnist``."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from benchmark.data.images import rows

#: Seed of the one binarization of ``binarized_mnist``'s test and validation images.
BINARIZE_TEST_SEED = 20160101


@dataclass(frozen=True)
class Dataset:
    """Train, validation and test splits. Images (n, H, W, C) float32 in [0, 1] (an ndarray, or
    an ``ImageArray`` whose slices are); labels (n,) int64 classes, or (n, k) 0/1 attributes
    named by ``label_names``.

    ``x_val``/``y_val`` are None for a dataset built without a validation split.

    ``probes``: for attribute labels, the attributes the latent classifiers predict.

    ``binarize``: the training images are pixel probabilities, to be drawn as binary images
    afresh for every epoch (``binarize``, the function); the test images are binary already.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None
    binarize: bool = False
    label_names: tuple[str, ...] = ()
    probes: tuple[str, ...] = ()

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.x_train.shape[1:])

    @property
    def n_val(self) -> int:
        return 0 if self.x_val is None else len(self.x_val)

    def subset(self, train_limit: int | None, test_limit: int | None, score_split: str = "test") -> Dataset:
        """The first ``train_limit`` training / ``test_limit`` test examples (None keeps all).

        The validation split is kept whole: it is the same for every limit. With
        ``score_split="val"`` the split that scores are computed on (``x_test``) is the first
        half of the validation split instead (the first ``test_limit`` of it), and the second
        half is the validation split (training's validation losses, the control sets): the
        test split is not read, so settings can be chosen on these scores.
        """
        if score_split == "val":
            if self.n_val < 4:
                raise ValueError(f"{self.name} has {self.n_val} validation images: too few to score on")
            half = self.n_val // 2
            scored = replace(self, x_test=rows(self.x_val, None, half), y_test=self.y_val[:half],
                             x_val=rows(self.x_val, half, None), y_val=self.y_val[half:])  # fmt: skip
            return scored.subset(train_limit, test_limit)
        return replace(
            self,
            x_train=rows(self.x_train, None, train_limit),
            y_train=self.y_train[:train_limit],
            x_test=rows(self.x_test, None, test_limit),
            y_test=self.y_test[:test_limit],
        )

    def fixed(self) -> Dataset:
        """What scores see: for a ``binarize`` dataset, the training images drawn once with a
        fixed seed (latent classifiers and feature statistics then see binary images, as the
        model did); any other dataset unchanged."""
        if not self.binarize:
            return self
        return replace(self, x_train=binarize(self.x_train, (BINARIZE_TEST_SEED, 1)), binarize=False)


def binarize(x: np.ndarray, seed) -> np.ndarray:
    """Binary images x_b ~ Bernoulli(x), float32 0/1, same shape as ``x`` (probabilities).

    ``seed`` is anything ``numpy.random.default_rng`` takes (an int, a tuple of ints): the
    same seed gives the same draw.
    """
    uniform = np.random.default_rng(seed).random(x.shape, dtype=np.float32)
    return (uniform < x).astype(np.float32)
