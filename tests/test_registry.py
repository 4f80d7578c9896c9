"""The registry: names, errors, duplicate protection."""

import pytest

import models
from models.registry import register_model


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
