"""Running a grid: plan it, take the run folder's lock, record the run, then train the units
one after another in this process (one local worker) or side by side
(``benchmark.running.parallel``), and return every unit's row.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from benchmark.interrupts import raise_if_interrupted
from benchmark.io import run_lock, write_json
from benchmark.native_output import quiet_native_stderr
from benchmark.running import precision_record
from benchmark.running.config import RunConfig, UnitConfig
from benchmark.running.parallel import make_executor, run_parallel
from benchmark.running.plan import (
    DataCache,
    PlannedUnit,
    load_datasets,
    plan_grid,
    print_plan,
    reported_rows,
)
from benchmark.running.unit import completed, run_unit
from benchmark.scoring.frechet import FeatureClassifier, cache_dir_for, load_or_train


class GridInterrupted(KeyboardInterrupt):
    """Ctrl-C during a grid: ``rows`` are the grid's rows on disk at that moment, so the
    caller can write the tables of the complete units before it exits."""

    def __init__(self, rows: list[dict[str, Any]]):
        super().__init__()
        self.rows = rows


def run_grid(
    run: RunConfig,
    *,
    environment: Callable[[], dict[str, Any]],
    verbose: int = 1,
    command: dict[str, Any] | None = None,
    dry_run: bool = False,
) -> list[dict[str, Any]]:
    """Train every unit of ``run`` not yet complete; return all rows of the grid.

    Data are loaded, every unit resolved and the plan printed before anything is written,
    so bad input leaves no files; ``dry_run`` stops there (one line per unit) and returns [].
    ``config.json`` records ``run``, ``environment()`` and the ``command`` that started it;
    ``environment`` is called only once the input has passed, because probing devices makes
    some backends log to stderr. On Ctrl-C, ``GridInterrupted`` carries the rows of the units
    complete so far. With one local worker (the default) the units run
    one after another in this process; with more, or on Ray, each in a process of its own
    (``benchmark.running.parallel``).
    """
    data = DataCache(load_datasets(run))
    with quiet_native_stderr():  # the first model built starts the backend, which logs
        plan = plan_grid(run, data)
    print_plan(plan, run, every_unit=dry_run)
    if dry_run:
        return []
    # Made before anything is written: a Ray cluster that cannot be reached is bad input.
    executor = None if run.in_process else make_executor(run)
    try:
        with run_lock(run.out):
            record = {"run": {**run.to_dict(), "axes": run.axes}, "environment": environment(),
                      "command": command or {}}  # fmt: skip
            write_json(run.out / "config.json", record)
            precision_record.write_records(
                {p.config.unit_id: p.precision_record for p in plan if p.to_train(run)}, run.out / "units"
            )
            try:
                if executor is not None:
                    return run_parallel(plan, run, data, executor, verbose=verbose)
                return run_serial(plan, run, data, verbose=verbose)
            except KeyboardInterrupt:
                raise GridInterrupted(reported_rows(plan, run)) from None
    finally:
        if executor is not None:
            executor.stop()


def run_serial(
    plan: list[PlannedUnit],
    run: RunConfig,
    data: DataCache,
    *,
    verbose: int,
) -> list[dict[str, Any]]:
    """The units of ``plan`` one after another in this process; their rows in grid order."""
    units_dir = run.out / "units"
    classifiers: dict[tuple, FeatureClassifier] = {}

    def classifier_for(unit: UnitConfig) -> Callable[[], FeatureClassifier]:
        # Loaded (or trained and cached) once per dataset and limits, on first need.
        key = (unit.dataset, unit.train_limit, unit.test_limit)

        def get() -> FeatureClassifier:
            if key not in classifiers:
                classifiers[key] = load_or_train(data.data(unit).fixed(), cache_dir_for(run.out))
            return classifiers[key]

        return get

    rows = []
    for i, p in enumerate(plan, 1):
        raise_if_interrupted()
        print(f"[{i}/{len(plan)}] {p.label}", flush=True)
        reused = p.reused(run)
        if reused is not None:
            print(f"[stale] {reused.name}: kept, out of date ({'; '.join(p.stale[0][1])})", flush=True)
            rows.append({**completed(reused), "stale": True})
            continue
        rows.append(run_unit(
            p.config, data.data(p.config), units_dir, force=run.force, verbose=verbose,
            classifier=classifier_for(p.config),
        ))  # fmt: skip
    return rows
