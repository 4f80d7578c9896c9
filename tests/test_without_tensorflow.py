"""A JAX machine without TensorFlow: the smoke preset runs and never imports TensorFlow, a
dataset that needs tensorflow-datasets is refused in one line, and the JAX requirements list
is pyproject's dependencies without TensorFlow."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Loaded by every Python started with its folder first on PYTHONPATH: any import of
#: TensorFlow or tensorflow-datasets fails as if they were not installed, and is logged.
NO_TENSORFLOW = """
import atexit, os, sys
from importlib.abc import MetaPathFinder

LOG = os.environ["NO_TENSORFLOW_LOG"]
BLOCKED = ("tensorflow", "tensorflow_datasets")


class NoTensorFlow(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            with open(LOG, "a") as f:
                f.write(f"refused {name}\\n")
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, NoTensorFlow())


@atexit.register
def record_loaded():
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
    with open(LOG, "a") as f:
        f.write(f"loaded at exit: {' '.join(loaded) or 'none'}\\n")
"""

needs_jax = pytest.mark.skipif(
    importlib.util.find_spec("jax") is None, reason="JAX is not installed"
)


def run_without_tensorflow(
    argv: list[str], tmp_path: Path, env: dict[str, str]
) -> tuple[subprocess.CompletedProcess, list[str]]:
    """``run_all.py argv`` under JAX with TensorFlow made unimportable; the process and its log."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(textwrap.dedent(NO_TENSORFLOW))
    log = tmp_path / "imports.log"
    env = {**env, "KERAS_BACKEND": "jax", "NO_TENSORFLOW_LOG": str(log),
           "PYTHONPATH": os.pathsep.join([str(hook), str(ROOT)])}  # fmt: skip
    done = subprocess.run([sys.executable, "run_all.py", *argv], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    return done, log.read_text().splitlines() if log.exists() else []


@needs_jax
def test_jax_runs_the_smoke_preset_while_every_import_of_tensorflow_fails(
    tmp_path: Path, run_env
) -> None:
    out = tmp_path / "run"
    argv = ["--preset", "smoke", "--models", "ae", "--epochs", "1", "--quiet", "--out", str(out)]
    done, log = run_without_tensorflow(argv, tmp_path, run_env)
    assert done.returncode == 0, done.stderr
    results = pd.read_csv(out / "results.csv")
    assert list(results["status"]) == ["ok"] and (results["backend"] == "jax").all()
    # The hook was asked for TensorFlow (vaebench imports it when installed) and refused it,
    # and no module of it was loaded by any other route.
    assert "refused tensorflow" in log, log
    assert log[-1] == "loaded at exit: none", log


@needs_jax
def test_a_tfds_dataset_without_tensorflow_is_one_line_exit_2(tmp_path: Path, run_env) -> None:
    out = tmp_path / "run"
    done, _ = run_without_tensorflow(["--preset", "smoke", "--datasets", "digits,cifar10", "--out", str(out)],
                                     tmp_path, run_env)  # fmt: skip
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith("run_all.py: error: cifar10 is read through tensorflow-datasets")
    assert "needs tensorflow and tensorflow-datasets" in lines[0]
    assert not out.exists()


def test_the_jax_requirements_are_the_dependencies_without_tensorflow() -> None:
    declared = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"])
    listed = {
        line.strip()
        for line in (ROOT / "requirements-jax.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    only_tensorflow = {d for d in declared if d.startswith(("tensorflow", "importlib_resources"))}
    assert len(only_tensorflow) == 3, only_tensorflow
    assert listed - {d for d in listed if d.startswith("jax")} == declared - only_tensorflow
    assert any(d.startswith("jax>=") for d in listed)
