"""The validation split in training: ``val_*`` losses per epoch, and training left as it was."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest

from benchmark.data.datasets import hold_out_validation, load_digits
from benchmark.running import unit
from benchmark.running.config import UnitConfig
from benchmark.running.train import REPRODUCIBILITY_RTOL

pytestmark = pytest.mark.backend


def _config(model: str, jit: bool) -> UnitConfig:
    return UnitConfig(model, "digits", 0, epochs=2, latent_dim=4, batch_size=64, train_limit=256,
                      test_limit=64, backend=keras.backend.backend(), jit=jit)  # fmt: skip


@pytest.mark.parametrize("model", ["vae_mse", "vae_gan"])
def test_validation_losses_are_logged_and_leave_training_unchanged(
    model: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, harness_jit: bool
) -> None:
    """Each logged loss gets a ``val_`` twin; the training losses and the final weights are
    those of the same unit trained without a validation split (the noise generator's state
    is restored after each validation pass). Scoring is not the subject: it is replaced by a
    copy of the trained weights."""
    weights: list[list[np.ndarray]] = []

    def keep_weights(trained: keras.Model, *args, **kwargs) -> tuple[dict, dict]:
        weights.append([keras.ops.convert_to_numpy(w) for w in trained.weights])
        return {}, {}

    monkeypatch.setattr(unit, "evaluate_model", keep_weights)
    data = hold_out_validation(load_digits()).subset(256, 64)
    config = _config(model, harness_jit)
    with_val = unit.train_unit(config, data, tmp_path / "val", verbose=0)
    without = unit.train_unit(config, dataclasses.replace(data, x_val=None, y_val=None),
                              tmp_path / "plain", verbose=0)  # fmt: skip

    history = pd.read_csv(tmp_path / "val" / "history.csv")
    plain = pd.read_csv(tmp_path / "plain" / "history.csv")
    trained = [c for c in plain.columns if c != "epoch"]
    assert {f"val_{c}" for c in trained} <= set(history.columns)
    assert np.isfinite(history[[f"val_{c}" for c in trained]].to_numpy(float)).all()
    np.testing.assert_allclose(history[trained].to_numpy(float), plain[trained].to_numpy(float),
                               rtol=REPRODUCIBILITY_RTOL)  # fmt: skip
    [after_val, after_plain] = weights
    assert len(after_val) == len(after_plain) > 0
    for a, b in zip(after_val, after_plain, strict=True):
        np.testing.assert_allclose(a, b, rtol=REPRODUCIBILITY_RTOL, atol=1e-7)
    assert (with_val["n_train"], with_val["n_val"], with_val["n_test"]) == (256, data.n_val, 64)
    assert without["n_val"] == 0


def test_a_smoke_run_logs_validation_losses(smoke_run) -> None:
    out = smoke_run
    results = pd.read_csv(out / "results.csv")
    assert (results["n_val"] > 0).all() and {"n_train", "n_test"} <= set(results.columns)
    for unit_dir in (out / "units").iterdir():
        history = pd.read_csv(unit_dir / "history.csv")
        assert "val_loss" in history and history["val_loss"].notna().all()
