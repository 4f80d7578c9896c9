"""Generation quality: a Fréchet distance in the feature space of a small digit classifier.

The idea of the Fréchet Inception Distance (Heusel et al., 2017), scaled to 28x28 and 8x8
greyscale images: fit a Gaussian to the features of real test images and one to the features
of decoded prior samples, and report the Fréchet (2-Wasserstein) distance between the two.
Inception does not suit such images, so vaebench trains its own small convnet once per dataset
on the training split and caches it (``ClassifierConfig``, ``load_or_train``). Colour images
(CIFAR-10, SVHN, CelebA) get the same convnet on their three channels. A dataset without
classes but with binary attributes (CelebA's 40) trains it multi-label (one sigmoid output
per attribute, binary cross-entropy); its features are used the same way.

Lower is better; 0 means the two feature distributions have the same mean and covariance.
Distances are comparable only between runs that use the same cached classifier (the same
dataset, training split, classifier config and backend) and the same number of images.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from benchmark.data.batches import ImageBatches, array_batches
from benchmark.data.dataset import Dataset
from benchmark.data.images import ImageArray
from benchmark.io import save_model, waiting_lock, write_json

#: Overrides the classifier cache folder (default: ``<out>/../.cache``, see ``cache_dir_for``).
CACHE_DIR_ENV = "VAEBENCH_CACHE_DIR"

FEATURE_LAYER = "features"
PREDICT_BATCH = 1000


# --- the distance ------------------------------------------------------------------------


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n, d) features -> mean (d,) and unbiased covariance (d, d), in float64."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or len(f) < 2:
        raise ValueError(f"need at least 2 feature vectors of shape (n, d), got {f.shape}")
    return f.mean(axis=0), np.cov(f, rowvar=False)


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric positive semi-definite matrix (eigh)."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    # Rounding leaves eigenvalues of singular covariances slightly negative.
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2) (squared feature units).

    ``||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2))``. The trace of ``(S1 S2)^(1/2)`` equals
    that of ``(S1^(1/2) S2 S1^(1/2))^(1/2)``, whose argument is symmetric PSD: its eigenvalues
    are real, so no complex square root (and no imaginary round-off) arises.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    root1 = _psd_sqrt(sigma1)
    inner = root1 @ sigma2 @ root1
    eigen = np.linalg.eigvalsh((inner + inner.T) / 2)
    trace_covmean = float(np.sum(np.sqrt(np.clip(eigen, 0.0, None))))
    diff = mu1 - mu2
    distance = float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_covmean)
    # The exact value is >= 0; round-off can push identical inputs a hair below.
    return max(distance, 0.0)


def frechet_distance_features(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to feature sets ``a`` (n, d) and ``b`` (m, d)."""
    return frechet_distance(*gaussian_stats(a), *gaussian_stats(b))


# --- the feature classifier --------------------------------------------------------------


@dataclass(frozen=True)
class ClassifierConfig:
    """Everything the cached classifier depends on besides the data; its hash keys the cache.

    Training runs ``epochs`` epochs, each over the training split repeated ``repeats(n)``
    times so that an epoch has at least ``min_epoch_steps`` steps: MNIST is seen twice, the
    1,437 images of ``digits`` 54 times (one long epoch costs less than many short ones).
    """

    filters: tuple[int, ...] = (32, 64)
    features: int = 64
    batch_size: int = 128
    epochs: int = 2
    min_epoch_steps: int = 300
    learning_rate: float = 1e-3
    seed: int = 0
    version: int = 1

    def repeats(self, n_train: int) -> int:
        """Copies of the training split per epoch."""
        return max(1, math.ceil(self.min_epoch_steps * self.batch_size / n_train))

    def key(self, dataset: str, n_train: int, backend: str) -> str:
        """``<dataset>-n<n_train>-<hash>``: the cache entry's file stem."""
        blob = json.dumps(
            {**dataclasses.asdict(self), "dataset": dataset, "n_train": n_train, "backend": backend},
            sort_keys=True,
        ).encode()
        return f"{dataset}-n{n_train}-{hashlib.sha256(blob).hexdigest()[:10]}"


def build_classifier(image_shape: tuple[int, int, int], n_classes: int, config: ClassifierConfig) -> keras.Model:
    """(batch, H, W, C) -> logits (batch, n_classes), of classes or of binary attributes;
    layer ``features`` is (batch, d).

    Stride-2 3x3 convolutions while both sides are even (28 -> 14 -> 7, 8 -> 4 -> 2), then a
    dense ReLU layer of ``config.features`` units whose activations are the FD features.
    """
    inputs = keras.Input(shape=image_shape)
    x = inputs
    height, width = image_shape[:2]
    for filters in config.filters:
        stride = 2 if height % 2 == 0 and width % 2 == 0 else 1
        height, width = height // stride, width // stride
        x = keras.layers.Conv2D(filters, 3, strides=stride, padding="same", activation="relu")(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(config.features, activation="relu", name=FEATURE_LAYER)(x)
    outputs = keras.layers.Dense(n_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name="fd_classifier")


@dataclass
class FeatureClassifier:
    """A trained classifier, its feature extractor and how well it does on the test split.

    ``test_accuracy`` is its accuracy on the run's test images; ``real_fd`` the distance
    between ``n_test`` training images and the test images: what a generator that draws real
    images would score, the floor that finite samples leave.
    """

    model: keras.Model
    path: Path
    test_accuracy: float = float("nan")
    real_fd: float = float("nan")

    def __post_init__(self):
        self.extractor = keras.Model(self.model.inputs, self.model.get_layer(FEATURE_LAYER).output)

    def features(self, images: np.ndarray) -> np.ndarray:
        """(n, H, W, C) images in [0, 1] -> (n, d) float64 features."""
        return np.asarray(predict(self.extractor, images), np.float64)

    def distance(self, images: np.ndarray, reference: np.ndarray) -> float:
        """Fréchet distance between the features of ``images`` and of ``reference``."""
        return frechet_distance_features(self.features(images), self.features(reference))

    def calibrate(self, data: Dataset) -> FeatureClassifier:
        """Set ``test_accuracy`` and ``real_fd`` on ``data``'s test split; returns self."""
        logits = predict(self.model, data.x_test)
        if multi_label(data):  # the mean over attributes of the accuracy of logit > 0
            self.test_accuracy = float(np.mean((logits > 0) == (data.y_test > 0)))
        else:
            self.test_accuracy = float(np.mean(np.argmax(logits, axis=1) == data.y_test))
        n = min(len(data.x_test), len(data.x_train))
        pick = np.random.default_rng(0).permutation(len(data.x_train))[:n]
        # Too few images for a covariance leave the floor unknown rather than stop the run.
        self.real_fd = self.distance(data.x_train[pick], data.x_test) if n >= 2 else float("nan")
        return self


def multi_label(data: Dataset) -> bool:
    """Whether ``data``'s labels are (n, k) binary attributes rather than (n,) classes."""
    return np.ndim(data.y_train) == 2


def predict(model: keras.Model, images) -> np.ndarray:
    """``model``'s outputs on ``images``, ``PREDICT_BATCH`` at a time (an ``ImageArray`` read a
    batch at a time)."""
    if isinstance(images, ImageArray):
        return model.predict(ImageBatches(images, PREDICT_BATCH), verbose=0)
    return model.predict(**array_batches(images, PREDICT_BATCH), verbose=0)


def cache_dir_for(out: Path) -> Path:
    """The classifier cache: ``$VAEBENCH_CACHE_DIR``, else ``.cache`` beside the run folder.

    Runs under ``reports/`` thus share ``reports/.cache/``.
    """
    env = os.environ.get(CACHE_DIR_ENV)
    return Path(env).expanduser() if env else Path(out).resolve().parent / ".cache"


def train_classifier(data: Dataset, config: ClassifierConfig) -> tuple[keras.Model, dict]:
    """Train a classifier on ``data``'s training split; returns it and its training record."""
    keras.utils.set_random_seed(config.seed)
    if multi_label(data):  # one sigmoid output per attribute (CelebA), binary cross-entropy
        n_outputs = data.y_train.shape[1]
        loss = keras.losses.BinaryCrossentropy(from_logits=True)
        accuracy = keras.metrics.BinaryAccuracy(name="accuracy", threshold=0.0)  # of logits
    else:
        n_outputs = int(max(data.y_train.max(), data.y_test.max())) + 1
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        accuracy = "accuracy"
    model = build_classifier(data.image_shape, n_outputs, config)
    model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate),
        loss=loss,
        metrics=[accuracy],
        # "auto": XLA where it pays (JAX); on a TensorFlow CPU, compiling costs more than it saves.
        jit_compile="auto",
    )
    repeats = config.repeats(len(data.x_train))
    start = time.perf_counter()
    if isinstance(data.x_train, ImageArray):  # read a batch at a time, reshuffled every epoch
        order = np.tile(np.arange(len(data.x_train)), repeats)
        batches = ImageBatches(data.x_train, config.batch_size, order, y=data.y_train, shuffle_seed=config.seed)
        history = model.fit(batches, epochs=config.epochs, verbose=0)
    else:
        x = np.tile(data.x_train, (repeats, 1, 1, 1)) if repeats > 1 else data.x_train
        y = np.tile(data.y_train, (repeats,) + (1,) * (data.y_train.ndim - 1)) if repeats > 1 else data.y_train
        history = model.fit(x, y, batch_size=config.batch_size, epochs=config.epochs, shuffle=True, verbose=0)
    record = {
        "epochs": config.epochs,
        "repeats": repeats,
        "train_seconds": time.perf_counter() - start,
        "train_accuracy": float(history.history["accuracy"][-1]),
    }
    return model, record


def load_or_train(data: Dataset, cache_dir: Path, config: ClassifierConfig | None = None) -> FeatureClassifier:
    """The dataset's cached classifier (loaded in Keras safe mode), trained and saved if absent.

    The cache holds ``<key>.keras`` and ``<key>.json`` (config and training record), with
    ``key = ClassifierConfig.key(...)``, both written through a rename, and ``<key>.lock``:
    a process that finds the classifier being trained by another waits for it rather than
    training it again. The result is calibrated on ``data``'s test split.
    """
    config = config or ClassifierConfig()
    key = config.key(data.name, len(data.x_train), keras.backend.backend())
    path = Path(cache_dir) / f"{key}.keras"
    with waiting_lock(path.with_suffix(".lock")):
        if path.is_file():
            model = keras.saving.load_model(path, safe_mode=True)
        else:
            print(f"[fd] training the feature classifier for {data.name} (cached as {path})", flush=True)
            model, record = train_classifier(data, config)
            save_model(model, path)
            write_json(path.with_suffix(".json"), {"config": dataclasses.asdict(config), "dataset": data.name,
                                                    "n_train": len(data.x_train), **record})  # fmt: skip
    return FeatureClassifier(model, path).calibrate(data)
