"""Train one unit's model: built (or resumed) in its precision, fitted epoch by epoch in a
fixed order of images, with ``history.csv`` and checkpoints written as it goes.

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

Reproducibility. A unit seeds Keras, NumPy and Python (``keras.utils.set_random_seed``), the
model's own noise generator and its epoch orders from its seed. On the TensorFlow CPU backend
the same command then gives bit-identical scores, resumed or not (measured on 2 cores with
keras 3.15 and tensorflow 2.21); where a backend is not bit-deterministic (XLA on GPUs), the
tests allow a relative difference of ``REPRODUCIBILITY_RTOL`` (``tests/test_reproducible.py``).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd

import models
from benchmark.data.batches import array_batches
from benchmark.data.dataset import Dataset, binarize
from benchmark.interrupts import raise_if_interrupted
from benchmark.io import write_atomic
from benchmark.running.checkpoints import Progress, checkpoint_interval, resume, save_checkpoint
from benchmark.running.config import UnitConfig
from benchmark.running.device import epoch_data, to_device, validation_data
from models.precision import dtype_policy

#: Relative difference allowed between the scores of two runs of one command (same seed,
#: backend and machine). Measured: 0 on the TensorFlow CPU backend.
REPRODUCIBILITY_RTOL = 1e-6


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


class StopOnInterrupt(keras.callbacks.Callback):
    """Raises ``KeyboardInterrupt`` after a batch if Ctrl-C arrived during it, even where
    Python dropped the exception (``benchmark.interrupts``)."""

    def on_train_batch_end(self, batch, logs=None):
        raise_if_interrupted()


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


def fit_unit(
    config: UnitConfig,
    data: Dataset,
    unit_dir: Path,
    snapshot_images: np.ndarray,
    *,
    verbose: int = 1,
    checkpoint_seconds: float | None = None,
) -> tuple[keras.Model, Progress]:
    """Train ``config.model`` on ``data`` for ``config.epochs`` epochs, in ``unit_dir``.

    Resumes from the unit's checkpoint when it has one, and saves one every
    ``checkpoint_seconds`` (default: ``checkpoint_interval()``); ``history.csv`` is rewritten
    after every epoch. ``snapshot_images`` (n, H, W, C) are reconstructed after the first,
    middle and last epoch. Returns the trained model and its ``Progress``: per-epoch training
    seconds, the snapshots (epoch, 1-based -> (n, H, W, C)), ``train_seconds`` (all processes
    together, validation left out) and ``resumed_from_epoch``. Raises ``NonFiniteLoss`` when
    training diverges.
    """
    if checkpoint_seconds is None:
        checkpoint_seconds = checkpoint_interval()
    keras.utils.set_random_seed(config.seed)
    model, progress = resume(config, unit_dir)
    if model is None:
        steps_per_epoch = math.ceil(len(data.x_train) / config.batch_size)
        model = build_model(config, data.image_shape, steps_per_epoch)

    middle = max(1, (config.epochs + 1) // 2)
    recorder = EpochRecorder(snapshot_images, {1, middle, config.epochs})
    # Shared with ``progress``: a checkpoint saves what the recorder has gathered so far.
    recorder.epoch_seconds, recorder.snapshots = progress.epoch_seconds, progress.snapshots
    callbacks = training_callbacks(recorder)
    # The same losses on the validation split after every epoch: ``val_*`` in history.csv.
    validation = validation_data(data.x_val, config.batch_size)
    start = last_save = time.perf_counter()
    trained_before = progress.train_seconds
    x_train = None if data.binarize else to_device(data.x_train)  # on JAX, copied to the device once
    for epoch in range(progress.epochs_done, config.epochs):
        fit_data = _epoch_fit_data(config, data, x_train, epoch)
        logs = _fit_epoch(model, config, epoch, fit_data, validation, callbacks, verbose)
        progress.history.append({"epoch": epoch, **logs})
        progress.epochs_done = epoch + 1
        elapsed = time.perf_counter() - start - recorder.validation_seconds
        progress.train_seconds = trained_before + elapsed
        write_atomic(unit_dir / "history.csv", pd.DataFrame(progress.history).to_csv(index=False))
        if epoch + 1 < config.epochs and time.perf_counter() - last_save >= checkpoint_seconds:
            save_checkpoint(model, progress, config, unit_dir)
            last_save = time.perf_counter()
    return model, progress


def _fit_epoch(
    model: keras.Model,
    config: UnitConfig,
    epoch: int,
    fit_data: dict[str, Any],
    validation: Any,
    callbacks: list[keras.callbacks.Callback],
    verbose: int,
) -> dict[str, float]:
    """Train epoch ``epoch`` (0-based) on ``fit_data`` (``_epoch_fit_data``); returns its
    logs: the epoch's mean losses and, with ``validation``, their ``val_*`` twins."""
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
    return {key: float(values[-1]) for key, values in history.history.items()}


def _epoch_fit_data(config: UnitConfig, data: Dataset, x_train: Any, epoch: int) -> dict[str, Any]:
    """``fit``'s data arguments for epoch ``epoch`` (0-based): the training images in
    ``epoch_order``, ``x_train`` being those images from ``to_device`` (None for a
    ``binarize`` dataset)."""
    if data.binarize:  # binary images drawn afresh for every epoch, on the host
        return array_batches(epoch_images(data, config.seed, epoch), config.batch_size)
    return epoch_data(x_train, epoch_order(config.seed, epoch, len(x_train)), config.batch_size)


def training_callbacks(recorder: EpochRecorder) -> list[keras.callbacks.Callback]:
    """The callbacks of a unit's ``fit``, ``recorder`` first; also those of every timing of
    training (``benchmark.running.timing``), which thus pays what a unit pays."""
    return [recorder, KeepStateThroughValidation(), NonFiniteGuard(), StopOnInterrupt(), StopAfterOneEpoch()]


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
    """Throughput from steady-state epochs; compile time as the first epoch's excess.

    ``epoch_seconds``: training seconds of each epoch; returns ``train_seconds``,
    ``samples_per_sec`` (of ``n_train`` images per epoch) and ``compile_seconds``.
    """
    steady = epoch_seconds[1:] or epoch_seconds
    per_epoch = float(np.median(steady))
    return {
        "train_seconds": train_seconds,
        "samples_per_sec": n_train / per_epoch,
        "compile_seconds": max(0.0, epoch_seconds[0] - per_epoch) if len(epoch_seconds) > 1 else float("nan"),
    }
