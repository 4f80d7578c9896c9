"""An RMSprop that skips a step whose gradient is exactly zero, for the VAE-GAN's gated parts.

The VAE-GAN's equilibrium gate switches a part off for a step by multiplying its loss by 0
(``VAEGAN.part_losses``), so the part's gradient is exactly zero on that step. A plain
RMSprop would still run the step: the weights stay put (the step is ``lr * g / sqrt(v +
eps)``), but the running mean of squared gradients ``v`` decays by ``rho`` and the iteration
count advances, so the first step after the gate reopens is larger than a normal one (about
1.04x after 1 gated step, 1.5x after 10, 3.4x after 50 with ``rho = 0.9``). ``GatedRMSprop``
makes a gated step a no-op: weights, moving averages and iteration count all keep their
values.

Why the gradient carries the gate: the gate is decided inside the loss, and the gradients are
the one thing every backend's own train step passes from the loss to the optimizer. A
model variable written in ``compute_loss`` would reach the optimizer on TensorFlow, but not
on JAX, where ``optimizer.stateless_apply`` sees only the trainable and optimizer variables.
An ungated part's gradient is never exactly zero over all its weights in practice (the
bias of every layer sees the loss); if it were, skipping the step would lose no direction.
A NaN gradient is not zero, so a diverged loss still reaches the weights and shows.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="vaebench")
class GatedRMSprop(keras.optimizers.RMSprop):
    """``keras.optimizers.RMSprop`` whose step is skipped when every gradient is exactly zero.

    The step is computed as usual, then each variable it touched (the trainable variables
    given, and this optimizer's own: iterations, velocities and any momentum or average
    gradient) is set to ``where(open, new, old)``, with ``open`` true when some gradient
    entry is non-zero. ``ops.where`` rather than ``ops.cond``: the update assigns variables,
    which a JAX ``cond`` branch cannot do inside the stateless scope of the train step; the
    cost is one select per weight and per slot.
    """

    def apply(self, grads: Sequence, trainable_variables: Sequence | None = None) -> None:
        """Apply ``grads`` (one per variable, each of the variable's shape) unless all are 0."""
        present = [g for g in grads if g is not None]
        if not present:
            return super().apply(grads, trainable_variables)
        if trainable_variables is None:
            variables = list(self._trainable_variables)
        else:
            variables = list(trainable_variables)
            if not self.built:  # its slots must exist before they are read
                self.build(variables)
        is_open = ops.any(ops.stack([ops.any(ops.not_equal(g, 0)) for g in present]))
        touched = [*variables, *self.variables]
        # Values read now, before the step assigns anything. A copy, not the variable: on
        # TensorFlow a variable handle would be read after the assignments.
        before = [ops.copy(v.value) for v in touched]
        super().apply(grads, trainable_variables)
        for variable, old in zip(touched, before, strict=True):
            variable.assign(ops.where(is_open, variable.value, old))
