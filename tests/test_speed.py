"""FLOP counting by hand, and the speed benchmark end to end on a tiny budget."""

import keras
import numpy as np
import pandas as pd
import pytest
from keras import layers

from benchmark import speed
from models import create_model
from models.flops import forward_flops


def test_forward_flops_counts_multiply_adds_by_hand():
    inputs = keras.Input((8, 8, 2))
    x = layers.Conv2D(4, 3, strides=2, padding="same")(inputs)  # 4x4x4 out: 16 * 9*2*4 MACs
    x = layers.Conv2DTranspose(3, 3, strides=2, padding="same")(x)  # 4x4 in: 16 * 9*4*3 MACs
    x = layers.Flatten()(x)
    outputs = layers.Dense(5)(x)  # 8*8*3 = 192 inputs: 192*5 MACs
    net = keras.Model(inputs, outputs)
    assert forward_flops(net) == 2 * (16 * 72 + 16 * 108 + 192 * 5)


def test_vae_gan_costs_more_per_sample_than_a_vae():
    vae = create_model("vae_mse", (28, 28, 1)).train_flops_per_sample()
    vae_gan = create_model("vae_gan", (28, 28, 1)).train_flops_per_sample()
    assert 15e6 < vae < 30e6  # ~7 MFLOP forward, x3 for training
    assert vae_gan > 2 * vae


def test_matmul_throughput_is_positive_and_plausible():
    assert 0.1 < speed.matmul_gflops(n=256, repeats=2) < 1e6


@pytest.mark.backend
def test_speed_benchmark_writes_its_table(tmp_path, capsys):
    argv = ["--models", "ae", "--steps", "3", "--batch-size", "16", "--precision", "float32", "--jit", "on"]
    assert speed.main([*argv, "--out", str(tmp_path)]) == 0
    table = pd.read_csv(tmp_path / "speed.csv")
    row = table.iloc[0]
    assert row["model"] == "ae" and row["backend"] == keras.backend.backend()
    assert row["samples_per_sec"] > 0 and row["eval_seconds"] > 0 and row["peak_memory_mib"] > 0
    assert row["fraction_of_matmul"] == pytest.approx(row["achieved_gflops"] / row["matmul_gflops"])
    assert "fraction_of_matmul" in capsys.readouterr().out


@pytest.mark.backend
def test_speed_benchmark_compares_configurations_with_the_baseline(tmp_path, capsys):
    argv = ["--models", "ae", "--steps", "3", "--batch-size", "16", "--no-score",
            "--precision", "float32,mixed_bfloat16", "--no-jit", "--steps-per-execution", "2"]  # fmt: skip
    assert speed.main([*argv, "--out", str(tmp_path)]) == 0
    table = pd.read_csv(tmp_path / "speed.csv")
    # float32 + XLA, one step per call (the baseline) is always measured, and listed first.
    configs = list(zip(table["precision"], table["jit"], table["steps_per_execution"], strict=True))
    assert configs == [("float32", True, 1), ("float32", False, 2), ("mixed_bfloat16", False, 2)]
    assert table["ratio_to_baseline"].iloc[0] == 1.0
    ratios = table["samples_per_sec"] / table["samples_per_sec"].iloc[0]
    np.testing.assert_allclose(table["ratio_to_baseline"], ratios)
    assert table["eval_seconds"].isna().all() and np.isfinite(table["final_loss"]).all()
    out = capsys.readouterr().out
    assert "| bfloat16, graph, 2 steps/call |" in out and "(1.00x)" in out


def test_speed_benchmark_rejects_unknown_models(tmp_path, capsys):
    assert speed.main(["--models", "nope", "--out", str(tmp_path)]) == 2
    assert "unknown model 'nope'" in capsys.readouterr().err


@pytest.mark.parametrize("flag", [["--precision", "float16"], ["--jit", "maybe"], ["--steps-per-execution", "0"]])
def test_speed_benchmark_rejects_bad_settings_in_one_line(flag, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        speed.main([*flag, "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and len(err.strip().splitlines()) == 1 and flag[0] in err
    assert not tmp_path.joinpath("speed.csv").exists()
