"""What a user sees first: no native start-up noise, the device in words, worked examples."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmark.cli import NATIVE_NOISE, main, quiet_native_stderr
from benchmark.io import read_json
from benchmark.running import environment
from models.precision import PRECISIONS

ROOT = Path(__file__).resolve().parents[1]

#: Lines TensorFlow 2.21 writes at start-up on a machine without GPU (timestamps shortened).
TF_STARTUP = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1795630670.073336    5774 port.cc:153] oneDNN custom operations are on.",
    "I0000 00:00:1795630670.073690    5774 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.",
    "I0000 00:00:1795630670.169186    5774 cpu_feature_guard.cc:227] This TensorFlow binary is optimized to use available CPU instructions.",
    "To enable the following instructions: AVX2 AVX512F FMA, in other operations, rebuild TensorFlow with the appropriate compiler flags.",
    "E0000 00:00:1795630652.042348    5533 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)",
]  # fmt: skip


def test_startup_noise_is_held_back_and_other_lines_pass(capfd):
    with quiet_native_stderr():
        os.write(2, ("\n".join([*TF_STARTUP, "E0000 00:00:1.0  1 foo.cc:1] a real error", "UserWarning: kept"]) + "\n").encode())
    err = capfd.readouterr().err
    assert err.splitlines() == ["E0000 00:00:1.0  1 foo.cc:1] a real error", "UserWarning: kept"]
    assert all(NATIVE_NOISE.match(line) for line in TF_STARTUP)


def test_a_cpu_run_starts_quietly_and_names_its_device(run_env, tmp_path):
    """The console script's entry point, with no TF_CPP_MIN_LOG_LEVEL from outside."""
    env = {k: v for k, v in run_env.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["CUDA_VISIBLE_DEVICES"] = ""  # a CPU run, also on a machine with a GPU
    code = "import sys; sys.argv[0] = 'vaebench'; from benchmark.cli import main; sys.exit(main())"
    argv = ["--preset", "smoke", "--models", "ae", "--epochs", "1", "--quiet", "--out", str(tmp_path / "run")]
    done = subprocess.run([sys.executable, "-c", code, *argv], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert not [line for line in done.stderr.splitlines() if "cuda" in line.lower()], done.stderr
    assert "oneDNN" not in done.stderr and "absl" not in done.stderr
    device = [line for line in done.stdout.splitlines() if line.startswith("training on")]
    assert len(device) == 1 and device[0].startswith("training on CPU (")
    # What ``--precision auto`` gives depends on the processor (its bfloat16 arithmetic, or a
    # measurement): the line must name what this run recorded, whichever that is.
    record = read_json(tmp_path / "run" / "config.json")
    run = record["run"]
    [unit] = (tmp_path / "run" / "units").iterdir()
    chosen = read_json(unit / "config.json")["precision"]
    assert chosen in PRECISIONS and run["precision"] in (chosen, "auto"), (chosen, run)
    assert device[0] == environment.device_line(record["environment"], run["precision"], run["jit"])


def test_device_line_in_words():
    env = {"backend": "tensorflow", "packages": {"tensorflow": "2.21.0"}, "accelerators": [],
           "cpu_cores": 2}  # fmt: skip
    assert environment.device_line(env) == "training on CPU (2 cores), TensorFlow 2.21.0, float32"
    assert environment.device_line(env, "float32", jit=False) == (
        "training on CPU (2 cores), TensorFlow 2.21.0, float32, graph mode"
    )
    env = {**env, "backend": "jax", "packages": {"jax": "0.10.2"}, "accelerators": ["NVIDIA H100"] * 2}
    assert environment.device_line(env, "mixed_bfloat16", jit=True) == (
        "training on 1 GPU: NVIDIA H100 (the first of 2 visible), JAX 0.10.2, mixed_bfloat16, XLA"
    )


def test_help_ends_with_three_worked_examples(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    examples = text.split("examples:", 1)[1].splitlines()
    commands = [line.strip() for line in examples if line.startswith("  ") and not line.startswith("   ")]
    assert len(commands) == 3
    assert "--preset quick" in commands[0]
    assert "--latent-dim 2,16" in commands[1] and "--set vae_bernoulli.beta=0.5,2" in commands[1]
    assert "--compare" in commands[2]


def test_report_header_names_the_backend_in_use_only(tmp_path):
    from benchmark.io import write_json
    from benchmark.reporting.report import run_meta

    write_json(tmp_path / "config.json", {
        "run": {"preset": "smoke", "models": ["ae"], "seeds": 1, "epochs": 2, "latent_dim": 16,
                "backend": "tensorflow"},
        "environment": {"packages": {"keras": "3.15.1", "tensorflow": "2.21.0", "jax": None, "jaxlib": None}},
    })  # fmt: skip
    meta = run_meta(tmp_path)
    assert "keras 3.15.1" in meta and "tensorflow 2.21.0" in meta
    assert "jax" not in meta and "None" not in meta
