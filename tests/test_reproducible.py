"""Reproducibility: ``config.json`` records how to repeat a run, and repeating it gives the
same scores (within ``benchmark.running.train.REPRODUCIBILITY_RTOL``; measured bit-identical on the
TensorFlow CPU backend).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path


def test_config_records_the_command_line(reference_run, fd_cache: Path) -> None:
    """The exact argv, where it ran, the interpreter, and the settings read from the environment."""
    argv, out = reference_run
    command = json.loads((out / "config.json").read_text())["command"]
    assert command["argv"] == ["run_all.py", *argv, "--out", str(out)]
    assert Path(command["cwd"]).is_dir() and Path(command["python"]).is_file()
    assert command["env"]["VAEBENCH_CACHE_DIR"] == str(fd_cache)  # set for the reference run
    assert set(command["env"]) <= {"KERAS_BACKEND", "VAEBENCH_DATA_DIR", "VAEBENCH_PLUGINS",
                                   "VAEBENCH_CACHE_DIR", "TF_ENABLE_ONEDNN_OPTS"}  # fmt: skip


def test_recorded_command_repeats_the_scores(reference_run, assert_same_scores, tmp_path: Path) -> None:
    """Run again what config.json recorded (another output folder, a fresh process): the
    same units with the same scores and per-epoch losses."""
    _, reference = reference_run
    command = json.loads((reference / "config.json").read_text())["command"]
    argv = command["argv"][1:]
    out = tmp_path / "again"
    argv[argv.index("--out") + 1] = str(out)
    env = {**os.environ, **command["env"]}
    done = subprocess.run([command["python"], command["argv"][0], *argv], cwd=command["cwd"], env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert_same_scores(out, reference)
