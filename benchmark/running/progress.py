"""Progress of a grid whose units run side by side: one line per change,
``[grid] 3 done, 2 running, 1 failed, 6 left, ~4 min left``."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


def short_duration(seconds: float, about: str = "~") -> str:
    """``~40 s``, ``~4 min``, ``~1.5 h`` (``about`` in front)."""
    if seconds < 90:
        return f"{about}{max(seconds, 1):.0f} s"
    if seconds < 5400:
        return f"{about}{seconds / 60:.0f} min"
    return f"{about}{seconds / 3600:.1f} h"


@dataclass
class GridProgress:
    """Counts of a grid's units and an estimate of the time left.

    Each unit to train has a ``work``: its training FLOPs (epochs × images × FLOPs per
    image), so that a VAE-GAN counts three times a VAE. The seconds per unit of work are
    measured on the units finished in this run (wall time of their process, start to end),
    before that ``seconds_per_work`` (from the throughput measured in an earlier run), else
    unknown. The time left is the work not done at that rate (a running unit's part done
    taken from its elapsed time), spread over the units that run at once (``slots``).
    """

    work: dict[str, float]  # unit to train -> its work
    done: int = 0  # complete, in this run or before
    failed: int = 0
    slots: int = 1
    seconds_per_work: float | None = None
    clock: Callable[[], float] = time.monotonic
    started: dict[str, float] = field(default_factory=dict)  # running unit -> start time
    finished: list[tuple[float, float]] = field(default_factory=list)  # (work, seconds)

    def __post_init__(self):
        self.left = len(self.work)

    def start(self, unit_id: str) -> None:
        self.left -= 1
        self.started[unit_id] = self.clock()

    def finish(self, unit_id: str, ok: bool) -> float:
        """Record the end of ``unit_id``; returns its wall time in seconds."""
        seconds = self.clock() - self.started.pop(unit_id)
        self.finished.append((self.work[unit_id], seconds))
        if ok:
            self.done += 1
        else:
            self.failed += 1
        return seconds

    def seconds_left(self) -> float | None:
        work_done = sum(w for w, _ in self.finished)
        rate = sum(s for _, s in self.finished) / work_done if work_done > 0 else self.seconds_per_work
        if rate is None:
            return None
        now = self.clock()
        running = sum(max(self.work[u] * rate - (now - t), 0.0) for u, t in self.started.items())
        queued = sum(self.work.values()) - work_done - sum(self.work[u] for u in self.started)
        at_once = max(1, min(self.slots, self.left + len(self.started)))
        return (queued * rate + running) / at_once

    def line(self) -> str:
        counts = f"[grid] {self.done} done, {len(self.started)} running, {self.failed} failed, {self.left} left"
        if not self.left and not self.started:
            return counts
        seconds = self.seconds_left()
        return f"{counts}, {short_duration(seconds) + ' left' if seconds is not None else 'time left unknown'}"
