"""Files of a run: atomic writes and the lock that keeps one process per output directory."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.errors import UsageError

#: Suffix of the hidden temporary folders of ``atomic_path``.
TMP_SUFFIX = ".tmp"

#: The lock file inside an output folder; it holds the writing process's id.
LOCK_NAME = ".lock"


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename: all or nothing."""
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        f.write(text)


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path to write ``path``'s content to; renamed onto ``path`` on success.

    The temporary file has ``path``'s name (Keras checks the ``.keras`` suffix) inside a hidden
    sibling folder, so a reader, or a run killed half-way, never sees a partial ``path``; a
    failure leaves no temporary behind. The file gets the usual permissions (umask), not the
    owner-only ones of ``tempfile``.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX))
    tmp = tmp_dir / path.name
    try:
        yield tmp
        _fsync(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def remove_stale_temporaries(folder: Path) -> None:
    """Delete what ``atomic_path`` left in ``folder`` when a process was killed mid-write."""
    for stale in folder.glob(f".*{TMP_SUFFIX}"):
        shutil.rmtree(stale, ignore_errors=True)


def _fsync(path: Path) -> None:
    # Flush to disk before the rename, so the new name never points at unwritten blocks.
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Read once at import: os.umask can only be read by setting it, which is not thread-safe.
_UMASK = _current_umask()


def write_json(path: Path, obj: Any) -> None:
    write_atomic(path, json.dumps(obj, indent=2, sort_keys=False, default=_jsonable) + "\n")


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def read_json_or_none(path: Path) -> Any:
    """``read_json(path)``, or None when the file is missing or not valid JSON."""
    try:
        return read_json(path)
    except (OSError, ValueError):
        return None


def save_arrays(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Save plain numeric arrays atomically; ``load_arrays`` reads them back."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, **arrays)


def load_arrays(path: Path) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` file; refuses pickled objects (they could run code)."""
    with np.load(path, allow_pickle=False) as npz:
        return {key: npz[key] for key in npz.files}


def save_model(model: Any, path: Path) -> None:
    """``model.save(path)`` (a ``.keras`` file), atomically."""
    with atomic_path(path) as tmp:
        model.save(tmp)


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON-serializable: {type(value).__name__}")


@contextmanager
def waiting_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on the file ``path`` (created if absent) for the block,
    waiting while another process holds it; the system drops it if its holder dies."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


@contextmanager
def run_lock(out: Path) -> Iterator[None]:
    """Hold ``out/.lock`` for the duration; a second process gets a UsageError at once.

    The lock is ``flock``'s, so the system drops it when its holder dies, even by ``kill -9``:
    a killed run never leaves a stale lock behind.
    """
    if out.exists() and not out.is_dir():
        raise UsageError(f"output directory {str(out)!r} is a file, not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        handle = open(out / LOCK_NAME, "a+")  # noqa: SIM115  (held for the whole block)
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise UsageError(f"output directory {str(out)!r} is not writable: {reason}") from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _lock_holder(handle)
        handle.close()
        raise UsageError(
            f"another vaebench process{holder} is writing {str(out)!r}; wait for it to finish"
        ) from None
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        remove_stale_temporaries(out)
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def _lock_holder(handle: Any) -> str:
    """`` (pid N)`` from a held lock file, or nothing if it does not say."""
    handle.seek(0)
    pid = handle.read().strip()
    return f" (pid {pid})" if pid.isdigit() else ""
