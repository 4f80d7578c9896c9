"""``--precision auto``: chosen per model by timing, cached, kept by earlier units, never
measured where bfloat16 cannot win, float32 for plugins that do not declare bfloat16, and
without effect on a unit's results.

Every device is given to ``AutoPrecision`` explicitly, so the tests cover every outcome on
any processor; measurements are replaced by fixed timings except where the real one runs.
"""

from __future__ import annotations

import importlib
import json
import sys
import textwrap

import keras
import numpy as np
import pytest

from benchmark.data.datasets import load_digits
from benchmark.io import read_json, write_json
from benchmark.running import autoprecision, identity, precision_record
from benchmark.running.autoprecision import AutoPrecision, decide
from benchmark.running.config import UnitConfig
from benchmark.running.device import Device
from benchmark.running.timing import Timings
from benchmark.running.unit import train_unit

FAST_CPU = Device("cpu", cpu_flags=frozenset({"avx512f", "avx512_bf16"}))


@pytest.fixture(autouse=True)
def measure_for_real(monkeypatch):
    """The suite fixes ``auto`` to float32 (conftest); these tests are about the measurement."""
    monkeypatch.delenv(autoprecision.AUTO_ENV, raising=False)


def test_the_environment_variable_fixes_auto_without_measuring(monkeypatch, tmp_path):
    monkeypatch.setenv(autoprecision.AUTO_ENV, "mixed_bfloat16")
    monkeypatch.setattr(autoprecision, "measure", lambda *a, **k: pytest.fail("measured"))
    config = UnitConfig("ae", "digits", 0, 1, 4, 32, None, None, "tensorflow", precision="auto")
    chosen, record = AutoPrecision(tmp_path, "tensorflow", tmp_path, FAST_CPU, verbose=False).choose(config, (8, 8, 1))
    assert chosen.precision == "mixed_bfloat16" and record["precision_chosen_by"] == autoprecision.AUTO_ENV
    # float32 suits every model: it is chosen without building one.
    monkeypatch.setenv(autoprecision.AUTO_ENV, "float32")
    monkeypatch.setattr("benchmark.running.identity.build_model", lambda *a, **k: pytest.fail("built"))
    chosen, record = AutoPrecision(tmp_path, "tensorflow", tmp_path, FAST_CPU, verbose=False).choose(config, (8, 8, 1))
    assert chosen.precision == "float32" and record["precision_note"] == f"{autoprecision.AUTO_ENV}=float32"
PLUGIN = "fp32_weight_plugin"

#: A plugin in the style of the keras.io examples: its call adds a fixed float32 weight (a
#: tensor, not a Keras variable, so nothing casts it) to a bfloat16 activation under
#: mixed_bfloat16, which TensorFlow refuses (AddV2 of bfloat16 and float32).
PLUGIN_SOURCE = '''
import keras
import numpy as np
from keras import ops

from models import register_model
from models.ae import AE


@keras.saving.register_keras_serializable(package="fp32_weight_plugin")
class ShiftedAE(AE):
    def call(self, x, training=False):
        z = self.encoder(x, training=training)
        z = z + ops.convert_to_tensor(np.zeros((), "float32"))
        return ops.cast(self.decoder(z, training=training), "float32")


@keras.saving.register_keras_serializable(package="fp32_weight_plugin")
class DeclaredAE(AE):
    supports_bfloat16 = True


@register_model
def shifted_ae(image_shape, latent_dim: int = 16, **config):
    return ShiftedAE(image_shape, latent_dim, **config)


@register_model
def declared_ae(image_shape, latent_dim: int = 16, **config):
    return DeclaredAE(image_shape, latent_dim, **config)
'''


@pytest.fixture
def plugin(tmp_path_factory, monkeypatch) -> str:
    """The plugin module's name, importable (written once per session)."""
    folder = tmp_path_factory.getbasetemp() / "autoprecision-plugin"
    folder.mkdir(exist_ok=True)
    (folder / f"{PLUGIN}.py").write_text(textwrap.dedent(PLUGIN_SOURCE))
    monkeypatch.syspath_prepend(str(folder))
    if PLUGIN not in sys.modules:
        importlib.import_module(PLUGIN)
    return PLUGIN


def unit(model: str = "vae_mse", **settings) -> UnitConfig:
    base = {"dataset": "digits", "seed": 0, "epochs": 2, "latent_dim": 4, "batch_size": 32,
            "train_limit": None, "test_limit": None, "backend": keras.backend.backend(),
            "precision": "auto", "jit": keras.backend.backend() == "jax"}  # fmt: skip
    return UnitConfig(model=model, **{**base, **settings})


def timings(float32: list[float], bfloat16: list[float]) -> Timings:
    rates = {"float32": float32, "mixed_bfloat16": bfloat16}
    zero = dict.fromkeys(rates, 0.0)
    return Timings(rates=rates, first_seconds=zero, steady_seconds=zero, losses=zero, seconds=1.0)


@pytest.fixture
def measured(monkeypatch) -> list[UnitConfig]:
    """``autoprecision.measure`` replaced by bfloat16 at 1.2x float32; the units it measured."""
    calls = []

    def fake(config, image_shape, **_):
        calls.append(config)
        return timings([100.0, 101.0, 99.0], [120.0, 121.0, 119.0])

    monkeypatch.setattr(autoprecision, "measure", fake)
    return calls


# -- the rule ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("float32", "bfloat16", "chosen"),
    [
        ([100, 100, 100], [110, 111, 109], "mixed_bfloat16"),  # 10% faster, steady
        ([100, 100, 100], [102, 102, 102], "float32"),  # within the 3% margin
        ([100, 100, 100], [95, 94, 96], "float32"),  # slower
        ([100, 100, 100], [140, 95, 110], "float32"),  # 10% by the median, but ±22% rounds
    ],
)
def test_bfloat16_only_when_faster_by_more_than_the_margin_and_the_spread(float32, bfloat16, chosen):
    precision, ratio, why = decide(timings(float32, bfloat16))
    assert precision == chosen
    assert ratio == pytest.approx(np.median(np.divide(bfloat16, float32)))
    assert f"{ratio:.2f}x" in why


def test_rounds_are_compared_pairwise_so_a_slow_spell_cancels_out():
    # The machine halves its speed in round 2: both slow down, the ratio holds.
    precision, ratio, _ = decide(timings([100, 50, 100], [110, 55, 110]))
    assert precision == "mixed_bfloat16" and ratio == pytest.approx(1.1)


# -- where it is decided ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("device", "words"),
    [(Device("cpu", cpu_flags=frozenset({"avx512f"})), "neither amx_bf16 nor avx512_bf16"),
     (Device("gpu", (7, 5)), "compute capability 8.0")],
)  # fmt: skip
def test_no_measurement_where_bfloat16_cannot_win(device, words, tmp_path, measured):
    auto = AutoPrecision(tmp_path / "run", "tensorflow", tmp_path / "cache", device, verbose=False)
    config, record = auto.choose(unit(), (8, 8, 1))
    assert config.precision == "float32" and not measured
    assert record["precision_chosen_by"] == "device" and words in record["precision_note"]
    assert not (tmp_path / "cache").exists()


def test_a_measured_choice_is_cached_per_machine_model_and_batch_size(tmp_path, measured):
    def choose(config):
        auto = AutoPrecision(tmp_path / "run", "tensorflow", tmp_path / "cache", FAST_CPU, verbose=False)
        return auto.choose(config, (8, 8, 1))

    config, record = choose(unit(seed=0))
    assert config.precision == "mixed_bfloat16" and len(measured) == 1
    assert record["precision_chosen_by"] == "measured" and record["precision_auto_ratio"] == pytest.approx(1.2)
    again, record = choose(unit(seed=1))  # another seed, another process: the cache
    assert again.precision == "mixed_bfloat16" and len(measured) == 1
    assert record["precision_chosen_by"] == "cached measurement"
    choose(unit(batch_size=64))
    choose(unit(model="ae"))
    assert len(measured) == 3
    keys = [json.loads(k) for k in read_json(tmp_path / "cache" / autoprecision.CACHE_FILE)]
    assert sorted((k["unit"]["model"], k["unit"]["batch_size"]) for k in keys) == [
        ("ae", 32), ("vae_mse", 32), ("vae_mse", 64)
    ]  # fmt: skip
    assert all(k["machine"]["bf16_flags"] == ["avx512_bf16"] for k in keys)


def test_a_change_to_the_model_code_measures_again(tmp_path, measured, monkeypatch):
    """The cached choice is the model's code's: a new train step may change which precision
    is faster."""

    def choose():
        auto = AutoPrecision(tmp_path / "run", "tensorflow", tmp_path / "cache", FAST_CPU, verbose=False)
        return auto.choose(unit(), (8, 8, 1))[1]["precision_chosen_by"]

    assert choose() == "measured" and choose() == "cached measurement"
    real = identity.code_fingerprint
    monkeypatch.setattr(identity, "code_fingerprint", lambda name, model: {**real(name, model), "x.py": "changed"})
    assert choose() == "measured" and len(measured) == 2
    keys = [json.loads(k)["unit"]["code"] for k in read_json(tmp_path / "cache" / autoprecision.CACHE_FILE)]
    assert len(keys) == 2 and all("models/vae_mse.py" in code for code in keys)


def test_an_earlier_unit_keeps_its_precision_whatever_a_new_measurement_says(tmp_path, measured):
    """A repeated command must find its units (the precision is part of their id)."""
    earlier = unit(precision="float32")
    unit_dir = tmp_path / "run" / "units" / earlier.unit_id
    unit_dir.mkdir(parents=True)
    write_json(unit_dir / "config.json", earlier.to_dict())
    write_json(unit_dir / precision_record.SIDECAR, {"precision_requested": "auto", "precision_auto_ratio": 1.01})
    auto = AutoPrecision(tmp_path / "run", "tensorflow", tmp_path / "cache", FAST_CPU, verbose=False)
    config, record = auto.choose(unit(), (8, 8, 1))
    assert config.unit_id == earlier.unit_id and not measured
    assert record["precision_chosen_by"] == "earlier unit"
    other, _ = auto.choose(unit(seed=1), (8, 8, 1))  # another grid point: measured
    assert other.precision == "mixed_bfloat16" and len(measured) == 1


def test_a_plugin_is_built_in_float32_unless_it_declares_bfloat16(plugin, tmp_path, measured):
    auto = AutoPrecision(tmp_path / "run", "tensorflow", tmp_path / "cache", FAST_CPU, verbose=False)
    config, record = auto.choose(unit("shifted_ae"), (8, 8, 1))
    assert config.precision == "float32" and not measured
    assert record["precision_chosen_by"] == "plugin" and "supports_bfloat16" in record["precision_note"]
    declared, _ = auto.choose(unit("declared_ae"), (8, 8, 1))
    assert declared.precision == "mixed_bfloat16" and len(measured) == 1
    built_in, _ = auto.choose(unit("ae"), (8, 8, 1))
    assert built_in.precision == "mixed_bfloat16" and len(measured) == 2


def test_a_failing_bfloat16_measurement_falls_back_to_float32(plugin, tmp_path, monkeypatch):
    def failing(config, image_shape, **_):
        raise TypeError("Input 'y' of 'AddV2' Op has type float32 that does not match type bfloat16")

    monkeypatch.setattr(autoprecision, "measure", failing)
    auto = AutoPrecision(tmp_path / "run", "tensorflow", tmp_path / "cache", FAST_CPU, verbose=False)
    config, record = auto.choose(unit("declared_ae"), (8, 8, 1))
    assert config.precision == "float32" and "failed" in record["precision_note"]


# -- a real measurement -----------------------------------------------------------------------


@pytest.mark.backend
def test_measuring_changes_nothing_of_the_units_results(tmp_path):
    """The same unit trained with and without a measurement first (which builds and trains
    throwaway models, drawing from the global random state) ends with the same weights."""
    data = load_digits().subset(256, 64)
    config = unit("vae_mse", precision="float32", epochs=1)

    def trained(folder: str) -> list[np.ndarray]:
        keras.utils.set_random_seed(123)  # the state a measurement would disturb
        train_unit(config, data, tmp_path / folder, verbose=0)
        return keras.saving.load_model(tmp_path / folder / "model.keras").get_weights()

    plain = trained("plain")
    keras.utils.set_random_seed(123)
    timed = autoprecision.measure(unit("vae_mse"), data.image_shape, steps=2, repeats=1, max_repeats=1)
    assert set(timed.rates) == {"float32", "mixed_bfloat16"} and all(r[0] > 0 for r in timed.rates.values())
    after = np.random.random()
    keras.utils.set_random_seed(123)
    assert np.random.random() == after  # the global state was restored
    measured_first = trained("measured")
    for a, b in zip(plain, measured_first, strict=True):
        np.testing.assert_array_equal(a, b)


# -- end to end -------------------------------------------------------------------------------


def run_plugin_unit(tmp_path, precision: str) -> dict:
    """One smoke unit of the plugin, resolved from the command line and run by the harness."""
    from benchmark.cli import build_parser, resolve
    from benchmark.running.driver import run_grid

    argv = ["--preset", "smoke", "--models", "shifted_ae", "--epochs", "1", "--plugins", PLUGIN,
            "--precision", precision, "--quiet", "--out", str(tmp_path / "run")]  # fmt: skip
    run = resolve(build_parser().parse_args(argv), keras.backend.backend())
    assert run.precision == precision  # "auto" is resolved per model, in the plan
    [row] = run_grid(run, environment=dict, verbose=0)
    [unit_dir] = (tmp_path / "run" / "units").iterdir()
    assert read_json(unit_dir / "result.json") == json.loads(json.dumps(row))
    return row


def test_a_plugin_adding_a_float32_weight_trains_under_auto(plugin, run_env, tmp_path):
    row = run_plugin_unit(tmp_path, "auto")
    assert row["status"] == "ok" and row["precision"] == "float32"
    assert row["precision_requested"] == "auto"
    # Here either the plugin rule or, on a CPU without bfloat16, the device rule decided.
    assert row["precision_chosen_by"] in ("plugin", "device") and row["precision_note"]


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="JAX promotes bfloat16 + float32")
def test_an_explicit_bfloat16_failure_hints_at_float32(plugin, run_env, tmp_path, capsys):
    row = run_plugin_unit(tmp_path, "mixed_bfloat16")
    assert row["status"] == "failed" and "AddV2" in row["error"]
    assert "try --precision float32" in row["hint"]
    assert "precision_chosen_by" not in row  # chosen by the user
    assert "try --precision float32" in capsys.readouterr().err


def test_a_user_chosen_precision_replaces_an_older_auto_record(tmp_path):
    units = tmp_path / "units"
    precision_record.write_records({"u1": {"precision_requested": "auto"}, "u2": {}}, units)
    assert precision_record.unit_record(units / "u1") == {"precision_requested": "auto"}
    assert precision_record.unit_record(units / "u2") == {}
    precision_record.write_records({"u1": {}}, units)  # the same unit, now --precision given
    assert precision_record.unit_record(units / "u1") == {}
