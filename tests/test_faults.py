"""Fault injection: bad data files, a busy or unusable output folder, a diverging model, files
cut short by a killed process, and checkpoints that must not be trusted.

Each fault must end in a clear message and, where the input is bad, exit status 2 with
nothing written; a fault inside one unit must not stop the others.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmark.cli import main
from benchmark.data.datasets import load_digits
from benchmark.errors import UsageError
from benchmark.io import atomic_path, read_json, run_lock, write_atomic
from benchmark.running import unit
from benchmark.running.config import UnitConfig

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("VAEBENCH_DATA_DIR", "/work/shared/data"))
#: The smallest file of the MNIST set: a cheap copy to damage.
LABELS = "t10k-labels-idx1-ubyte.gz"


def exit_code(call: Callable[[], int]) -> int:
    try:
        return call()
    except SystemExit as exc:
        return int(exc.code)


def assert_one_error_line(err: str, *fragments: str) -> None:
    """stderr is one ``run_all.py: error:`` line holding every fragment; no traceback."""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("run_all.py: error: ")
    for fragment in fragments:
        assert fragment in lines[0]


# -- bad data -----------------------------------------------------------------------------


@pytest.fixture
def mnist_copy(tmp_path: Path) -> Path:
    """A writable copy of the MNIST folder (symlinks for the large files, which stay intact)."""
    if not (SHARED_DATA / "mnist").is_dir():
        pytest.skip("no MNIST files (VAEBENCH_DATA_DIR)")
    root = tmp_path / "data"
    (root / "mnist").mkdir(parents=True)
    for source in (SHARED_DATA / "mnist").iterdir():
        target = root / "mnist" / source.name
        if source.name == LABELS:
            shutil.copyfile(source, target)
        else:
            target.symlink_to(source)
    return root


def flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (flip_a_byte, "is corrupt"),
        (truncate, "is corrupt"),
        (Path.unlink, f"has no mnist/{LABELS}"),
    ],
    ids=["flipped-byte", "truncated", "missing"],
)
def test_damaged_data_file_is_one_line_exit_2_and_writes_nothing(
    damage: Callable[[Path], None], message: str, mnist_copy: Path, tmp_path: Path, capsys
) -> None:
    """A changed, cut or missing IDX file is named; no output folder appears."""
    damage(mnist_copy / "mnist" / LABELS)
    out = tmp_path / "run"
    argv = ["--datasets", "mnist", "--models", "ae", "--data-dir", str(mnist_copy), "--out", str(out)]
    assert exit_code(lambda: main(argv)) == 2
    assert_one_error_line(capsys.readouterr().err, message)
    assert not out.exists()


# -- the output folder ------------------------------------------------------------------------

HOLD_LOCK = """
import sys, time
from pathlib import Path
from benchmark.io import run_lock
with run_lock(Path(sys.argv[1])):
    print("locked", flush=True)
    time.sleep(120)
"""


def test_second_process_on_the_same_output_folder_exits_2(tmp_path: Path) -> None:
    """While another process holds the run lock, a second run (a process of its own, as a
    user would start it) says so in one line on stderr, exits 2 and writes nothing."""
    out = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(out)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = sorted(p.name for p in out.iterdir())
        argv = ["--preset", "smoke", "--models", "ae", "--quiet", "--out", str(out)]
        done = subprocess.run([sys.executable, "run_all.py", *argv], cwd=ROOT, capture_output=True,
                              text=True, timeout=120)  # fmt: skip
        assert done.returncode == 2
        assert_one_error_line(done.stderr, "another vaebench process", f"pid {holder.pid}")
        assert sorted(p.name for p in out.iterdir()) == before  # no config.json, no units
    finally:
        holder.kill()
        holder.wait()


def test_lock_is_free_once_its_holder_is_killed(tmp_path: Path) -> None:
    """``kill -9`` of the holder releases the lock: no stale lock blocks the next run."""
    out = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(out)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(UsageError, match="another vaebench process"), run_lock(out):
        pass
    holder.kill()  # SIGKILL
    holder.wait()
    with run_lock(out):
        assert (out / ".lock").read_text().strip() == str(os.getpid())


@pytest.mark.parametrize("where", ["file", "below-a-file"])
def test_unusable_output_folder_is_one_line_exit_2(where: str, tmp_path: Path, capsys) -> None:
    """An output path that is a file, or lies below one, is refused before any training."""
    blocker = tmp_path / "blocker"
    blocker.write_text("a file")
    out = blocker if where == "file" else blocker / "run"
    argv = ["--preset", "smoke", "--models", "ae", "--out", str(out)]
    assert exit_code(lambda: main(argv)) == 2
    assert_one_error_line(capsys.readouterr().err, str(out))
    assert blocker.read_text() == "a file"


def test_unimportable_plugin_is_one_line_exit_2(tmp_path: Path, capsys) -> None:
    argv = ["--plugins", "vaebench_no_such_plugin", "--preset", "smoke", "--out", str(tmp_path / "run")]
    assert exit_code(lambda: main(argv)) == 2
    assert_one_error_line(capsys.readouterr().err, "cannot import plugin 'vaebench_no_such_plugin'")
    assert not (tmp_path / "run").exists()


# -- files cut short ------------------------------------------------------------------------


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    """What a process killed mid-write leaves: the old content, never half a new one."""
    path = tmp_path / "result.json"
    write_atomic(path, '{"status": "ok"}\n')
    with pytest.raises(RuntimeError), atomic_path(path) as tmp:
        tmp.write_text('{"status": "o')  # half written, then the writer dies
        raise RuntimeError("killed")
    assert read_json(path) == {"status": "ok"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.json"]


def test_stale_temporaries_of_a_killed_run_are_removed_under_the_lock(tmp_path: Path) -> None:
    out = tmp_path / "run"
    stale = out / ".results.csv.x1y2.tmp"
    stale.mkdir(parents=True)
    (stale / "results.csv").write_text("half")
    with run_lock(out):
        assert not stale.exists()


def test_written_files_follow_the_umask(tmp_path: Path) -> None:
    """Results are readable by the group like any file, not owner-only like a temporary."""
    path = tmp_path / "summary.md"
    write_atomic(path, "x")
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def unit_with(tmp_path: Path, row: dict | str | None, files: tuple[str, ...]) -> Path:
    """A unit folder holding ``files`` and a ``result.json`` of ``row``."""
    unit_dir = tmp_path / "ae-digits-s0-00000000"
    unit_dir.mkdir()
    for name in files:
        (unit_dir / name).write_text("x")
    if row is not None:
        (unit_dir / "result.json").write_text(row if isinstance(row, str) else json.dumps(row))
    return unit_dir


OK_ROW = {"status": "ok", "unit_id": "ae-digits-s0-00000000"}
OTHER_FILES = ("config.json", "history.csv", "model.keras", "arrays.npz")


@pytest.mark.parametrize(
    ("row", "files", "complete"),
    [
        (OK_ROW, OTHER_FILES, True),
        (OK_ROW, ("config.json", "history.csv", "arrays.npz"), False),  # model.keras lost
        ({**OK_ROW, "status": "failed"}, OTHER_FILES, False),
        ({**OK_ROW, "unit_id": "ae-digits-s0-11111111"}, OTHER_FILES, False),  # copied from elsewhere
        ('{"status": "ok", "unit_', OTHER_FILES, False),  # cut short by hand or by a disk
        (None, OTHER_FILES, False),
    ],
    ids=["complete", "no-model", "failed", "other-unit", "truncated-json", "no-result"],
)
def test_only_a_whole_unit_counts_as_complete(row, files, complete: bool, tmp_path: Path) -> None:
    unit_dir = unit_with(tmp_path, row, files)
    assert (unit.completed(unit_dir) is not None) == complete


# -- a diverging model ------------------------------------------------------------------------

NAN_PLUGIN = '''
"""A test model whose loss turns NaN at its fourth training step."""

from keras import ops

from models.ae import AE
from models.registry import register_model


class NaNAfterThreeSteps(AE):
    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        loss = super().compute_loss(x, y, y_pred, sample_weight, training)
        return ops.where(self.optimizer.iterations >= 3, float("nan"), loss)


@register_model
def nan_after_3_steps(image_shape, latent_dim=16, **config):
    return NaNAfterThreeSteps(image_shape, latent_dim, **config)
'''


def test_diverging_unit_fails_alone(tmp_path: Path, run_env: dict[str, str]) -> None:
    """A NaN loss fails its unit (named, with the message); the next unit completes; exit 1."""
    (tmp_path / "nan_plugin.py").write_text(textwrap.dedent(NAN_PLUGIN))
    env = {**run_env, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    out = tmp_path / "run"
    argv = ["--plugins", "nan_plugin", "--models", "nan_after_3_steps,ae", "--preset", "smoke",
            "--epochs", "1", "--quiet", "--out", str(out)]  # fmt: skip
    done = subprocess.run(
        [sys.executable, "run_all.py", *argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 1, done.stderr
    results = pd.read_csv(out / "results.csv").set_index("model")
    assert results.loc["ae", "status"] == "ok"
    assert results.loc["nan_after_3_steps", "status"] == "failed"
    error = results.loc["nan_after_3_steps", "error"]
    assert "NonFiniteLoss: non-finite loss (nan) at epoch 1, batch 4" in error
    failed_id = results.loc["nan_after_3_steps", "unit_id"]
    assert f"[failed] {failed_id}: {error}" in done.stderr
    assert f"1 unit(s) failed: {failed_id}" in done.stderr
    assert "Traceback" not in done.stderr  # it is in the unit's traceback.txt instead
    assert "NonFiniteLoss" in (out / "units" / failed_id / "traceback.txt").read_text()
    assert read_json(out / "config.json")["run"]["plugins"] == ["nan_plugin"]


# -- checkpoints that must not be trusted ---------------------------------------------------


class Payload:
    """Unpickling this creates a marker file: proof that a pickle was loaded."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_checkpoint_with_a_pickle_is_not_loaded(tmp_path: Path, capsys) -> None:
    """A checkpoint whose arrays hold a pickle (code to run) is discarded, never unpickled."""
    config = UnitConfig("ae", "digits", 0, epochs=2, latent_dim=4, batch_size=64,
                        train_limit=256, test_limit=64, backend="tensorflow")  # fmt: skip
    unit_dir = tmp_path / config.unit_id
    unit_dir.mkdir()
    marker = tmp_path / "unpickled"
    (unit_dir / "checkpoint.json").write_text(json.dumps(
        {"unit_id": config.unit_id, "epochs_done": 1, "history": [{"epoch": 0, "loss": 1.0}],
         "epoch_seconds": [1.0], "train_seconds": 1.0}))  # fmt: skip
    np.savez(unit_dir / "checkpoint-e0001.npz", variable_0=np.array([Payload(str(marker))], dtype=object))
    (unit_dir / "checkpoint-e0001.keras").write_bytes(b"not a zip file")
    data = load_digits().subset(256, 64)
    row = unit.train_unit(config, data, unit_dir, verbose=0)
    assert not marker.exists()
    assert "[checkpoint]" in capsys.readouterr().out
    assert row["status"] == "ok" and row["resumed_from_epoch"] == 0
    assert len(pd.read_csv(unit_dir / "history.csv")) == 2  # trained both epochs afresh
    assert not (unit_dir / "checkpoint.json").exists()
