"""Train and score one unit, and run a grid of them, each unit in its own directory.

A unit directory ``<out>/units/<unit_id>/`` holds ``config.json`` (the resolved unit
config), ``history.csv`` (per-epoch logs), ``model.keras``, ``arrays.npz`` (per-image scores
and images for figures) and, written last and atomically, ``result.json``: a unit with a
``result.json`` of status ``ok`` is complete and is skipped when the run is repeated.

Surviving interruptions. Every file is written through a rename (``benchmark.io``), so a run
killed at any moment (Ctrl-C, ``kill -9``) leaves whole files only, and loses at most the unit
in flight. A training unit also saves a checkpoint after an epoch when ``CHECKPOINT_SECONDS``
have passed since its last one: ``checkpoint-eNNNN.keras`` (weights and optimizer state),
``checkpoint-eNNNN.npz`` (the variables ``.keras`` leaves out, such as random-generator
states, and the epoch snapshots) and ``checkpoint.json`` (epochs done, logs, timings), written
last. A repeated command resumes the unit there with ``initial_epoch`` and reaches the same
weights as an uninterrupted run: each epoch's image order is a function of (seed, epoch)
alone (``epoch_order``). The checkpoint is deleted once the unit is complete. A resumed unit's
``train_seconds`` and ``epoch_seconds`` add up its processes' training; the first epoch after a
resume includes compiling again, which the median in ``samples_per_sec`` ignores;
``resumed_from_epoch`` says where it resumed (0: trained in one go).

Identity and stale units. Before the grid starts, every unit's identity is resolved
(``benchmark.running.identity``): its model's full configuration, its code's fingerprint and its
data's digest are part of its hash. A complete unit of the same grid point (model, dataset,
seed and the chosen settings) whose identity differs is out of date: the run says why
(``beta: 4.0 -> 0.5``, ``models/vae.py changed``) and trains the unit anew, unless
``--reuse-stale`` keeps the old result, marked ``stale=true`` in its row.

Reproducibility. A unit seeds Keras, NumPy and Python (``keras.utils.set_random_seed``), the
model's own noise generator and its epoch orders from its seed. On the TensorFlow CPU backend
the same command then gives bit-identical scores, resumed or not (measured on 2 cores with
keras 3.15 and tensorflow 2.21); where a backend is not bit-deterministic (XLA on GPUs), the
tests allow a relative difference of ``REPRODUCIBILITY_RTOL`` (``tests/test_reproducible.py``).
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd

import models
from benchmark.data.datasets import Dataset, binarize, load_dataset
from benchmark.errors import UsageError
from benchmark.io import (
    load_arrays,
    read_json_or_none,
    remove_stale_temporaries,
    run_lock,
    save_arrays,
    save_model,
    write_atomic,
    write_json,
)
from benchmark.reporting.aggregate import write_tables
from benchmark.running.config import RUN_AXES, RunConfig, UnitConfig, grid_point
from benchmark.running.device import epoch_data, to_device, validation_data
from benchmark.running.identity import dataset_identity, model_identity, resolve_unit, stale_reasons
from benchmark.running.progress import short_duration
from benchmark.scoring.evaluate import evaluate_model
from benchmark.scoring.frechet import FeatureClassifier, cache_dir_for, load_or_train
from models.precision import dtype_policy

#: Test images whose reconstructions are saved after the first, middle and last epoch.
N_SNAPSHOT = 8

#: Seconds of training between two checkpoints of a unit: a killed unit loses at most about
#: this much, and short epochs (small data, a GPU) do not each pay for a save.
CHECKPOINT_SECONDS = 60.0

#: Overrides ``CHECKPOINT_SECONDS`` (e.g. ``0``: a checkpoint after every epoch).
CHECKPOINT_SECONDS_ENV = "VAEBENCH_CHECKPOINT_SECONDS"


def checkpoint_interval() -> float:
    """Seconds between checkpoints: ``$VAEBENCH_CHECKPOINT_SECONDS``, else ``CHECKPOINT_SECONDS``."""
    value = os.environ.get(CHECKPOINT_SECONDS_ENV)
    return float(value) if value else CHECKPOINT_SECONDS


#: Written last when a checkpoint is saved: the checkpoint it describes is whole.
CHECKPOINT_JSON = "checkpoint.json"

#: Relative difference allowed between the scores of two runs of one command (same seed,
#: backend and machine). Measured: 0 on the TensorFlow CPU backend.
REPRODUCIBILITY_RTOL = 1e-6

#: The files of a complete unit; ``result.json`` is written last.
UNIT_FILES = ("config.json", "history.csv", "model.keras", "arrays.npz", "result.json")


class NonFiniteLoss(RuntimeError):
    """Training produced a NaN or infinite loss."""


class NonFiniteGuard(keras.callbacks.Callback):
    """Raises ``NonFiniteLoss`` at the first batch whose running loss is NaN or infinite."""

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            where = f"epoch {self._epoch + 1}, batch {batch + 1}"
            raise NonFiniteLoss(f"non-finite loss ({float(loss)}) at {where}")


class KeepStateThroughValidation(keras.callbacks.Callback):
    """Restores the model's non-trainable variables after each validation pass.

    Computing a VAE's validation loss draws from the model's noise generator, whose state
    is one of these variables; restored, training draws the noise it would draw without a
    validation split, and nothing of the validation images stays in the model.
    """

    def on_test_begin(self, logs=None):
        self._saved = [keras.ops.convert_to_numpy(v) for v in self.model.non_trainable_variables]

    def on_test_end(self, logs=None):
        for variable, value in zip(self.model.non_trainable_variables, self._saved, strict=True):
            variable.assign(value)


class StopAfterOneEpoch(keras.callbacks.Callback):
    """Ends ``fit`` after one epoch, so that each epoch trains on its own ``epoch_order``."""

    def on_epoch_end(self, epoch, logs=None):
        self.model.stop_training = True


@dataclass
class Progress:
    """A unit's training so far: what a checkpoint restores besides the model."""

    epochs_done: int = 0
    history: list[dict[str, float]] = field(default_factory=list)  # Keras logs, one per epoch
    epoch_seconds: list[float] = field(default_factory=list)
    snapshots: dict[int, np.ndarray] = field(default_factory=dict)  # epoch (1-based) -> images
    train_seconds: float = 0.0
    resumed_from_epoch: int = 0


#: Mixed into the seed of an epoch's binarization, so it is independent of ``epoch_order``.
BINARIZE_STREAM = 1


def epoch_images(data: Dataset, seed: int, epoch: int) -> np.ndarray:
    """The training images of epoch ``epoch`` (0-based), in ``epoch_order``.

    For a ``binarize`` dataset, each epoch draws its binary images afresh, from an RNG seeded
    by (seed, epoch): a resumed unit sees the images an uninterrupted one would.
    """
    x = data.x_train[epoch_order(seed, epoch, len(data.x_train))]
    return binarize(x, (seed, epoch, BINARIZE_STREAM)) if data.binarize else x


def epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    """The order of the ``n`` training images in epoch ``epoch`` (0-based).

    A function of (seed, epoch) alone, so that a resumed unit sees the batches an
    uninterrupted one would.
    """
    return np.random.default_rng([seed, epoch]).permutation(n)


class EpochRecorder(keras.callbacks.Callback):
    """Times each epoch's training (its validation left out) and keeps reconstructions of
    fixed test images at chosen epochs."""

    def __init__(self, images: np.ndarray, snapshot_epochs: set[int]):
        super().__init__()
        self.images = images
        self.snapshot_epochs = snapshot_epochs
        self.epoch_seconds: list[float] = []
        self.snapshots: dict[int, np.ndarray] = {}
        self.validation_seconds = 0.0  # in this process, all epochs together

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()
        self._validating = 0.0

    def on_test_begin(self, logs=None):
        self._test_start = time.perf_counter()

    def on_test_end(self, logs=None):
        seconds = time.perf_counter() - self._test_start
        self._validating += seconds
        self.validation_seconds += seconds

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_seconds.append(time.perf_counter() - self._start - self._validating)
        if epoch + 1 in self.snapshot_epochs:
            self.snapshots[epoch + 1] = np.asarray(self.model.reconstruct(self.images))


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
    if checkpoint_seconds is None:
        checkpoint_seconds = checkpoint_interval()
    unit_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(unit_dir)
    write_json(unit_dir / "config.json", config.to_dict())
    keras.utils.set_random_seed(config.seed)
    model, progress = resume(config, unit_dir)
    if model is None:
        model = build_model(config, data.image_shape)

    middle = max(1, (config.epochs + 1) // 2)
    recorder = EpochRecorder(data.x_test[:N_SNAPSHOT], {1, middle, config.epochs})
    recorder.epoch_seconds, recorder.snapshots = progress.epoch_seconds, progress.snapshots
    callbacks = [recorder, KeepStateThroughValidation(), NonFiniteGuard(), StopAfterOneEpoch()]
    # The same losses on the validation split after every epoch: ``val_*`` in history.csv.
    validation = validation_data(data.x_val, config.batch_size)
    start = last_save = time.perf_counter()
    trained_before = progress.train_seconds
    x_train = None if data.binarize else to_device(data.x_train)  # on JAX, copied to the device once
    for epoch in range(progress.epochs_done, config.epochs):
        if data.binarize:  # binary images drawn afresh for every epoch, on the host
            fit_data = {"x": epoch_images(data, config.seed, epoch), "batch_size": config.batch_size}
        else:
            fit_data = epoch_data(x_train, epoch_order(config.seed, epoch, len(x_train)), config.batch_size)
        history = model.fit(
            **fit_data,
            epochs=config.epochs,
            initial_epoch=epoch,
            shuffle=False,
            validation_data=validation,
            validation_batch_size=config.batch_size,
            callbacks=callbacks,
            verbose=verbose,
        )
        logs = {key: float(values[-1]) for key, values in history.history.items()}
        progress.history.append({"epoch": epoch, **logs})
        progress.epochs_done = epoch + 1
        elapsed = time.perf_counter() - start - recorder.validation_seconds
        progress.train_seconds = trained_before + elapsed
        write_atomic(unit_dir / "history.csv", pd.DataFrame(progress.history).to_csv(index=False))
        if epoch + 1 < config.epochs and time.perf_counter() - last_save >= checkpoint_seconds:
            save_checkpoint(model, progress, config, unit_dir)
            last_save = time.perf_counter()
    train_seconds = progress.train_seconds

    start = time.perf_counter()
    scores, arrays = evaluate_model(
        model, data.fixed(), seed=config.seed, classifier=classifier, is_samples=config.is_samples
    )
    eval_seconds = time.perf_counter() - start
    save_model(model, unit_dir / "model.keras")
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
        "train_mflop_per_sample": model.train_flops_per_sample() / 1e6,
        "n_train": len(data.x_train),
        "n_val": data.n_val,
        "n_test": len(data.x_test),
        "data_source": data.source,
        "resumed_from_epoch": progress.resumed_from_epoch,
        "status": "ok",
    }


def build_model(config: UnitConfig, image_shape: tuple[int, int, int]) -> keras.Model:
    """The unit's model, built in its precision and compiled with its compile path.

    Under ``mixed_bfloat16`` the layers compute in bfloat16 and keep float32 variables; the
    policy is set only while the model is built (each layer keeps its own), so nothing global
    is left behind.
    """
    # A resolved unit (``code`` filled in) builds from the chosen arguments, its model_config
    # being their outcome; a config made by hand may give them in model_config.
    args = config.model_args if config.code else {**config.model_config, **config.model_args}
    with dtype_policy(config.precision):
        model = models.create_model(
            config.model, image_shape, config.latent_dim, seed=config.seed, **args
        )
    model.compile(
        optimizer=model.make_optimizer(),
        jit_compile=config.jit,
        steps_per_execution=config.steps_per_execution,
    )
    return model


def save_checkpoint(
    model: keras.Model, progress: Progress, config: UnitConfig, unit_dir: Path
) -> None:
    """Save the unit's model, the state ``.keras`` leaves out, and ``progress``.

    ``checkpoint.json`` is written last: whatever moment a run is killed at, it names a whole
    checkpoint (or none). Older checkpoint files are deleted after it.
    """
    stem = _checkpoint_stem(progress.epochs_done)
    save_model(model, unit_dir / f"{stem}.keras")
    # A .keras file holds weights and optimizer state but not, for instance, the state of a
    # model's keras.random.SeedGenerator; without it a resumed VAE would draw other noise.
    variables = model.non_trainable_variables
    state = {f"variable_{i}": keras.ops.convert_to_numpy(v) for i, v in enumerate(variables)}
    state |= {f"snapshot_{epoch}": images for epoch, images in progress.snapshots.items()}
    save_arrays(unit_dir / f"{stem}.npz", state)
    record = asdict(progress)
    del record["snapshots"], record["resumed_from_epoch"]
    write_json(unit_dir / CHECKPOINT_JSON, {"unit_id": config.unit_id, **record})
    for path in unit_dir.glob("checkpoint-e*"):
        if not path.name.startswith(stem + "."):
            path.unlink(missing_ok=True)


def resume(config: UnitConfig, unit_dir: Path) -> tuple[keras.Model | None, Progress]:
    """The model and progress of the unit's checkpoint; ``(None, Progress())`` without one.

    A checkpoint that cannot be used (another config, a file missing or unreadable, a model
    that safe mode refuses) is reported, deleted, and the unit starts from epoch 0.
    """
    saved = read_json_or_none(unit_dir / CHECKPOINT_JSON)
    if saved is None:
        return None, Progress()
    try:
        model, progress = load_checkpoint(saved, config, unit_dir)
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}"
        print(f"[checkpoint] {config.unit_id}: not used ({reason}); training from epoch 0", flush=True)
        clear_checkpoint(unit_dir)
        return None, Progress()
    print(f"[resume] {config.unit_id}: after epoch {progress.epochs_done} of {config.epochs}", flush=True)
    return model, progress


def load_checkpoint(
    saved: dict[str, Any], config: UnitConfig, unit_dir: Path
) -> tuple[keras.Model, Progress]:
    """Load the checkpoint that ``checkpoint.json`` (``saved``) describes; raises if unusable."""
    if not isinstance(saved, dict) or saved.get("unit_id") != config.unit_id:
        raise ValueError("it belongs to another configuration")
    done = saved.get("epochs_done")
    if not isinstance(done, int) or not 0 < done < config.epochs:
        raise ValueError(f"epochs done ({done!r}) out of range")
    stem = _checkpoint_stem(done)
    state = load_arrays(unit_dir / f"{stem}.npz")  # no pickles: allow_pickle=False
    # Safe mode (the default, made explicit): only registered classes, no lambdas, no code.
    # Each layer's dtype policy is saved with it; the scope covers anything built afresh.
    with dtype_policy(config.precision):
        model = keras.saving.load_model(unit_dir / f"{stem}.keras", safe_mode=True)
    variables = model.non_trainable_variables
    expected = {f"variable_{i}" for i in range(len(variables))}
    if {key for key in state if key.startswith("variable_")} != expected:
        raise ValueError("its saved state does not fit the model")
    for i, variable in enumerate(variables):
        variable.assign(state[f"variable_{i}"])
    snapshots = {
        int(key.removeprefix("snapshot_")): value
        for key, value in state.items()
        if key.startswith("snapshot_")
    }
    progress = Progress(
        epochs_done=done,
        history=[dict(row) for row in saved["history"]],
        epoch_seconds=[float(s) for s in saved["epoch_seconds"]],
        snapshots=snapshots,
        train_seconds=float(saved["train_seconds"]),
        resumed_from_epoch=done,
    )
    if len(progress.history) != done or len(progress.epoch_seconds) != done:
        raise ValueError("its record has the wrong number of epochs")
    return model, progress


def clear_checkpoint(unit_dir: Path) -> None:
    """Delete the unit's checkpoint, ``checkpoint.json`` first so that none is half there."""
    (unit_dir / CHECKPOINT_JSON).unlink(missing_ok=True)
    for path in unit_dir.glob("checkpoint-e*"):
        path.unlink(missing_ok=True)


def _checkpoint_stem(epochs_done: int) -> str:
    return f"checkpoint-e{epochs_done:04d}"


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
        print(f"[failed] {config.unit_id}: {message}", file=sys.stderr, flush=True)
        write_atomic(unit_dir / "traceback.txt", traceback.format_exc())
        outcome = {"status": "failed", "error": message}
    row = result_row(config, outcome)
    write_json(unit_dir / "result.json", row)
    if row["status"] == "ok":
        clear_checkpoint(unit_dir)
    return row


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
            data = self.datasets[config.dataset].subset(config.train_limit, config.test_limit)
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
    for unit in run.units():
        shape = data.data(unit).image_shape
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


def grid_rows(run: RunConfig) -> list[dict[str, Any]]:
    """The result rows on disk of ``run``'s units (complete or failed), in grid order."""
    plan = plan_grid(run, DataCache(load_datasets(run)))
    return reported_rows(plan, run)


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
    some backends log to stderr. On Ctrl-C the tables are written from the units complete so
    far, then KeyboardInterrupt propagates. With one local worker (the default) the units run
    one after another in this process; with more, or on Ray, each in a process of its own
    (``benchmark.running.parallel``).
    """
    from benchmark.cli import quiet_native_stderr
    from benchmark.running.parallel import make_executor, run_parallel

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
            try:
                if executor is not None:
                    return run_parallel(plan, run, data, executor, verbose=verbose)
                return run_serial(plan, run, data, verbose=verbose)
            except KeyboardInterrupt:
                write_tables(reported_rows(plan, run), run.out, axes=run.axes)
                raise
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
