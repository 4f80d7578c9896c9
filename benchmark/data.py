"""Datasets by name, as float32 images (n, H, W, C) in [0, 1] and int labels (n,).

Sources, in order: a directory of the original IDX ``.gz`` files (``--data-dir`` or
``VAEBENCH_DATA_DIR``), each file checked against its published SHA-256; else
tensorflow-datasets, which downloads when online. ``digits`` is scikit-learn's bundled 8x8
set and needs neither.

``binarized_mnist`` is MNIST from the same files, with dynamic binarization: a pixel of
intensity p is 1 with probability p. The training images stay grey (``Dataset.binarize``):
the harness draws them afresh for every epoch. The test split is drawn once, with the fixed
seed ``BINARIZE_TEST_SEED``, so every run scores the same binary images.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import socket
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from benchmark.errors import UsageError

DATA_DIR_ENV = "VAEBENCH_DATA_DIR"

IDX_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}

# The published SHA-256 of each original file.
SHA256 = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    },
    "fashion_mnist": {
        "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    },
}

DATASETS = ("mnist", "fashion_mnist", "digits", "binarized_mnist")

#: Seed of the one binarization of ``binarized_mnist``'s test (and validation) images.
BINARIZE_TEST_SEED = 20160101


@dataclass(frozen=True)
class Dataset:
    """A train/test split. Images (n, H, W, C) float32 in [0, 1]; labels (n,) int64.

    ``binarize``: the training images are pixel probabilities, to be drawn as binary images
    afresh for every epoch (``binarize``, the function); the test images are binary already.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str
    binarize: bool = False

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.x_train.shape[1:])

    def subset(self, train_limit: int | None, test_limit: int | None) -> Dataset:
        """The first ``train_limit`` / ``test_limit`` examples (None keeps all)."""
        return replace(
            self,
            x_train=self.x_train[:train_limit],
            y_train=self.y_train[:train_limit],
            x_test=self.x_test[:test_limit],
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


def binarized(data: Dataset) -> Dataset:
    """``data`` with dynamic binarization: test images drawn once, training ones per epoch."""
    return replace(
        data,
        name=f"binarized_{data.name}",
        x_test=binarize(data.x_test, BINARIZE_TEST_SEED),
        binarize=True,
    )


def resolve_data_dir(data_dir: str | os.PathLike | None) -> Path | None:
    """``data_dir``, else ``$VAEBENCH_DATA_DIR``, else None. A given directory must exist."""
    chosen = data_dir if data_dir is not None else os.environ.get(DATA_DIR_ENV) or None
    if chosen is None:
        return None
    path = Path(chosen).expanduser()
    origin = "" if data_dir is not None else f" (from ${DATA_DIR_ENV})"
    try:
        exists = path.is_dir()
    except OSError as exc:  # e.g. a name too long for the file system
        raise UsageError(f"data directory {str(path)!r}{origin} cannot be used: {exc.strerror}") from None
    if not exists:
        raise UsageError(f"data directory {str(path)!r}{origin} does not exist")
    return path


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_idx(path: Path) -> np.ndarray:
    """Parse a gzip-compressed IDX file (big-endian header) into a uint8 array."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    magic = int.from_bytes(raw[:4], "big")
    if magic >> 8 != 0x08:  # 0x08: unsigned bytes; the low byte is the number of dimensions
        raise UsageError(f"{path} is not an IDX file of unsigned bytes")
    ndim = magic & 0xFF
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise UsageError(f"{path} is truncated: header says {shape}, found {data.size} values")
    return data.reshape(shape)


def load_idx_dir(name: str, root: Path) -> Dataset:
    """Load ``root/<name>/*.gz`` after checking every file's SHA-256."""
    folder = root / name
    arrays = {}
    for key, filename in IDX_FILES.items():
        path = folder / filename
        if not path.is_file():
            raise UsageError(f"data directory {str(root)!r} has no {name}/{filename}")
        try:
            digest = sha256_of(path)
            if digest != SHA256[name][filename]:
                raise UsageError(
                    f"{path} is corrupt (truncated or altered): its SHA-256 is not the published one"
                )
            arrays[key] = read_idx(path)
        except (OSError, EOFError) as exc:
            raise UsageError(f"{path} cannot be read: {exc}") from None
    return Dataset(
        name,
        _images(arrays["train_images"]),
        arrays["train_labels"].astype(np.int64),
        _images(arrays["test_images"]),
        arrays["test_labels"].astype(np.int64),
        source=str(folder),
    )


def _images(raw: np.ndarray) -> np.ndarray:
    """(n, H, W) uint8 -> (n, H, W, 1) float32 in [0, 1]."""
    return (raw.astype(np.float32) / 255.0)[..., None]


def load_digits() -> Dataset:
    """scikit-learn's 8x8 digits (1797 images, values 0..16): a fixed stratified 80/20 split."""
    from sklearn.datasets import load_digits as sk_digits
    from sklearn.model_selection import train_test_split

    bunch = sk_digits()
    images = (bunch.images.astype(np.float32) / 16.0)[..., None]
    x_train, x_test, y_train, y_test = train_test_split(
        images, bunch.target.astype(np.int64), test_size=0.2, random_state=0, stratify=bunch.target
    )
    return Dataset("digits", x_train, y_train, x_test, y_test, source="sklearn.datasets.load_digits")


def _online(host: str = "storage.googleapis.com", port: int = 443, timeout: float = 3.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def load_tfds(name: str) -> Dataset:
    """Load through tensorflow-datasets (its cache, or a download when online)."""
    import tensorflow_datasets as tfds

    builder = tfds.builder(name)
    if not builder.is_prepared() and not _online():
        raise UsageError(
            f"no local copy of {name!r} and no network for tensorflow-datasets: pass --data-dir "
            f"(or set {DATA_DIR_ENV}) to a folder with {name}/train-images-idx3-ubyte.gz etc."
        )
    print(f"loading {name} through tensorflow-datasets (downloads on first use)", flush=True)
    train, test = tfds.load(name, split=["train", "test"], batch_size=-1, as_supervised=True)
    (x_train, y_train), (x_test, y_test) = tfds.as_numpy(train), tfds.as_numpy(test)
    return Dataset(
        name,
        x_train.astype(np.float32) / 255.0,
        y_train.astype(np.int64),
        x_test.astype(np.float32) / 255.0,
        y_test.astype(np.int64),
        source="tensorflow-datasets",
    )


def load_dataset(name: str, data_dir: str | os.PathLike | None = None) -> Dataset:
    """Load dataset ``name`` (one of ``DATASETS``), from the data directory when one is set."""
    if name not in DATASETS:
        raise UsageError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}")
    if name == "binarized_mnist":
        return binarized(load_dataset("mnist", data_dir))
    if name == "digits":
        return load_digits()
    root = resolve_data_dir(data_dir)
    if root is not None:
        return load_idx_dir(name, root)
    return load_tfds(name)
