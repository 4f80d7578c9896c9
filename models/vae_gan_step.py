"""The VAE-GAN's training step on TensorFlow: each network runs once per input, and each part
takes its gradient from its own loss.

``VAEGAN.compute_loss`` routes the three losses through one scalar, for the train step of any
backend, which differentiates one: the encoder's L_llike reaches the encoder through frozen
copies of the decoder and the discriminator, the decoder's losses reach the decoder through a
frozen discriminator. Those frozen passes repeat forward computations whose values the live
passes already have, and TensorFlow's graph optimizer does not merge them. Here the networks
run once on each input (live weights everywhere, only the L_llike target stopped), and one
persistent tape gives each part the gradient of its own loss; a loss's gradient with respect
to another part's weights is never asked for, so it is never computed. The gradients are the
routed sum's (``tests/test_vae_gan.py`` compares them), at about 15% less CPU time per step
on a 2-core CPU (README, performance section).

Each network is called on each of its inputs separately rather than on one concatenated
batch: a part's backward pass then runs only on the rows its loss depends on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import keras
from keras import ops

from models.losses import gaussian_kl, squared_error
from models.precision import as_float32

if TYPE_CHECKING:
    from models.vae_gan import VAEGAN


def live(network: keras.Model, inputs):
    """``network(inputs, training=True)``, outputs in float32 for the losses."""
    return keras.tree.map_structure(as_float32, network(inputs, training=True))


def live_terms(model: VAEGAN, x, y_pred) -> dict[str, Any]:
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


def part_gradients(model: VAEGAN, x) -> tuple[list, list, dict[str, Any], dict[str, Any]]:
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


def one_pass_train_step(model: VAEGAN, data):
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
