"""Shared fixtures. The Keras backend is chosen by KERAS_BACKEND before the first import."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The folder of the real IDX files (``VAEBENCH_DATA_DIR``); skips the test without it."""
    value = os.environ.get("VAEBENCH_DATA_DIR")
    if not value or not (Path(value) / "mnist").is_dir():
        pytest.skip("VAEBENCH_DATA_DIR is not set to a folder with mnist/*.gz")
    return Path(value)
