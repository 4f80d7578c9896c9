"""Grids: value lists and ``--set`` from flags, the same grid from a TOML file, presets with
axes, values checked against the factories, and the plan printed before a run."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest

from benchmark import cli
from benchmark.running.config import PRESETS, RunConfig
from benchmark.running.grid import coerce, parse_set

SIX_UNITS = ["--preset", "quick", "--models", "vae_bernoulli,vae_mse", "--latent-dim", "2,16",
             "--set", "vae_bernoulli.beta=0.5,2"]  # fmt: skip

SIX_UNITS_TOML = """
preset = "quick"
models = ["vae_bernoulli", "vae_mse"]
latent_dim = [2, 16]

[set.vae_bernoulli]
beta = [0.5, 2.0]
"""


def resolve(argv: list[str]) -> RunConfig:
    args = cli.build_parser().parse_args(argv)
    return cli.resolve(args, "tensorflow")


def exit_code(call) -> int:
    try:
        return call()
    except SystemExit as exc:
        return int(exc.code)


def test_six_units_from_flags() -> None:
    run = resolve(SIX_UNITS)
    units = run.units()
    assert len(units) == 6
    assert [(u.model, u.latent_dim, u.model_args) for u in units] == [
        ("vae_bernoulli", 2, {"beta": 0.5}),
        ("vae_bernoulli", 2, {"beta": 2.0}),
        ("vae_bernoulli", 16, {"beta": 0.5}),
        ("vae_bernoulli", 16, {"beta": 2.0}),
        ("vae_mse", 2, {}),
        ("vae_mse", 16, {}),
    ]
    assert run.axes == ["latent_dim", "beta"]
    assert {u.epochs for u in units} == {PRESETS["quick"]["epochs"]}


def test_a_grid_file_gives_the_same_units_as_the_flags(tmp_path: Path) -> None:
    grid = tmp_path / "grid.toml"
    grid.write_text(SIX_UNITS_TOML)
    from_flags, from_file = resolve([*SIX_UNITS, "--out", "x"]), resolve(["--config", str(grid), "--out", "x"])
    assert [u.to_dict() for u in from_file.units()] == [u.to_dict() for u in from_flags.units()]
    assert [u.unit_id for u in from_file.units()] == [u.unit_id for u in from_flags.units()]
    assert from_file.axes == from_flags.axes


def test_flags_override_the_grid_file_and_the_file_the_preset(tmp_path: Path) -> None:
    grid = tmp_path / "grid.toml"
    grid.write_text("epochs = [3, 4]\n" + SIX_UNITS_TOML)
    run = resolve(["--config", str(grid), "--latent-dim", "8", "--set", "vae_bernoulli.beta=1"])
    assert run.latent_dim == (8,) and run.epochs == (3, 4)  # flag over file; file over preset
    assert run.model_settings == {"vae_bernoulli": {"beta": (1.0,)}}
    assert run.batch_size == (PRESETS["quick"]["batch_size"],)  # from the file's preset
    assert run.axes == ["epochs"]


def test_star_sets_every_model_that_has_the_parameter() -> None:
    run = resolve(["--models", "ae,vae_mse,vae_gan", "--set", "*.beta=0.5,2", "--set", "vae_mse.beta=3"])
    assert run.model_settings == {"vae_mse": {"beta": (3.0,)}, "vae_gan": {"beta": (0.5, 2.0)}}
    per_dataset = run.seeds * len(run.datasets)
    assert [u.model for u in run.units()].count("ae") == per_dataset  # no beta: one setting
    assert [u.model for u in run.units()].count("vae_gan") == 2 * per_dataset
    assert run.axes == ["beta"]


def test_presets_hold_axes_and_model_settings() -> None:
    latent = resolve(["--preset", "latent"])
    assert latent.latent_dim == (2, 4, 8, 16, 32, 64) and latent.axes == ["latent_dim"]
    beta = resolve(["--preset", "beta"])
    assert set(beta.models) == {"vae_mse", "vae_bernoulli", "vae_gan"}
    assert all(s["beta"] == (0.25, 0.5, 1.0, 2.0, 4.0) for s in beta.model_settings.values())
    choice = resolve(["--preset", "likelihood-choice"])
    assert choice.model_settings == {"vae_mse": {"obs_std": (0.05, 0.1, 0.2, 0.4)}}
    assert len(choice.units()) == (1 + 4) * choice.seeds
    # A preset's settings for a model the run leaves out are skipped, not an error.
    assert resolve(["--preset", "likelihood-choice", "--models", "ae"]).model_settings == {}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--set", "vae_nope.beta=1"], "unknown model 'vae_nope'"),
        (["--set", "vae_mse.gama=1"], "model 'vae_mse' has no parameter 'gama'"),
        (["--set", "vae_mse.latent_dim=4"], "has no parameter 'latent_dim'"),
        (["--set", "vae_mse.obs_std=abc"], "vae_mse.obs_std = 'abc' is not a number"),
        (["--set", "vae_mse.obs_std=nan"], "not a finite number"),
        (["--set", "vae_gan.feature_layer=1.5"], "not a whole number"),
        (["--set", "vae_gan.generator_loss=wasserstein"], "not one of"),
        (["--set", "*.nope=1"], "no model of this run has a parameter 'nope'"),
        (["--models", "vae_mse", "--set", "vae_gan.gamma=1"], "'vae_gan' is not among the models"),
        (["--set", "vae_mse.obs_std"], "expected MODEL.PARAM=VALUE"),
        (["--set", "obs_std=0.1"], "expected MODEL.PARAM=VALUE"),
        (["--set", "vae_mse.obs_std="], "expected MODEL.PARAM=VALUE"),
        (["--set", "vae_mse.obs_std=0.1,,0.2"], "expected MODEL.PARAM=VALUE"),
        (["--latent-dim", "2,,4"], "expected comma-separated whole numbers"),
        (["--latent-dim", "2,0"], "must be at least 1"),
        (["--preset", "smoke", "--set", "vae_mse.obs_std=-1"], "obs_std must be positive"),
        (["--set", "vae_mse.obs_sdt=0.1"], "no parameter 'obs_sdt' (did you mean 'obs_std'?)"),
        (["--set", "*.bta=1"], "no model of this run has a parameter 'bta' (did you mean 'beta'?)"),
        (["--set", "vae_bernouli.beta=1"], "unknown model 'vae_bernouli' (did you mean 'vae_bernoulli'?)"),
    ],
)
def test_bad_settings_are_one_line_exit_2_and_write_nothing(argv, message, tmp_path, capsys) -> None:
    out = tmp_path / "run"
    code = exit_code(lambda: cli.main([*argv, "--out", str(out)]))
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert err.startswith("run_all.py: error: ") and message in err, err
    assert not out.exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("latent_dim = [2,", "not valid TOML"),
        ("latnet_dim = [2]", "unknown key 'latnet_dim'"),
        ("latent_dim = [2, 0]", "latent_dim must be whole numbers"),
        ("latent_dim = 2.5", "latent_dim must be whole numbers"),
        ("models = 3", "models must be a name or a list of names"),
        ('[set.vae_mse]\nobs_std = "wide"', "is not a number"),
        ("[set.vae_mse]\nobs_std = [[0.1]]", "must be a value or a list of values"),
        ('preset = "huge"', "unknown preset 'huge'"),
        ('preset = "quik"', "unknown preset 'quik' (did you mean 'quick'?)"),
        ("latnet_dim = [2]", "unknown key 'latnet_dim' (did you mean 'latent_dim'?)"),
        ('models = ["vae_bernouli"]', "unknown model 'vae_bernouli' (did you mean 'vae_bernoulli'?)"),
    ],
)
def test_bad_grid_files_are_one_line_exit_2(text, message, tmp_path, capsys) -> None:
    grid = tmp_path / "grid.toml"
    grid.write_text(text)
    out = tmp_path / "run"
    code = exit_code(lambda: cli.main(["--config", str(grid), "--out", str(out)]))
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and message in err, err
    assert not out.exists()


def test_a_missing_grid_file_is_one_line_exit_2(tmp_path, capsys) -> None:
    code = exit_code(lambda: cli.main(["--config", str(tmp_path / "none.toml"), "--out", str(tmp_path / "r")]))
    err = capsys.readouterr().err
    assert code == 2 and "cannot be read" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("value", "annotation", "expected"),
    [
        ("0.5", float, 0.5),
        (2, float, 2.0),
        ("3", int, 3),
        ("True", bool, True),
        ("off", bool, False),
        ("none", float | None, None),
        ("0.4", float | None, 0.4),
        ("minimax", typing.Literal["non_saturating", "minimax"], "minimax"),
        ("text", str, "text"),
    ],
)
def test_values_are_parsed_to_the_annotated_type(value, annotation, expected) -> None:
    parsed = coerce(value, annotation)
    assert parsed == expected and type(parsed) is type(expected)


@pytest.mark.parametrize(
    ("value", "annotation"),
    [("1.5", int), (True, int), ("inf", float), (True, float), ("maybe", bool), (1, str),
     ("x", float | None), ("dcgan", typing.Literal["a", "b"])],
)
def test_values_of_the_wrong_type_are_refused(value, annotation) -> None:
    with pytest.raises(ValueError):
        coerce(value, annotation)


def test_parse_set_splits_model_parameter_and_values() -> None:
    assert parse_set("vae_mse.obs_std=0.05, 0.1") == ("vae_mse", "obs_std", ("0.05", "0.1"))
    assert parse_set("*.beta=1") == ("*", "beta", ("1",))


def test_factories_declare_their_tunable_parameters_with_types() -> None:
    from models.registry import parameter_types

    assert parameter_types("ae") == {}
    assert parameter_types("vae_mse") == {"obs_std": float, "obs_noise": str, "beta": float}
    assert parameter_types("vae_bernoulli") == {"beta": float}
    gan = parameter_types("vae_gan")
    assert set(gan) == {"gamma", "feature_layer", "generator_loss", "learning_rate",
                        "equilibrium", "margin", "beta"}  # fmt: skip
    assert gan["feature_layer"] is int and gan["margin"] == float | None


@pytest.mark.mnist
def test_plan_of_the_six_unit_sweep_prints_the_units_and_writes_nothing(data_dir, tmp_path, capsys) -> None:
    out = tmp_path / "run"
    assert cli.main([*SIX_UNITS, "--data-dir", str(data_dir), "--out", str(out), "--plan"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("Grid: 6 units (2 models, 1 dataset, 1 seed; axes: latent_dim, beta): "
                               "0 complete, 0 out of date, 6 to train")  # fmt: skip
    units = [line for line in lines if line.startswith("[")]
    assert len(units) == 6
    assert units[0].startswith("[1/6] vae_bernoulli latent_dim=2 beta=0.5 seed 0: vae_bernoulli-mnist-s0-")
    assert units[5].startswith("[6/6] vae_mse latent_dim=16 beta=1 seed 0: vae_mse-mnist-s0-")
    assert not out.exists()
