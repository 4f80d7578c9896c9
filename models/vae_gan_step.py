"""The VAE-GAN's training step on TensorFlow and JAX: each network runs once per input, and
each part takes its gradient from its own loss.

``VAEGAN.compute_loss`` routes the three losses through one scalar, for the train step of any
backend, which differentiates one: the encoder's L_llike reaches the encoder through frozen
copies of the decoder and the discriminator, the decoder's losses reach the decoder through a
frozen discriminator. Those frozen passes repeat forward computations whose values the live
passes already have, on inputs of other shapes, so neither TensorFlow's graph optimizer nor
XLA merges them. Here the networks run once on each input (live weights everywhere, only the
L_llike target stopped), and each part takes the gradient of its own loss: on TensorFlow
from one persistent tape, on JAX from one ``jax.vjp`` pulled back once per part. A loss's
gradient with respect to another part's weights is never asked for (on JAX it is dropped
and XLA does not compute it). The gradients are the routed sum's (``tests/test_vae_gan.py``
compares them), at less work per step (README, performance section). Other backends train
on ``compute_loss``.

Each network is called on each of its inputs separately rather than on one concatenated
batch: a part's backward pass then runs only on the rows its loss depends on. ``model`` is
always a ``models.vae_gan.VAEGAN``, which imports this module.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from models.losses import gaussian_kl, squared_error
from models.precision import as_float32

#: The three sub-networks of the VAE-GAN, each trained by its own optimizer on its own loss.
PARTS = ("encoder", "decoder", "discriminator")


def live(network: keras.Model, inputs):
    """``network(inputs, training=True)``, outputs in float32 for the losses."""
    return keras.tree.map_structure(as_float32, network(inputs, training=True))


def live_terms(model: keras.Model, x, y_pred) -> dict[str, Any]:
    """``model.loss_terms(x, y_pred)`` from one live pass of each network per input: the same
    values, but each term reaches every part it depends on, so it is differentiated only with
    respect to its own part (``one_pass_train_step``). Draws the prior noise as ``loss_terms``
    does."""
    z = y_pred["z"]
    z_prior = keras.random.normal(ops.shape(z), dtype=model.compute_dtype, seed=model.noise)
    real_features, real_logit = live(model.discriminator, x)
    tilde_features, tilde_logit = live(model.discriminator, model.decode(z, training=True))
    _, prior_logit = live(model.discriminator, model.decode(z_prior, training=True))
    llike = 0.5 * squared_error(ops.stop_gradient(real_features), tilde_features)
    return {
        "kl": gaussian_kl(y_pred["z_mean"], y_pred["z_log_var"]),
        "llike_enc": llike,
        "llike_dec": llike,
        **model.game_terms(real_logit, tilde_logit, prior_logit, tilde_logit, prior_logit),
    }


def part_gradients(model: keras.Model, x) -> tuple[list, list, dict[str, Any], dict[str, Any]]:
    """(gradients, variables, part losses, y_pred) of one step on the batch ``x``: each part's
    trainable variables and the gradient of its own loss (``model.part_losses``) with respect
    to them, in ``PARTS`` order. TensorFlow only."""
    import tensorflow as tf

    with tf.GradientTape(persistent=True) as tape:
        y_pred = model(x, training=True)
        losses = model.part_losses(live_terms(model, x, y_pred))
        scaled = {part: model.optimizer.scale_loss(loss) for part, loss in losses.items()}
    gradients, variables = [], []
    for part, loss in scaled.items():
        weights = getattr(model, part).trainable_variables
        gradients += tape.gradient(loss, weights)
        variables += weights
    del tape
    return gradients, variables, losses, y_pred


def tensorflow_train_step(model: keras.Model, data):
    """Keras' TensorFlow ``train_step`` for the VAE-GAN: the gradients of ``part_gradients``,
    applied by the model's optimizer; returns the logs, "loss" being the sum of the part
    losses as ``compute_loss`` returns it."""
    x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
    gradients, variables, losses, y_pred = part_gradients(model, x)
    model.optimizer.apply_gradients(zip(gradients, variables, strict=True))
    total = losses["encoder"] + losses["decoder"] + losses["discriminator"]
    loss_tracker = next(m for m in model.metrics if m.name == "loss")
    loss_tracker.update_state(total, sample_weight=ops.shape(x)[0])
    return model.compute_metrics(x, None, y_pred)


def jax_part_gradients(model: keras.Model, trainable: list, non_trainable: list, metrics: list, x):
    """The JAX twin of ``part_gradients``, stateless: (gradients in the order of
    ``model.trainable_variables``, part losses, y_pred, new non-trainable values, new metric
    values) for the variables' values given."""
    import jax
    import jax.numpy as jnp

    def losses(trainable):
        mapping = [*zip(model.trainable_variables, trainable, strict=True),
                   *zip(model.non_trainable_variables, non_trainable, strict=True),
                   *zip(model.metrics_variables, metrics, strict=True)]  # fmt: skip
        with keras.StatelessScope(state_mapping=mapping) as scope:
            y_pred = model(x, training=True)
            parts = model.part_losses(live_terms(model, x, y_pred))
            scaled = jnp.stack([model.optimizer.scale_loss(parts[part]) for part in PARTS])
        updated = [scope.get_current_value(v) for v in (*model.non_trainable_variables, *model.metrics_variables)]
        return scaled, (parts, y_pred, updated)

    _, pull_back, (parts, y_pred, updated) = jax.vjp(losses, trainable, has_aux=True)
    owner = {id(v): PARTS.index(part) for part in PARTS for v in getattr(model, part).trainable_variables}
    by_part = [pull_back(jnp.eye(len(PARTS))[i])[0] for i in range(len(PARTS))]
    gradients = [by_part[owner[id(v)]][j] for j, v in enumerate(model.trainable_variables)]
    n = len(non_trainable)
    return gradients, parts, y_pred, updated[:n], updated[n:]


def jax_train_step(model: keras.Model, state, data):
    """Keras' JAX ``train_step`` (stateless: ``state`` in, logs and ``state`` out) for the
    VAE-GAN, with the gradients of ``jax_part_gradients``."""
    trainable, non_trainable, optimizer_variables, metrics = state
    x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
    gradients, losses, y_pred, non_trainable, metrics = jax_part_gradients(
        model, trainable, non_trainable, metrics, x
    )
    trainable, optimizer_variables = model.optimizer.stateless_apply(optimizer_variables, gradients, trainable)
    mapping = list(zip(model.metrics_variables, metrics, strict=True))
    with keras.StatelessScope(state_mapping=mapping) as scope:
        total = losses["encoder"] + losses["decoder"] + losses["discriminator"]
        next(m for m in model.metrics if m.name == "loss").update_state(total, sample_weight=x.shape[0])
        logs = model.compute_metrics(x, None, y_pred)
    metrics = [scope.get_current_value(v) for v in model.metrics_variables]
    return logs, (trainable, non_trainable, optimizer_variables, metrics)


#: The one-pass ``train_step`` of each backend that has one.
TRAIN_STEPS = {"tensorflow": tensorflow_train_step, "jax": jax_train_step}
