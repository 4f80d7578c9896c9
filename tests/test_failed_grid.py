"""A grid whose units fail, all of them or some: the tables and the report are written and
name each failure (model, seed, error), stderr gives one line per failure, exit status 1, and
no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]

FAILING_PLUGIN = '''
"""Test models that fail on every training step, in train_step or in compute_loss."""

from models.ae import AE
from models.registry import register_model


class FailsInStep(AE):
    def train_step(self, *args, **kwargs):
        raise RuntimeError("train_step fails on purpose")


class FailsInLoss(AE):
    def compute_loss(self, *args, **kwargs):
        raise RuntimeError("compute_loss fails on purpose")


@register_model
def fails_in_step(image_shape, latent_dim=16, **config):
    return FailsInStep(image_shape, latent_dim, **config)


@register_model
def fails_in_loss(image_shape, latent_dim=16, **config):
    return FailsInLoss(image_shape, latent_dim, **config)
'''


@pytest.mark.parametrize(
    ("models", "hook"),
    [(("fails_in_step",), "train_step"), (("fails_in_loss", "ae"), "compute_loss")],
    ids=["all-failed", "one-failed-one-ok"],
)
def test_failed_units_are_reported_not_crashed(
    models: tuple[str, ...], hook: str, tmp_path: Path, run_env: dict[str, str]
) -> None:
    (tmp_path / "failing_plugin.py").write_text(textwrap.dedent(FAILING_PLUGIN))
    env = {**run_env, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    out = tmp_path / "run"
    argv = ["--plugins", "failing_plugin", "--models", ",".join(models), "--preset", "smoke",
            "--epochs", "1", "--quiet", "--out", str(out)]  # fmt: skip
    done = subprocess.run([sys.executable, "run_all.py", *argv], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr, done.stderr

    failing = models[0]
    error = f"RuntimeError: {hook} fails on purpose"
    results = pd.read_csv(out / "results.csv").set_index("model")
    assert results.loc[failing, "status"] == "failed"
    assert error in results.loc[failing, "error"]
    unit_id = results.loc[failing, "unit_id"]
    summary = pd.read_csv(out / "summary.csv")
    assert failing not in set(summary["model"])
    if "ae" in models:
        assert results.loc["ae", "status"] == "ok"
        assert list(summary["model"]) == ["ae"]
    else:
        assert summary.empty

    # One line per failure on stderr, naming the model, the seed and the error.
    named = [line for line in done.stderr.splitlines() if line.startswith("run_all.py: failed: ")]
    assert named == [
        f"run_all.py: failed: {failing} seed 0 on digits: {error} (units/{unit_id}/traceback.txt)"
    ]
    assert f"1 unit(s) failed: {unit_id}" in done.stderr
    page = (out / "report.html").read_text()
    assert f"<li>{failing} seed 0 on digits ({unit_id}): {error}</li>" in page
    assert "1 unit(s) failed" in page
