"""What the device is good at: the precision and the compile path a run uses, resolved from
``auto`` once per run and recorded with every unit.

Precision (``--precision``): ``float32`` or ``mixed_bfloat16`` (variables in float32,
arithmetic in bfloat16); ``auto`` stays ``auto`` here and is chosen per model when the grid is
planned (``benchmark.running.autoprecision``), by timing both where the device may be fast at
bfloat16 (``Device.fast_bfloat16``):

- a CPU whose flags (``/proc/cpuinfo``) include ``amx_bf16`` or ``avx512_bf16``: oneDNN then
  runs bfloat16 convolutions and matmuls in hardware. Without them it emulates bfloat16 through
  float32 conversions, which is slower than float32 itself;
- a GPU of CUDA compute capability 8.0 or later (A100, H100, RTX 30xx on): tensor cores.

Such hardware is necessary, not sufficient: on an AMD EPYC with AVX-512 BF16, vae_gan trained
5% slower in bfloat16 while the VAEs gained 3-13%.

Compile path (``--jit``): XLA on JAX always (without it JAX runs op by op); on TensorFlow, XLA
on a GPU and plain graph mode (``tf.function``) on a CPU, where graph mode reaches oneDNN's
kernels (AMX included) and XLA's CPU code does not (measured: see the README's performance
section).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from benchmark.data.batches import ImageBatches, array_batches
from benchmark.data.images import ImageArray
from benchmark.running.config import JIT_CHOICES, PRECISION_CHOICES

#: CPU flags of hardware bfloat16 arithmetic (Intel AMX tiles, AVX-512 BF16 dot products).
BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")

#: The first CUDA compute capability with bfloat16 tensor cores (Ampere).
BF16_MIN_COMPUTE_CAPABILITY = (8, 0)


@dataclass(frozen=True)
class Device:
    """The device a backend trains on: ``kind`` "gpu" or "cpu", the GPU's compute capability
    (major, minor) or None, and the CPU's feature flags."""

    kind: str
    compute_capability: tuple[int, int] | None = None
    cpu_flags: frozenset[str] = frozenset()

    @property
    def fast_bfloat16(self) -> bool:
        if self.kind == "gpu":
            return (self.compute_capability or (0, 0)) >= BF16_MIN_COMPUTE_CAPABILITY
        return any(flag in self.cpu_flags for flag in BF16_CPU_FLAGS)


def cpu_flags(cpuinfo: str | None = None) -> frozenset[str]:
    """The feature flags of the first processor in ``cpuinfo`` (default: ``/proc/cpuinfo``);
    empty where the file does not exist (not Linux)."""
    if cpuinfo is None:
        path = Path("/proc/cpuinfo")
        cpuinfo = path.read_text() if path.is_file() else ""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):  # x86, arm64
            return frozenset(value.split())
    return frozenset()


def _parse_capability(value) -> tuple[int, int] | None:
    """(major, minor) from "8.0", (8, 0) or None."""
    if value is None:
        return None
    if isinstance(value, str):
        major, _, minor = value.partition(".")
        return int(major), int(minor or 0)
    major, minor = value
    return int(major), int(minor)


def detect(backend: str | None = None) -> Device:
    """The device the Keras ``backend`` (default: the active one) trains on: its first GPU,
    else the CPU."""
    import keras

    backend = backend or keras.backend.backend()
    if backend == "jax":
        import jax

        first = jax.devices()[0]
        if first.platform == "gpu":
            return Device("gpu", _parse_capability(getattr(first, "compute_capability", None)))
    elif backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            details = tf.config.experimental.get_device_details(gpus[0])
            return Device("gpu", _parse_capability(details.get("compute_capability")))
    return Device("cpu", cpu_flags=cpu_flags())


def resolve_precision(requested: str, device: Device) -> str:
    """The run's precision: ``float32``, ``mixed_bfloat16``, or ``auto``, which each unit
    resolves per model when the grid is planned (``autoprecision.AutoPrecision.choose``, which
    takes ``device`` into account: float32 without measuring where bfloat16 cannot win)."""
    if requested not in PRECISION_CHOICES:
        raise ValueError(f"precision must be one of {PRECISION_CHOICES}, got {requested!r}")
    return requested


def resolve_jit(requested: str, backend: str, device: Device) -> bool:
    """Whether to compile with XLA; ``auto``: on JAX, and on TensorFlow on a GPU."""
    if requested not in JIT_CHOICES:
        raise ValueError(f"jit must be one of {JIT_CHOICES}, got {requested!r}")
    if requested != "auto":
        return requested == "on"
    return backend == "jax" or device.kind == "gpu"


def describe(device: Device) -> str:
    """One line: the device and whether it has fast bfloat16."""
    if device.kind == "gpu":
        cc = ".".join(map(str, device.compute_capability)) if device.compute_capability else "?"
        where = f"GPU of compute capability {cc}"
    else:
        where = "CPU"
    return f"{where}, fast bfloat16: {'yes' if device.fast_bfloat16 else 'no'}"


class DeviceBatches(keras.utils.PyDataset):
    """Batches of ``x`` sliced where ``x`` lives: one dispatch per batch, no host copy.

    ``x`` (n, H, W, C) is an array already on the device (JAX); ``fit`` takes the batches in
    order, the last one possibly smaller, as it would from the array itself.
    """

    def __init__(self, x, batch_size: int):
        super().__init__()  # one worker, no multiprocessing: a slice is a cheap dispatch
        self.x, self.batch_size = x, batch_size

    def __len__(self) -> int:
        return -(-len(self.x) // self.batch_size)

    def __getitem__(self, index: int):
        return (self.x[index * self.batch_size : (index + 1) * self.batch_size],)  # (inputs,)


def keeps_data_on_device(backend: str) -> bool:
    """Whether training data stay on the device between steps: on JAX with an accelerator,
    whose ``fit`` would otherwise copy every batch from host memory (Keras slices arrays as
    NumPy). On a CPU host memory is the device's: NumPy slices are faster there (measured,
    vae_bernoulli on JAX: 829 samples/s from NumPy against 560 from device slices)."""
    if backend != "jax":
        return False
    import jax

    return jax.devices()[0].platform != "cpu"


def to_device(x: np.ndarray):
    """``x`` copied once onto the device where ``keeps_data_on_device``, else ``x`` itself."""
    if keeps_data_on_device(keras.backend.backend()) and isinstance(x, np.ndarray):
        return keras.ops.convert_to_tensor(x)
    return x  # an ``ImageArray`` stays on the host, read a batch at a time


def validation_data(x_val, batch_size: int):
    """``fit``'s ``validation_data`` for the images ``x_val`` (None when there are none), in
    batches of ``batch_size``: an ``ImageArray``'s read a batch at a time, an array's from
    ``array_batches`` (the array itself where that feeds it as such)."""
    if x_val is None:
        return None
    if isinstance(x_val, ImageArray):
        return ImageBatches(x_val, batch_size)
    batches = array_batches(x_val, batch_size)
    return (batches["x"],) if "batch_size" in batches else batches["x"]


def epoch_data(x, order: np.ndarray, batch_size: int) -> dict:
    """``fit`` arguments for one epoch of ``x`` (from ``to_device``) in ``order``: on the device,
    a gather there and ``DeviceBatches``; else the batches of the reordered array
    (``array_batches``)."""
    if isinstance(x, ImageArray):
        return {"x": ImageBatches(x, batch_size, order)}
    if isinstance(x, np.ndarray):
        return array_batches(x[order], batch_size)
    return {"x": DeviceBatches(keras.ops.take(x, order, axis=0), batch_size)}
