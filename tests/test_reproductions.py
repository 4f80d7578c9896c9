"""Reproductions of published results: Burda et al.'s VAE and training, the presets, the record."""

import math
import re
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest

import models
from benchmark.reproductions import (
    CURVE_COLUMNS,
    REPRODUCTIONS_DIR,
    append_row,
    curve_table,
    readme_mismatches,
    reproduction_figures,
)
from benchmark.running.config import PRESETS, UnitConfig
from benchmark.running.train import build_model
from models.flops import forward_flops
from models.vae_bernoulli_mlp import BurdaSchedule, burda_passes

ROOT = Path(__file__).resolve().parents[1]


def burda_rate(pass_number: int) -> float:
    """0.001 * 10^(-i/7) in stage i, which holds 3^i passes: the paper's formula, 1-based passes."""
    i, first = 0, 1
    while pass_number >= first + 3**i:
        first, i = first + 3**i, i + 1
    return 1e-3 * 10 ** (-i / 7)


@pytest.mark.parametrize("pass_number", [1, 2, 4, 5, 13, 14, 40, 41, 1093, 1094, 3280])
def test_schedule_rate_at_the_first_and_last_step_of_a_pass_follows_the_formula(pass_number):
    schedule = BurdaSchedule(steps_per_pass=2700)
    first = (pass_number - 1) * 2700
    for step in (first, first + 2699):
        assert float(schedule(step)) == pytest.approx(burda_rate(pass_number), rel=1e-6)


def test_schedule_stages_and_length():
    assert burda_passes() == 3280 == PRESETS["iwae"]["epochs"]
    schedule = BurdaSchedule(steps_per_pass=3)
    rates = [float(schedule(step)) for step in range(3 * 3280 + 6)]
    changes = [step // 3 for step in range(1, len(rates)) if rates[step] != rates[step - 1]]
    assert changes == [1, 4, 13, 40, 121, 364, 1093]  # passes (0-based) where a stage starts
    assert rates[-1] == pytest.approx(1e-4, rel=1e-6)  # 0.001 * 10^(-7/7), then kept


def unit(**kwargs) -> UnitConfig:
    settings = {"model": "vae_bernoulli_mlp", "dataset": "binarized_mnist", "seed": 0, "epochs": 3280,
                "latent_dim": 50, "batch_size": 20, "train_limit": None, "test_limit": None,
                "backend": keras.backend.backend(), "jit": False}  # fmt: skip
    return UnitConfig(**{**settings, **kwargs})


def test_harness_builds_burdas_adam_on_the_pass_schedule():
    model = build_model(unit(), (28, 28, 1), steps_per_epoch=2700)
    optimizer = model.optimizer
    assert isinstance(optimizer, keras.optimizers.Adam)
    assert (optimizer.beta_1, optimizer.beta_2, optimizer.epsilon) == (0.9, 0.999, 1e-4)
    assert isinstance(optimizer._learning_rate, BurdaSchedule)
    assert optimizer._learning_rate.steps_per_pass == 2700


def test_a_reloaded_model_continues_the_schedule(tmp_path):
    """What a resumed unit relies on: the schedule and the step count come back with the model."""
    model = build_model(unit(), (8, 8, 1), steps_per_epoch=2)
    x = (np.random.default_rng(0).random((4, 8, 8, 1)) > 0.5).astype("float32")
    model.fit(x, batch_size=2, epochs=3, verbose=0)  # 6 steps: pass 4, stage 1
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    assert int(loaded.optimizer.iterations) == 6
    assert float(loaded.optimizer.learning_rate) == pytest.approx(burda_rate(4), rel=1e-6)
    loaded.fit(x, batch_size=2, epochs=1, verbose=0)  # 8 steps done: pass 5 begins, stage 2
    assert float(loaded.optimizer.learning_rate) == pytest.approx(burda_rate(5), rel=1e-6)


def test_networks_are_burdas_and_their_flops_are_counted():
    model = models.create_model("vae_bernoulli_mlp", (28, 28, 1), 50, seed=0)
    dense = [(layer.kernel.shape, layer.activation.__name__)
             for net in (model.encoder, model.decoder)
             for layer in net.layers if isinstance(layer, keras.layers.Dense)]  # fmt: skip
    assert dense == [((784, 200), "tanh"), ((200, 200), "tanh"), ((200, 50), "linear"),
                     ((200, 50), "linear"), ((50, 200), "tanh"), ((200, 200), "tanh"),
                     ((200, 784), "linear")]  # fmt: skip
    macs = 784 * 200 + 200 * 200 + 2 * 200 * 50 + 50 * 200 + 200 * 200 + 200 * 784
    assert forward_flops(model.encoder) + forward_flops(model.decoder) == 2 * macs
    params = sum(math.prod(w.shape) for w in model.trainable_weights)
    assert params == macs + 200 + 200 + 50 + 50 + 200 + 200 + 784  # no other networks
    z_mean, z_log_var = model.posterior_params(np.zeros((3, 28, 28, 1), "float32"))
    assert z_mean.shape == z_log_var.shape == (3, 50)
    logits = keras.ops.convert_to_numpy(model.decoder(np.zeros((3, 50), "float32")))
    assert logits.shape == (3, 28, 28, 1)


def test_the_loss_is_the_bernoulli_negative_elbo():
    model = models.create_model("vae_bernoulli_mlp", (28, 28, 1), 50, seed=0)
    x = (np.random.default_rng(1).random((4, 28, 28, 1)) > 0.5).astype("float32")
    out = model(x)
    logits, mean, log_var = (keras.ops.convert_to_numpy(out[k]).astype(np.float64)
                             for k in ("logits", "z_mean", "z_log_var"))  # fmt: skip
    nll = np.sum(np.logaddexp(0, logits) - x * logits, axis=(1, 2, 3))
    kl = 0.5 * np.sum(mean**2 + np.exp(log_var) - log_var - 1, axis=1)
    loss = float(model.compute_loss(x, y_pred=out))
    assert loss == pytest.approx(np.mean(nll + kl), rel=1e-5)


GHOSH_UNITS = [
    f"{m} seed {s}: {m}-mnist-s{s}-" for m in ("ae", "vae_mse", "vae_bernoulli") for s in range(3)
]


@pytest.mark.parametrize(
    ("preset", "expected"),
    [
        ("iwae", ["vae_bernoulli_mlp seed 0: vae_bernoulli_mlp-binarized_mnist-s0-"]),
        ("ghosh", GHOSH_UNITS),
    ],
)
def test_reproduction_presets_plan_their_units(preset, expected, data_dir, tmp_path):
    done = subprocess.run(
        [sys.executable, "run_all.py", "--preset", preset, "--plan", "--precision", "float32",
         "--data-dir", str(data_dir), "--out", str(tmp_path / "out")],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if re.match(r"\[\d+/\d+\] ", line)]
    assert len(lines) == len(expected)
    for line, start in zip(lines, expected, strict=True):
        assert start in line and line.endswith("(train)")
    assert not (tmp_path / "out").exists()  # a plan writes nothing


def test_iwae_preset_is_burdas_setting():
    preset = PRESETS["iwae"]
    assert preset["models"] == ("vae_bernoulli_mlp",) and preset["datasets"] == ("binarized_mnist",)
    assert (preset["batch_size"], preset["latent_dim"], preset["is_samples"]) == (20, 50, 5000)
    assert preset["test_limit"] is None and preset["seeds"] == 1


# -- the record ---------------------------------------------------------------------------------


def test_recorded_curves_are_whole_and_plausible():
    figures = reproduction_figures()
    assert any(point["name"] == "iwae" for point in figures)
    for path in REPRODUCTIONS_DIR.glob("*/curve.csv"):
        name, curve = path.parent.name, pd.read_csv(path)
        assert tuple(curve.columns) == CURVE_COLUMNS, name
        assert curve.notna().all().all(), name
        assert (curve["is_samples"] >= 1).all() and (curve["n_images"].between(1, 10000)).all()
        # Between a perfect model of MNIST's digits and one that knows nothing (784 ln 2).
        assert curve["nll_is"].between(60, 784 * math.log(2)).all(), name


def test_readme_tables_quote_the_recorded_figures():
    """The README's Reproductions section, where it exists, quotes each measured point's CSV figure."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert readme_mismatches(readme, reproduction_figures()) == []


def test_reproduction_readmes_quote_their_recorded_figures():
    readmes = sorted(REPRODUCTIONS_DIR.glob("*/README.md"))
    assert readmes
    for readme in readmes:
        text = readme.read_text(encoding="utf-8")
        assert readme_mismatches(text, reproduction_figures(), section=None) == [], readme


def test_readme_check_finds_a_wrong_figure():
    point = {"name": "iwae", "passes": 100, "is_samples": 5000, "n_images": 500, "nll_is": 91.234}
    figures = [point]
    table = "| passes | K | images | nll_is |\n|--:|--:|--:|--:|\n| 100 | 5,000 | 500 | {} |\n"
    right = "## Reproductions\n\n" + table.format("**91.23**")
    wrong = "## Reproductions\n\n" + table.format("91.32")
    elsewhere = "## Other\n\n" + table.format("91.32")
    assert readme_mismatches(right, figures) == []
    assert readme_mismatches(right.replace("**91.23**", "91.23 ± 0.87"), figures) == []
    assert len(readme_mismatches(wrong, figures)) == 1
    assert readme_mismatches(elsewhere, figures) == []  # only the Reproductions section
    assert readme_mismatches("no such section", figures) == []


def test_a_generated_table_passes_the_readme_check(tmp_path):
    csv = tmp_path / "x" / "curve.csv"
    append_row(csv, {"passes": 207, "is_samples": 5000, "n_images": 10000, "nll_is": 88.456,
                     "stderr": 0.3, "seconds": 900.0})  # fmt: skip
    figures = reproduction_figures(tmp_path)
    table = curve_table(pd.read_csv(csv))
    assert "| 207 | 5,000 | 10,000 | 88.46 |" in table
    assert readme_mismatches(table, figures, section=None) == []
    assert len(readme_mismatches(table.replace("88.46", "88.45"), figures, section=None)) == 1


def test_append_row_keeps_the_curve_sorted(tmp_path):
    csv = tmp_path / "curve.csv"
    row = dict.fromkeys(CURVE_COLUMNS, 1)
    append_row(csv, {**row, "passes": 30, "nll_is": 95.0})
    append_row(csv, {**row, "passes": 10, "nll_is": 99.0})
    curve = pd.read_csv(csv)
    assert list(curve["passes"]) == [10, 30] and tuple(curve.columns) == CURVE_COLUMNS
