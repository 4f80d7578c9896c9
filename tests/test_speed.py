"""FLOP counting by hand, and the speed benchmark end to end on a tiny budget."""

import keras
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
    assert speed.main(["--models", "ae", "--steps", "3", "--batch-size", "16", "--out", str(tmp_path)]) == 0
    table = pd.read_csv(tmp_path / "speed.csv")
    row = table.iloc[0]
    assert row["model"] == "ae" and row["backend"] == keras.backend.backend()
    assert row["samples_per_sec"] > 0 and row["eval_seconds"] > 0 and row["peak_memory_mib"] > 0
    assert row["fraction_of_matmul"] == pytest.approx(row["achieved_gflops"] / row["matmul_gflops"])
    assert "fraction_of_matmul" in capsys.readouterr().out


def test_speed_benchmark_rejects_unknown_models(tmp_path, capsys):
    assert speed.main(["--models", "nope", "--out", str(tmp_path)]) == 2
    assert "unknown model 'nope'" in capsys.readouterr().err
