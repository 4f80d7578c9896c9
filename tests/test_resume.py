"""Resuming: a run killed at any moment loses at most the unit in flight, and a repeated
command finishes the grid with the results an uninterrupted run gives.

Scores are compared within ``benchmark.running.train.REPRODUCIBILITY_RTOL``; on the TensorFlow CPU
backend resumed and uninterrupted runs agree to the bit.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
from background_runs import start, wait_for
from test_interrupts import sigint_inside_a_gc_callback

from benchmark.cli import main
from benchmark.data.datasets import load_digits
from benchmark.io import load_arrays, read_json
from benchmark.reporting.aggregate import SUMMARY_SCORES
from benchmark.running import train, unit
from benchmark.running.config import UnitConfig
from benchmark.running.train import REPRODUCIBILITY_RTOL

ROOT = Path(__file__).resolve().parents[1]

#: Scores that depend on the trained weights (timings do not repeat, and are left out).
SCORES = [s for s in SUMMARY_SCORES if s != "samples_per_sec"]



def unit_dirs(out: Path) -> list[Path]:
    return sorted((out / "units").glob("*")) if (out / "units").is_dir() else []


def second_unit_started(out: Path) -> bool:
    """One unit complete, and a second one's folder written (its training has begun)."""
    dirs = unit_dirs(out)
    done = [d for d in dirs if (d / "result.json").is_file()]
    return len(done) == 1 and any((d / "config.json").is_file() for d in dirs if d not in done)


def test_kill_9_mid_unit_then_resume(
    reference_run, assert_same_scores, tmp_path: Path, run_env: dict[str, str]
) -> None:
    """``kill -9`` during the second unit; the repeated command skips the first, redoes the
    second, and ends with the scores of an uninterrupted run."""
    argv, reference = reference_run
    out = tmp_path / "run"
    first = start(argv, out, run_env)
    try:
        wait_for(lambda: second_unit_started(out), first)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    [finished] = [d for d in unit_dirs(out) if (d / "result.json").is_file()]
    [unfinished] = [d for d in unit_dirs(out) if d != finished]
    stamp = (finished / "result.json").stat().st_mtime_ns, (finished / "result.json").read_bytes()

    second = subprocess.run([sys.executable, "run_all.py", *argv, "--out", str(out)], cwd=ROOT,
                            env=run_env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert second.returncode == 0, second.stderr
    assert f"[skip] {finished.name}: already complete" in second.stdout
    assert f"[train] {unfinished.name}" in second.stdout
    assert f"[train] {finished.name}" not in second.stdout
    result = finished / "result.json"
    assert (result.stat().st_mtime_ns, result.read_bytes()) == stamp  # not retrained, not rewritten
    assert unit.completed(unfinished) is not None
    assert not list(out.rglob("*.tmp"))  # no temporaries left from the killed process
    assert_same_scores(out, reference)


def test_ctrl_c_writes_the_tables_of_complete_units_and_exits_130(
    reference_run, tmp_path: Path, run_env: dict[str, str]
) -> None:
    """SIGINT during the second unit: exit 130, one message, tables listing the first unit."""
    argv, _ = reference_run
    out = tmp_path / "run"
    process = start(argv, out, run_env)
    try:
        wait_for(lambda: second_unit_started(out), process)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=120) == 130
    finally:
        process.kill()
        process.wait()
    log = (tmp_path / "run.log").read_text()
    assert "run_all.py: interrupted" in log and "Traceback" not in log
    [finished] = [d for d in unit_dirs(out) if (d / "result.json").is_file()]
    results = pd.read_csv(out / "results.csv")
    assert list(results["unit_id"]) == [finished.name] and list(results["status"]) == ["ok"]
    assert list(pd.read_csv(out / "summary.csv")["model"]) == ["ae"]


def stub_training(monkeypatch: pytest.MonkeyPatch, fake_train: Callable[..., dict]) -> None:
    """Replace training, the FD classifier, the control sets and the HTML report (the fake
    units have no arrays)."""
    monkeypatch.setattr(unit, "train_unit", fake_train)
    monkeypatch.setattr("benchmark.running.driver.load_or_train", lambda *args: None)
    monkeypatch.setattr("benchmark.controls_command.score_controls", lambda config, quiet: None)
    monkeypatch.setattr("benchmark.reporting.report.write_report", lambda *args, **kwargs: "report.html")


def test_interrupted_grid_tables_also_list_units_complete_from_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """Ctrl-C in unit 2 of 3, unit 3 complete from an earlier run: the tables hold 1 and 3."""
    calls: list[int] = []
    interrupt = {"seed": None}

    def fake_train(config: UnitConfig, data, unit_dir: Path, **kwargs) -> dict:
        calls.append(config.seed)
        if config.seed == interrupt["seed"]:
            raise KeyboardInterrupt
        unit_dir.mkdir(parents=True, exist_ok=True)
        for name in unit.UNIT_FILES[:-1]:
            (unit_dir / name).write_text("x")
        return {"recon_mse": 0.1 + config.seed, "status": "ok"}

    stub_training(monkeypatch, fake_train)
    argv = ["--preset", "smoke", "--models", "ae", "--seeds", "3", "--quiet", "--out", str(tmp_path)]
    assert main(argv) == 0
    for unit_dir in unit_dirs(tmp_path)[:2]:  # seeds 0 and 1 to redo, seed 2 stays complete
        (unit_dir / "result.json").unlink()
    calls.clear()
    interrupt["seed"] = 1
    assert main(argv) == 130
    assert calls == [0, 1]
    assert "run_all.py: interrupted" in capsys.readouterr().err
    results = pd.read_csv(tmp_path / "results.csv")
    assert sorted(results["seed"]) == [0, 2] and set(results["status"]) == {"ok"}



def test_a_ctrl_c_that_python_dropped_still_stops_the_grid_after_the_unit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """SIGINT lands in a gc callback during unit 2 of 3 (Python prints and drops its
    exception, as in JAX's hook): the grid stops before unit 3, exits 130 and keeps 1 and 2."""
    calls: list[int] = []

    def fake_train(config: UnitConfig, data, unit_dir: Path, **kwargs) -> dict:
        calls.append(config.seed)
        if config.seed == 1:
            sigint_inside_a_gc_callback()
        unit_dir.mkdir(parents=True, exist_ok=True)
        for name in unit.UNIT_FILES[:-1]:
            (unit_dir / name).write_text("x")
        return {"recon_mse": 0.1 + config.seed, "status": "ok"}

    stub_training(monkeypatch, fake_train)
    monkeypatch.setattr(sys, "unraisablehook", lambda unraisable: None)
    argv = ["--preset", "smoke", "--models", "ae", "--seeds", "3", "--quiet", "--out", str(tmp_path)]
    assert main(argv) == 130
    assert calls == [0, 1]
    assert "run_all.py: interrupted" in capsys.readouterr().err
    assert sorted(pd.read_csv(tmp_path / "results.csv")["seed"]) == [0, 1]


# -- checkpoints ----------------------------------------------------------------------------


def crash_at_epoch(epoch: int) -> Callable:
    """An ``on_epoch_begin`` that stops the process (as Ctrl-C would) when ``epoch`` begins."""
    original = train.EpochRecorder.on_epoch_begin

    def on_epoch_begin(self, current: int, logs=None) -> None:
        if current == epoch:
            raise KeyboardInterrupt
        original(self, current, logs)

    return on_epoch_begin


def test_unit_resumed_from_a_checkpoint_matches_an_uninterrupted_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, harness_jit: bool
) -> None:
    """Stopped after its second of three epochs and resumed, a VAE (whose noise generator's
    state must come back too) reaches the uninterrupted unit's scores, logs and snapshots."""
    config = UnitConfig("vae_mse", "digits", 0, epochs=3, latent_dim=4, batch_size=64, train_limit=512,
                        test_limit=128, backend=keras.backend.backend(), jit=harness_jit)  # fmt: skip
    data = load_digits().subset(512, 128)
    whole = unit.train_unit(config, data, tmp_path / "whole", verbose=0, checkpoint_seconds=0)

    cut = tmp_path / "cut"
    with monkeypatch.context() as patch:
        patch.setattr(train.EpochRecorder, "on_epoch_begin", crash_at_epoch(2))
        with pytest.raises(KeyboardInterrupt):
            unit.train_unit(config, data, cut, verbose=0, checkpoint_seconds=0)
    assert read_json(cut / "checkpoint.json")["epochs_done"] == 2
    assert sorted(p.name for p in cut.glob("checkpoint-e*")) == ["checkpoint-e0002.keras", "checkpoint-e0002.npz"]

    resumed = unit.train_unit(config, data, cut, verbose=0, checkpoint_seconds=0)
    assert resumed["resumed_from_epoch"] == 2 and whole["resumed_from_epoch"] == 0
    for score in SCORES:
        if score in whole:
            # NaN scores (undefined on this data) must stay NaN.
            assert resumed[score] == pytest.approx(whole[score], rel=REPRODUCIBILITY_RTOL, nan_ok=True), score
    pd.testing.assert_frame_equal(pd.read_csv(cut / "history.csv"), pd.read_csv(tmp_path / "whole" / "history.csv"))
    a, b = load_arrays(cut / "arrays.npz"), load_arrays(tmp_path / "whole" / "arrays.npz")
    assert list(a["snapshot_epochs"]) == [1, 2, 3]
    np.testing.assert_allclose(a["snapshots"], b["snapshots"], rtol=REPRODUCIBILITY_RTOL, atol=1e-7)


def test_force_retrains_from_scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--force`` retrains a complete unit and drops a checkpoint instead of resuming it."""
    trained: list[str] = []

    def fake_train(config: UnitConfig, data, unit_dir: Path, **kwargs) -> dict:
        trained.append(config.unit_id)
        assert not (unit_dir / "result.json").exists()  # incomplete while it trains
        assert not (unit_dir / "checkpoint.json").exists()
        unit_dir.mkdir(parents=True, exist_ok=True)
        for name in unit.UNIT_FILES[:-1]:
            (unit_dir / name).write_text("x")
        return {"status": "ok"}

    stub_training(monkeypatch, fake_train)
    argv = ["--preset", "smoke", "--models", "ae", "--quiet", "--out", str(tmp_path)]
    assert main(argv) == 0 and main(argv) == 0
    assert len(trained) == 1  # the repeat skipped it
    [unit_dir] = unit_dirs(tmp_path)
    (unit_dir / "checkpoint.json").write_text("{}")
    assert main([*argv, "--force"]) == 0
    assert len(trained) == 2
    assert os.path.exists(unit_dir / "result.json")
