"""Train and score one unit, and run a grid of them, each unit in its own directory.

A unit directory ``<out>/units/<unit_id>/`` holds ``config.json`` (the resolved unit
config), ``history.csv`` (per-epoch logs), ``model.keras``, ``arrays.npz`` (per-image scores
and images for figures) and, written last and atomically, ``result.json``: a unit with a
``result.json`` of status ``ok`` is complete and is skipped when the run is repeated.
"""

from __future__ import annotations

import math
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import keras
import numpy as np

import models
from benchmark.config import RunConfig, UnitConfig
from benchmark.data import Dataset, load_dataset
from benchmark.errors import UsageError
from benchmark.evaluate import evaluate_model
from benchmark.io import read_json, run_lock, save_arrays, write_json

#: Test images whose reconstructions are saved after the first, middle and last epoch.
N_SNAPSHOT = 8


class NonFiniteLoss(RuntimeError):
    """Training produced a NaN or infinite loss."""


class EpochRecorder(keras.callbacks.Callback):
    """Times each epoch and keeps reconstructions of fixed test images at chosen epochs."""

    def __init__(self, images: np.ndarray, snapshot_epochs: set[int]):
        super().__init__()
        self.images = images
        self.snapshot_epochs = snapshot_epochs
        self.epoch_seconds: list[float] = []
        self.snapshots: dict[int, np.ndarray] = {}

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_seconds.append(time.perf_counter() - self._start)
        if epoch + 1 in self.snapshot_epochs:
            self.snapshots[epoch + 1] = np.asarray(self.model.reconstruct(self.images))


def train_unit(config: UnitConfig, data: Dataset, unit_dir: Path, *, verbose: int = 1) -> dict[str, Any]:
    """Train ``config.model`` on ``data``, score it and write the unit's files.

    Returns the result row (config, scores, timings, ``status``). Raises ``NonFiniteLoss``
    when training diverges.
    """
    unit_dir.mkdir(parents=True, exist_ok=True)
    write_json(unit_dir / "config.json", config.to_dict())
    keras.utils.set_random_seed(config.seed)
    model = models.create_model(
        config.model, data.image_shape, config.latent_dim, seed=config.seed, **config.model_config
    )
    model.compile(optimizer=model.make_optimizer(), jit_compile=True)

    middle = max(1, (config.epochs + 1) // 2)
    recorder = EpochRecorder(data.x_test[:N_SNAPSHOT], {1, middle, config.epochs})
    callbacks = [
        recorder,
        keras.callbacks.TerminateOnNaN(),
        keras.callbacks.CSVLogger(str(unit_dir / "history.csv")),
    ]
    start = time.perf_counter()
    history = model.fit(
        data.x_train,
        batch_size=config.batch_size,
        epochs=config.epochs,
        shuffle=True,
        callbacks=callbacks,
        verbose=verbose,
    )
    train_seconds = time.perf_counter() - start
    for epoch, loss in enumerate(history.history["loss"], start=1):
        if not math.isfinite(loss):
            raise NonFiniteLoss(f"non-finite loss ({loss}) at epoch {epoch}")
    if len(history.history["loss"]) < config.epochs:
        raise NonFiniteLoss("training stopped early on a non-finite loss")

    start = time.perf_counter()
    scores, arrays = evaluate_model(model, data, seed=config.seed)
    eval_seconds = time.perf_counter() - start
    model.save(unit_dir / "model.keras")
    save_arrays(
        unit_dir / "arrays.npz",
        {
            **arrays,
            "snapshot_images": data.x_test[:N_SNAPSHOT],
            "snapshot_epochs": np.array(sorted(recorder.snapshots)),
            "snapshots": np.stack([recorder.snapshots[e] for e in sorted(recorder.snapshots)]),
        },
    )
    return {
        **scores,
        **timing(recorder.epoch_seconds, len(data.x_train), train_seconds),
        "eval_seconds": eval_seconds,
        "n_train": len(data.x_train),
        "n_test": len(data.x_test),
        "status": "ok",
    }


def timing(epoch_seconds: list[float], n_train: int, train_seconds: float) -> dict[str, float]:
    """Throughput from steady-state epochs; compile time as the first epoch's excess."""
    steady = epoch_seconds[1:] or epoch_seconds
    per_epoch = float(np.median(steady))
    return {
        "train_seconds": train_seconds,
        "samples_per_sec": n_train / per_epoch,
        "compile_seconds": max(0.0, epoch_seconds[0] - per_epoch) if len(epoch_seconds) > 1 else float("nan"),
    }


def result_row(config: UnitConfig, outcome: dict[str, Any]) -> dict[str, Any]:
    """A result row: the unit's config first, then its scores."""
    cfg = config.to_dict()
    return {**cfg, "model_config": cfg["model_config"], **outcome, "unit_id": config.unit_id}


def completed(unit_dir: Path) -> dict[str, Any] | None:
    """The unit's finished result row, or None if it has none (or failed)."""
    path = unit_dir / "result.json"
    if not path.is_file():
        return None
    row = read_json(path)
    return row if row.get("status") == "ok" else None


def run_unit(config: UnitConfig, data: Dataset, units_dir: Path, *, force: bool, verbose: int) -> dict[str, Any]:
    """Train one unit unless it is complete; a failure becomes a ``failed`` row."""
    unit_dir = units_dir / config.unit_id
    if not force and (row := completed(unit_dir)) is not None:
        print(f"[skip] {config.unit_id}: already complete", flush=True)
        return row
    print(f"[train] {config.unit_id}", flush=True)
    try:
        outcome = train_unit(config, data, unit_dir, verbose=verbose)
    except (KeyboardInterrupt, UsageError):
        raise
    except Exception as exc:
        message = f"{type(exc).__name__}: {exc}".strip()
        print(f"[failed] {config.unit_id}: {message}", file=sys.stderr, flush=True)
        (unit_dir / "traceback.txt").write_text(traceback.format_exc())
        outcome = {"status": "failed", "error": message}
    row = result_row(config, outcome)
    write_json(unit_dir / "result.json", row)
    return row


def load_datasets(run: RunConfig) -> dict[str, Dataset]:
    """Every dataset of the run, cut to the limits and checked against the batch size."""
    datasets = {}
    for name in run.datasets:
        data = load_dataset(name, run.data_dir).subset(run.train_limit, run.test_limit)
        if run.batch_size > len(data.x_train):
            raise UsageError(
                f"--batch-size {run.batch_size} is larger than the {len(data.x_train)} training "
                f"images of {name}"
            )
        datasets[name] = data
    return datasets


def run_grid(run: RunConfig, *, environment: dict[str, Any], verbose: int = 1) -> list[dict[str, Any]]:
    """Train every unit of ``run`` not yet complete; return all rows of the grid.

    Data are loaded and checked before anything is written, so bad input leaves no files.
    """
    datasets = load_datasets(run)
    with run_lock(run.out):
        write_json(run.out / "config.json", {"run": run.to_dict(), "environment": environment})
        units_dir = run.out / "units"
        return [
            run_unit(unit, datasets[unit.dataset], units_dir, force=run.force, verbose=verbose)
            for unit in run.units()
        ]
