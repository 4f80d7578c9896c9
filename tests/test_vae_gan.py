"""VAE-GAN: gradient routing on real gradients, the equilibrium gate, the three optimizers,
saving, the non-finite path, and sharper samples than the Gaussian VAE on MNIST.

Tests marked ``backend`` run once per Keras backend (TensorFlow, and with KERAS_BACKEND=jax).
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

import models
import models.vae_gan as vae_gan_module
from benchmark.data.dataset import Dataset
from benchmark.data.datasets import load_dataset
from benchmark.running.config import UnitConfig
from benchmark.running.train import NonFiniteLoss
from benchmark.running.unit import train_unit
from benchmark.scoring import metrics
from models.networks import build_discriminator
from models.precision import dtype_policy
from models.vae_gan import PARTS, VAEGAN
from models.vae_gan_step import TRAIN_STEPS, jax_part_gradients, part_gradients

SHAPE = (8, 8, 1)


def make_model(jit_compile: bool = False, precision: str = "float32", **config) -> VAEGAN:
    """A compiled VAE-GAN on 8x8 images. XLA costs tens of seconds of compilation per train
    function on this CPU, so only the tests of that setting use it."""
    keras.utils.set_random_seed(0)
    with dtype_policy(precision):
        model = models.create_model("vae_gan", SHAPE, latent_dim=4, seed=0, **config)
    model.compile(optimizer=model.make_optimizer(), jit_compile=jit_compile)
    return model


def images(n: int = 8, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, *SHAPE)).astype("float32")


def weights(network: keras.Model) -> list[np.ndarray]:
    return [np.array(w) for w in network.get_weights()]


def changed(before: list[np.ndarray], network: keras.Model) -> bool:
    return any(not np.array_equal(b, a) for b, a in zip(before, network.get_weights(), strict=True))


def gradient_sizes(model: VAEGAN, loss_fn) -> dict[str, float]:
    """Largest |d loss_fn() / d w| over each part's weights, from the backend's own autodiff."""
    variables = model.trainable_variables
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss = loss_fn()
        grads = tape.gradient(loss, variables)
    elif backend == "jax":
        import jax

        def pure(values):
            with keras.StatelessScope(state_mapping=list(zip(variables, values, strict=True))):
                return loss_fn()

        grads = jax.grad(pure)([v.value for v in variables])
    else:
        pytest.skip(f"no gradient helper for the {backend} backend")
    # TensorFlow gives None for a variable the loss does not reach.
    size = {
        id(v): 0.0 if g is None else float(np.abs(np.asarray(g)).max())
        for v, g in zip(variables, grads, strict=True)
    }
    return {
        part: max(size[id(v)] for v in getattr(model, part).trainable_variables) for part in PARTS
    }


# -- gradient routing ------------------------------------------------------------------------

#: Each loss term and the one part it may train.
ROUTES = {
    "kl": "encoder",
    "llike_enc": "encoder",
    "llike_dec": "decoder",
    "generator": "decoder",
    "gan": "discriminator",
}


@pytest.mark.backend
@pytest.mark.parametrize("generator_loss", ["non_saturating", "minimax"])
@pytest.mark.parametrize("term", sorted(ROUTES))
def test_each_loss_term_reaches_only_its_part(term, generator_loss):
    model = make_model(generator_loss=generator_loss)
    x = images()

    def loss():
        return keras.ops.mean(model.loss_terms(x, model(x, training=True))[term])

    sizes = gradient_sizes(model, loss)
    owner = ROUTES[term]
    assert sizes[owner] > 0, f"{term} does not train the {owner}: {sizes}"
    for part in PARTS:
        if part != owner:
            assert sizes[part] == 0, f"{term} reaches the {part}: {sizes}"


@pytest.mark.backend
def test_routing_holds_in_mixed_bfloat16():
    """Under bfloat16 compute the frozen passes (stateless calls on stopped float32 weights)
    still route each term to its part only, and the terms are float32."""
    model = make_model(precision="mixed_bfloat16")
    assert model.discriminator.layers[1].compute_dtype == "bfloat16"
    x = images()
    for term, owner in ROUTES.items():

        def loss(term=term):
            value = model.loss_terms(x, model(x, training=True))[term]
            assert keras.backend.standardize_dtype(value.dtype) == "float32", term
            return keras.ops.mean(value)

        sizes = gradient_sizes(model, loss)
        assert sizes[owner] > 0, f"{term} does not train the {owner}: {sizes}"
        assert all(sizes[part] == 0 for part in PARTS if part != owner), f"{term}: {sizes}"


@pytest.mark.backend
def test_the_training_loss_trains_every_part():
    model = make_model(margin=None)
    x = images()
    sizes = gradient_sizes(model, lambda: model.compute_loss(x, None, model(x, training=True)))
    assert all(sizes[part] > 0 for part in PARTS), sizes


def routed_and_one_pass_gradients(model: VAEGAN, x) -> tuple[list, list, list]:
    """(variables, gradients of the routed ``compute_loss``, gradients of the backend's
    one-pass step), both from the same noise."""
    variables = model.trainable_variables
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        noise = np.array(model.noise.state)
        fast, _, _, _ = part_gradients(model, x)
        model.noise.state.assign(noise)
        with tf.GradientTape() as tape:
            loss = model.compute_loss(x, None, model(x, training=True))
        return variables, tape.gradient(loss, variables), fast
    if backend == "jax":
        import jax

        values = [v.value for v in variables]
        fast, *_ = jax_part_gradients(model, values, [v.value for v in model.non_trainable_variables],
                                      [v.value for v in model.metrics_variables], x)  # fmt: skip

        def routed(values):
            with keras.StatelessScope(state_mapping=list(zip(variables, values, strict=True))):
                return model.compute_loss(x, None, model(x, training=True))

        return variables, jax.grad(routed)(values), fast
    pytest.skip(f"no one-pass step on the {backend} backend")


@pytest.mark.backend
@pytest.mark.parametrize("config", [{"margin": None}, {"generator_loss": "minimax", "feature_layer": 1}])
def test_the_one_pass_step_takes_the_gradients_of_the_routed_sum(config):
    """``vae_gan_step``, which trains on TensorFlow and JAX (one pass of each network, a
    gradient per part), gives every weight the gradient of ``compute_loss``, the routed
    definition."""
    model = make_model(**config)
    x = images()
    variables, routed, fast = routed_and_one_pass_gradients(model, x)
    assert len(fast) == len(variables) == len(model.trainable_variables)
    for variable, expected, got in zip(variables, routed, fast, strict=True):
        expected = np.zeros(variable.shape) if expected is None else np.asarray(expected)
        scale = np.abs(expected).max()
        np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-4, atol=1e-5 * scale, err_msg=variable.path)
    assert all(np.abs(np.asarray(g)).max() > 0 for g in fast[-2:]), "the discriminator was not trained"


@pytest.mark.backend
def test_fakes_the_discriminator_rejects_by_far_still_train_the_decoder():
    """Logits near -100 on every image: L_GAN's derivative on a fake, sigmoid(-100) = 4e-44
    per image, is below float32's normal range, while the non-saturating generator loss's is
    about -1. The TensorFlow step carries the decoder's gradient through the discriminator's
    backward pass for L_GAN (``vae_gan_step.FLOOR``): it must still be the routed sum's."""
    model = make_model(margin=None)
    bias = model.discriminator.get_layer("discriminator_logit").bias
    bias.assign(bias - 100.0)
    variables, routed, fast = routed_and_one_pass_gradients(model, images())
    decoder = {id(v) for v in model.decoder.trainable_variables}
    for variable, expected, got in zip(variables, routed, fast, strict=True):
        if id(variable) in decoder:
            expected = np.asarray(expected)
            assert np.abs(expected).max() > 0, variable.path
            np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max())


@pytest.mark.backend
def test_a_subclass_with_its_own_loss_trains_on_it():
    """The one-pass step recomputes ``loss_terms`` from live passes: a subclass that redefines
    the loss must not be trained by it."""

    class OwnTerms(VAEGAN):
        def loss_terms(self, x, y_pred):
            return super().loss_terms(x, y_pred)

    class OwnLoss(VAEGAN):
        def compute_loss(self, *args, **kwargs):
            return super().compute_loss(*args, **kwargs)

    assert make_model().one_pass_step() is TRAIN_STEPS.get(keras.backend.backend())
    for cls in (OwnTerms, OwnLoss):
        assert cls(SHAPE, 4, seed=0).one_pass_step() is None, cls.__name__


# -- the equilibrium gate --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("real_cost", "fake_cost", "expected"),
    [
        (0.7, 0.7, (1.0, 1.0)),  # balanced: both update
        (0.1, 0.7, (1.0, 0.0)),  # discriminator winning by far: skip it
        (0.7, 1.5, (0.0, 1.0)),  # discriminator losing by far: skip the decoder
        (0.1, 1.5, (1.0, 1.0)),  # both would be skipped: neither is
    ],
)
def test_gate_follows_the_authors_rule(real_cost, fake_cost, expected):
    model = models.create_model("vae_gan", SHAPE, latent_dim=4, equilibrium=0.68, margin=0.4)
    dec_on, dis_on = model.gate(keras.ops.array(real_cost), keras.ops.array(fake_cost))
    assert (float(dec_on), float(dis_on)) == expected
    ungated = models.create_model("vae_gan", SHAPE, latent_dim=4, margin=None)
    assert tuple(float(f) for f in ungated.gate(real_cost, fake_cost)) == (1.0, 1.0)


#: Gate settings under which one part is skipped on every step: the discriminator's
#: cross-entropies are always below 100 (it "wins by far") and above -100 (it "loses by far").
GATED_OFF = {"discriminator": 100.0, "decoder": -100.0}


def optimizer_of(model: VAEGAN, part: str) -> keras.optimizers.Optimizer:
    return {o.name: o for o in model.optimizer.optimizers}[f"{part}_rmsprop"]


def optimizer_state(model: VAEGAN, part: str) -> dict[str, np.ndarray]:
    """Every variable of the part's optimizer (iterations, learning rate, one velocity per
    weight), by path."""
    return {v.path: np.array(v) for v in optimizer_of(model, part).variables}


@pytest.mark.backend
@pytest.mark.parametrize("gated", sorted(GATED_OFF))
def test_a_gated_part_skips_its_optimizer_steps_entirely(gated):
    """Three real steps with one part gated off: its weights and every variable of its
    optimizer (iterations and moving averages included) keep their values, while the other
    parts and their optimizers move on. A plain RMSprop would decay the moving averages."""
    model = make_model(margin=None)
    x = images(24)
    # One ungated step first, so every RMSprop has a non-zero running mean of squared
    # gradients, which a skipped step must keep rather than decay.
    model.fit(x[:8], batch_size=8, epochs=1, verbose=0)
    model.equilibrium, model.margin = GATED_OFF[gated], 0.0
    model.make_train_function(force=True)
    before = {part: weights(getattr(model, part)) for part in PARTS}
    state = {part: optimizer_state(model, part) for part in PARTS}
    assert all(
        np.abs(value).max() > 0 for path, value in state[gated].items() if "velocity" in path
    )

    logs = model.fit(x, batch_size=8, epochs=1, verbose=0).history

    other = next(part for part in GATED_OFF if part != gated)
    assert logs[f"{gated[:3]}_updates"] == [0.0] and logs[f"{other[:3]}_updates"] == [1.0]
    for part in PARTS:
        assert changed(before[part], getattr(model, part)) == (part != gated), part
        after = optimizer_state(model, part)
        assert after.keys() == state[part].keys()
        moved = {path for path in after if not np.array_equal(after[path], state[part][path])}
        if part == gated:
            assert moved == set(), f"the gated {part}'s optimizer changed: {sorted(moved)}"
        else:
            assert int(keras.ops.convert_to_numpy(optimizer_of(model, part).iterations)) == 4
            velocities = {path for path in after if "velocity" in path}
            assert velocities and velocities <= moved, part
    assert int(keras.ops.convert_to_numpy(optimizer_of(model, gated).iterations)) == 1


@pytest.mark.backend
def test_fit_trains_with_the_one_pass_step_and_logs_the_losses_and_the_game(monkeypatch):
    backend = keras.backend.backend()
    calls, step = [], TRAIN_STEPS.get(backend)
    if step is not None:  # the backend's one-pass step, watched

        def spy(model, *args):
            calls.append(model)
            return step(model, *args)

        monkeypatch.setitem(vae_gan_module.TRAIN_STEPS, backend, spy)
    model = make_model()
    logs = model.fit(images(16), batch_size=8, epochs=2, verbose=0).history
    assert bool(calls) == (step is not None) and all(m is model for m in calls)
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 4
    assert all(value > 0 for value in logs["loss"])  # the sum of the parts' losses, all >= 0 here
    for name in ("loss", "enc_loss", "dec_loss", "dis_loss", "dis_acc_real", "dis_acc_fake", "kl", "llike"):
        assert len(logs[name]) == 2 and np.isfinite(logs[name]).all(), name
    for name in ("dis_acc_real", "dis_acc_fake", "dec_updates", "dis_updates"):
        assert all(0 <= value <= 1 for value in logs[name]), name


# -- optimizers and saving -------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(harness_jit: bool) -> VAEGAN:
    """A VAE-GAN compiled as a run compiles it here (``harness_jit``), after two steps. Without the gate, so
    that every part takes both steps (a gated part skips its optimizer's step)."""
    model = make_model(
        jit_compile=harness_jit, gamma=0.5, feature_layer=1, generator_loss="minimax", margin=None
    )
    model.fit(images(16), batch_size=8, epochs=1, verbose=0)
    return model


@pytest.mark.backend
def test_each_part_has_its_own_optimizer_and_all_three_states_advance(trained):
    by_name = {o.name: o for o in trained.optimizer.optimizers}
    assert sorted(by_name) == sorted(f"{part}_rmsprop" for part in PARTS)
    for part in PARTS:
        optimizer = by_name[f"{part}_rmsprop"]
        # The JAX trap: an optimizer outside the trainer's state would stay at 0.
        assert int(keras.ops.convert_to_numpy(optimizer.iterations)) == 2, part
        # It holds one velocity per weight of its part, and no other.
        velocities = [v for v in optimizer.variables if "velocity" in v.name]
        shapes = sorted(tuple(v.shape) for v in velocities)
        assert shapes == sorted(tuple(v.shape) for v in getattr(trained, part).trainable_variables)
        assert all(np.abs(np.array(v)).max() > 0 for v in velocities), part


@pytest.mark.backend
def test_save_and_load_keep_weights_config_and_optimizer_state(trained, tmp_path):
    x = images(16)
    trained.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")

    assert isinstance(loaded, VAEGAN) and loaded.get_config() == trained.get_config()
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(loaded.encode(x)), keras.ops.convert_to_numpy(trained.encode(x))
    )
    for part in PARTS:
        pairs = zip(weights(getattr(trained, part)), weights(getattr(loaded, part)), strict=True)
        for a, b in pairs:
            np.testing.assert_array_equal(a, b)
    # Compiled again with its own three optimizers, their state restored.
    assert isinstance(loaded.optimizer, keras.optimizers.MultiOptimizer)
    assert loaded.jit_compile == trained.jit_compile
    assert [o.name for o in loaded.optimizer.optimizers] == [
        o.name for o in trained.optimizer.optimizers
    ]
    for a, b in zip(trained.optimizer.variables, loaded.optimizer.variables, strict=True):
        np.testing.assert_array_equal(np.array(a), np.array(b))
    # It trains on from where it was, with all three optimizers (without XLA: one compilation
    # per test is enough).
    loaded.jit_compile = False
    loaded.fit(x, batch_size=8, epochs=1, verbose=0)
    steps = [int(keras.ops.convert_to_numpy(o.iterations)) for o in loaded.optimizer.optimizers]
    assert steps == [4, 4, 4]


@pytest.mark.backend
def test_a_non_finite_loss_fails_the_unit(tmp_path, harness_jit):
    x = images(32)
    x[5, 2, 2, 0] = np.nan
    y = np.zeros(32, dtype="int64")
    data = Dataset("digits", x, y, x[:8], y[:8], "test")
    config = UnitConfig(
        model="vae_gan", dataset="digits", seed=0, epochs=2, latent_dim=4, batch_size=8,
        train_limit=None, test_limit=None, backend=keras.backend.backend(), jit=harness_jit,
    )  # fmt: skip
    with pytest.raises(NonFiniteLoss, match="non-finite"):
        train_unit(config, data, tmp_path / "unit", verbose=0)


# -- building blocks -------------------------------------------------------------------------


def test_discriminator_returns_a_mid_depth_feature_map_and_a_logit():
    x = np.zeros((2, 28, 28, 1), "float32")
    features, logit = build_discriminator((28, 28, 1))(x)
    assert tuple(features.shape) == (2, 7, 7, 64) and tuple(logit.shape) == (2, 1)
    features, _ = build_discriminator((28, 28, 1), feature_layer=1)(x)
    assert tuple(features.shape) == (2, 14, 14, 32)
    with pytest.raises(ValueError, match="feature_layer"):
        build_discriminator((28, 28, 1), feature_layer=4)


@pytest.mark.parametrize(
    ("config", "match"),
    [
        ({"generator_loss": "wasserstein"}, "generator_loss"),
        ({"gamma": -1.0}, "gamma"),
        ({"learning_rate": 0.0}, "learning_rate"),
        ({"margin": -0.1}, "margin"),
    ],
)
def test_bad_settings_are_rejected(config, match):
    with pytest.raises(ValueError, match=match):
        models.create_model("vae_gan", SHAPE, **config)


def test_noise_is_new_on_every_call():
    model = models.create_model("vae_gan", SHAPE, latent_dim=4, seed=0)
    x = images(2)
    first, second = (keras.ops.convert_to_numpy(model(x)["z"]) for _ in range(2))
    assert not np.allclose(first, second)


# -- MNIST -----------------------------------------------------------------------------------


def sample_blurriness(model, x_real: np.ndarray, n: int = 500) -> float:
    z = np.random.default_rng(0).standard_normal((n, model.latent_dim)).astype("float32")
    samples = keras.ops.convert_to_numpy(model.decode(z))
    return metrics.blurriness(metrics.sharpness(samples), metrics.sharpness(x_real))


@pytest.mark.mnist
def test_mnist_samples_are_sharper_than_the_gaussian_vae(data_dir, harness_jit):
    if keras.backend.backend() != "tensorflow":
        pytest.skip("a training run: too slow on the JAX CPU backend (XLA's CPU convolutions)")
    data = load_dataset("mnist", data_dir).subset(6000, 1000)
    blurriness = {}
    for name in ("vae_gan", "vae_mse"):
        keras.utils.set_random_seed(0)
        model = models.create_model(name, data.image_shape, latent_dim=16, seed=0)
        model.compile(optimizer=model.make_optimizer(), jit_compile=harness_jit)
        model.fit(data.x_train, batch_size=64, epochs=2, verbose=0)
        blurriness[name] = sample_blurriness(model, data.x_test)
    assert blurriness["vae_gan"] < blurriness["vae_mse"] - 0.2, blurriness
