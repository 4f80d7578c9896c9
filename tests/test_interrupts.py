"""Ctrl-C is never lost: a SIGINT whose ``KeyboardInterrupt`` Python drops (raised inside a
garbage-collector callback, as JAX registers one) still stops the run at the next safe point."""

from __future__ import annotations

import gc
import os
import signal
import sys

import keras
import numpy as np
import pytest

from benchmark.interrupts import interruptible, raise_if_interrupted
from benchmark.running.train import EpochRecorder, StopOnInterrupt, training_callbacks


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


def test_a_unit_fit_stops_after_the_batch_in_which_the_signal_was_dropped() -> None:
    """The callbacks of a unit's ``fit`` (``training_callbacks``) check after every batch."""
    batches: list[int] = []

    class DropASigintInBatchTwo(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            batches.append(batch)
            if batch == 1:
                sigint_inside_a_gc_callback()

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    callbacks = [DropASigintInBatchTwo(), *training_callbacks(EpochRecorder(np.zeros((1, 2)), set()))]
    with interruptible(), pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "unraisablehook", lambda unraisable: None)
        with pytest.raises(KeyboardInterrupt):
            model.fit(np.zeros((40, 2)), np.zeros((40, 1)), batch_size=4, epochs=1, verbose=0, callbacks=callbacks)
    assert batches == [0, 1]
