"""Where the units of a grid run when they run side by side: worker processes on this machine
(``LocalExecutor``), or tasks on a Ray cluster (``RayExecutor``). Either way each unit is a
process of its own (``benchmark.running.worker``) that writes the unit's folder; an executor
only starts them, says which have ended, and stops them.

Devices. A local executor has ``workers`` slots; slot ``i`` trains on GPU
``devices[i % len(devices)]`` (through ``CUDA_VISIBLE_DEVICES``), or on the CPU when there is
no GPU. Workers that share a GPU get a share of its memory: on JAX
``XLA_PYTHON_CLIENT_MEM_FRACTION`` (0.9 / workers on the GPU), on TensorFlow memory growth
(``TF_FORCE_GPU_ALLOW_GROWTH``). On Ray, the cluster assigns GPUs to tasks by ``num_gpus``
(``--gpus-per-unit``) and sets ``CUDA_VISIBLE_DEVICES`` itself.
"""

from __future__ import annotations

import logging
import math
import os
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from benchmark.errors import UsageError
from benchmark.running.worker import Job, launch, read_row, run_to_end, stop

#: Share of a GPU's memory that the JAX workers on it preallocate together.
GPU_MEMORY_SHARE = 0.9

#: Object store of a local Ray instance: tasks pass only a unit's job and result row.
RAY_OBJECT_STORE_BYTES = 128 * 2**20

#: Environment variables that the driver sets for itself only (``driver_environment``): a
#: driver shares its GPUs with the workers, so it must not preallocate their memory.
DRIVER_ONLY: dict[str, str] = {}

RAY_MISSING = '--executor ray needs Ray, an optional extra: pip install -e ".[ray]" (or pip install "ray>=2.9")'


@contextmanager
def driver_environment(enabled: bool = True) -> Iterator[None]:
    """Meanwhile, when ``enabled``: this process (a driver of parallel workers) grows its GPU
    memory on demand (JAX without preallocation, TensorFlow with memory growth), unless the
    user chose. Takes effect only before the backend starts."""
    added = {}
    if enabled:
        for key, value in {"XLA_PYTHON_CLIENT_PREALLOCATE": "false", "TF_FORCE_GPU_ALLOW_GROWTH": "true"}.items():
            if key not in os.environ:
                os.environ[key] = added[key] = value
    DRIVER_ONLY.update(added)
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)
            DRIVER_ONLY.pop(key, None)


def worker_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment without what ``driver_environment`` set, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not (k in DRIVER_ONLY and DRIVER_ONLY[k] == v)}
    return {**env, **(extra or {})}


def gpu_memory_env(share: float) -> dict[str, str]:
    """Settings that keep a worker within ``share`` (0, 1] of its GPU's memory."""
    if share >= 1:
        return {}
    return {
        "XLA_PYTHON_CLIENT_MEM_FRACTION": f"{GPU_MEMORY_SHARE * share:.3f}",
        "TF_FORCE_GPU_ALLOW_GROWTH": "true",
    }


def visible_gpus(backend: str) -> int:
    """How many GPUs the Keras ``backend`` sees in this process."""
    if backend == "jax":
        import jax

        return sum(d.platform == "gpu" for d in jax.devices())
    if backend == "tensorflow":
        import tensorflow as tf

        return len(tf.config.list_physical_devices("GPU"))
    return 0


def resolve_devices(requested: tuple[int, ...] | None, backend: str) -> tuple[int, ...]:
    """``--devices``: the GPU indices to use; None (``auto``) is every visible GPU, and () the
    CPU. An index the backend does not see is a ``UsageError``."""
    count = visible_gpus(backend)
    if requested is None:
        return tuple(range(count))
    missing = [i for i in requested if i >= count]
    if missing:
        seen = f"GPUs 0 to {count - 1}" if count else "no GPU"
        raise UsageError(f"--devices {','.join(map(str, requested))}: there is no GPU {missing[0]} "
                         f"here (the {backend} backend sees {seen})")  # fmt: skip
    return requested


def import_ray() -> Any:
    """The ``ray`` module, or a ``UsageError`` that says how to install it."""
    try:
        import ray
    except ImportError:
        raise UsageError(RAY_MISSING) from None
    return ray


@dataclass
class Ended:
    """A unit whose worker has ended: its exit status (None when the executor lost it, with
    ``error`` saying how) and the row it wrote."""

    job: Job
    status: int | None
    row: dict[str, Any] | None
    error: str | None = None


class Executor(Protocol):
    workers: int  # units at most at a time

    def free(self) -> int: ...  # units that can start now

    def submit(self, job: Job) -> str: ...  # starts it; returns where it runs, in words

    def poll(self) -> list[Ended]: ...

    def stop(self) -> None: ...  # stops every running unit (Ctrl-C), and lets go of resources


class LocalExecutor:
    """``workers`` worker processes on this machine, slot ``i`` on ``devices[i % len]``."""

    def __init__(self, workers: int, devices: tuple[int, ...]):
        self.workers = workers
        self.slots: list[int | None] = [devices[i % len(devices)] if devices else None for i in range(workers)]
        self.sharing = Counter(self.slots)
        self.running: dict[int, tuple[Job, Any]] = {}
        # Indices as this process sees them: CUDA_VISIBLE_DEVICES may already narrow them.
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        self.physical = [d.strip() for d in visible.split(",")] if visible else None

    def free(self) -> int:
        return len(self.slots) - len(self.running)

    def environment(self, device: int | None) -> dict[str, str]:
        if device is None:
            return worker_environment()
        physical = self.physical[device] if self.physical else str(device)
        return worker_environment({"CUDA_VISIBLE_DEVICES": physical, **gpu_memory_env(1 / self.sharing[device])})

    def submit(self, job: Job) -> str:
        slot = min(set(range(len(self.slots))) - set(self.running))
        device = self.slots[slot]
        self.running[slot] = (job, launch(job, self.environment(device)))
        return "the CPU" if device is None else f"GPU {device}"

    def poll(self) -> list[Ended]:
        ended = []
        for slot, (job, process) in list(self.running.items()):
            status = process.poll()
            if status is not None:
                del self.running[slot]
                ended.append(Ended(job, status, read_row(job) if status == 0 else None))
        return ended

    def stop(self) -> None:
        stop([process for _, process in self.running.values()])
        self.running.clear()


def ray_task(job_json: str, env: dict[str, str], gpu_share: float) -> tuple[int, dict[str, Any] | None]:
    """A Ray task: run the unit's worker on this node (Ray has set ``CUDA_VISIBLE_DEVICES``)."""
    return run_to_end(Job.from_json(job_json), {**os.environ, **env, **gpu_memory_env(gpu_share)})


class RayExecutor:
    """Each unit a Ray task needing ``gpus_per_unit`` GPUs (and one CPU), at most ``workers``
    at a time (None: as many as the cluster's resources fit when the run starts)."""

    def __init__(self, address: str | None, gpus_per_unit: float | None, workers: int | None,
                 env: dict[str, str]):  # fmt: skip
        ray = self.ray = import_ray()
        self.started_here = not ray.is_initialized()
        if self.started_here:
            joins = address or os.environ.get("RAY_ADDRESS")  # else Ray starts on this machine
            local = {} if joins else {"object_store_memory": RAY_OBJECT_STORE_BYTES}
            try:
                ray.init(address=address, include_dashboard=False, log_to_driver=False,
                         logging_level=logging.ERROR, **local)  # fmt: skip
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise UsageError(f"cannot start or reach Ray{f' at {address}' if address else ''}: {exc}") from None
        gpus = ray.cluster_resources().get("GPU", 0)
        if gpus_per_unit is None:
            gpus_per_unit = 1.0 if gpus else 0.0
        if gpus_per_unit > gpus:
            self.close()
            raise UsageError(f"--gpus-per-unit {gpus_per_unit:g}: the Ray cluster has {gpus:g} GPUs")
        self.gpus_per_unit = gpus_per_unit
        # Units in flight: what the cluster fits now, so that "running" means running.
        fits = gpus / gpus_per_unit if gpus_per_unit else ray.cluster_resources().get("CPU", 1)
        self.workers = workers or max(1, math.floor(fits + 1e-9))
        self.env = env
        # No retries: a unit whose worker died is recorded as failed, like a local one.
        self.task = ray.remote(ray_task).options(num_gpus=gpus_per_unit, num_cpus=1, max_retries=0)
        self.running: dict[Any, Job] = {}

    def free(self) -> int:
        return self.workers - len(self.running)

    def submit(self, job: Job) -> str:
        share = self.gpus_per_unit if 0 < self.gpus_per_unit < 1 else 1.0
        self.running[self.task.remote(job.to_json(), self.env, share)] = job
        return f"Ray ({self.gpus_per_unit:g} GPU)" if self.gpus_per_unit else "Ray (CPU)"

    def poll(self) -> list[Ended]:
        if not self.running:
            return []
        ready, _ = self.ray.wait(list(self.running), num_returns=len(self.running), timeout=0)
        ended = []
        for ref in ready:
            job = self.running.pop(ref)
            try:
                status, row = self.ray.get(ref)
            except self.ray.exceptions.RayError as exc:
                reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                ended.append(Ended(job, None, None, f"its Ray task failed: {type(exc).__name__}: {reason}"))
            else:
                ended.append(Ended(job, status, row))
        return ended

    def stop(self) -> None:
        for ref in self.running:
            self.ray.cancel(ref, force=True)  # the worker then gets SIGTERM from its parent's death
        self.running.clear()
        self.close()

    def close(self) -> None:
        if self.started_here and self.ray.is_initialized():
            self.ray.shutdown()
