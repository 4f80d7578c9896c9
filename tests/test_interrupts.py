"""Ctrl-C is never lost: a SIGINT whose ``KeyboardInterrupt`` Python drops (raised inside a
garbage-collector callback, as JAX registers one) still stops the run at the next safe point."""

from __future__ import annotations

import gc
import os
import signal
import sys

import pytest

from benchmark.interrupts import interruptible, raise_if_interrupted
from benchmark.running.train import StopOnInterrupt


def sigint_inside_a_gc_callback() -> None:
    """Deliver SIGINT while Python runs a gc callback: its exception is printed and dropped."""

    def callback(phase: str, info: dict) -> None:
        if phase == "start":
            os.kill(os.getpid(), signal.SIGINT)
            sum(range(1000))  # bytecode after the signal, where Python runs the handler

    gc.callbacks.append(callback)
    try:
        gc.collect()
    finally:
        gc.callbacks.remove(callback)


def test_a_sigint_dropped_in_a_gc_callback_is_raised_at_the_next_check(monkeypatch) -> None:
    dropped: list = []
    monkeypatch.setattr(sys, "unraisablehook", dropped.append)  # where Python reports it
    with interruptible():
        sigint_inside_a_gc_callback()  # returns: the KeyboardInterrupt was swallowed
        assert [d.exc_type for d in dropped] == [KeyboardInterrupt]
        with pytest.raises(KeyboardInterrupt):
            raise_if_interrupted()
        with pytest.raises(KeyboardInterrupt):
            StopOnInterrupt().on_train_batch_end(0)
    raise_if_interrupted()  # forgotten on leaving the block


def test_the_previous_handler_is_restored_and_nothing_is_remembered_without_a_signal() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with interruptible((signal.SIGINT, signal.SIGTERM)):
        assert signal.getsignal(signal.SIGTERM) is not before
        raise_if_interrupted()  # no signal yet: nothing to raise
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
            sum(range(1000))
    assert signal.getsignal(signal.SIGTERM) is before
    raise_if_interrupted()
