"""The registry: names, errors, duplicate protection."""

import pytest

import models
from benchmark.errors import did_you_mean
from models.registry import register_model, unknown_model_message


def test_list_models_has_the_core_variants():
    assert {"ae", "vae_mse", "vae_bernoulli"} <= set(models.list_models())
    assert models.list_models() == sorted(models.list_models())
    assert models.list_models("vae_*") == [n for n in models.list_models() if n.startswith("vae_")]


def test_unknown_model_error_lists_known_names():
    with pytest.raises(models.UnknownModelError) as info:
        models.create_model("vae_nope", (8, 8, 1))
    assert "vae_nope" in str(info.value)
    for name in models.list_models():
        assert name in str(info.value)


def test_a_name_cannot_be_registered_twice():
    def ae(image_shape, latent_dim=16):
        raise AssertionError("never built")

    with pytest.raises(ValueError, match="already registered"):
        register_model(ae)
    assert models.registry._MODELS["ae"] is not ae


def test_did_you_mean_offers_the_closest_known_name_only():
    assert did_you_mean("vae_bernouli", models.list_models()) == " (did you mean 'vae_bernoulli'?)"
    assert did_you_mean("VAE_MSE", ["vae_mse", "ae"]) == " (did you mean 'vae_mse'?)"
    assert did_you_mean("normalizing_flow", models.list_models()) == ""
    assert did_you_mean("ae", ["ae"]) == ""  # a known name is never its own suggestion


def test_unknown_model_message_without_plugins_says_how_to_load_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no module here defines the name
    message = unknown_model_message("vae_bernouli", plugins=())
    assert message.startswith("unknown model 'vae_bernouli' (did you mean 'vae_bernoulli'?); known models: ")
    assert message.endswith("; models from outside vaebench need --plugins MODULE (or VAEBENCH_PLUGINS)")
    loaded = unknown_model_message("flow_vae", plugins=("my_flows",))
    assert loaded.endswith("; the plugins loaded (my_flows) do not register it")
    assert "need --plugins" not in loaded and "did you mean" not in loaded


@pytest.mark.parametrize(
    ("filename", "text"),
    [
        ("flow_plugin.py", "@register_model\ndef flow_vae(image_shape, latent_dim=16):\n    ...\n"),
        ("flow_vae.py", "# registers its model under another spelling\n"),
    ],
    ids=["defines-the-factory", "named-like-the-model"],
)
def test_unknown_model_message_names_a_module_on_the_path_that_would_register_it(
    filename, text, tmp_path, monkeypatch
):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / filename).write_text(text)
    (plugins / "unrelated.py").write_text("def other_vae():\n    ...\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(plugins))
    module = filename.removesuffix(".py")
    message = unknown_model_message("flow_vae", plugins=())
    assert message.endswith(f"; {plugins / filename} may register it: load it with --plugins {module}")
    assert "unrelated" not in message
