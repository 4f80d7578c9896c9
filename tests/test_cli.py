"""The command line: model listing, and one clear line with exit status 2 for bad input."""

import subprocess
import sys
from pathlib import Path

import pytest

from benchmark.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_list_models_prints_one_name_per_line():
    done = subprocess.run(
        [sys.executable, "run_all.py", "--list-models"], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0
    names = done.stdout.split()
    assert {"ae", "vae_mse", "vae_bernoulli"} <= set(names)
    assert done.stdout.strip().splitlines() == names


def test_help_documents_every_option(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for flag in ["--list-models", "--models", "--datasets", "--seeds", "--epochs", "--latent-dim",
                 "--batch-size", "--train-limit", "--test-limit", "--data-dir", "--out", "--preset"]:  # fmt: skip
        assert flag in text


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--models", "vae_nope"], "unknown model 'vae_nope'"),
        (["--datasets", "cifar"], "unknown dataset 'cifar'"),
        (["--epochs", "ten"], "not a whole number"),
        (["--latent-dim", "0"], "must be at least 1"),
        (["--seeds", "-3"], "must be at least 1"),
        (["--preset", "huge"], "invalid choice"),
        (["--datasets", "mnist", "--data-dir", "/nonexistent/vaebench"], "does not exist"),
        (["--preset", "smoke", "--batch-size", "5000"], "larger than the"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv, message, tmp_path, capsys):
    out = tmp_path / "run"
    code = _exit_code(lambda: main([*argv, "--out", str(out)]))
    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()  # nothing half-written


def _exit_code(call) -> int:
    try:
        return call()
    except SystemExit as exc:
        return exc.code


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--models", "vae_bernouli"], "unknown model 'vae_bernouli' (did you mean 'vae_bernoulli'?)"),
        (["--models", "vae_bernouli"], "; models from outside vaebench need --plugins MODULE (or VAEBENCH_PLUGINS)"),
        (["--datasets", "fashion_mnst"], "unknown dataset 'fashion_mnst' (did you mean 'fashion_mnist'?)"),
        (["--preset", "smok"], "invalid choice: 'smok'"),
        (["--preset", "smok"], "(did you mean 'smoke'?)"),
        (["--precision", "float23"], "(did you mean 'float32'?)"),
    ],
)
def test_a_misspelt_name_gets_the_closest_known_one(argv, message, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("VAEBENCH_PLUGINS", raising=False)
    monkeypatch.chdir(tmp_path)  # no module here that could register a model
    out = tmp_path / "run"
    code = _exit_code(lambda: main([*argv, "--out", str(out)]))
    err = capsys.readouterr().err
    assert code == 2
    assert message in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()


def test_an_unknown_model_names_the_plugin_module_that_would_register_it(tmp_path, monkeypatch, capsys):
    (tmp_path / "flow_plugin.py").write_text(
        "from models.registry import register_model\n\n\n@register_model\ndef flow_vae(image_shape, latent_dim=16):\n    ...\n"
    )
    monkeypatch.delenv("VAEBENCH_PLUGINS", raising=False)
    monkeypatch.chdir(tmp_path)  # the working directory is on the path of `python run_all.py`
    out = tmp_path / "run"
    code = _exit_code(lambda: main(["--models", "flow_vae", "--out", str(out)]))
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip().endswith("flow_plugin.py may register it: load it with --plugins flow_plugin"), err
    assert not out.exists()
