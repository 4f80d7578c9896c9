"""Shared fixtures. The Keras backend is chosen by KERAS_BACKEND before the first import."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from benchmark.io import waiting_lock  # numpy only: Keras is not imported yet

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# `--precision auto` measures float32 against bfloat16 once per model and batch size on a CPU
# that could win with bfloat16, tens of seconds each: the suite's runs skip that and train in
# float32 on every machine. tests/test_autoprecision.py measures with it unset.
os.environ.setdefault("VAEBENCH_AUTO_PRECISION", "float32")
# Under pytest-xdist each worker, and the runs it starts, gets its share of the cores for
# TensorFlow's thread pools, rather than one thread per core each, which oversubscribes them.
_workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _workers > 1:
    _share = str(max(1, (os.cpu_count() or 1) // _workers))
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", _share)
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", _share)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The folder of the real IDX files (``VAEBENCH_DATA_DIR``); skips the test without it."""
    value = os.environ.get("VAEBENCH_DATA_DIR")
    if not value or not (Path(value) / "mnist").is_dir():
        pytest.skip("VAEBENCH_DATA_DIR is not set to a folder with mnist/*.gz")
    return Path(value)


def shared_dir(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    """A folder of this test run that every pytest-xdist worker sees (the workers' own base
    folders are siblings), created if absent."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent
    path = base / name
    path.mkdir(exist_ok=True)
    return path


def made_once(tmp_path_factory: pytest.TempPathFactory, name: str, make: Callable[[Path], None]) -> Path:
    """``shared_dir(name) / "out"``, filled by ``make(out)`` in the first worker that asks; the
    others wait for it and reuse it. A ``make`` that fails is tried again by the next."""
    root = shared_dir(tmp_path_factory, name)
    out, done = root / "out", root / "done"
    with waiting_lock(root / "lock"):
        if not done.is_file():
            make(out)
            done.touch()
    return out


@pytest.fixture(scope="session")
def harness_jit() -> bool:
    """The compile path a run takes on this machine (``--jit auto``): XLA on JAX and on a GPU,
    TensorFlow's graph mode on a CPU, where XLA is the slower of the two to compile and run."""
    import keras

    from benchmark.running.device import detect, resolve_jit

    return resolve_jit("auto", keras.backend.backend(), detect())


@pytest.fixture(scope="session")
def fd_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One feature-classifier cache for every run of the test run (all xdist workers), so each
    classifier is trained once (``load_or_train`` waits for a classifier being trained)."""
    return shared_dir(tmp_path_factory, "fd-cache")


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
    env = {**os.environ, "VAEBENCH_CACHE_DIR": str(fd_cache)}
    root = Path(__file__).resolve().parents[1]

    def make(out: Path) -> None:
        done = subprocess.run([sys.executable, "run_all.py", *argv, "--out", str(out)], cwd=root,
                              env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
        assert done.returncode == 0, done.stderr

    return argv, made_once(tmp_path_factory, "reference", make)


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A smoke run in this process (digits, 2 epochs, seed 0; an autoencoder and a VAE), its
    classifier cached beside it (the default): the end-to-end and report tests read it."""
    from benchmark.cli import main

    def make(out: Path) -> None:
        code = main(["--preset", "smoke", "--models", "ae,vae_bernoulli", "--quiet", "--out", str(out)])
        assert code == 0

    return made_once(tmp_path_factory, "smoke", make)


@pytest.fixture(scope="session")
def assert_same_scores() -> Callable[[Path, Path], None]:
    """Compare two run folders: the same units, with the same scores and training losses.

    Scores that depend on the weights must agree within ``REPRODUCIBILITY_RTOL``; timings
    are left out.
    """
    import numpy as np
    import pandas as pd

    from benchmark.reporting.aggregate import SUMMARY_SCORES
    from benchmark.running.train import REPRODUCIBILITY_RTOL

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
