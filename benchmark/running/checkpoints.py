"""Checkpoints of a unit in training: ``checkpoint-eNNNN.keras`` (weights and optimizer state),
``checkpoint-eNNNN.npz`` (the variables ``.keras`` leaves out, such as random-generator states,
and the epoch snapshots) and ``checkpoint.json`` (epochs done, logs, timings), written last, so
that a killed unit resumes where it stopped (``benchmark.running.train``)."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np

from benchmark.io import load_arrays, read_json_or_none, save_arrays, save_model, write_json
from benchmark.running.config import UnitConfig
from models.precision import dtype_policy

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


@dataclass
class Progress:
    """A unit's training so far: what a checkpoint restores besides the model."""

    epochs_done: int = 0
    history: list[dict[str, float]] = field(default_factory=list)  # Keras logs, one per epoch
    epoch_seconds: list[float] = field(default_factory=list)
    snapshots: dict[int, np.ndarray] = field(default_factory=dict)  # epoch (1-based) -> images
    train_seconds: float = 0.0
    resumed_from_epoch: int = 0



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


