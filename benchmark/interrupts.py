"""Ctrl-C (and a worker's SIGTERM) that cannot be lost.

Python raises ``KeyboardInterrupt`` wherever the main thread is when SIGINT arrives. When that
is a callback Python runs on its own (a garbage-collector hook, a finalizer), the exception
is printed as "Exception ignored in ..." and dropped, and the run goes on as if no key had
been pressed. JAX registers such a hook, and TensorFlow imports JAX when it is installed.
So the handler installed here also remembers the signal, and the long loops (training
batches, units of a grid) call ``raise_if_interrupted`` where raising is safe.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_pending: set[int] = set()  # the signals received inside ``interruptible``; process-wide, as signals are


def _interrupt(signum: int, frame: object) -> None:
    _pending.add(signum)
    raise KeyboardInterrupt


@contextmanager
def interruptible(signals: tuple[int, ...] = (signal.SIGINT,)) -> Iterator[None]:
    """Within the block, each of ``signals`` raises ``KeyboardInterrupt`` and is remembered
    for ``raise_if_interrupted``. The previous handlers are restored, and the memory cleared,
    on leaving. Outside the main thread, where Python allows no handler, it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _interrupt) for s in signals}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        _pending.difference_update(signals)


def raise_if_interrupted() -> None:
    """Raise ``KeyboardInterrupt`` if a signal arrived inside ``interruptible``, even one whose
    exception was swallowed where it landed."""
    if _pending:
        raise KeyboardInterrupt
