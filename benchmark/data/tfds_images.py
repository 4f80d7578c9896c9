"""Natural-image datasets read through tensorflow-datasets (tfds) and cached as uint8 arrays.

``TFDS_IMAGES`` lists them: the tfds name, the splits used, the label, and any crop and
resize. The tfds folder is ``--data-dir`` (else ``$VAEBENCH_DATA_DIR``) when one is given,
else tfds' own default (``$TFDS_DATA_DIR``, else ``~/tensorflow_datasets``), so data prepared
with ``tfds build`` are found where tfds put them.

On first use a dataset is downloaded and prepared by tfds (only when its download server
answers, checked first with a 5 s connection timeout: tfds itself retries for minutes
offline), then each split is converted once to a uint8 ``.npy`` file beside tfds' own files
(``<tfds folder>/<tfds name>/<version>/vaebench/<split>-<H>x<W>.npy``). Later runs memory-map
those files (``ImageArray``): a split is read a batch at a time, never converted whole. Once
converted, tfds' own files are no longer needed: the ``vaebench`` folder alone can be copied
to another machine.

CelebA is cropped to the 148x148 square at rows 40..187 and columns 15..162 of the 218x178
aligned image (the crop box ``(40, 218 - 30, 15, 178 - 15)`` of Larsen et al.'s code,
``dataset/celeba.py`` of andersbll/autoencoding_beyond_pixels: the face and some hair), then
resized to 64x64 with an antialiased bilinear filter (their code smooths with a Gaussian of
sigma sqrt(148 / 64) / 2 and resizes bicubically; both low-pass before subsampling). It has no classes: its labels are the 40 binary
attributes, and its validation split is CelebA's own.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmark.data.images import ImageArray
from benchmark.errors import UsageError
from benchmark.io import atomic_path

#: Seconds to wait for a download server before declaring the machine offline.
PROBE_SECONDS = 5.0

#: Images converted at a time while building the uint8 cache.
CONVERT_BATCH = 1024


@dataclass(frozen=True)
class TfdsImages:
    """How to read one tfds image dataset.

    ``crop``: (top, left, height, width) in pixels of the stored image, taken before the
    resize to ``size`` x ``size``; ``labels``: the feature holding the label, ``"label"`` (an
    int class) or ``"attributes"`` (a dict of booleans, read as 0/1 columns in sorted name
    order); ``probes``: the attributes the latent classifiers predict; ``hosts``: where the
    download comes from (probed before tfds is asked to download).
    """

    tfds_name: str
    train: str
    test: str
    hosts: tuple[str, ...]
    validation: str | None = None  # None: the last 10% of ``train`` is held out
    labels: str = "label"
    crop: tuple[int, int, int, int] | None = None
    size: int | None = None
    probes: tuple[str, ...] = ()


TFDS_IMAGES: dict[str, TfdsImages] = {
    "cifar10": TfdsImages("cifar10", "train", "test", hosts=("www.cs.toronto.edu",)),
    "svhn_cropped": TfdsImages("svhn_cropped", "train", "test", hosts=("ufldl.stanford.edu",)),
    "celeb_a": TfdsImages(
        "celeb_a",
        "train",
        "test",
        hosts=("drive.google.com",),
        validation="validation",
        labels="attributes",
        crop=(40, 15, 148, 148),
        size=64,
        probes=("Smiling", "Male", "Eyeglasses"),
    ),
}


def reachable(host: str, timeout: float = PROBE_SECONDS) -> bool:
    """Whether ``host`` (``name`` or ``name:port``, port 443 by default) accepts a TCP
    connection within ``timeout`` seconds."""
    name, _, port = host.partition(":")
    try:
        with socket.create_connection((name, int(port or 443)), timeout=timeout):
            return True
    except OSError:
        return False


def tfds_root(data_dir: Path | None) -> Path:
    """The tfds folder: ``data_dir``, else tfds' default (``$TFDS_DATA_DIR`` or
    ``~/tensorflow_datasets``)."""
    if data_dir is not None:
        return Path(data_dir)
    from tensorflow_datasets.core import constants

    return Path(constants.DATA_DIR).expanduser()


def cache_folder(name: str, data_dir: Path | None, version: str) -> Path:
    """Where the uint8 arrays of ``name`` are: ``<tfds folder>/<tfds name>/<version>/vaebench``."""
    return tfds_root(data_dir) / TFDS_IMAGES[name].tfds_name / version / "vaebench"


def _builder(spec: TfdsImages, data_dir: Path | None):
    import tensorflow_datasets as tfds

    with _quiet_absl():
        return tfds.builder(spec.tfds_name, data_dir=None if data_dir is None else str(data_dir))


@contextlib.contextmanager
def _quiet_absl():
    """tfds logs a warning for every folder it looks in without finding the data; whether the
    data are there is said by ``prepare``, in one line."""
    log = logging.getLogger("absl")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def prepare(name: str, data_dir: Path | None, builder=None, *, say=print):
    """The dataset's tfds builder, downloaded and prepared if it was not; a UsageError (one
    line, nothing left behind) when it is absent and its server does not answer."""
    spec = TFDS_IMAGES[name]
    builder = builder or _builder(spec, data_dir)
    with _quiet_absl():
        if builder.is_prepared():
            return builder
    if not all(reachable(host) for host in spec.hosts):
        where = str(data_dir) if data_dir is not None else "the tfds default folder (~/tensorflow_datasets)"
        raise UsageError(
            f"{name} is not prepared in {where} and {spec.hosts[0]} cannot be reached; on a machine "
            f"with network run `tfds build {spec.tfds_name} --data_dir DIR` (or this run), copy DIR "
            f"here and name it with --data-dir or VAEBENCH_DATA_DIR"
        )
    root = tfds_root(data_dir)
    before = set(root.iterdir()) if root.is_dir() else None
    say(f"{name}: downloading and preparing with tensorflow-datasets into {root}")
    try:
        builder.download_and_prepare()
    except BaseException:  # leave the folder as it was
        for path in [root] if before is None else sorted(set(root.iterdir()) - before):
            shutil.rmtree(path, ignore_errors=True)
        raise
    return builder


def _preprocess(spec: TfdsImages):
    """The tf function: an example -> (uint8 image, label)."""
    import tensorflow as tf

    def image(example):
        x = example["image"]
        if spec.crop is not None:
            top, left, height, width = spec.crop
            x = tf.image.crop_to_bounding_box(x, top, left, height, width)
        if spec.size is not None:
            x = tf.image.resize(x, (spec.size, spec.size), method="bilinear", antialias=True)
            x = tf.cast(tf.clip_by_value(tf.round(x), 0, 255), tf.uint8)
        return x

    def label(example):
        if spec.labels == "attributes":
            attributes = example["attributes"]
            return tf.stack([tf.cast(attributes[k], tf.int64) for k in sorted(attributes)])
        return tf.cast(example[spec.labels], tf.int64)

    return lambda example: (image(example), label(example))


def _convert(builder, spec: TfdsImages, split: str, folder: Path) -> None:
    """Write ``split``'s images (uint8) and labels (int64) to ``folder`` as ``.npy`` files,
    a batch at a time."""
    import tensorflow as tf
    import tensorflow_datasets as tfds

    ds = builder.as_dataset(split=split, shuffle_files=False)
    splits = builder.info.splits
    n = splits[split].num_examples if split in splits else sum(1 for _ in ds)
    ds = ds.map(_preprocess(spec), num_parallel_calls=tf.data.AUTOTUNE).batch(CONVERT_BATCH)
    first_x, first_y = next(iter(tfds.as_numpy(ds.take(1))))
    stem = f"{split}-{first_x.shape[1]}x{first_x.shape[2]}"
    with atomic_path(folder / f"{stem}.npy") as x_path, atomic_path(folder / f"{stem}-labels.npy") as y_path:
        images = np.lib.format.open_memmap(x_path, mode="w+", dtype=np.uint8, shape=(n, *first_x.shape[1:]))
        labels = np.lib.format.open_memmap(y_path, mode="w+", dtype=np.int64, shape=(n, *first_y.shape[1:]))
        start = 0
        for x, y in tfds.as_numpy(ds):
            images[start : start + len(x)], labels[start : start + len(x)] = x, y
            start += len(x)
        images.flush(), labels.flush()
        del images, labels


def _cached(split: str, folder: Path) -> Path | None:
    """The uint8 image file of ``split`` in ``folder``, when it was converted already."""
    found = sorted(p for p in folder.glob(f"{split}-*x*.npy") if not p.name.endswith("-labels.npy"))
    return found[0] if found else None


def _split(builder, spec: TfdsImages, split: str, folder: Path) -> tuple[ImageArray, np.ndarray]:
    """Images (memory-mapped) and labels of ``split`` from ``folder``, converting them once."""
    path = _cached(split, folder)
    if path is None:
        _convert(builder, spec, split, folder)
        path = _cached(split, folder)
    images = np.load(path, mmap_mode="r")
    labels = np.load(path.with_name(path.stem + "-labels.npy"))
    return ImageArray(images), labels


def load_tfds_images(name: str, data_dir: Path | None):
    """Dataset ``name`` of ``TFDS_IMAGES`` (validation split not yet held out when the
    dataset has none of its own)."""
    from benchmark.data.dataset import Dataset

    spec = TFDS_IMAGES[name]
    builder = _builder(spec, data_dir)
    folder = cache_folder(name, data_dir, str(builder.info.version))
    splits = [spec.train, spec.test, *([spec.validation] if spec.validation else [])]
    if any(_cached(split, folder) is None for split in splits):  # the converted arrays suffice
        prepare(name, data_dir, builder)
    x_train, y_train = _split(builder, spec, spec.train, folder)
    x_test, y_test = _split(builder, spec, spec.test, folder)
    x_val, y_val = _split(builder, spec, spec.validation, folder) if spec.validation else (None, None)
    names = ()
    if spec.labels == "attributes":
        names = tuple(sorted(builder.info.features["attributes"].keys()))
    return Dataset(
        name, x_train, y_train, x_test, y_test,
        source=f"tensorflow_datasets {spec.tfds_name} {builder.info.version}", x_val=x_val, y_val=y_val,
        label_names=names, probes=spec.probes,
    )  # fmt: skip

