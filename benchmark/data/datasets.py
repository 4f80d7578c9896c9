"""Datasets by name, as float32 images (n, H, W, C) in [0, 1] and int labels (n,).

``mnist`` and ``fashion_mnist`` are read from a data folder holding the original IDX ``.gz``
files (``<folder>/<dataset>/train-images-idx3-ubyte.gz`` etc.), each file checked against its
published SHA-256. The folder is ``--data-dir``, else ``$VAEBENCH_DATA_DIR``, else the per-user
cache folder (``default_data_dir``), which a run fills on first use when the files are missing
and the network answers (``benchmark.data.fetch``; ``vaebench fetch`` does it ahead of time).
``digits`` is scikit-learn's bundled 8x8 set and needs no file. ``cifar10``, ``svhn_cropped``
and ``celeb_a`` (64x64) come through tensorflow-datasets (``benchmark.data.tfds_images``): their
splits are memory-mapped uint8 arrays (``benchmark.data.images.ImageArray``) that read as
float32 in [0, 1] a batch at a time.

Every dataset holds out the last ``VALIDATION_FRACTION`` of its training split as a
validation split (``x_val``, ``y_val``): the same images for every model and seed, never
trained on, for choosing settings; the test split is for the final scores only.

``binarized_mnist`` is MNIST from the same files, with dynamic binarization: a pixel of
intensity p is 1 with probability p. The training images stay grey (``Dataset.binarize``):
the harness draws them afresh for every epoch. The test and validation splits are drawn
once, with the fixed seed ``BINARIZE_TEST_SEED``, so every run scores the same binary images.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

from benchmark.data.dataset import BINARIZE_TEST_SEED, Dataset, binarize
from benchmark.data.idx import IDX_FILES, SHA256, has_files, sha256_of
from benchmark.data.images import rows
from benchmark.data.tfds_images import TFDS_IMAGES, load_tfds_images
from benchmark.errors import UsageError, did_you_mean

DATA_DIR_ENV = "VAEBENCH_DATA_DIR"

#: Fraction of each training split held out, from its end, as the validation split.
VALIDATION_FRACTION = 0.1

def binarized(data: Dataset) -> Dataset:
    """``data`` with dynamic binarization: test and validation images drawn once, training
    ones per epoch."""
    return replace(
        data,
        name=f"binarized_{data.name}",
        x_test=binarize(data.x_test, BINARIZE_TEST_SEED),
        x_val=None if data.x_val is None else binarize(data.x_val, (BINARIZE_TEST_SEED, 2)),
        binarize=True,
    )


def hold_out_validation(data: Dataset, fraction: float = VALIDATION_FRACTION) -> Dataset:
    """``data`` with the last ``fraction`` of its training split moved to ``x_val``/``y_val``.

    The last images rather than a random draw: the same for every model, seed and training
    limit, and the first images (what ``subset`` keeps) stay the training split they were.
    """
    n_val = round(len(data.x_train) * fraction)
    if not 0 < n_val < len(data.x_train):
        raise ValueError(f"a validation fraction of {fraction} leaves no training or no validation images")
    n_train = len(data.x_train) - n_val
    return replace(
        data,
        x_train=rows(data.x_train, None, n_train),
        y_train=data.y_train[:n_train],
        x_val=rows(data.x_train, n_train, None),
        y_val=data.y_train[n_train:],
    )


def default_data_dir() -> Path:
    """The per-user data folder: ``$XDG_CACHE_HOME/vaebench/data``, else ``~/.cache/vaebench/data``."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache).expanduser() / "vaebench" / "data"


def resolve_data_dir(data_dir: str | os.PathLike | None) -> Path | None:
    """``data_dir``, else ``$VAEBENCH_DATA_DIR``, else None (the default folder). A named one must exist."""
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
            raise UsageError(
                f"data directory {str(root)!r} has no {name}/{filename}; "
                f"download it with: vaebench fetch {name} --data-dir {str(root)!r}"
            )
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


def load_mnist_like(name: str, data_dir: str | os.PathLike | None) -> Dataset:
    """``mnist`` or ``fashion_mnist`` from IDX files: ``data_dir``, else ``$VAEBENCH_DATA_DIR``,
    else the default folder, filled from ``SOURCES`` when it lacks them."""
    root = resolve_data_dir(data_dir)
    if root is None:
        root = default_data_dir()
        if not has_files(name, root):
            from benchmark.data.fetch import fetch_on_first_use

            fetch_on_first_use(name, root)
    return hold_out_validation(load_idx_dir(name, root))


def load_tfds(name: str, data_dir: str | os.PathLike | None) -> Dataset:
    """A dataset of ``TFDS_IMAGES``, with its own validation split or the last 10% held out."""
    data = load_tfds_images(name, resolve_data_dir(data_dir))
    return data if data.x_val is not None else hold_out_validation(data)


#: Every dataset by name: its loader, called with (name, data_dir).
LOADERS: dict[str, Callable[[str, str | os.PathLike | None], Dataset]] = {
    "mnist": load_mnist_like,
    "fashion_mnist": load_mnist_like,
    "digits": lambda name, data_dir: hold_out_validation(load_digits()),
    "binarized_mnist": lambda name, data_dir: binarized(load_dataset("mnist", data_dir)),
    **dict.fromkeys(TFDS_IMAGES, load_tfds),
}

DATASETS = tuple(LOADERS)


def load_dataset(name: str, data_dir: str | os.PathLike | None = None) -> Dataset:
    """Load dataset ``name`` (one of ``DATASETS``) with its validation split held out.

    IDX files come from ``data_dir``, else ``$VAEBENCH_DATA_DIR``, else the default folder,
    which is filled from ``SOURCES`` when it lacks them (a UsageError naming ``vaebench
    fetch`` when that fails); tensorflow-datasets data from ``data_dir`` or tfds' default
    folder (``benchmark.data.tfds_images``).
    """
    if name not in LOADERS:
        raise UsageError(unknown_dataset_message(name))
    return LOADERS[name](name, data_dir)


def unknown_dataset_message(name: str) -> str:
    """One line for a dataset name that is not in ``DATASETS``: the closest one and the known ones."""
    return f"unknown dataset {name!r}{did_you_mean(name, DATASETS)}; known datasets: {', '.join(DATASETS)}"
