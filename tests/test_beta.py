"""The KL weight ``beta`` of the VAEs: the training loss is nll + beta * KL; the scores keep
the true negative ELBO (beta = 1)."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import ops

import models
from models.losses import gaussian_kl

SHAPE = (8, 8, 1)
BATCH = 6


def batch(model_name: str, seed: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Images and a fixed model output (z_mean, z_log_var, and logits or z) for them."""
    rng = np.random.default_rng(seed)
    x = rng.random((BATCH, *SHAPE)).astype("float32")
    y_pred = {
        "z_mean": rng.normal(size=(BATCH, 4)).astype("float32"),
        "z_log_var": rng.normal(scale=0.5, size=(BATCH, 4)).astype("float32"),
    }
    if model_name == "vae_gan":
        y_pred["z"] = rng.normal(size=(BATCH, 4)).astype("float32")
    else:
        y_pred["logits"] = rng.normal(size=(BATCH, *SHAPE)).astype("float32")
    return x, y_pred


def loss_gradient_wrt_z_mean(model, x, y_pred) -> np.ndarray:
    """d compute_loss / d z_mean with every other output held fixed (TensorFlow's autodiff)."""
    if keras.backend.backend() != "tensorflow":
        pytest.skip("gradient through the TensorFlow tape")
    import tensorflow as tf

    z_mean = tf.constant(y_pred["z_mean"])
    with tf.GradientTape() as tape:
        tape.watch(z_mean)
        loss = model.compute_loss(x, None, {**y_pred, "z_mean": z_mean})
    return tape.gradient(loss, z_mean).numpy()


@pytest.mark.parametrize("name", ["vae_mse", "vae_bernoulli", "vae_gan"])
@pytest.mark.parametrize("beta", [0.0, 0.5, 3.0])
def test_the_kl_reaches_the_loss_with_weight_beta(name: str, beta: float) -> None:
    """Only the KL depends on z_mean when the other outputs are fixed: its gradient is
    beta * z_mean / batch, exactly zero at beta = 0."""
    model = models.create_model(name, SHAPE, latent_dim=4, seed=0, beta=beta)
    x, y_pred = batch(name)
    gradient = loss_gradient_wrt_z_mean(model, x, y_pred)
    np.testing.assert_allclose(gradient, beta * y_pred["z_mean"] / BATCH, rtol=1e-5, atol=1e-7)
    if beta == 0.0:
        assert not gradient.any()


@pytest.mark.parametrize("name", ["vae_mse", "vae_bernoulli"])
def test_vae_loss_is_nll_plus_beta_times_kl(name: str) -> None:
    x, y_pred = batch(name, seed=1)
    for beta in (0.0, 1.0, 2.5):
        model = models.create_model(name, SHAPE, latent_dim=4, seed=0, beta=beta)
        nll = ops.convert_to_numpy(model.reconstruction_nll(x, y_pred["logits"]))
        kl = ops.convert_to_numpy(gaussian_kl(y_pred["z_mean"], y_pred["z_log_var"]))
        loss = float(ops.convert_to_numpy(model.compute_loss(x, None, y_pred)))
        assert loss == pytest.approx(float(np.mean(nll + beta * kl)), rel=1e-5)
        assert model.get_config()["beta"] == beta


def test_neg_elbo_is_the_true_elbo_whatever_beta() -> None:
    """elbo_terms (which the scores use) does not weigh the KL: two models with the same
    weights and noise but different beta give the same (nll, kl)."""
    x, _ = batch("vae_bernoulli", seed=2)
    terms = []
    for beta in (0.25, 4.0):
        keras.utils.set_random_seed(0)
        model = models.create_model("vae_bernoulli", SHAPE, latent_dim=4, seed=0, beta=beta)
        terms.append([ops.convert_to_numpy(t) for t in model.elbo_terms(x)])
    for a, b in zip(*terms, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)


@pytest.mark.parametrize("name", ["vae_mse", "vae_bernoulli", "vae_gan"])
def test_a_negative_beta_is_rejected(name: str) -> None:
    with pytest.raises(ValueError, match="beta"):
        models.create_model(name, SHAPE, latent_dim=4, beta=-1.0)


def test_a_set_value_reaches_the_trained_model_and_changes_its_loss(tmp_path, run_env):
    """``--set`` is not only recorded: the unit trains the model built with it."""
    import json

    import pandas as pd

    from benchmark.cli import main

    out = tmp_path / "run"
    code = main(["--preset", "smoke", "--models", "vae_mse", "--set", "vae_mse.obs_std=0.5", "--epochs", "1",
                 "--quiet", "--out", str(out)])  # fmt: skip
    assert code == 0
    row = pd.read_csv(out / "results.csv").iloc[0]
    assert row["obs_std"] == 0.5 and json.loads(row["model_config"])["obs_std"] == 0.5
    saved = keras.saving.load_model(out / "units" / row["unit_id"] / "model.keras", safe_mode=True)
    assert saved.obs_std == 0.5
    # The loss the unit trained on is the one of obs_std 0.5, not of the default.
    x, y_pred = batch("vae_mse")
    default = models.create_model("vae_mse", SHAPE, 4, seed=0)
    assert saved.image_shape == SHAPE  # the smoke preset's digits
    loss_set = float(saved.compute_loss(x=x, y_pred=y_pred))
    assert loss_set != pytest.approx(float(default.compute_loss(x=x, y_pred=y_pred)))
