"""Timing training the way a unit trains: the harness's model, ``fit`` call, callbacks and batch
feeding, on synthetic images, with configurations interleaved and summarised by their median.

Used by ``--precision auto`` (``benchmark.running.autoprecision``) and by the speed benchmark
(``benchmark.speed``), so that both measure what ``train.fit_unit`` runs.

Timing on a shared machine is noisy (the same command has given 9,437 and then 4,951
images/s): configurations are therefore timed in turns (A B, B A, A B, ...), so that a slow
spell slows all of them, and compared through medians and their spread, never single runs.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import keras
import numpy as np

from benchmark.running.device import epoch_data, to_device


@contextmanager
def preserved_random_state() -> Iterator[None]:
    """Python's, NumPy's and Keras' global random state restored after the block.

    Building and training throwaway models draws from Keras' global seed generator (weight
    initializers without a seed); restored, whatever runs next draws what it would have.
    """
    from keras.src.backend.common import global_state
    from keras.src.random.seed_generator import GLOBAL_SEED_GENERATOR
    from keras.src.utils.rng_utils import GLOBAL_RANDOM_SEED

    saved_python, saved_numpy = random.getstate(), np.random.get_state()
    saved_keras = {
        name: global_state.get_global_attribute(name)
        for name in (GLOBAL_SEED_GENERATOR, GLOBAL_RANDOM_SEED)
    }
    seed_state = None
    generator = saved_keras[GLOBAL_SEED_GENERATOR]
    if generator is not None:
        seed_state = keras.ops.convert_to_numpy(generator.state)
    try:
        yield
    finally:
        random.setstate(saved_python)
        np.random.set_state(saved_numpy)
        for name, value in saved_keras.items():
            global_state.set_global_attribute(name, value)
        if generator is not None:
            generator.state.assign(seed_state)


def synthetic_images(n: int, image_shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """``n`` uniform images (n, H, W, C) in [0, 1), float32, from a generator of their own.

    Training costs the same FLOPs on these as on real images.
    """
    return np.random.default_rng(seed).random((n, *image_shape), dtype=np.float32)


def timed_epoch(model: keras.Model, x, batch_size: int) -> tuple[float, float]:
    """One epoch of ``x`` (from ``device.to_device``) as ``train.fit_unit`` trains one.

    The same ``fit`` arguments, callbacks (``train.training_callbacks``, whose non-finite
    check reads the loss after every batch) and batch feeding (``device.epoch_data``); the
    time is a unit's own ``EpochRecorder`` measure. Returns (seconds, final loss).
    """
    from benchmark.running.train import EpochRecorder, training_callbacks

    recorder = EpochRecorder(x[:0], set())
    history = model.fit(
        **epoch_data(x, np.arange(len(x)), batch_size),
        epochs=1,
        shuffle=False,
        callbacks=training_callbacks(recorder),
        verbose=0,
    )
    return recorder.epoch_seconds[-1], float(history.history["loss"][-1])


@dataclass
class Timings:
    """Images per second of each configuration, one value per round, and what warming up
    (the first epoch: tracing and compiling) cost."""

    rates: dict[str, list[float]]
    first_seconds: dict[str, float]
    steady_seconds: dict[str, float]  # median seconds of a timed epoch
    losses: dict[str, float]
    seconds: float  # wall time of the whole measurement

    def median(self, name: str) -> float:
        return float(np.median(self.rates[name]))

    def spread(self, name: str) -> float:
        """(max - min) / median of ``name``'s rates: 0.05 when its runs lie within 5%."""
        values = self.rates[name]
        return (max(values) - min(values)) / self.median(name)

    def compare(self, name: str, reference: str) -> tuple[float, float]:
        """``paired(rates of name, rates of reference)``."""
        return paired(self.rates[name], self.rates[reference])


def paired(rates: Sequence[float], reference: Sequence[float]) -> tuple[float, float]:
    """(median ratio, half the ratios' range) of two configurations' rates timed in the same
    rounds: the first is faster beyond the noise when the median exceeds 1 by more than the
    half range, slower when it falls short of 1 by more."""
    ratios = [a / b for a, b in zip(rates, reference, strict=True)]
    return float(np.median(ratios)), (max(ratios) - min(ratios)) / 2


def interleaved(
    models: dict[str, keras.Model],
    x: np.ndarray,
    batch_size: int,
    repeats: int,
    *,
    more: Callable[[Timings], bool] | None = None,
    max_repeats: int | None = None,
    host_data: bool = False,
) -> Timings:
    """Time each model of ``models`` (name -> compiled model) on ``x``, in turns.

    Each model first trains one untimed epoch (its compile), then ``repeats`` rounds time
    one epoch of each, the order reversed every round (A B, B A, ...), so that a drift in the
    machine's speed weighs on all alike. While ``more(timings)`` says the result is not yet
    clear, further rounds follow, up to ``max_repeats``. The ratio of two configurations is
    best read round by round (``paired``): each round times them back to back, so a slow spell
    of the machine mostly cancels out. ``host_data`` keeps ``x`` in host memory even where
    the harness would copy it to the device.
    """
    start = time.perf_counter()
    x_fit = x if host_data else to_device(x)
    names = list(models)
    first, losses = {}, {}
    for name in names:
        first[name], losses[name] = timed_epoch(models[name], x_fit, batch_size)
    epochs: dict[str, list[float]] = {name: [] for name in names}
    limit = max(repeats, max_repeats or repeats)
    for round_ in range(limit):
        for name in names if round_ % 2 == 0 else names[::-1]:
            seconds, losses[name] = timed_epoch(models[name], x_fit, batch_size)
            epochs[name].append(seconds)
        timings = Timings(
            rates={n: [len(x) / s for s in epochs[n]] for n in names},
            first_seconds=first,
            steady_seconds={n: float(np.median(epochs[n])) for n in names},
            losses=dict(losses),
            seconds=time.perf_counter() - start,
        )
        if round_ + 1 >= repeats and (more is None or not more(timings)):
            break
    return timings


def spread_words(values: Sequence[float]) -> str:
    """``±3%``: half the range of ``values`` relative to their median."""
    median = float(np.median(values))
    return f"±{50 * (max(values) - min(values)) / median:.0f}%"
