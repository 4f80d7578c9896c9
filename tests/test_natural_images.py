"""CIFAR-10, SVHN and CelebA through tensorflow-datasets, offline: tfds' mock data stands in
for the prepared datasets (random images drawn from each dataset's feature spec)."""

import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmark.data import tfds_images
from benchmark.data.datasets import load_dataset
from benchmark.data.images import ImageArray
from benchmark.running.identity import dataset_identity

tfds = pytest.importorskip("tensorflow_datasets")

ROOT = Path(__file__).resolve().parents[1]
N = 120  # examples per split of the mock data

#: name -> (image shape, training images, validation images, label shape per image)
EXPECTED = {
    "cifar10": ((32, 32, 3), N - N // 10, N // 10, ()),
    "svhn_cropped": ((32, 32, 3), N - N // 10, N // 10, ()),
    "celeb_a": ((64, 64, 3), N, N, (40,)),  # CelebA's own validation split
}


@pytest.fixture
def mocked(monkeypatch, tmp_path):
    """An empty tfds folder where every dataset reads as prepared mock data of N examples a
    split; the download servers count as reachable (tfds' mock downloads nothing)."""
    monkeypatch.setattr(tfds_images, "reachable", lambda host, timeout=0: True)
    folder = tmp_path / "tfds"
    folder.mkdir()
    with tfds.testing.mock_data(num_examples=N):
        yield folder


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_dataset_loads_as_float_images_in_the_unit_range(mocked, name):
    shape, n_train, n_val, label_shape = EXPECTED[name]
    data = load_dataset(name, mocked)
    assert data.image_shape == shape
    assert (len(data.x_train), data.n_val, len(data.x_test)) == (n_train, n_val, N)
    assert isinstance(data.x_train, ImageArray) and isinstance(data.x_train.raw, np.memmap)
    for images in (data.x_train[:50], data.x_val[:50], data.x_test[np.array([7, 3, 5])]):
        assert images.dtype == np.float32 and images.shape[1:] == shape
        assert images.min() >= 0.0 and images.max() <= 1.0 and images.std() > 0
    assert data.y_train.shape == (n_train, *label_shape) and data.y_test.shape == (N, *label_shape)
    assert data.source.startswith(f"tensorflow_datasets {name} ")
    if label_shape:
        assert len(data.label_names) == 40 and set(data.probes) <= set(data.label_names)
        assert set(np.unique(data.y_train)) <= {0, 1}


def test_the_uint8_cache_is_written_once_and_read_again(mocked, monkeypatch):
    first = load_dataset("cifar10", mocked)
    files = sorted(mocked.glob("cifar10/*/vaebench/*.npy"))
    assert [f.name for f in files] == ["test-32x32-labels.npy", "test-32x32.npy",
                                       "train-32x32-labels.npy", "train-32x32.npy"]  # fmt: skip
    stamps = [f.stat().st_mtime_ns for f in files]
    monkeypatch.setattr(tfds_images, "reachable", lambda host, timeout=0: False)  # offline now
    again = load_dataset("cifar10", mocked)  # the converted arrays are enough
    assert [f.stat().st_mtime_ns for f in files] == stamps
    assert dataset_identity(again) == dataset_identity(first)
    np.testing.assert_array_equal(again.x_test[:10], first.x_test[:10])


def test_the_celeb_a_crop_is_the_centre_square_resized_to_64():
    import tensorflow as tf

    image = np.zeros((218, 178, 3), np.uint8)
    image[40:188, 15:163] = 200  # the crop box: rows 40..187, columns 15..162
    spec = tfds_images.TFDS_IMAGES["celeb_a"]
    attributes = {name: tf.constant(i % 2 == 0) for i, name in enumerate(["b", "a", "c"])}
    x, y = tfds_images._preprocess(spec)({"image": tf.constant(image), "attributes": attributes})
    assert x.shape == (64, 64, 3) and x.dtype == tf.uint8
    assert np.all(x.numpy() == 200)  # nothing from outside the box
    assert list(y.numpy()) == [0, 1, 1]  # attributes in sorted name order: a, b, c
    image[39, 15:163] = 255  # one row above the box changes nothing
    assert np.all(tfds_images._preprocess(spec)({"image": tf.constant(image), "attributes": attributes})[0].numpy() == 200)


def test_image_array_reads_only_the_rows_asked_for_in_order():
    raw = np.arange(5 * 2 * 2 * 3, dtype=np.uint8).reshape(5, 2, 2, 3)
    x = ImageArray(raw)
    pick = np.array([4, 0, 3])
    np.testing.assert_array_equal(x[pick], raw[pick] / np.float32(255))
    assert x[1:3].dtype == np.float32 and x.shape == (5, 2, 2, 3) and len(x.rows(1, 4)) == 3
    np.testing.assert_array_equal(np.asarray(x.rows(2, None)), raw[2:] / np.float32(255))


def test_offline_without_data_is_one_line_and_exit_2(tmp_path):
    with socket.socket() as s:  # a port nothing listens on: the download server is down
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data_dir, out = tmp_path / "tfds", tmp_path / "run"
    data_dir.mkdir()
    child = (
        "import runpy, sys, dataclasses\n"
        "from benchmark.data import tfds_images as t\n"
        f"t.TFDS_IMAGES['cifar10'] = dataclasses.replace(t.TFDS_IMAGES['cifar10'], hosts=('127.0.0.1:{port}',))\n"
        "sys.argv = ['run_all.py', *sys.argv[1:]]\n"
        "runpy.run_path('run_all.py', run_name='__main__')\n"
    )
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", child, "--datasets", "cifar10", "--preset", "quick",
         "--data-dir", str(data_dir), "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert time.monotonic() - start < 60
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "cifar10 is not prepared" in lines[0] and "tfds build cifar10" in lines[0]
    assert not out.exists() and list(data_dir.iterdir()) == []


@pytest.mark.backend
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_one_model_trains_and_scores_for_one_epoch(mocked, name, tmp_path, monkeypatch):
    from benchmark.cli import main
    from benchmark.scoring import frechet

    # A feature classifier of a few steps: what is tested is that it trains on the labels
    # (classes or attributes) and scores, not how good it is.
    quick = frechet.ClassifierConfig(epochs=1, min_epoch_steps=2)
    train = frechet.load_or_train
    monkeypatch.setattr(frechet, "load_or_train", lambda data, cache, config=None: train(data, cache, quick))
    monkeypatch.setattr("benchmark.running.driver.load_or_train", frechet.load_or_train)
    monkeypatch.setattr("benchmark.running.controls_run.load_or_train", frechet.load_or_train)
    monkeypatch.setenv("VAEBENCH_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "run"
    code = main(["--datasets", name, "--models", "vae_mse", "--epochs", "1", "--batch-size", "32",
                 "--latent-dim", "8", "--is-samples", "2", "--seeds", "1", "--data-dir", str(mocked), "--out", str(out),
                 "--quiet"])  # fmt: skip
    assert code == 0
    row = pd.read_csv(out / "results.csv").iloc[0]
    _, n_train, n_val, _ = EXPECTED[name]
    assert row["status"] == "ok" and (row["n_train"], row["n_val"], row["n_test"]) == (n_train, n_val, N)
    assert row["data_source"].startswith(f"tensorflow_datasets {name}")
    for column in ("recon_mse", "sharpness_recon", "fd_sample", "precision_sample", "latent_acc_logreg",
                   "latent_acc_knn", "fd_classifier_acc", "neg_elbo"):  # fmt: skip
        assert np.isfinite(row[column]), column
    assert 0 <= row["latent_acc_logreg"] <= 1 and 0 <= row["fd_classifier_acc"] <= 1


def test_latent_probes_on_attributes_average_the_probed_ones():
    from benchmark.data.dataset import Dataset
    from benchmark.scoring import metrics
    from benchmark.scoring.evaluate import latent_probe

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, (400, 3))
    z = np.column_stack([y[:, 0], y[:, 2], np.zeros(400)]) + 0.1 * rng.standard_normal((400, 3))  # codes a, c
    x = np.zeros((400, 2, 2, 1), np.float32)

    def probe(*probes):
        data = Dataset("attrs", x[:300], y[:300], x[300:], y[300:], source="test", label_names=("a", "b", "c"), probes=probes)
        return latent_probe(metrics.latent_acc_logreg, data, z[:300], y[:300], z[300:], y[300:])

    assert probe("a", "c") == 1.0  # both attributes are in the code
    assert 0.3 < probe("b") < 0.7  # b is not: chance
    assert probe("a", "b") == pytest.approx((1.0 + probe("b")) / 2)
    with pytest.raises(ValueError, match="no attributes"):
        probe()


class CountingImages(ImageArray):
    """An ``ImageArray`` that remembers the most rows one read asked for."""

    def __init__(self, raw, log: list[int]):
        super().__init__(raw)
        self.log = log

    def __getitem__(self, key):
        images = super().__getitem__(key)
        self.log.append(len(images))
        return images

    def rows(self, start, stop):
        return CountingImages(self.raw[start:stop], self.log)


@pytest.mark.backend
def test_training_and_scoring_read_the_training_split_a_batch_at_a_time(tmp_path, monkeypatch, harness_jit):
    """No step holds the whole training split as float32: training, the validation losses and
    the scores read it in batches (the latent classifiers in a subset of fixed size)."""
    import keras

    from benchmark.data.dataset import Dataset
    from benchmark.data.datasets import hold_out_validation
    from benchmark.running import unit
    from benchmark.running.config import UnitConfig
    from benchmark.scoring import evaluate

    monkeypatch.setattr(evaluate, "CLASSIFIER_TRAIN_SIZE", 64)
    rng = np.random.default_rng(0)
    reads: list[int] = []
    raw = rng.integers(0, 256, (400, 16, 16, 3), dtype=np.uint8)
    data = hold_out_validation(Dataset("synthetic", CountingImages(raw, reads), rng.integers(0, 10, 400),
                                       raw[:40] / np.float32(255), rng.integers(0, 10, 40), source="test"))  # fmt: skip
    config = UnitConfig("vae_mse", "synthetic", 0, epochs=1, latent_dim=4, batch_size=32, train_limit=None,
                        test_limit=None, backend=keras.backend.backend(), jit=harness_jit)  # fmt: skip
    row = unit.train_unit(config, data, tmp_path / "unit", verbose=0)
    assert row["status"] == "ok" and row["n_train"] == 360 and row["n_val"] == 40
    assert reads and max(reads) <= 64  # batches of 32, the classifiers' subset of 64
    assert sum(reads) >= 360 + 40  # every training and validation image was read
