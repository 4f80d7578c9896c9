"""One unit of a grid in a process of its own: ``python -m benchmark.running.worker UNIT_ID``,
the unit's ``Job`` (JSON) on standard input, its output appended to ``<unit>/worker.log``.

A process per unit is what lets a grid run units side by side and survive losing one: a
worker killed by ``kill -9`` or by the kernel when memory runs out takes only its own unit
with it. The driver (``benchmark.running.parallel``) sees the exit status and records the unit
as failed; the unit's last checkpoint stays, and a repeated command resumes it there.

Exit status: 0 when the unit's ``result.json`` was written (``ok`` or ``failed``), 130 when it
was stopped (SIGINT or SIGTERM: the driver's Ctrl-C, or its own death), anything else when the
process broke (its traceback is in the log).

Importing this module is cheap (no Keras): the Ray executor's tasks import it.
"""

from __future__ import annotations

import ctypes
import dataclasses
import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmark.interrupts import interruptible

#: The unit's output (the worker's stdout and stderr), in its folder, appended to by every try.
LOG_NAME = "worker.log"

#: Set by the launcher: the worker stops itself when the process that started it dies.
PARENT_ENV = "VAEBENCH_WORKER_PARENT"

#: Exit status of a worker that was stopped (as a shell reports SIGINT).
STOPPED = 130

_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class Job:
    """What a worker needs to train one unit; every path absolute, so that any node with the
    same shared folders can run it."""

    unit_id: str
    config: dict[str, Any]  # UnitConfig.to_dict(), identity resolved
    units_dir: str  # <out>/units
    cache_dir: str  # the feature classifier's cache, filled by the driver
    data_dir: str | None
    plugins: tuple[str, ...] = ()
    force: bool = False
    verbose: int = 0  # Keras fit's verbosity in the log: 0 or 2 (one line per epoch)

    @property
    def unit_dir(self) -> Path:
        return Path(self.units_dir) / self.unit_id

    @property
    def log_path(self) -> Path:
        return self.unit_dir / LOG_NAME

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Job:
        fields = json.loads(text)
        return cls(**{**fields, "plugins": tuple(fields.get("plugins", ()))})


def launch(job: Job, env: dict[str, str]) -> subprocess.Popen:
    """Start the worker of ``job`` with environment ``env``; its output goes to the unit's log.

    The worker gets a session of its own, so a Ctrl-C at the terminal reaches the driver
    alone, which then stops its workers itself (and does not mistake them for failures).
    """
    job.unit_dir.mkdir(parents=True, exist_ok=True)
    with open(job.log_path, "ab") as log:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(
            [sys.executable, "-m", "benchmark.running.worker", job.unit_id],
            stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT,
            env={**env, PARENT_ENV: str(os.getpid())}, start_new_session=True,
        )  # fmt: skip
    process.stdin.write(job.to_json().encode())  # a few kB: fits the pipe's buffer
    process.stdin.close()
    return process


def read_row(job: Job) -> dict[str, Any] | None:
    """The unit's ``result.json`` when it is this unit's, else None."""
    try:
        row = json.loads((job.unit_dir / "result.json").read_text())
    except (OSError, ValueError):
        return None
    return row if isinstance(row, dict) and row.get("unit_id") == job.unit_id else None


def run_to_end(job: Job, env: dict[str, str]) -> tuple[int, dict[str, Any] | None]:
    """Run the worker of ``job`` and wait: (its exit status, its result row or None)."""
    process = launch(job, env)
    try:
        status = process.wait()
    except BaseException:  # the caller is being stopped: stop the unit too
        stop([process])
        raise
    return status, read_row(job) if status == 0 else None


def stop(processes: list[subprocess.Popen], grace: float = 20.0) -> None:
    """SIGTERM to each worker (it stops as on Ctrl-C), SIGKILL to those still running after
    ``grace`` seconds."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def exit_reason(status: int) -> str:
    """An exit status in words: ``was killed by SIGKILL``, ``exited with status 1``."""
    if status < 0:
        try:
            name = signal.Signals(-status).name
        except ValueError:
            name = f"signal {-status}"
        hint = " (by hand, or by the system when memory ran out)" if -status == signal.SIGKILL else ""
        return f"was killed by {name}{hint}"
    return f"exited with status {status}"


def _stop_with_parent() -> None:
    """Have the kernel send SIGTERM when the launching process dies (Linux), so that a driver
    killed with ``kill -9`` leaves no worker training on without it."""
    parent = os.environ.get(PARENT_ENV)
    if parent is None:
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: the worker outlives a killed driver
        return
    if os.getppid() != int(parent):  # the parent died before prctl took effect
        raise KeyboardInterrupt


def work(job: Job) -> None:
    """Train and score the unit of ``job`` (``unit.run_unit``); writes its ``result.json``,
    ``failed`` with the reason when the unit cannot run here."""
    from benchmark.data.datasets import load_dataset
    from benchmark.errors import UsageError
    from benchmark.io import write_json
    from benchmark.plugins import load_plugins
    from benchmark.running.config import UnitConfig
    from benchmark.running.identity import dataset_identity
    from benchmark.running.unit import result_row, run_unit
    from benchmark.scoring.frechet import load_or_train

    config = UnitConfig(**job.config)
    if config.unit_id != job.unit_id:
        raise ValueError(f"the job's config is not unit {job.unit_id}")
    try:
        load_plugins(job.plugins)
        data = load_dataset(config.dataset, job.data_dir).subset(config.train_limit, config.test_limit,
                                                                 config.score_split)
        # Another node's copy of the data must be the one the unit was planned with.
        if json.loads(json.dumps(dataset_identity(data))) != config.data:
            raise UsageError(f"the {config.dataset} data here differ from the driver's")
    except UsageError as exc:
        print(f"[failed] {job.unit_id}: {exc}", file=sys.stderr, flush=True)
        job.unit_dir.mkdir(parents=True, exist_ok=True)
        write_json(job.unit_dir / "result.json", result_row(config, {"status": "failed", "error": str(exc)}))
        return
    run_unit(
        config, data, Path(job.units_dir), force=job.force, verbose=job.verbose,
        classifier=lambda: load_or_train(data.fixed(), Path(job.cache_dir)),
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    with interruptible((signal.SIGINT, signal.SIGTERM)):
        return _main(argv)


def _main(argv: list[str]) -> int:
    job = Job.from_json(sys.stdin.read())
    if argv[:1] != [job.unit_id]:
        print(f"usage: python -m benchmark.running.worker {job.unit_id} < job.json", file=sys.stderr)
        return 2
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        _stop_with_parent()
        print(f"[worker] pid {os.getpid()}, unit {job.unit_id}", flush=True)
        work(job)
    except KeyboardInterrupt:
        print(f"[worker] {job.unit_id}: stopped", flush=True)
        return STOPPED
    return 0


if __name__ == "__main__":
    sys.exit(main())
