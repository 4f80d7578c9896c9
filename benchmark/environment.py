"""The machine and software a run used, recorded in ``config.json``."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from typing import Any

import keras

from benchmark.device import describe, detect
from benchmark.speed import matmul_gflops

PACKAGES = ("keras", "tensorflow", "jax", "jaxlib", "tensorflow-datasets", "numpy", "pandas", "scikit-learn")


def devices() -> list[str]:
    """The accelerators (or CPU) the active Keras backend sees."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return [str(d) for d in jax.devices()]
    if backend == "tensorflow":
        import tensorflow as tf

        return [d.name for d in tf.config.list_logical_devices()]
    return ["unknown"]


def environment() -> dict[str, Any]:
    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "backend": keras.backend.backend(),
        "devices": devices(),
        # What --precision auto and --jit auto were resolved from.
        "device": describe(detect()),
        "packages": versions,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        # The throughput ceiling that samples_per_sec * train_mflop_per_sample is read against.
        "matmul_gflops": matmul_gflops(),
    }
