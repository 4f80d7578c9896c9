"""FLOP counting by hand, and the speed benchmark end to end on a tiny budget."""

import keras
import numpy as np
import pandas as pd
import pytest
from keras import layers

from benchmark import speed
from benchmark.running import environment
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


def test_training_flops_count_every_pass_by_hand():
    """Multiply-adds of the 28x28 networks at latent size 16, from their layers' shapes. A
    VAE: forward and backward (3x) through encoder and decoder. The VAE-GAN: 3x the forward
    of each network on each input, and one more input-gradient pass through the
    discriminator's blocks 1-2 on x~ and through the decoder on z (the encoder's L_llike)."""
    enc = 14 * 14 * 9 * 32 + 7 * 7 * 9 * 32 * 64 + 3136 * 256 + 2 * 256 * 16
    dec = 16 * 256 + 256 * 3136 + 7 * 7 * 9 * 64 * 32 + 14 * 14 * 9 * 32  # transposed: per input pixel
    to_features = 14 * 14 * 9 * 32 + 7 * 7 * 9 * 32 * 64
    dis = to_features + 4 * 4 * 9 * 64 * 64 + 4 * 4 * 64
    assert create_model("vae_mse", (28, 28, 1)).train_flops_per_sample() == 2 * 3 * (enc + dec)
    vae_gan = create_model("vae_gan", (28, 28, 1)).train_flops_per_sample()
    assert vae_gan == 2 * (3 * (enc + 2 * dec + 3 * dis) + to_features + dec)


def test_matmul_throughput_is_the_flop_count_over_the_measured_time():
    """2 n^3 FLOPs per product, ``repeats`` products per timing, the best of three timings:
    with a clock that advances 0.5 s per reading, exactly 2 * 64^3 * 4 / 0.5 FLOP/s."""
    ticks = iter(np.arange(0.0, 100.0, 0.5))
    assert environment.matmul_gflops(n=64, repeats=4, clock=lambda: next(ticks)) == pytest.approx(2 * 64**3 * 4 / 0.5 / 1e9)


def test_matmul_repeats_by_default_fill_a_round_of_the_given_length():
    """One product timed at 0.5 s (the fake clock's step) and rounds of 1.2 s: 3 products a
    round, each round read as 0.5 s, so 3 x 2 * 64^3 FLOPs per 0.5 s."""
    ticks = iter(np.arange(0.0, 100.0, 0.5))
    measured = environment.matmul_gflops(n=64, clock=lambda: next(ticks), round_seconds=1.2)
    assert measured == pytest.approx(2 * 64**3 * 3 / 0.5 / 1e9)


#: Float32 FLOPs per cycle per CPU core, at most: two 512-bit FMA units (2 x 16 lanes x 2).
PEAK_FLOPS_PER_CYCLE = 64
#: Clock rate no CPU core exceeds, GHz; and float32 GFLOP/s no single GPU reaches (an H200
#: does ~67,000 in float32, ~990,000 in TF32).
MAX_GHZ, GPU_CEILING = 6.5, 2_000_000


def test_matmul_throughput_is_within_what_the_hardware_can_do():
    """The measured rate lies between a floor any machine clears (1 GFLOP/s) and the peak of
    the device it ran on (cores x clock x FLOPs per cycle on a CPU): a FLOP count off by a
    factor of n (512 here) lands above it on any machine, off by the repeats (4) on one that
    runs at more than a quarter of its peak (this one: ~250 of 832 GFLOP/s)."""
    from benchmark.running.device import detect
    from benchmark.running.environment import cpu_cores

    peak = GPU_CEILING if detect().kind == "gpu" else cpu_cores() * MAX_GHZ * PEAK_FLOPS_PER_CYCLE
    measured = environment.matmul_gflops(n=512, repeats=4)
    assert 1 < measured < peak


@pytest.mark.backend
def test_speed_benchmark_writes_its_table(tmp_path, capsys):
    argv = ["--models", "ae", "--steps", "3", "--batch-size", "16", "--precision", "float32", "--jit", "on"]
    assert speed.main([*argv, "--out", str(tmp_path)]) == 0
    table = pd.read_csv(tmp_path / "speed.csv")
    row = table.iloc[0]
    assert row["model"] == "ae" and row["backend"] == keras.backend.backend()
    assert row["samples_per_sec"] > 0 and row["eval_seconds"] > 0 and row["peak_memory_mib"] > 0
    assert row["repeats"] == 3 and row["spread"] >= 0  # the median of 3 rounds
    assert row["fraction_of_matmul"] == pytest.approx(row["achieved_gflops"] / row["matmul_gflops"])
    assert "fraction_of_matmul" in capsys.readouterr().out


@pytest.mark.backend
def test_speed_benchmark_compares_configurations_with_the_baseline(tmp_path, capsys, harness_jit):
    # The compile path a run takes here (graph mode on a TensorFlow CPU, XLA on JAX, where
    # ``--no-jit`` would run op by op).
    argv = ["--models", "ae", "--steps", "3", "--batch-size", "16", "--no-score", "--repeats", "2",
            "--precision", "auto,float32,mixed_bfloat16", "--jit", "auto", "--steps-per-execution", "2"]  # fmt: skip
    assert speed.main([*argv, "--out", str(tmp_path)]) == 0
    table = pd.read_csv(tmp_path / "speed.csv")
    # float32 + XLA, one step per call (the baseline) is always measured, and listed first.
    configs = list(zip(table["precision_requested"], table["jit"], table["steps_per_execution"], strict=True))
    jit = harness_jit
    assert configs == [("float32", True, 1), ("auto", jit, 2), ("float32", jit, 2), ("mixed_bfloat16", jit, 2)]
    assert table["ratio_to_baseline"].iloc[0] == 1.0 and (table["repeats"] == 2).all()
    # auto is resolved as a run resolves it, and says how.
    auto = table.iloc[1]
    assert auto["precision"] in ("float32", "mixed_bfloat16") and isinstance(auto["auto_note"], str)
    assert table["eval_seconds"].isna().all() and np.isfinite(table["final_loss"]).all()
    out = capsys.readouterr().out
    assert f"| bfloat16, {'XLA' if jit else 'graph'}, 2 steps/call |" in out and "(1.00x)" in out
    assert f"auto chose {auto['precision']}" in out and "against the faster" in out


def rates_row(name: str, rates: list[float]) -> dict:
    return {"model": "ae", "precision_requested": name, "precision": name, "jit": False,
            "steps_per_execution": 1, "rates": rates, "samples_per_sec": float(np.median(rates))}  # fmt: skip


def test_configurations_within_the_spread_are_not_ranked():
    steady = [rates_row("float32", [100, 100, 100]), rates_row("mixed_bfloat16", [120, 121, 119])]
    assert speed.ranking(steady).startswith("bfloat16, graph > (+20.0%")
    noisy = [rates_row("float32", [100, 100, 100]), rates_row("mixed_bfloat16", [150, 90, 105])]
    assert speed.ranking(noisy).startswith("bfloat16, graph ≈ (+5.0% ±30.0%) float32")


def test_auto_is_checked_against_the_faster_precision():
    rows = [rates_row("float32", [100, 100, 100]), rates_row("mixed_bfloat16", [120, 121, 119]),
            {**rates_row("auto", [99, 100, 101]), "precision": "float32", "auto_note": "noisy"}]  # fmt: skip
    [line] = speed.auto_checks(rows)
    assert "auto chose float32" in line and "-16.7%" in line and "NOT within 3%" in line
    rows[2]["precision"] = "mixed_bfloat16"
    assert "+0.0% ±0% against the faster, within 3%" in speed.auto_checks(rows)[0]


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
