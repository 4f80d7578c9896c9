"""``vaebench fetch``: downloads checked against the SHA-256 table, the default data folder,
and one line with exit status 2 for a server that is corrupt or down."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from benchmark.cli import main
from benchmark.data import datasets as data
from benchmark.data import fetch, idx

FILES = tuple(idx.IDX_FILES.values())


def _idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return gzip.compress(header + array.astype(np.uint8).tobytes(), mtime=0)


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Path]]:
    """A local HTTP server of tiny fake ``mnist`` IDX files laid out like a data folder,
    with the SHA-256 table patched to theirs: ``(base URL, served folder)``."""
    root = tmp_path / "served"
    (root / "mnist").mkdir(parents=True)
    rng = np.random.default_rng(0)
    n = {"train": 50, "t10k": 20}
    table = {}
    for filename in FILES:
        split, kind = filename.split("-")[:2]
        shape = (n[split], 28, 28) if kind == "images" else (n[split],)
        blob = _idx_bytes(rng.integers(0, 256, shape))
        (root / "mnist" / filename).write_bytes(blob)
        table[filename] = hashlib.sha256(blob).hexdigest()
    monkeypatch.setitem(idx.SHA256, "mnist", table)
    handler = functools.partial(QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # no request log on stderr
        pass


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty home and cache folder, and no data folder in the environment."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv(data.DATA_DIR_ENV, raising=False)
    return tmp_path


def test_fetch_lands_verified_files_in_the_data_dir(served, tmp_path, capsys):
    url, _ = served
    target = tmp_path / "data"
    assert main(["fetch", "mnist", "--base-url", url, "--data-dir", str(target)]) == 0
    out = capsys.readouterr().out
    assert str(target) in out
    assert sorted(p.name for p in (target / "mnist").iterdir()) == sorted(FILES)
    loaded = data.load_dataset("mnist", target)
    assert len(loaded.x_train) + loaded.n_val == 50 and len(loaded.x_test) == 20
    # Repeated: nothing downloaded again, the files are checked in place.
    assert main(["fetch", "mnist", "--base-url", url, "--data-dir", str(target)]) == 0
    assert "already in" in capsys.readouterr().out


def test_default_data_folder_is_the_user_cache(served, home, capsys):
    url, _ = served
    assert data.default_data_dir() == home / "cache" / "vaebench" / "data"
    assert main(["fetch", "mnist", "--base-url", url]) == 0
    assert (home / "cache" / "vaebench" / "data" / "mnist" / FILES[0]).is_file()
    assert "runs read it by default" in capsys.readouterr().out
    # A run with neither flag nor variable reads it there.
    assert data.load_dataset("mnist").source == str(home / "cache" / "vaebench" / "data" / "mnist")


def test_default_data_folder_without_xdg_is_under_home(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert data.default_data_dir() == tmp_path / ".cache" / "vaebench" / "data"


def test_a_corrupted_file_is_refused_and_nothing_is_left(served, tmp_path, capsys):
    url, root = served
    victim = root / "mnist" / "train-labels-idx1-ubyte.gz"
    blob = bytearray(victim.read_bytes())
    blob[-1] ^= 0xFF
    victim.write_bytes(bytes(blob))
    target = tmp_path / "data"
    assert main(["fetch", "mnist", "--base-url", url, "--data-dir", str(target)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "SHA-256" in err and "Traceback" not in err
    assert not target.exists()  # not even the folders it would have made


def test_a_server_that_is_down_fails_fast_with_one_line(tmp_path, capsys):
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    target = tmp_path / "data"
    start = time.monotonic()
    code = main(["fetch", "--base-url", f"http://127.0.0.1:{port}", "--data-dir", str(target)])
    assert time.monotonic() - start < 10
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "cannot download" in err and "Traceback" not in err
    assert not target.exists()


def test_a_server_that_never_answers_times_out(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(fetch, "TIMEOUT_SECONDS", 0.5)
    with socket.socket() as listener:  # accepts connections (the backlog) but never replies
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        assert main(["fetch", "mnist", "--base-url", url, "--data-dir", str(tmp_path / "d")]) == 2
    assert "no answer within 0.5 s" in capsys.readouterr().err


def test_unknown_dataset_is_one_line(tmp_path, capsys):
    assert main(["fetch", "digits", "--data-dir", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "mnist, fashion_mnist" in err


def test_a_run_without_data_and_without_network_says_how_to_fetch(home, monkeypatch, capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setitem(idx.SOURCES, "mnist", f"http://127.0.0.1:{port}/mnist/")
    out = home / "run"
    code = main(["--datasets", "mnist", "--models", "ae", "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 2
    assert "downloading it once" in captured.out  # said on screen before trying
    assert len(captured.err.strip().splitlines()) == 1 and "vaebench fetch mnist" in captured.err
    assert not out.exists() and not (home / "cache" / "vaebench" / "data" / "mnist").exists()


def test_a_run_fetches_on_first_use(served, home, monkeypatch, capsys):
    url, _ = served
    monkeypatch.setitem(idx.SOURCES, "mnist", f"{url}/mnist/")
    loaded = data.load_dataset("mnist")
    assert "downloading it once" in capsys.readouterr().out
    assert len(loaded.x_test) == 20
    assert (home / "cache" / "vaebench" / "data" / "mnist" / FILES[0]).is_file()
