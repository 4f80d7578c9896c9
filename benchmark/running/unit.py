"""Train and score one unit, each unit in its own directory, and tell a complete unit.

A unit directory ``<out>/units/<unit_id>/`` holds ``config.json`` (the resolved unit
config), ``history.csv`` (per-epoch logs), ``model.keras``, ``arrays.npz`` (per-image scores
and images for figures) and, written last and atomically, ``result.json``: a unit with a
``result.json`` of status ``ok`` is complete and is skipped when the run is repeated. While
it trains, it may also hold a checkpoint, from which a repeated command resumes it
(``benchmark.running.train``).

Identity and stale units. Before the grid starts, every unit's identity is resolved
(``benchmark.running.identity``): its model's full configuration, its code's fingerprint and its
data's digest are part of its hash. A complete unit of the same grid point (model, dataset,
seed and the chosen settings) whose identity differs is out of date: the run says why
(``beta: 4.0 -> 0.5``, ``models/vae.py changed``) and trains the unit anew, unless
``--reuse-stale`` keeps the old result, marked ``stale=true`` in its row.
"""

from __future__ import annotations

import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.data.dataset import Dataset
from benchmark.errors import UsageError
from benchmark.io import (
    read_json_or_none,
    remove_stale_temporaries,
    save_arrays,
    save_model,
    write_atomic,
    write_json,
)
from benchmark.running import precision_record
from benchmark.running.checkpoints import clear_checkpoint
from benchmark.running.config import UnitConfig
from benchmark.running.train import fit_unit, timing
from benchmark.scoring.evaluate import evaluate_model
from benchmark.scoring.frechet import FeatureClassifier

#: Test images whose reconstructions are saved after the first, middle and last epoch.
N_SNAPSHOT = 8

#: The files of a complete unit; ``result.json`` is written last.
UNIT_FILES = ("config.json", "history.csv", "model.keras", "arrays.npz", "result.json")


def train_unit(
    config: UnitConfig,
    data: Dataset,
    unit_dir: Path,
    *,
    verbose: int = 1,
    classifier: FeatureClassifier | None = None,
    checkpoint_seconds: float | None = None,
) -> dict[str, Any]:
    """Train ``config.model`` on ``data``, score it and write the unit's files.

    Returns the result row (config, scores, timings, ``status``); ``fd_sample`` only with a
    feature ``classifier``. Raises ``NonFiniteLoss`` when training diverges. Resumes from the
    unit's checkpoint when it has one, and saves one every ``checkpoint_seconds`` (default:
    ``checkpoint_interval()``).
    """
    unit_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(unit_dir)
    write_json(unit_dir / "config.json", config.to_dict())
    shown = data.x_test[:N_SNAPSHOT]
    model, progress = fit_unit(config, data, unit_dir, shown, verbose=verbose,
                               checkpoint_seconds=checkpoint_seconds)  # fmt: skip

    start = time.perf_counter()
    scores, arrays = evaluate_model(
        model, data.fixed(), seed=config.seed, classifier=classifier, is_samples=config.is_samples
    )
    eval_seconds = time.perf_counter() - start
    save_model(model, unit_dir / "model.keras")
    epochs = sorted(progress.snapshots)
    save_arrays(
        unit_dir / "arrays.npz",
        {
            **arrays,
            "snapshot_images": shown,
            "snapshot_epochs": np.array(epochs),
            "snapshots": np.stack([progress.snapshots[e] for e in epochs]),
        },
    )
    return {
        **scores,
        **timing(progress.epoch_seconds, len(data.x_train), progress.train_seconds),
        "eval_seconds": eval_seconds,
        "train_mflop_per_sample": model.train_flops_per_sample() / 1e6,
        "n_train": len(data.x_train),
        "n_val": data.n_val,
        "n_test": len(data.x_test),
        "data_source": data.source,
        "resumed_from_epoch": progress.resumed_from_epoch,
        "status": "ok",
    }


def result_row(config: UnitConfig, outcome: dict[str, Any]) -> dict[str, Any]:
    """A result row: the unit's settings, its model's resolved parameters (one column each,
    and ``model_config``, all of them), its scores, ``stale`` (False: trained as configured)."""
    cfg = config.to_dict()
    version = cfg.pop("version")
    for key in ("model_args", "code", "data"):
        del cfg[key]
    params = {k: v for k, v in config.model_config.items() if k not in cfg and k not in outcome}
    return {**cfg, **params, **outcome, "vaebench_version": version, "stale": False,
            "unit_id": config.unit_id}  # fmt: skip


def completed(unit_dir: Path) -> dict[str, Any] | None:
    """The unit's finished result row, or None unless it is complete.

    Complete: a readable ``result.json`` of status ``ok`` for this very unit, and the unit's
    other files beside it.
    """
    row = read_json_or_none(unit_dir / "result.json")
    if not isinstance(row, dict) or row.get("status") != "ok" or row.get("unit_id") != unit_dir.name:
        return None
    return row if all((unit_dir / name).is_file() for name in UNIT_FILES) else None


def run_unit(
    config: UnitConfig,
    data: Dataset,
    units_dir: Path,
    *,
    force: bool,
    verbose: int,
    classifier: Callable[[], FeatureClassifier] | None = None,
) -> dict[str, Any]:
    """Train one unit unless it is complete; a failure becomes a ``failed`` row.

    ``classifier`` returns the dataset's FD classifier; it is called only when the unit
    trains, and before the unit seeds its own training, so a cached classifier and a freshly
    trained one give the same results.
    """
    unit_dir = units_dir / config.unit_id
    if not force and (row := completed(unit_dir)) is not None:
        print(f"[skip] {config.unit_id}: already complete", flush=True)
        return {**row, "stale": False}
    print(f"[train] {config.unit_id}", flush=True)
    # From here until a new result.json the unit is incomplete, whatever stops the run.
    (unit_dir / "result.json").unlink(missing_ok=True)
    (unit_dir / "traceback.txt").unlink(missing_ok=True)
    if force:
        clear_checkpoint(unit_dir)
    try:
        fd_classifier = classifier() if classifier is not None else None
        outcome = train_unit(config, data, unit_dir, verbose=verbose, classifier=fd_classifier)
    except (KeyboardInterrupt, UsageError):
        raise
    except Exception as exc:
        message = f"{type(exc).__name__}: {exc}".strip()
        hint = precision_record.failure_hint(config).get("hint")
        print(f"[failed] {config.unit_id}: {message}" + (f" ({hint})" if hint else ""), file=sys.stderr, flush=True)
        write_atomic(unit_dir / "traceback.txt", traceback.format_exc())
        outcome = {"status": "failed", "error": message, **precision_record.failure_hint(config)}
    # How an ``auto`` precision was chosen (written when the grid was planned).
    row = result_row(config, {**outcome, **precision_record.unit_record(unit_dir)})
    write_json(unit_dir / "result.json", row)
    if row["status"] == "ok":
        clear_checkpoint(unit_dir)
    return row
