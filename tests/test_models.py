"""Every registered model: builds for each image shape, runs, trains a step, saves and loads.

Parametrized over ``list_models()``, so a new variant gets these tests for free.
"""

import keras
import numpy as np
import pytest

import models

pytestmark = pytest.mark.backend

SHAPES = [(28, 28, 1), (8, 8, 1), (32, 32, 3)]


@pytest.mark.parametrize("name", models.list_models())
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_encode_decode_shapes_and_range(name, shape):
    model = models.create_model(name, shape, latent_dim=4, seed=0)
    x = np.random.default_rng(0).random((3, *shape)).astype("float32")
    z = keras.ops.convert_to_numpy(model.encode(x))
    image = keras.ops.convert_to_numpy(model.decode(z))
    assert z.shape == (3, 4)
    assert image.shape == (3, *shape)
    assert np.isfinite(image).all() and image.min() >= 0 and image.max() <= 1


@pytest.mark.parametrize("name", models.list_models())
def test_one_fit_step_gives_a_finite_loss_and_moves_weights(name, harness_jit):
    keras.utils.set_random_seed(0)
    model = models.create_model(name, (8, 8, 1), latent_dim=4, seed=0)
    model.compile(optimizer=model.make_optimizer(), jit_compile=harness_jit)
    x = np.random.default_rng(0).random((16, 8, 8, 1)).astype("float32")
    before = [np.array(w) for w in model.encoder.get_weights()]
    history = model.fit(x, batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][-1])
    after = model.encoder.get_weights()
    assert any(not np.allclose(b, a) for b, a in zip(before, after, strict=True))


@pytest.mark.parametrize("name", models.list_models())
def test_save_and_load_keep_the_outputs(name, tmp_path, harness_jit):
    model = models.create_model(name, (8, 8, 1), latent_dim=4, seed=0)
    model.compile(optimizer=model.make_optimizer(), jit_compile=harness_jit)
    x = np.random.default_rng(0).random((4, 8, 8, 1)).astype("float32")
    model.fit(x, batch_size=4, epochs=1, verbose=0)
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(loaded.reconstruct(x)),
        keras.ops.convert_to_numpy(model.reconstruct(x)),
        atol=1e-6,
    )
    assert loaded.get_config() == model.get_config()


def test_vae_elbo_terms_are_per_image_and_nonnegative_kl():
    for name in models.list_models():
        model = models.create_model(name, (8, 8, 1), latent_dim=4, seed=0)
        if not model.variational:
            continue
        x = np.random.default_rng(0).random((5, 8, 8, 1)).astype("float32")
        nll, kl = (keras.ops.convert_to_numpy(t) for t in model.elbo_terms(x))
        assert nll.shape == kl.shape == (5,)
        assert (kl >= 0).all() and np.isfinite(nll).all()


def test_gaussian_vae_rejects_a_non_positive_observation_std():
    with pytest.raises(ValueError, match="obs_std"):
        models.create_model("vae_mse", (8, 8, 1), obs_std=0.0)
