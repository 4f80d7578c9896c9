"""A unit's identity covers what decides its result; a unit whose identity changed is never
silently reused, and every row says what it was."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from benchmark.cli import main
from benchmark.data.datasets import load_digits
from benchmark.io import write_json
from benchmark.running import identity
from benchmark.running.config import IDENTITY_FIELDS, UnitConfig, grid_point
from benchmark.running.unit import UNIT_FILES
from models import registry

ROOT = Path(__file__).resolve().parents[1]

PLUGIN = '''
"""A beta-VAE registered from outside the package."""

import keras

from models.losses import bernoulli_nll
from models.registry import register_model
from models.vae_bernoulli import BernoulliVAE


@keras.saving.register_keras_serializable(package="vaebench_test")
class BetaVAE(BernoulliVAE):
    """A Bernoulli VAE with another default KL weight."""

    def reconstruction_nll(self, x, logits):
        return bernoulli_nll(x, logits)


@register_model
def beta_vae(image_shape, latent_dim: int = 16, beta: float = 4.0, **config) -> BetaVAE:
    return BetaVAE(image_shape, latent_dim, beta=beta, **config)
'''


def run_cli(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "run_all.py", *argv], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=400)  # fmt: skip


def test_a_default_changed_in_code_retrains_the_unit_and_says_why(tmp_path: Path, run_env) -> None:
    """Train a plugin variant; change its factory's default ``beta`` from 4 to 0.5; the same
    command retrains the unit, names the change and reports only the new result."""
    plugin = tmp_path / "beta_plugin.py"
    plugin.write_text(textwrap.dedent(PLUGIN))
    env = {**run_env, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    out = tmp_path / "run"
    argv = ["--plugins", "beta_plugin", "--models", "beta_vae", "--preset", "smoke", "--epochs", "1",
            "--train-limit", "512", "--quiet", "--out", str(out)]  # fmt: skip
    first = run_cli(argv, env)
    assert first.returncode == 0, first.stderr
    [old_id] = pd.read_csv(out / "results.csv")["unit_id"]

    plugin.write_text(plugin.read_text().replace("beta: float = 4.0", "beta: float = 0.5"))
    second = run_cli(argv, env)
    assert second.returncode == 0, second.stderr
    assert "0 complete, 1 out of date, 1 to train" in second.stdout
    assert f"  {old_id} (beta_vae seed 0): beta: 4.0 -> 0.5; beta_plugin.py changed" in second.stdout
    results = pd.read_csv(out / "results.csv")
    [new_id] = results["unit_id"]
    assert new_id != old_id and f"[train] {new_id}" in second.stdout
    assert list(results["beta"]) == [0.5] and list(results["stale"]) == [False]
    assert json.loads(results["model_config"][0]) == {"beta": 0.5}
    assert (out / "units" / old_id / "result.json").is_file()  # kept on disk, not reported

    third = run_cli(argv, env)  # nothing changed since: nothing retrains
    assert f"[skip] {new_id}: already complete" in third.stdout and "[train]" not in third.stdout


# -- in this process, training stubbed --------------------------------------------------------


@pytest.fixture
def plugin_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """``edit_plugin.py`` in ``tmp_path``, importable; its model is unregistered afterwards."""
    path = tmp_path / "edit_plugin.py"
    path.write_text(textwrap.dedent(PLUGIN))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "_MODELS", dict(registry._MODELS))
    yield path
    sys.modules.pop("edit_plugin", None)


def fake_train(trained: list[str]):
    def train(config: UnitConfig, data, unit_dir: Path, **kwargs) -> dict:
        trained.append(config.unit_id)
        unit_dir.mkdir(parents=True, exist_ok=True)
        write_json(unit_dir / "config.json", config.to_dict())
        for name in UNIT_FILES[1:-1]:
            (unit_dir / name).write_text("x")
        return {"recon_mse": 0.1, "status": "ok"}

    return train


@pytest.fixture
def stubbed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Training, the FD classifier, the control sets and the report replaced; returns the
    trained unit ids."""
    trained: list[str] = []
    monkeypatch.setattr("benchmark.running.unit.train_unit", fake_train(trained))
    monkeypatch.setattr("benchmark.running.driver.load_or_train", lambda *args: None)
    monkeypatch.setattr("benchmark.controls_command.score_controls", lambda config, quiet: None)
    monkeypatch.setattr("benchmark.reporting.report.write_report", lambda *args, **kwargs: "report.html")
    return trained


def test_an_edited_model_module_makes_its_units_stale_and_reuse_stale_keeps_them(
    plugin_module: Path, stubbed: list[str], tmp_path: Path, capsys
) -> None:
    out = tmp_path / "run"
    argv = ["--plugins", "edit_plugin", "--models", "beta_vae,ae", "--preset", "smoke", "--quiet",
            "--out", str(out)]  # fmt: skip
    assert main(argv) == 0 and len(stubbed) == 2
    old = pd.read_csv(out / "results.csv").set_index("model")
    capsys.readouterr()

    # The loss changes; the parameters do not. The autoencoder's code is untouched.
    plugin_module.write_text(plugin_module.read_text().replace(
        "return bernoulli_nll(x, logits)", "return 2.0 * bernoulli_nll(x, logits)"))  # fmt: skip
    assert main([*argv, "--reuse-stale"]) == 0
    printed = capsys.readouterr().out
    assert len(stubbed) == 2  # nothing trained
    assert "1 complete, 1 out of date, 0 to train" in printed
    assert f"[stale] {old.loc['beta_vae', 'unit_id']}: kept, out of date (edit_plugin.py changed)" in printed
    kept = pd.read_csv(out / "results.csv").set_index("model")
    assert kept.loc["beta_vae", "stale"] and not kept.loc["ae", "stale"]
    assert kept.loc["beta_vae", "unit_id"] == old.loc["beta_vae", "unit_id"]

    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert len(stubbed) == 3  # the stale unit retrained, the autoencoder skipped
    assert f"{old.loc['beta_vae', 'unit_id']} (beta_vae seed 0): edit_plugin.py changed" in printed
    fresh = pd.read_csv(out / "results.csv").set_index("model")
    assert not fresh["stale"].any()
    assert fresh.loc["beta_vae", "unit_id"] != old.loc["beta_vae", "unit_id"]
    assert fresh.loc["ae", "unit_id"] == old.loc["ae", "unit_id"]


def test_an_edited_models_module_is_named(
    stubbed: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """Editing models/vae.py (simulated: its digest changes) makes every VAE out of date,
    and not the autoencoder, which does not build on it."""
    out = tmp_path / "run"
    argv = ["--models", "ae,vae_mse", "--preset", "smoke", "--quiet", "--out", str(out)]
    assert main(argv) == 0
    capsys.readouterr()
    digest = identity.source_digest
    monkeypatch.setattr(identity, "source_digest",
                        lambda m: "edited" if m.__name__ == "models.vae" else digest(m))  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "1 complete, 1 out of date, 1 to train" in printed
    assert "(vae_mse seed 0): models/vae.py changed" in printed
    assert len(stubbed) == 3


def test_the_identity_covers_the_model_code_and_nothing_of_the_harness() -> None:
    data = load_digits()
    unit = UnitConfig("vae_gan", "digits", 0, 1, 4, 64, None, None, "tensorflow")
    model_config, code, flops = identity.model_identity(unit, data.image_shape)
    assert set(code) == {"models/base.py", "models/conv_transpose.py", "models/flops.py", "models/gated.py",
                         "models/losses.py", "models/networks.py", "models/normalization.py", "models/precision.py",
                         "models/vae.py", "models/vae_gan.py", "models/vae_gan_step.py"}  # fmt: skip
    assert model_config == {"beta": 1.0, "equilibrium": 0.68, "feature_layer": 2, "gamma": 0.03,
                            "generator_loss": "non_saturating", "learning_rate": 0.001,
                            "margin": 0.4}  # fmt: skip
    assert flops > 0
    # Nothing under benchmark/ (the harness, the scores, the report) is part of it: a docstring
    # edited in benchmark/report.py cannot retrain anything.
    resolved = identity.resolve_unit(unit, (model_config, code, flops), identity.dataset_identity(data))
    assert "benchmark/" not in json.dumps(resolved.to_dict())


def test_docstrings_and_comments_do_not_change_a_module_digest(tmp_path: Path, monkeypatch) -> None:
    import importlib

    monkeypatch.syspath_prepend(str(tmp_path))
    path = tmp_path / "digest_me.py"
    path.write_text('"""Doc."""\n\ndef f(x):\n    """Doc."""\n    return x + 1\n')
    module = importlib.import_module("digest_me")
    try:
        before = identity.source_digest(module)
        path.write_text('"""Other doc."""\n\n\ndef f(x):  # a comment\n    """Other."""\n    return x + 1\n')
        assert identity.source_digest(module) == before
        path.write_text('"""Doc."""\n\ndef f(x):\n    return x + 2\n')
        assert identity.source_digest(module) != before
    finally:
        sys.modules.pop("digest_me", None)


def test_every_unit_config_field_is_part_of_the_unit_id() -> None:
    """A field added to UnitConfig (e.g. precision) is in the hash without further code."""
    unit = UnitConfig("vae_mse", "digits", 0, 1, 4, 64, None, None, "tensorflow",
                      model_config={"obs_std": 0.1}, code={"models/vae.py": "a"},
                      data={"sha256": "b"}, version="0.1.0")  # fmt: skip
    for f in dataclasses.fields(UnitConfig):
        value = getattr(unit, f.name)
        other = {"x": 1} if isinstance(value, dict) else 99 if isinstance(value, int) else "other"
        assert dataclasses.replace(unit, **{f.name: other}).unit_id != unit.unit_id, f.name
    # The grid point leaves out what is resolved, not chosen.
    assert set(grid_point(unit.to_dict())) == {f.name for f in dataclasses.fields(UnitConfig)} - set(IDENTITY_FIELDS)


def test_stale_reasons_name_each_change() -> None:
    new = UnitConfig("beta_vae", "digits", 0, 1, 4, 64, None, None, "tensorflow",
                     model_config={"beta": 0.5, "obs_std": 0.1}, code={"models/vae.py": "b", "p.py": "c"},
                     data={"source": "idx files", "sha256": "d"}, version="0.2.0")  # fmt: skip
    old = {"model_config": {"beta": 4.0}, "code": {"models/vae.py": "a", "q.py": "c"},
           "data": {"source": "idx files", "sha256": "e"}, "version": "0.1.0"}  # fmt: skip
    assert identity.stale_reasons(old, new) == [
        "beta: 4.0 -> 0.5", "obs_std: (none) -> 0.1", "models/vae.py changed", "p.py now used",
        "q.py no longer used", "digits data changed", "vaebench 0.1.0 -> 0.2.0",
    ]  # fmt: skip


def test_a_unit_from_before_identities_is_out_of_date_with_one_reason() -> None:
    new = UnitConfig("vae_mse", "digits", 0, 1, 4, 64, None, None, "tensorflow",
                     model_config={"obs_std": 0.1}, code={"models/vae.py": "a"})  # fmt: skip
    old = {**new.to_dict(), "model_config": {}}
    for key in ("model_args", "code", "data", "version"):
        del old[key]
    assert grid_point(old) == grid_point(new.to_dict())  # the same grid point...
    assert identity.stale_reasons(old, new) == [  # ...and out of date
        "trained before vaebench recorded its model's parameters and code"
    ]
