"""Planning a grid: the datasets cut to each unit's limits, every unit's identity resolved
(``benchmark.running.identity``) and its precision chosen (``benchmark.running.autoprecision``),
what already exists on disk (complete or out of date), the time it should take, and the plan
printed before anything is written. The serial and the parallel driver share it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmark.data.dataset import Dataset
from benchmark.data.datasets import load_dataset
from benchmark.errors import UsageError
from benchmark.io import read_json_or_none
from benchmark.running import autoprecision
from benchmark.running.config import RUN_AXES, RunConfig, UnitConfig, grid_point
from benchmark.running.identity import dataset_identity, model_identity, resolve_unit, stale_reasons
from benchmark.running.progress import short_duration
from benchmark.running.unit import completed
from benchmark.scoring.frechet import cache_dir_for


@dataclass
class PlannedUnit:
    """A unit of the grid, resolved, and what the run will do with it."""

    config: UnitConfig  # with its identity filled in
    label: str  # e.g. "vae_mse latent_dim=8 beta=1 seed 0"
    flops: int  # training FLOPs per sample
    n_train: int
    complete: bool
    #: Complete units of the same grid point with another identity, newest first:
    #: (their folder, why they are out of date).
    stale: list[tuple[Path, list[str]]] = field(default_factory=list)
    #: How ``--precision auto`` was resolved for this unit ({} for an explicit precision).
    precision_record: dict[str, Any] = field(default_factory=dict)

    def reused(self, run: RunConfig) -> Path | None:
        """The out-of-date unit folder whose result this unit reports (``--reuse-stale``)."""
        if run.reuse_stale and not run.force and not self.complete and self.stale:
            return self.stale[0][0]
        return None

    def to_train(self, run: RunConfig) -> bool:
        return run.force or (not self.complete and self.reused(run) is None)


def load_datasets(run: RunConfig) -> dict[str, Dataset]:
    """Every dataset of the run, whole, checked against each batch size and training limit."""
    datasets = {}
    for name in run.datasets:
        data = load_dataset(name, run.data_dir)
        for limit in run.train_limit:
            n = len(data.x_train) if limit is None else min(limit, len(data.x_train))
            for batch_size in run.batch_size:
                if batch_size > n:
                    raise UsageError(
                        f"--batch-size {batch_size} is larger than the {n} training images of {name}"
                    )
        datasets[name] = data
    return datasets


class DataCache:
    """The datasets cut to each unit's limits, and their identities, computed once each."""

    def __init__(self, datasets: dict[str, Dataset]):
        self.datasets = datasets
        self._cut: dict[tuple, tuple[Dataset, dict[str, Any]]] = {}

    def _entry(self, config: UnitConfig) -> tuple[Dataset, dict[str, Any]]:
        key = (config.dataset, config.train_limit, config.test_limit)
        if key not in self._cut:
            data = self.datasets[config.dataset].subset(config.train_limit, config.test_limit, config.score_split)
            self._cut[key] = (data, dataset_identity(data))
        return self._cut[key]

    def data(self, config: UnitConfig) -> Dataset:
        return self._entry(config)[0]

    def identity(self, config: UnitConfig) -> dict[str, Any]:
        return self._entry(config)[1]


def saved_units(units_dir: Path) -> dict[str, list[tuple[Path, dict[str, Any]]]]:
    """The complete units in ``units_dir`` by grid point (JSON of ``grid_point``), newest first."""
    found: dict[str, list[tuple[float, Path, dict[str, Any]]]] = {}
    if not units_dir.is_dir():
        return {}
    for unit_dir in units_dir.iterdir():
        config = read_json_or_none(unit_dir / "config.json")
        if not isinstance(config, dict) or completed(unit_dir) is None:
            continue
        key = json.dumps(grid_point(config), sort_keys=True, default=str)
        mtime = (unit_dir / "result.json").stat().st_mtime
        found.setdefault(key, []).append((mtime, unit_dir, config))
    return {
        key: [(d, c) for _, d, c in sorted(units, key=lambda u: u[0], reverse=True)]
        for key, units in found.items()
    }


def unit_label(config: UnitConfig, run: RunConfig) -> str:
    """The model, the unit's value of each axis of the grid, the seed (and the dataset when
    the run has several): ``vae_mse latent_dim=8 beta=1 seed 0``."""
    parts = [config.model]
    if len(run.datasets) > 1:
        parts.append(f"on {config.dataset}")
    cfg = config.to_dict()
    for axis in run.axes:
        if axis not in RUN_AXES and axis not in config.model_config:
            continue  # a parameter this model does not have
        value = cfg[axis] if axis in RUN_AXES else config.model_config[axis]
        parts.append(f"{axis}={value:g}" if isinstance(value, float) else f"{axis}={value}")
    return " ".join([*parts, f"seed {config.seed}"])


def plan_grid(run: RunConfig, data: DataCache) -> list[PlannedUnit]:
    """Every unit of ``run`` resolved, with what exists of it in ``run.out``. Builds each
    distinct model once (a value it refuses is a ``UsageError``); writes nothing."""
    units_dir = run.out / "units"
    saved = saved_units(units_dir)
    built: dict[str, tuple[dict[str, Any], dict[str, str], int]] = {}
    plan = []
    auto = autoprecision.AutoPrecision(run.out, run.backend, cache_dir_for(run.out))
    for unit in run.units():
        shape = data.data(unit).image_shape
        unit, precision_record = auto.choose(unit, shape)  # "auto": per model, by measurement
        key = json.dumps([unit.model, shape, unit.latent_dim, unit.model_args], sort_keys=True)
        if key not in built:
            built[key] = model_identity(unit, shape)
        config = resolve_unit(unit, built[key], data.identity(unit))
        complete = completed(units_dir / config.unit_id) is not None
        point = json.dumps(grid_point(config.to_dict()), sort_keys=True, default=str)
        stale = [
            (unit_dir, stale_reasons(old, config))
            for unit_dir, old in saved.get(point, [])
            if unit_dir.name != config.unit_id
        ]
        plan.append(PlannedUnit(
            config=config, label=unit_label(config, run), flops=built[key][2],
            n_train=len(data.data(unit).x_train), complete=complete, stale=[] if complete else stale,
            precision_record=precision_record,
        ))  # fmt: skip
    return plan


def measured_flop_rates(units_dir: Path) -> dict[str, float]:
    """The training FLOP rate (FLOP/s) last measured per model in ``units_dir``'s complete
    units, and under ``""`` the last one of any model."""
    measured = []
    if units_dir.is_dir():
        for unit_dir in units_dir.iterdir():
            row = completed(unit_dir)
            if row is None:
                continue
            try:
                rate = float(row["samples_per_sec"]) * float(row["train_mflop_per_sample"]) * 1e6
            except (KeyError, TypeError, ValueError):
                continue
            if math.isfinite(rate) and rate > 0:
                measured.append(((unit_dir / "result.json").stat().st_mtime, row.get("model"), rate))
    rates: dict[str, float] = {}
    for _, model, rate in sorted(measured, key=lambda m: m[0]):
        rates[str(model)] = rates[""] = rate
    return rates


def estimate_seconds(plan: list[PlannedUnit], run: RunConfig) -> tuple[float | None, float | None]:
    """(Seconds of training left, from each unit's FLOPs and the last measured FLOP rate of
    its model, else of any model; that rate in FLOP/s) or (None, None) when none is measured."""
    rates = measured_flop_rates(run.out / "units")
    if not rates:
        return None, None
    seconds = sum(
        p.config.epochs * p.n_train * p.flops / rates.get(p.config.model, rates[""])
        for p in plan
        if p.to_train(run)
    )
    return seconds, rates[""]


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def print_plan(plan: list[PlannedUnit], run: RunConfig, *, every_unit: bool = False) -> None:
    """The grid in a few lines: units, complete, out of date, to train, a time estimate;
    then each out-of-date unit and why. ``every_unit``: also one line per unit."""
    n_complete = sum(p.complete for p in plan)
    n_stale = sum(bool(p.stale) for p in plan)
    n_train = sum(p.to_train(run) for p in plan)
    seconds, rate = estimate_seconds(plan, run)
    if not n_train:
        estimate = "nothing to train"
    elif seconds is None:
        estimate = f"estimated training time: unknown (no measured throughput in {run.out})"
    else:
        estimate = (f"estimated training time: {short_duration(seconds, 'about ')} (the units' FLOPs at the "
                    f"last measured {rate / 1e9:.3g} GFLOP/s)")  # fmt: skip
    axes = f"; axes: {', '.join(run.axes)}" if run.axes else ""
    print(f"Grid: {_count(len(plan), 'unit')} ({_count(len(run.models), 'model')}, "
          f"{_count(len(run.datasets), 'dataset')}, {_count(run.seeds, 'seed')}{axes}): "
          f"{n_complete} complete, {n_stale} out of date, {n_train} to train; {estimate}", flush=True)  # fmt: skip
    if n_stale:
        action = ("kept as they are (--reuse-stale), their rows marked stale=true"
                  if run.reuse_stale and not run.force else "trained anew (--reuse-stale would keep the old results)")  # fmt: skip
        print(f"Out of date: {_count(n_stale, 'unit')}, whose settings or code changed since "
              f"{'it was' if n_stale == 1 else 'they were'} trained; {action}:", flush=True)  # fmt: skip
        for p in plan:
            if p.stale:
                unit_dir, reasons = p.stale[0]
                print(f"  {unit_dir.name} ({p.label}): {'; '.join(reasons)}", flush=True)
    if every_unit:
        for i, p in enumerate(plan, 1):
            state = ("complete" if p.complete and not run.force
                     else "reuse stale" if p.reused(run) else "train")  # fmt: skip
            print(f"[{i}/{len(plan)}] {p.label}: {p.config.unit_id} ({state})", flush=True)


def reported_rows(plan: list[PlannedUnit], run: RunConfig) -> list[dict[str, Any]]:
    """The result rows on disk of the planned units (complete or failed), in grid order; an
    out-of-date unit kept with ``--reuse-stale`` stands for its grid point, marked stale."""
    rows = []
    for p in plan:
        reused = p.reused(run)
        unit_dir = reused or run.out / "units" / p.config.unit_id
        row = read_json_or_none(unit_dir / "result.json")
        if isinstance(row, dict):
            rows.append({**row, "stale": reused is not None})
    return rows
