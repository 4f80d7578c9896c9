"""Dataset loading: IDX parsing, checksums, clear errors."""

import gzip
import shutil

import numpy as np
import pytest

from benchmark.data import datasets as data
from benchmark.errors import UsageError


def _write_idx(path, array: np.ndarray, magic_type: int = 0x08):
    header = bytes([0, 0, magic_type, array.ndim]) + b"".join(
        int(n).to_bytes(4, "big") for n in array.shape
    )
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_read_idx_parses_header_and_values(tmp_path):
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    _write_idx(tmp_path / "a.gz", array)
    np.testing.assert_array_equal(data.read_idx(tmp_path / "a.gz"), array)


def test_read_idx_rejects_truncated_and_foreign_files(tmp_path):
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    _write_idx(tmp_path / "a.gz", array)
    raw = gzip.decompress((tmp_path / "a.gz").read_bytes())
    (tmp_path / "short.gz").write_bytes(gzip.compress(raw[:-5]))
    with pytest.raises(UsageError, match="truncated"):
        data.read_idx(tmp_path / "short.gz")
    _write_idx(tmp_path / "floats.gz", array, magic_type=0x0D)
    with pytest.raises(UsageError, match="not an IDX file"):
        data.read_idx(tmp_path / "floats.gz")


def test_digits_are_scaled_and_split():
    ds = data.load_dataset("digits")
    assert ds.x_train.shape[1:] == (8, 8, 1) and ds.x_train.dtype == np.float32
    assert ds.x_train.min() == 0.0 and ds.x_train.max() == 1.0
    assert len(ds.x_train) + ds.n_val + len(ds.x_test) == 1797
    assert set(np.unique(ds.y_test)) == set(range(10))


def test_unknown_dataset_and_missing_dir_are_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="known datasets: mnist, fashion_mnist, digits"):
        data.load_dataset("cifar")
    with pytest.raises(UsageError, match="does not exist"):
        data.load_dataset("mnist", tmp_path / "nowhere")
    with pytest.raises(UsageError, match="has no mnist/train-images"):
        data.load_dataset("mnist", tmp_path)


def test_mnist_loads_from_the_data_dir(data_dir):
    ds = data.load_dataset("mnist", data_dir)
    assert ds.x_train.shape == (54000, 28, 28, 1) and ds.x_val.shape == (6000, 28, 28, 1)
    assert ds.x_test.shape == (10000, 28, 28, 1)
    assert ds.x_train.min() == 0.0 and ds.x_train.max() == 1.0
    assert ds.y_train[:5].tolist() == [5, 0, 4, 1, 9]  # the well-known first MNIST labels


def test_altered_file_fails_its_checksum(data_dir, tmp_path):
    copy = tmp_path / "data"
    shutil.copytree(data_dir / "mnist", copy / "mnist")
    target = copy / "mnist" / "t10k-labels-idx1-ubyte.gz"
    target.chmod(0o644)
    blob = bytearray(target.read_bytes())
    blob[-1] ^= 0xFF
    target.write_bytes(bytes(blob))
    with pytest.raises(UsageError, match="SHA-256"):
        data.load_dataset("mnist", copy)


# -- the validation split -------------------------------------------------------------------


def test_validation_split_is_the_last_tenth_of_training_and_disjoint_from_it():
    whole = data.load_digits()
    ds = data.load_dataset("digits")
    n = len(whole.x_train)
    assert ds.n_val == round(0.1 * n) and len(ds.x_train) + ds.n_val == n
    np.testing.assert_array_equal(ds.x_val, whole.x_train[n - ds.n_val :])
    np.testing.assert_array_equal(ds.y_val, whole.y_train[n - ds.n_val :])
    np.testing.assert_array_equal(ds.x_train, whole.x_train[: n - ds.n_val])
    assert not _shared_images(ds.x_train, ds.x_val)
    np.testing.assert_array_equal(ds.x_test, whole.x_test)


def test_limits_cut_the_training_part_only():
    ds = data.load_dataset("digits")
    small = ds.subset(100, 50)
    assert len(small.x_train) == 100 and len(small.x_test) == 50
    np.testing.assert_array_equal(small.x_train, ds.x_train[:100])
    np.testing.assert_array_equal(small.x_val, ds.x_val)  # the same for every limit


def test_validation_split_is_the_same_on_every_load():
    a, b = data.load_dataset("digits"), data.load_dataset("digits")
    np.testing.assert_array_equal(a.x_val, b.x_val)


def test_quick_preset_training_images_are_unchanged_by_the_split(data_dir):
    ds = data.load_dataset("mnist", data_dir)
    raw = data.read_idx(data_dir / "mnist" / "train-images-idx3-ubyte.gz")
    np.testing.assert_array_equal(ds.subset(30000, None).x_train[..., 0], raw[:30000] / np.float32(255))
    np.testing.assert_array_equal(ds.x_val[..., 0], raw[54000:] / np.float32(255))
    assert not _shared_images(ds.x_train, ds.x_val)


def _shared_images(a: np.ndarray, b: np.ndarray) -> int:
    """How many images of ``b`` also occur, pixel for pixel, in ``a``."""
    seen = {image.tobytes() for image in a}
    return sum(image.tobytes() in seen for image in b)
