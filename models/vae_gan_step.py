"""The VAE-GAN's training step on TensorFlow and JAX: each network runs once per input, and
each part takes its gradient from its own loss.

``VAEGAN.compute_loss`` routes the three losses through one scalar, for the train step of any
backend, which differentiates one: the encoder's L_llike reaches the encoder through frozen
copies of the decoder and the discriminator, the decoder's losses reach the decoder through a
frozen discriminator. Those frozen passes repeat forward computations whose values the live
passes already have, on inputs of other shapes, so neither TensorFlow's graph optimizer nor
XLA merges them. Here the networks run once on each input (live weights everywhere, only the
L_llike target stopped), and each part takes the gradient of its own loss: on TensorFlow
from one persistent tape, with one backward pass through the discriminator on each fake for
L_GAN and the generator loss together (``part_gradients``); on JAX from one ``jax.vjp``
pulled back once per part. A loss's gradient with respect to another part's weights is
never asked for (on JAX it is dropped and XLA does not compute it). The gradients are the
routed sum's (``tests/test_vae_gan.py`` compares them), at less work per step (README,
performance section). Other backends train on ``compute_loss``.

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

#: The least weight of a fake in the discriminator's shared backward pass (``part_gradients``).
FLOOR = 1e-12


def live(network: keras.Model, inputs):
    """``network(inputs, training=True)``, outputs in float32 for the losses."""
    return keras.tree.map_structure(as_float32, network(inputs, training=True))


def live_passes(model: keras.Model, x, y_pred) -> dict[str, Any]:
    """One live pass of each network per input: the fakes x~ (from y_pred's z) and x_p (from
    prior noise, drawn as ``loss_terms`` draws it), (batch, H, W, C), and the discriminator's
    features and logits, float32."""
    z = y_pred["z"]
    z_prior = keras.random.normal(ops.shape(z), dtype=model.compute_dtype, seed=model.noise)
    x_tilde, x_prior = model.decode(z, training=True), model.decode(z_prior, training=True)
    real_features, real_logit = live(model.discriminator, x)
    tilde_features, tilde_logit = live(model.discriminator, x_tilde)
    _, prior_logit = live(model.discriminator, x_prior)
    return {"x_tilde": x_tilde, "x_prior": x_prior, "real_features": real_features,
            "tilde_features": tilde_features, "real_logit": real_logit, "tilde_logit": tilde_logit,
            "prior_logit": prior_logit}  # fmt: skip


def live_terms(model: keras.Model, y_pred, passes: dict[str, Any]) -> dict[str, Any]:
    """``model.loss_terms`` from ``live_passes``: the same values, but each term reaches every
    part it depends on, so it is differentiated only with respect to its own part."""
    llike = 0.5 * squared_error(ops.stop_gradient(passes["real_features"]), passes["tilde_features"])
    real, tilde, prior = passes["real_logit"], passes["tilde_logit"], passes["prior_logit"]
    return {
        "kl": gaussian_kl(y_pred["z_mean"], y_pred["z_log_var"]),
        "llike_enc": llike,
        "llike_dec": llike,
        **model.game_terms(real, tilde, prior, tilde, prior),
    }


def part_gradients(model: keras.Model, x) -> tuple[list, list, dict[str, Any], dict[str, Any]]:
    """(gradients, variables, part losses, y_pred) of one step on the batch ``x``: each part's
    trainable variables and the gradient of its own loss (``model.part_losses``) with respect
    to them, in ``PARTS`` order. TensorFlow only.

    The discriminator's backward pass on each fake serves two losses. L_GAN and the decoder's
    generator loss depend on a fake only through its logit, a scalar per image, so their
    gradients with respect to the fake are that image's logit gradient times a number: one
    pass, weighted by L_GAN's derivatives, gives the discriminator's weight gradient and,
    rescaled image by image, the generator loss's gradient at the fakes. A fake whose L_GAN
    derivative is below ``FLOOR`` (per image, in a batch mean) is weighted ``FLOOR``, so
    that it still carries the decoder's gradient; its share of the discriminator's gradient
    is then off by less than ``FLOOR`` times its logit's gradient.
    """
    import tensorflow as tf

    scale = model.optimizer.scale_loss
    with tf.GradientTape(persistent=True) as tape:
        y_pred = model(x, training=True)
        passes = live_passes(model, x, y_pred)
        terms = live_terms(model, y_pred, passes)
        losses = model.part_losses(terms)  # gated, for the logs
        # The same losses ungated, term by term: each term's gradient is taken where it enters.
        prior, llike = scale(model.beta * ops.mean(terms["kl"])), scale(ops.mean(terms["llike_enc"]))
        gan, generator = scale(ops.mean(terms["gan"])), scale(ops.mean(terms["generator"]))
    dec_on, dis_on = model.gates(terms)
    logits = [passes["real_logit"], passes["tilde_logit"], passes["prior_logit"]]
    d_gan, d_generator = tape.gradient(gan, logits), tape.gradient(generator, logits[1:])
    floor = FLOOR / ops.cast(ops.shape(x)[0], "float32")
    weights = [d_gan[0], *(ops.where(ops.abs(d) < floor, floor, d) for d in d_gan[1:])]
    dis = model.discriminator.trainable_variables
    shared = tape.gradient(logits, [*dis, passes["x_tilde"], passes["x_prior"]], output_gradients=weights)
    at_tilde, at_prior = (
        ops.reshape(d / w, (-1, 1, 1, 1)) * g for d, w, g in zip(d_generator, weights[1:], shared[-2:], strict=True)
    )
    from_llike = tape.gradient(llike, passes["x_tilde"])  # through the discriminator's first blocks
    gradients = {
        "encoder": tape.gradient([prior, passes["x_tilde"]], model.encoder.trainable_variables,
                                 output_gradients=[ops.ones_like(prior), from_llike]),
        "decoder": tape.gradient([passes["x_tilde"], passes["x_prior"]], model.decoder.trainable_variables,
                                 output_gradients=[dec_on * (model.gamma * from_llike + at_tilde), dec_on * at_prior]),
        "discriminator": [dis_on * g for g in shared[: len(dis)]],
    }  # fmt: skip
    del tape
    variables = [v for part in PARTS for v in getattr(model, part).trainable_variables]
    return [g for part in PARTS for g in gradients[part]], variables, losses, y_pred


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
            parts = model.part_losses(live_terms(model, y_pred, live_passes(model, x, y_pred)))
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
