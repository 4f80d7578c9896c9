"""Progress of a grid whose units run side by side: one line per change,
``[grid] 3 done, 2 running, 1 failed, 6 left, ~4 min left``."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


def short_duration(seconds: float) -> str:
    """``~40 s``, ``~4 min``, ``~1.5 h``."""
    if seconds < 90:
        return f"~{max(seconds, 1):.0f} s"
    if seconds < 5400:
        return f"~{seconds / 60:.0f} min"
    return f"~{seconds / 3600:.1f} h"


@dataclass
class GridProgress:
    """Counts of a grid's units and an estimate of the time left.

    The estimate is the mean wall time of the units finished so far in this run (start of
    their process to its end), applied to the units left and to those running for less than
    that, spread over the units that run at once (``slots``; None: as many as are running).
    Before any unit has finished it is ``unit_seconds`` (an estimate from the units' FLOPs),
    or unknown.
    """

    left: int  # units to train, not started
    done: int = 0  # complete, in this run or before
    failed: int = 0
    slots: int | None = None
    unit_seconds: float | None = None  # the estimate of one unit before any has finished
    started: dict[str, float] = field(default_factory=dict)  # running unit -> start time
    durations: list[float] = field(default_factory=list)
    clock: Callable[[], float] = time.monotonic

    def start(self, unit_id: str) -> None:
        self.left -= 1
        self.started[unit_id] = self.clock()

    def finish(self, unit_id: str, ok: bool) -> float:
        """Record the end of ``unit_id``; returns its wall time in seconds."""
        seconds = self.clock() - self.started.pop(unit_id)
        self.durations.append(seconds)
        if ok:
            self.done += 1
        else:
            self.failed += 1
        return seconds

    def seconds_left(self) -> float | None:
        per_unit = sum(self.durations) / len(self.durations) if self.durations else self.unit_seconds
        if per_unit is None:
            return None
        now = self.clock()
        work = self.left * per_unit + sum(max(per_unit - (now - t), 0.0) for t in self.started.values())
        at_once = max(1, min(self.slots or len(self.started), self.left + len(self.started)))
        return work / at_once

    def line(self) -> str:
        counts = f"[grid] {self.done} done, {len(self.started)} running, {self.failed} failed, {self.left} left"
        if not self.left and not self.started:
            return counts
        seconds = self.seconds_left()
        return f"{counts}, {short_duration(seconds) + ' left' if seconds is not None else 'time left unknown'}"
