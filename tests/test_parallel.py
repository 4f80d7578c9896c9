"""Units side by side: ``--workers N`` (a process per unit) and ``--executor ray`` give the
results of a single-process run; a worker killed mid-unit fails that unit alone, which a
repeated command resumes from its checkpoint; Ctrl-C stops every worker; bad input is one line.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from background_runs import start, wait_for

from benchmark.cli import main
from benchmark.running import executors
from benchmark.running.executors import LocalExecutor, gpu_memory_env
from benchmark.running.progress import GridProgress

ROOT = Path(__file__).resolve().parents[1]

#: Three units (an autoencoder and two VAEs) of the smoke preset: more units than two workers.
SMOKE = ["--preset", "smoke", "--models", "ae,vae_mse,vae_bernoulli", "--quiet"]


def is_timing(column: str) -> bool:
    """Wall-time and throughput columns, which differ between any two runs."""
    return column.endswith("_seconds") or column == "samples_per_sec"


def assert_same_results(a: Path, b: Path) -> None:
    """The same units with the same scores (to 1e-6) and the same other columns, timings aside."""
    ra, rb = (pd.read_csv(p / "results.csv").set_index("unit_id").sort_index() for p in (a, b))
    assert list(ra.index) == list(rb.index) and list(ra.columns) == list(rb.columns)
    numeric = [c for c in ra.select_dtypes("number").columns if not is_timing(c)]
    assert "recon_mse" in numeric and "fd_sample" in numeric
    np.testing.assert_allclose(ra[numeric].to_numpy(float), rb[numeric].to_numpy(float), rtol=1e-6, atol=0)
    other = [c for c in ra.columns if c not in numeric and not is_timing(c)]
    pd.testing.assert_frame_equal(ra[other], rb[other])


def run(argv: list[str], out: Path, env: dict[str, str], timeout: float = 400) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "run_all.py", *argv, "--out", str(out)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip


@pytest.fixture(scope="module")
def parallel_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A fresh classifier cache: the single-process reference trains the classifier in its
    own process, the parallel runs load it from the cache, and their scores must agree."""
    cache = tmp_path_factory.mktemp("fd-cache-parallel")
    return {**os.environ, "VAEBENCH_CACHE_DIR": str(cache), "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}  # fmt: skip


@pytest.fixture(scope="module")
def serial_run(parallel_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The three units one after another in one process (``--workers 1``, the default)."""
    out = tmp_path_factory.mktemp("serial") / "run"
    done = run(SMOKE, out, parallel_env)
    assert done.returncode == 0, done.stderr
    assert "[fd] training the feature classifier" in done.stdout  # trained in this process
    assert "[grid]" not in done.stdout and not list(out.glob("units/*/worker.log"))
    return out


def test_two_workers_give_the_scores_of_one(serial_run: Path, parallel_env, tmp_path: Path) -> None:
    """``--workers 2``: two units at a time, each in its own process, the same results."""
    out = tmp_path / "run"
    done = run([*SMOKE, "--workers", "2"], out, parallel_env)
    assert done.returncode == 0, done.stderr
    log = done.stdout
    started = [m.start() for m in re.finditer(r"started on the CPU", log)]
    assert len(started) == 3
    assert started[1] < log.index("[done]")  # the second unit started before the first ended
    assert "[grid] 3 done, 0 running, 0 failed, 0 left" in log
    # Once a unit has finished, the time left is estimated from it.
    assert re.search(r"\[grid\] [123] done, [12] running, 0 failed, [012] left, ~\d+ (s|min) left", log)
    assert len(list(out.glob("units/*/worker.log"))) == 3
    assert_same_results(serial_run, out)


@pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                    reason='needs Ray: pip install -e ".[ray]" (CI installs it)')  # fmt: skip
def test_ray_executor_gives_the_scores_of_one_process(serial_run: Path, parallel_env, tmp_path: Path) -> None:
    """``--executor ray`` on a local Ray instance (this machine's CPUs): the same results."""
    out = tmp_path / "run"
    done = run([*SMOKE, "--executor", "ray"], out, parallel_env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("started on Ray (CPU)") == 3
    assert "[grid] 3 done, 0 running, 0 failed, 0 left" in done.stdout
    assert_same_results(serial_run, out)


# -- a worker killed, the driver interrupted ------------------------------------------------



def checkpointed(out: Path, model: str) -> Path | None:
    """The folder of ``model``'s unit once it has a checkpoint and its worker named its pid."""
    for unit_dir in out.glob(f"units/{model}-*"):
        log = unit_dir / "worker.log"
        if (unit_dir / "checkpoint.json").is_file() and log.is_file() and "[worker] pid" in log.read_text():
            return unit_dir
    return None


def worker_pids(unit_dir: Path) -> list[int]:
    return [int(pid) for pid in re.findall(r"\[worker\] pid (\d+)", (unit_dir / "worker.log").read_text())]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat")
    return not (state.is_file() and state.read_text().split(") ")[-1].startswith("Z"))


def test_killed_worker_fails_its_unit_alone_and_resumes_from_its_checkpoint(
    parallel_env, tmp_path: Path
) -> None:
    """``kill -9`` of the worker training vae_mse: ae completes, vae_mse is ``failed`` (the
    run exits 1 naming it); the repeated command resumes vae_mse after its checkpoint's epoch."""
    env = {**parallel_env, "VAEBENCH_CHECKPOINT_SECONDS": "0"}  # a checkpoint after every epoch
    argv = ["--preset", "smoke", "--models", "vae_mse,ae", "--epochs", "5", "--workers", "2", "--quiet"]
    out = tmp_path / "run"
    driver = start(argv, out, env)
    try:
        wait_for(lambda: checkpointed(out, "vae_mse") is not None, driver)
        unit_dir = checkpointed(out, "vae_mse")
        [pid] = worker_pids(unit_dir)
        os.kill(pid, signal.SIGKILL)
        assert driver.wait(timeout=300) == 1
    finally:
        driver.kill()
        driver.wait()
    log = (tmp_path / "run.log").read_text()
    epochs_done = json.loads((unit_dir / "checkpoint.json").read_text())["epochs_done"]
    assert 1 <= epochs_done < 5
    results = pd.read_csv(out / "results.csv").set_index("model")
    assert results.loc["ae", "status"] == "ok"
    assert results.loc["vae_mse", "status"] == "failed"
    assert "WorkerDied: its process was killed by SIGKILL" in results.loc["vae_mse", "error"]
    assert f"1 unit(s) failed: {unit_dir.name}" in log and "Traceback" not in log

    again = run(argv, out, env)
    assert again.returncode == 0, again.stderr
    assert f"[skip] {results.loc['ae', 'unit_id']}: already complete" in again.stdout
    results = pd.read_csv(out / "results.csv").set_index("model")
    assert list(results["status"]) == ["ok", "ok"]
    assert results.loc["vae_mse", "resumed_from_epoch"] == epochs_done
    assert f"[resume] {unit_dir.name}: after epoch {epochs_done} of 5" in (unit_dir / "worker.log").read_text()
    assert len(pd.read_csv(unit_dir / "history.csv")) == 5
    assert not (unit_dir / "checkpoint.json").exists()


def test_ctrl_c_stops_every_worker_and_keeps_complete_units(parallel_env, tmp_path: Path) -> None:
    """SIGINT to the driver while two workers train: both stop, exit 130, one message, and
    the tables list the units complete by then (none here); no unit is marked failed."""
    env = {**parallel_env, "VAEBENCH_CHECKPOINT_SECONDS": "0"}
    argv = ["--preset", "smoke", "--models", "vae_mse,ae", "--epochs", "1000", "--workers", "2", "--quiet"]
    out = tmp_path / "run"
    driver = start(argv, out, env)
    try:
        wait_for(lambda: checkpointed(out, "vae_mse") is not None and checkpointed(out, "ae") is not None, driver)
        pids = [pid for unit_dir in out.glob("units/*") for pid in worker_pids(unit_dir)]
        assert len(pids) == 2 and all(alive(pid) for pid in pids)
        driver.send_signal(signal.SIGINT)
        assert driver.wait(timeout=120) == 130
    finally:
        driver.kill()
        driver.wait()
    assert not any(alive(pid) for pid in pids)
    log = (tmp_path / "run.log").read_text()
    assert "run_all.py: interrupted" in log and "Traceback" not in log and "[failed]" not in log
    assert not list(out.glob("units/*/result.json"))
    assert len(list(out.glob("units/*/checkpoint.json"))) == 2  # both resume when repeated
    assert (out / "results.csv").is_file()


# -- bad input -----------------------------------------------------------------------------


def exit_code(call: Callable[[], int]) -> int:
    try:
        return call()
    except SystemExit as exc:
        return int(exc.code)


def assert_one_error_line(err: str, fragment: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("run_all.py: error: ") and fragment in lines[0], lines[0]


def missing_gpu() -> int:
    """A GPU index this machine does not have: 7, or past the last one it has."""
    import keras

    return max(7, executors.visible_gpus(keras.backend.backend()))


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--workers", "0"], "argument --workers: must be at least 1 and at most 1024, got 0"),
        (["--devices", "GPU"], "argument --devices: expected auto or comma-separated GPU indices"),
        (["--devices", "MISSING"], "there is no GPU"),
        (["--gpus-per-unit", "0.5"], "--gpus-per-unit is for --executor ray"),
        (["--gpus-per-unit", "1.5"], "must be a fraction between 0 and 1 or a whole number"),
        (["--executor", "ray", "--devices", "0"], "--devices is for --executor local"),
    ],
    ids=["no-workers", "devices-not-numbers", "missing-device", "gpus-without-ray", "gpus-fraction", "ray-devices"],
)
def test_bad_execution_flags_are_one_line_exit_2_and_write_nothing(
    flags: list[str], message: str, tmp_path: Path, capsys
) -> None:
    flags = [str(missing_gpu()) if f == "MISSING" else f for f in flags]
    out = tmp_path / "run"
    argv = ["--preset", "smoke", "--models", "ae", "--out", str(out), *flags]
    assert exit_code(lambda: main(argv)) == 2
    assert_one_error_line(capsys.readouterr().err, message)
    assert not out.exists()


def test_ray_executor_without_ray_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # ``import ray`` raises ImportError
    out = tmp_path / "run"
    argv = ["--preset", "smoke", "--models", "ae", "--executor", "ray", "--out", str(out)]
    assert exit_code(lambda: main(argv)) == 2
    assert_one_error_line(capsys.readouterr().err, 'needs Ray, an optional extra: pip install -e ".[ray]"')
    assert not out.exists()


# -- devices and progress, without a GPU -------------------------------------------------------


def test_workers_take_the_devices_in_turn_with_a_share_of_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    """Five workers on GPUs 0 and 1: slots alternate, three share GPU 0 and two GPU 1, each
    with its share of the GPU's memory; indices map through a CUDA_VISIBLE_DEVICES given."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,6")
    monkeypatch.delenv("XLA_PYTHON_CLIENT_MEM_FRACTION", raising=False)
    local = LocalExecutor(5, (0, 1))
    assert local.slots == [0, 1, 0, 1, 0]
    on_0, on_1 = local.environment(0), local.environment(1)
    assert on_0["CUDA_VISIBLE_DEVICES"] == "4"
    assert on_1["CUDA_VISIBLE_DEVICES"] == "6"
    assert float(on_0["XLA_PYTHON_CLIENT_MEM_FRACTION"]) == pytest.approx(0.9 / 3, abs=1e-3)
    assert float(on_1["XLA_PYTHON_CLIENT_MEM_FRACTION"]) == pytest.approx(0.9 / 2, abs=1e-3)
    assert on_0["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"
    assert gpu_memory_env(1.0) == {}  # a GPU of its own: the backend's defaults
    assert "CUDA_VISIBLE_DEVICES" in LocalExecutor(1, ()).environment(None)  # the CPU: left as it is


def test_driver_settings_do_not_reach_the_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    """The driver grows its GPU memory on demand; its workers get the backend's defaults,
    unless the user set the variable; nothing stays set once the run is over."""
    monkeypatch.delenv("XLA_PYTHON_CLIENT_PREALLOCATE", raising=False)
    monkeypatch.setenv("TF_FORCE_GPU_ALLOW_GROWTH", "false")
    with executors.driver_environment():
        assert os.environ["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false"
        env = executors.worker_environment()
        assert "XLA_PYTHON_CLIENT_PREALLOCATE" not in env
        assert env["TF_FORCE_GPU_ALLOW_GROWTH"] == "false"  # the user's choice
    assert "XLA_PYTHON_CLIENT_PREALLOCATE" not in os.environ
    with executors.driver_environment(enabled=False):  # one process: nothing to share
        assert "XLA_PYTHON_CLIENT_PREALLOCATE" not in os.environ


def test_grid_progress_counts_and_estimates_the_time_left() -> None:
    """Counts, and the time left from the seconds per unit of work of the finished units: a
    unit of twice the work (FLOPs) is expected to take twice as long."""
    now = [0.0]
    work = {"a": 1.0, "b": 1.0, "c": 2.0, "d": 2.0}
    progress = GridProgress(work, done=1, slots=2, clock=lambda: now[0])
    assert progress.line() == "[grid] 1 done, 0 running, 0 failed, 4 left, time left unknown"
    progress.start("a")
    progress.start("b")
    now[0] = 60.0
    assert progress.finish("a", ok=True) == 60.0
    progress.start("c")
    now[0] = 90.0
    progress.finish("b", ok=False)  # 150 s for 2 units of work: 75 s each
    # Left: d (150 s) and c, 30 s into its 150 s; two at a time.
    assert progress.seconds_left() == pytest.approx((150 + 120) / 2)
    assert progress.line() == "[grid] 2 done, 1 running, 1 failed, 1 left, ~2 min left"
    progress.start("d")
    now[0] = 400.0
    progress.finish("c", ok=True)
    progress.finish("d", ok=True)
    assert progress.line() == "[grid] 4 done, 0 running, 1 failed, 0 left"
    before_any = GridProgress({"x": 4.0, "y": 2.0}, slots=1, seconds_per_work=10.0, clock=lambda: 0.0)
    assert before_any.line().endswith("~60 s left")  # from an earlier run's throughput
