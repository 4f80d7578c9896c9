"""Shared fixtures. The Keras backend is chosen by KERAS_BACKEND before the first import."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# `--precision auto` measures float32 against bfloat16 once per model and batch size on a CPU
# that could win with bfloat16, tens of seconds each: the suite's runs skip that and train in
# float32 on every machine. tests/test_autoprecision.py measures with it unset.
os.environ.setdefault("VAEBENCH_AUTO_PRECISION", "float32")

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The folder of the real IDX files (``VAEBENCH_DATA_DIR``); skips the test without it."""
    value = os.environ.get("VAEBENCH_DATA_DIR")
    if not value or not (Path(value) / "mnist").is_dir():
        pytest.skip("VAEBENCH_DATA_DIR is not set to a folder with mnist/*.gz")
    return Path(value)


@pytest.fixture(scope="session")
def fd_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One feature-classifier cache for every run of the session, so it is trained once."""
    return tmp_path_factory.mktemp("fd-cache")


@pytest.fixture
def run_env(fd_cache: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Environment of a vaebench run started by a test, in this process or a subprocess."""
    monkeypatch.setenv("VAEBENCH_CACHE_DIR", str(fd_cache))
    return {**os.environ, "VAEBENCH_CACHE_DIR": str(fd_cache), "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="session")
def reference_run(fd_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], Path]:
    """A short two-unit run, uninterrupted, in a subprocess: ``(argv without --out, out)``.

    The resume and reproducibility tests repeat it and compare their results with these.
    """
    argv = ["--preset", "smoke", "--models", "ae", "--seeds", "2", "--quiet"]
    out = tmp_path_factory.mktemp("reference") / "run"
    env = {**os.environ, "VAEBENCH_CACHE_DIR": str(fd_cache)}
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "run_all.py", *argv, "--out", str(out)], cwd=root,
                          env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return argv, out


@pytest.fixture(scope="session")
def assert_same_scores() -> Callable[[Path, Path], None]:
    """Compare two run folders: the same units, with the same scores and training losses.

    Scores that depend on the weights must agree within ``REPRODUCIBILITY_RTOL``; timings
    are left out.
    """
    import numpy as np
    import pandas as pd

    from benchmark.reporting.aggregate import SUMMARY_SCORES
    from benchmark.running.harness import REPRODUCIBILITY_RTOL

    def check(a: Path, b: Path) -> None:
        ra, rb = (pd.read_csv(p / "results.csv").set_index("unit_id").sort_index() for p in (a, b))
        assert list(ra.index) == list(rb.index)
        scores = [s for s in SUMMARY_SCORES if s != "samples_per_sec" and s in ra]
        assert scores
        np.testing.assert_allclose(ra[scores].to_numpy(float), rb[scores].to_numpy(float),
                                   rtol=REPRODUCIBILITY_RTOL)  # fmt: skip
        for unit in ra.index:
            ha, hb = (pd.read_csv(p / "units" / unit / "history.csv") for p in (a, b))
            np.testing.assert_allclose(ha.to_numpy(float), hb.to_numpy(float), rtol=REPRODUCIBILITY_RTOL)

    return check
