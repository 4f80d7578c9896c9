"""The machine and software a run used, recorded in ``config.json``."""

from __future__ import annotations

import math
import os
import platform
import time
from collections.abc import Callable
from importlib import metadata
from typing import Any

import keras

from benchmark.running.device import describe, detect

PACKAGES = ("keras", "tensorflow", "jax", "jaxlib", "tensorflow-datasets", "numpy", "pandas", "scikit-learn")

#: How the device line names each backend (its package has the backend's name).
BACKEND_NAMES = {"tensorflow": "TensorFlow", "jax": "JAX", "torch": "PyTorch", "numpy": "NumPy"}


def matmul_gflops(
    n: int = 2048,
    repeats: int | None = None,
    clock: Callable[[], float] = time.perf_counter,
    round_seconds: float = 0.1,
) -> float:
    """Measured float32 matrix-multiply throughput of the active backend, GFLOP/s: ``repeats``
    chained (n, n) products, 2 n^3 FLOPs each, best of 3 rounds, timed with ``clock``
    (seconds). By default ``repeats`` is what makes a round last about ``round_seconds``,
    from the time of one product (1 to 1,000): a fixed count is needlessly long on a CPU
    (10 products took 1.2 s of every run on a 2-core CPU) and too short to time on a GPU."""
    import numpy as np
    from keras import ops

    a = ops.convert_to_tensor(np.random.default_rng(0).random((n, n), dtype=np.float32))
    ops.convert_to_numpy(ops.matmul(a, a))  # warm-up (and compile, on JAX)
    if repeats is None:
        start = clock()
        ops.convert_to_numpy(ops.matmul(a, a))
        repeats = int(min(1000, max(1, math.ceil(round_seconds / max(clock() - start, 1e-9)))))
    best = float("inf")
    for _ in range(3):
        start = clock()
        c = a
        for _ in range(repeats):
            c = ops.matmul(a, c) * 1e-3  # the scale keeps values finite
        ops.convert_to_numpy(c)
        best = min(best, clock() - start)
    return 2 * n**3 * repeats / best / 1e9


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


def accelerators() -> list[str]:
    """The model name of each GPU (or TPU) the active backend sees; empty on a CPU-only machine."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return [d.device_kind for d in jax.devices() if d.platform != "cpu"]
    if backend == "tensorflow":
        import tensorflow as tf

        return [
            tf.config.experimental.get_device_details(d).get("device_name", d.name)
            for d in tf.config.list_physical_devices("GPU")
        ]
    return []


def cpu_cores() -> int:
    """Cores this process may run on (its affinity, which containers restrict), else all."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on every platform
        return os.cpu_count() or 1


def device_line(env: dict[str, Any], precision: str = "float32", jit: bool | None = None) -> str:
    """What training runs on, in words: ``training on CPU (2 cores), TensorFlow 2.21.0, float32``.

    ``precision`` is the run's dtype policy, or ``auto`` (chosen per model when the grid was
    planned); ``jit`` whether training is compiled with XLA.
    """
    gpus = env.get("accelerators") or []
    if gpus:
        where = f"1 GPU: {gpus[0]}"
        if len(gpus) > 1:
            where += f" (the first of {len(gpus)} visible)"
    else:
        cores = env.get("cpu_cores") or env.get("cpu_count")
        where = f"CPU ({cores} cores)"
    backend = env.get("backend", "")
    version = env.get("packages", {}).get(backend)
    name = BACKEND_NAMES.get(backend, backend) + (f" {version}" if version else "")
    compile_path = "" if jit is None else (", XLA" if jit else ", graph mode")
    precision = "precision chosen per model (auto)" if precision == "auto" else precision
    return f"training on {where}, {name}, {precision}{compile_path}"


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
        "accelerators": accelerators(),
        # What --precision auto and --jit auto were resolved from.
        "device": describe(detect()),
        "packages": versions,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "cpu_cores": cpu_cores(),
        # The throughput ceiling that samples_per_sec * train_mflop_per_sample is read against.
        "matmul_gflops": matmul_gflops(),
    }
