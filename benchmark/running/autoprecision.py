"""``--precision auto``: each model's precision chosen by timing it on this machine.

A CPU flag does not say which precision trains faster: on an AMD EPYC with AVX-512 BF16,
``mixed_bfloat16`` made the VAEs 3-13% faster and vae_gan 5% slower (1,869 against 1,968
images/s), while a Xeon with AMX ran ~1.5x float32 in graph mode. So for every unit with
``auto`` the harness, while it plans the grid, decides (``AutoPrecision.choose``), in order:

1. an earlier unit of the same grid point in the run folder, trained under ``auto``: its
   precision is kept, so that a repeated command finds its complete units (and resumes its
   checkpoints) whatever a new measurement would say, even on another machine;
2. a device on which bfloat16 cannot win: ``float32``, without measuring, so runs there pay
   nothing. A CPU with neither ``amx_bf16`` nor ``avx512_bf16`` has no bfloat16 arithmetic:
   oneDNN converts to float32 and back around every operation (measured ~0.5x float32 on
   such a Xeon); a GPU before compute capability 8.0 has no bfloat16 tensor cores;
3. a plugin model (registered from outside the ``models`` package) whose class does not
   declare ``supports_bfloat16 = True``: ``float32``. A model written for float32 (a
   float32 weight added to a bfloat16 activation) fails under ``mixed_bfloat16``; the
   built-in models are written for it (``tests/test_precision.py``);
4. the decision cached for this machine, backend, model, batch size, image shape and
   compile settings (``precision-auto.json`` in the run's cache folder,
   ``benchmark.scoring.frechet.cache_dir_for``);
5. else a measurement: throwaway models of each precision, built and compiled as the unit's,
   train ``STEPS`` batches per epoch of synthetic images through the harness's own ``fit``
   (``benchmark.running.timing``), ``REPEATS`` rounds in turns. ``mixed_bfloat16`` is chosen
   only when its median images/s beats float32's by more than ``MARGIN`` and by more than
   the spread of the rounds' ratios; else float32. Measured on a 2-core EPYC (TensorFlow, batch 128):
   about 4 s for a VAE and 9 s for vae_gan, most of it the two compiles, once per machine.

The random state is saved and restored around a measurement and the unit seeds its own
training, so measuring changes none of the unit's results (``tests/test_autoprecision.py``).
Each unit's row says what was chosen and why: ``precision_requested``, ``precision_chosen_by``,
``precision_auto_ratio`` (bfloat16 / float32 images/s, where measured) and ``precision_note``.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import platform
from pathlib import Path
from typing import Any

import keras

from benchmark.io import read_json_or_none, write_json
from benchmark.running.config import UnitConfig, grid_point
from benchmark.running.device import Device, detect
from benchmark.running.precision_record import SIDECAR
from benchmark.running.timing import Timings, interleaved, preserved_random_state, synthetic_images

AUTO = "auto"
FLOAT32, BFLOAT16 = "float32", "mixed_bfloat16"

#: bfloat16 must be this much faster (relative, by medians) to be chosen: a smaller gain
#: leaves float32 within 3% of the faster, and float32 needs no care from a model.
MARGIN = 0.03
#: Batches per timed epoch, rounds of timing, and the most rounds when the result is unclear.
STEPS, REPEATS, MAX_REPEATS = 10, 3, 5

#: The cache of measured decisions, in the run's cache folder.
CACHE_FILE = "precision-auto.json"
#: Written into a unit's folder before it trains: how its precision was chosen.


#: Resolves ``auto`` to this precision (``float32`` or ``mixed_bfloat16``) without measuring,
#: on a machine where bfloat16 could win: for test suites and for a choice made once by hand.
AUTO_ENV = "VAEBENCH_AUTO_PRECISION"


def bfloat16_can_win(device: Device) -> tuple[bool, str]:
    """Whether bfloat16 may train faster than float32 on ``device``, and why not if not."""
    if device.fast_bfloat16:
        return True, ""
    if device.kind == "gpu":
        return False, "a GPU before compute capability 8.0 has no bfloat16 tensor cores"
    return False, ("this CPU has neither amx_bf16 nor avx512_bf16: bfloat16 is emulated through "
                   "float32 conversions, slower than float32 (~0.5x measured)")  # fmt: skip


def declares_bfloat16(name: str, model: keras.Model) -> bool:
    """Whether model ``name`` may be built in ``mixed_bfloat16`` by ``auto``.

    The class's ``supports_bfloat16`` attribute where set; else True for a model registered
    from the ``models`` package (built for it and tested so), False for a plugin's.
    """
    declared = getattr(type(model), "supports_bfloat16", None)
    if declared is not None:
        return bool(declared)
    from models.registry import get_factory

    return get_factory(name).__module__.startswith("models.")


def decide(timings: Timings, margin: float = MARGIN) -> tuple[str, float, str]:
    """(precision, bfloat16 / float32 images/s, why) from interleaved timings.

    The ratio is the median of the rounds' ratios (each round times both back to back) and
    the spread half their range: bfloat16 wins when it is faster by more than ``margin``
    and by more than the spread.
    """
    ratio, spread = timings.compare(BFLOAT16, FLOAT32)
    gain = ratio - 1
    words = f"bfloat16 {ratio:.2f}x float32 (±{100 * spread:.0f}% over {len(timings.rates[FLOAT32])} rounds)"
    if gain > margin and gain > spread:
        return BFLOAT16, ratio, f"{words}: faster by more than {100 * margin:.0f}% and the spread"
    if gain > margin:
        return FLOAT32, ratio, f"{words}: the gain is within the noise"
    return FLOAT32, ratio, f"{words}: not faster by more than {100 * margin:.0f}%"


def unclear(timings: Timings, margin: float = MARGIN) -> bool:
    """Whether bfloat16 looks faster by more than ``margin`` but not by more than the spread:
    a few more rounds may settle it."""
    ratio, spread = timings.compare(BFLOAT16, FLOAT32)
    return margin < ratio - 1 <= spread


def measure(
    config: UnitConfig,
    image_shape: tuple[int, ...],
    *,
    steps: int = STEPS,
    repeats: int = REPEATS,
    max_repeats: int = MAX_REPEATS,
) -> Timings:
    """Time ``config``'s model in float32 and mixed_bfloat16, in turns, at its batch size.

    Throwaway models, built and compiled as ``train.build_model`` builds the unit's; the
    global random state is restored afterwards.
    """
    from benchmark.running.train import build_model

    x = synthetic_images(config.batch_size * steps, image_shape)
    with preserved_random_state():
        built = {
            p: build_model(dataclasses.replace(config, precision=p), image_shape)
            for p in (FLOAT32, BFLOAT16)
        }
        return interleaved(
            built, x, config.batch_size, repeats, more=unclear, max_repeats=max_repeats
        )


def machine_key(device: Device, backend: str) -> dict[str, Any]:
    """What the speed of a precision depends on besides the unit: processor, cores, device,
    backend and its version."""
    from importlib import metadata

    from benchmark.running.environment import cpu_cores

    model_name = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model_name = line.partition(":")[2].strip()
                break
    try:
        version = metadata.version(backend)
    except metadata.PackageNotFoundError:
        version = ""
    return {"processor": model_name or platform.processor() or platform.machine(), "cores": cpu_cores(),
            "device": device.kind, "compute_capability": device.compute_capability,
            "bf16_flags": sorted(f for f in device.cpu_flags if "bf16" in f),
            "backend": f"{backend} {version}".strip(), "keras": keras.__version__}  # fmt: skip


def cache_key(config: UnitConfig, image_shape: tuple[int, ...], machine: dict[str, Any],
              code: dict[str, str] | None = None) -> str:  # fmt: skip
    """The cache's key of ``config``'s decision: the machine, the model and its settings,
    the batch size, the image shape, the compile settings and the model's ``code``
    (``identity.code_fingerprint``: a change to the model's code, its train step included,
    may change which precision is faster); not the seed or the data."""
    unit = {"model": config.model, "model_args": config.model_args, "latent_dim": config.latent_dim,
            "batch_size": config.batch_size, "image_shape": list(image_shape), "jit": config.jit,
            "steps_per_execution": config.steps_per_execution, "code": code}  # fmt: skip
    return json.dumps({"machine": machine, "unit": unit}, sort_keys=True, default=str)


def earlier_choices(units_dir: Path) -> dict[str, dict[str, Any]]:
    """The precision records of the units in ``units_dir`` chosen by ``auto``, by their grid
    point with the precision left out (JSON), newest first wins."""
    found: dict[str, tuple[float, dict[str, Any]]] = {}
    if not units_dir.is_dir():
        return {}
    for unit_dir in units_dir.iterdir():
        record, config = (
            read_json_or_none(unit_dir / SIDECAR),
            read_json_or_none(unit_dir / "config.json"),
        )
        if not (isinstance(record, dict) and isinstance(config, dict)) or config.get(
            "precision"
        ) not in (FLOAT32, BFLOAT16):
            continue
        key = _point_without_precision(config)
        mtime = (unit_dir / SIDECAR).stat().st_mtime
        if key not in found or mtime > found[key][0]:
            found[key] = (mtime, {**record, "precision": config["precision"]})
    return {key: record for key, (_, record) in found.items()}


def _point_without_precision(config: dict[str, Any]) -> str:
    point = grid_point(config)
    point.pop("precision", None)
    return json.dumps(point, sort_keys=True, default=str)


class AutoPrecision:
    """Chooses the precision of the ``auto`` units of one run (see the module docstring).

    ``out``: the run folder; ``cache_dir``: the folder of ``CACHE_FILE``; ``device``: where
    the units train (default: ``detect(backend)``, probed on first need).
    """

    def __init__(self, out: Path, backend: str, cache_dir: Path, device: Device | None = None, *,
                 verbose: bool = True):  # fmt: skip
        self.out, self.backend, self.cache_path = Path(out), backend, Path(cache_dir) / CACHE_FILE
        self._device, self.verbose = device, verbose
        self._earlier: dict[str, dict[str, Any]] | None = None
        self._decided: dict[str, tuple[str, dict[str, Any]]] = {}

    @property
    def device(self) -> Device:
        if self._device is None:
            self._device = detect(self.backend)
        return self._device

    def choose(
        self, config: UnitConfig, image_shape: tuple[int, ...]
    ) -> tuple[UnitConfig, dict[str, Any]]:
        """``config`` with its precision resolved, and the record of how (for its row)."""
        if config.precision != AUTO:
            return config, {}
        if self._earlier is None:
            self._earlier = earlier_choices(self.out / "units")
        earlier = self._earlier.get(_point_without_precision(config.to_dict()))
        if earlier is not None:
            record = {**earlier, "precision_chosen_by": "earlier unit"}
            return dataclasses.replace(config, precision=record.pop("precision")), record
        # Within a run the code cannot change: the key leaves it out.
        key = cache_key(config, image_shape, machine_key(self.device, self.backend))
        if key not in self._decided:
            self._decided[key] = self._decide(config, image_shape)
        precision, record = self._decided[key]
        return dataclasses.replace(config, precision=precision), dict(record)

    def _decide(self, config: UnitConfig, image_shape: tuple[int, ...]) -> tuple[str, dict[str, Any]]:
        base = {"precision_requested": AUTO, "precision_auto_ratio": None}
        can_win, why_not = bfloat16_can_win(self.device)
        if not can_win:
            return FLOAT32, {**base, "precision_chosen_by": "device", "precision_note": why_not}
        fixed = os.environ.get(AUTO_ENV, "").strip()
        by_env = {**base, "precision_chosen_by": AUTO_ENV, "precision_note": f"{AUTO_ENV}={fixed}"}
        if fixed == FLOAT32:  # every model runs in float32: nothing to build or check
            return FLOAT32, by_env
        from benchmark.running.identity import build_model, code_fingerprint

        with preserved_random_state():
            plain = build_model(config, image_shape)
        if not declares_bfloat16(config.model, plain):
            note = (f"{type(plain).__name__} (a plugin) does not declare supports_bfloat16 = True: "
                    "built in float32")  # fmt: skip
            return FLOAT32, {**base, "precision_chosen_by": "plugin", "precision_note": note}
        if fixed == BFLOAT16:
            return BFLOAT16, by_env
        machine = machine_key(self.device, self.backend)
        key = cache_key(config, image_shape, machine, code_fingerprint(config.model, plain))
        cached = (read_json_or_none(self.cache_path) or {}).get(key)
        if isinstance(cached, dict) and cached.get("precision") in (FLOAT32, BFLOAT16):
            return cached["precision"], {**base, "precision_chosen_by": "cached measurement",
                                         "precision_auto_ratio": cached.get("ratio"), "precision_note": cached.get("note", "")}  # fmt: skip
        return self._measure(config, image_shape, key, base)

    def _measure(self, config: UnitConfig, image_shape: tuple[int, ...], key: str,
                 base: dict[str, Any]) -> tuple[str, dict[str, Any]]:  # fmt: skip
        what = f"{config.model} (batch {config.batch_size})"
        self._say(f"[precision auto] {what}: timing float32 against mixed_bfloat16 ...")
        try:
            timings = measure(config, image_shape)
        except Exception as exc:  # a model that cannot train in bfloat16 here
            note = f"mixed_bfloat16 failed to train ({type(exc).__name__}): float32"
            self._say(f"[precision auto] {what}: {note}")
            return FLOAT32, {**base, "precision_chosen_by": "measured", "precision_note": note}
        precision, ratio, note = decide(timings)
        note += f"; measured in {timings.seconds:.1f} s"
        self._say(f"[precision auto] {what}: {note} -> {precision}")
        cache = read_json_or_none(self.cache_path)
        cache = cache if isinstance(cache, dict) else {}
        cache[key] = {"precision": precision, "ratio": round(ratio, 4), "note": note,
                      "images_per_sec": {p: [round(r, 1) for r in v] for p, v in timings.rates.items()},
                      "measured_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")}  # fmt: skip
        try:
            self.cache_path.parent.mkdir(parents=True, exist_ok=True)
            write_json(self.cache_path, cache)
        except OSError as exc:  # a read-only cache measures again next time
            self._say(f"[precision auto] cache not written ({exc.strerror})")
        return precision, {**base, "precision_chosen_by": "measured", "precision_auto_ratio": round(ratio, 4),
                           "precision_note": note}  # fmt: skip

    def _say(self, line: str) -> None:
        if self.verbose:
            print(line, flush=True)
