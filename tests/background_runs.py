"""Runs of ``run_all.py`` in the background, for tests that interrupt, kill or watch them."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def start(argv: list[str], out: Path, env: dict[str, str]) -> subprocess.Popen:
    """``run_all.py argv --out out`` in a subprocess, its output going to ``out``'s sibling log."""
    with open(out.parent / f"{out.name}.log", "w") as log:  # the child keeps its own copy
        # SIGINT as a terminal delivers it: a shell that starts jobs in the background (as CI
        # scripts may) leaves it ignored, and an ignored SIGINT stays ignored in the child.
        return subprocess.Popen([sys.executable, "run_all.py", *argv, "--out", str(out)], cwd=ROOT,
                                env=env, stdout=log, stderr=subprocess.STDOUT, text=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip


def wait_for(condition: Callable[[], bool], process: subprocess.Popen, timeout: float = 240) -> None:
    """Poll ``condition`` while ``process`` runs; fail if it ends or time runs out first."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, f"the run ended (status {process.returncode}) too early"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
