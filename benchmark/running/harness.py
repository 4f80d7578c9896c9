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

import math
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd

import models
from benchmark.data.dataset import Dataset, binarize
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
from benchmark.running.checkpoints import (
    checkpoint_interval,
    clear_checkpoint,
    resume,
    save_checkpoint,
)
from benchmark.running.config import UnitConfig
from benchmark.running.device import epoch_data, to_device, validation_data
from benchmark.scoring.evaluate import evaluate_model
from benchmark.scoring.frechet import FeatureClassifier
from models.precision import dtype_policy

#: Test images whose reconstructions are saved after the first, middle and last epoch.
N_SNAPSHOT = 8

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
        steps_per_epoch = math.ceil(len(data.x_train) / config.batch_size)
        model = build_model(config, data.image_shape, steps_per_epoch)

    middle = max(1, (config.epochs + 1) // 2)
    recorder = EpochRecorder(data.x_test[:N_SNAPSHOT], {1, middle, config.epochs})
    recorder.epoch_seconds, recorder.snapshots = progress.epoch_seconds, progress.snapshots
    callbacks = training_callbacks(recorder)
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


def training_callbacks(recorder: EpochRecorder) -> list[keras.callbacks.Callback]:
    """The callbacks of a unit's ``fit``, ``recorder`` first; also those of every timing of
    training (``benchmark.running.timing``), which thus pays what a unit pays."""
    return [recorder, KeepStateThroughValidation(), NonFiniteGuard(), StopAfterOneEpoch()]


def build_model(
    config: UnitConfig, image_shape: tuple[int, int, int], steps_per_epoch: int | None = None
) -> keras.Model:
    """The unit's model, built in its precision and compiled with its compile path.

    ``steps_per_epoch`` (optimizer steps per pass over the training data) is given to the
    model before ``make_optimizer``, for a learning rate scheduled by passes.

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
    model.steps_per_epoch = steps_per_epoch
    model.compile(
        optimizer=model.make_optimizer(),
        jit_compile=config.jit,
        steps_per_execution=config.steps_per_execution,
    )
    return model


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
