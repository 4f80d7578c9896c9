"""A grid's units side by side: the driver loop of ``--workers N`` and ``--executor ray``.

The driver (the process of the command) holds the run's lock, has planned the grid, trains
and caches each dataset's feature classifier before any worker starts (so that workers load
it rather than race to train it), then keeps up to ``workers`` units running, each a process
of its own (``benchmark.running.worker``), and collects their rows. A worker that ends without
a row (killed, out of memory, its node lost) fails its unit alone: the driver writes the
unit's ``failed`` row with the reason, and the unit's checkpoint stays for the next try. The
tables and the report are written once, at the end, by the caller (``run_all.py``).

A unit's results do not depend on how it runs: it seeds itself from its config, and its
classifier, trained here or loaded from the cache, is the same classifier (``load_or_train``).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from benchmark.interrupts import raise_if_interrupted
from benchmark.io import write_json
from benchmark.running.checkpoints import CHECKPOINT_SECONDS_ENV
from benchmark.running.config import RunConfig, UnitConfig
from benchmark.running.executors import (
    Ended,
    Executor,
    LocalExecutor,
    RayExecutor,
)
from benchmark.running.plan import DataCache, PlannedUnit, estimate_seconds
from benchmark.running.progress import GridProgress
from benchmark.running.unit import completed, result_row
from benchmark.running.worker import Job, exit_reason
from benchmark.scoring.frechet import cache_dir_for, load_or_train

#: Seconds between two looks at the running units.
POLL_SECONDS = 0.2

#: Environment that a Ray task passes on to its worker, wherever it runs.
RAY_ENV = ("KERAS_BACKEND", "TF_CPP_MIN_LOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS", "VAEBENCH_DATA_DIR",
           "VAEBENCH_PLUGINS", CHECKPOINT_SECONDS_ENV)  # fmt: skip


def make_executor(run: RunConfig) -> Executor:
    """The run's executor; a Ray cluster that cannot be reached is a ``UsageError``."""
    if run.executor == "ray":
        env = {k: os.environ[k] for k in RAY_ENV if k in os.environ}
        return RayExecutor(run.ray_address, run.gpus_per_unit, run.workers, {**env, "KERAS_BACKEND": run.backend})
    return LocalExecutor(run.workers, run.devices)


def run_parallel(
    plan: list[PlannedUnit], run: RunConfig, data: DataCache, executor: Executor, *, verbose: int
) -> list[dict[str, Any]]:
    """Train the units of ``plan`` not yet complete with ``executor``, the largest first; the
    rows of the grid, in grid order. On Ctrl-C every worker is stopped before
    KeyboardInterrupt propagates."""
    rows: dict[str, dict[str, Any]] = {}
    queue: list[tuple[int, PlannedUnit]] = []
    for i, p in enumerate(plan, 1):
        reused = p.reused(run)
        if reused is not None:
            print(f"[stale] {reused.name}: kept, out of date ({'; '.join(p.stale[0][1])})", flush=True)
            rows[p.config.unit_id] = {**completed(reused), "stale": True}
        elif not run.force and (row := completed(run.out / "units" / p.config.unit_id)) is not None:
            print(f"[skip] {p.config.unit_id}: already complete", flush=True)
            rows[p.config.unit_id] = {**row, "stale": False}
        else:
            queue.append((i, p))
    try:
        if queue:
            prepare_classifiers([p for _, p in queue], run, data)
        jobs = {p.config.unit_id: job_for(p, run, verbose) for _, p in queue}
        work = {p.config.unit_id: float(p.config.epochs * p.n_train * p.flops) or 1.0 for _, p in queue}
        seconds, _ = estimate_seconds([p for _, p in queue], run)  # from an earlier run's throughput
        progress = GridProgress(work, done=len(rows), slots=executor.workers,
                                seconds_per_work=seconds / sum(work.values()) if seconds else None)  # fmt: skip
        labels = {p.config.unit_id: (i, p.label) for i, p in queue}
        # The largest units first (in grid order among equals): the grid then ends with
        # small units running side by side rather than one large unit alone.
        queue.sort(key=lambda item: (work[item[1].config.unit_id], -item[0]))  # popped from the end
        while queue or progress.started:
            raise_if_interrupted()
            changed = False
            for ended in executor.poll():
                row = settle(ended)
                rows[ended.job.unit_id] = row
                ok = row.get("status") == "ok"
                seconds = progress.finish(ended.job.unit_id, ok)
                if ok:
                    print(f"[done] {ended.job.unit_id} in {seconds:.0f} s", flush=True)
                changed = True
            while queue and executor.free() > 0:
                _, p = queue.pop()
                where = executor.submit(jobs[p.config.unit_id])
                progress.start(p.config.unit_id)
                i, label = labels[p.config.unit_id]
                print(f"[{i}/{len(plan)}] {label}: {p.config.unit_id} started on {where}", flush=True)
                changed = True
            if changed:
                print(progress.line(), flush=True)
            else:
                time.sleep(POLL_SECONDS)
    finally:
        executor.stop()  # on Ctrl-C: every worker; else it lets go of a local Ray instance
    return [rows[p.config.unit_id] for p in plan if p.config.unit_id in rows]


def prepare_classifiers(units: list[PlannedUnit], run: RunConfig, data: DataCache) -> None:
    """Train and cache the feature classifier of every dataset (and limits) of ``units``
    now, in the driver, so that the workers load it."""
    cache = cache_dir_for(run.out)
    done = set()
    for p in units:
        key = (p.config.dataset, p.config.train_limit, p.config.test_limit)
        if key not in done:
            load_or_train(data.data(p.config).fixed(), cache)
            done.add(key)


def job_for(p: PlannedUnit, run: RunConfig, verbose: int) -> Job:
    return Job(
        unit_id=p.config.unit_id,
        config=p.config.to_dict(),
        units_dir=str((run.out / "units").resolve()),
        cache_dir=str(cache_dir_for(run.out).resolve()),
        data_dir=str(Path(run.data_dir).expanduser().resolve()) if run.data_dir else None,
        plugins=run.plugins,
        force=run.force,
        verbose=2 if verbose else 0,  # a log file: one line per epoch
    )


def settle(ended: Ended) -> dict[str, Any]:
    """The unit's row: the one its worker wrote, else a ``failed`` row saying why, written
    to its ``result.json`` (its checkpoint stays, for the next try)."""
    job = ended.job
    if ended.status == 0 and ended.row is not None:
        row = ended.row
    else:
        reason = ended.error or (f"its process {exit_reason(ended.status)}" if ended.status is not None
                                 else "its process was lost")  # fmt: skip
        row = result_row(UnitConfig(**job.config), {
            "status": "failed", "error": f"WorkerDied: {reason}; its output is in {job.log_path}"})  # fmt: skip
        job.unit_dir.mkdir(parents=True, exist_ok=True)
        write_json(job.unit_dir / "result.json", row)
    if row.get("status") != "ok":
        print(f"[failed] {job.unit_id}: {row.get('error', '')}", file=sys.stderr, flush=True)
    return row
