"""The Bernoulli VAE of Burda et al. (2016), Table 1, one stochastic layer, and its training.

Networks: 784 -> 200 -> 200 (tanh) -> a Gaussian latent of 50, and back to 784 Bernoulli
logits (``models.mlp_networks``). Loss: the negative ELBO of ``vae_bernoulli`` (one
reparameterized sample, closed-form KL). Optimizer, from the paper's section 5: Adam with
beta_1 = 0.9, beta_2 = 0.999, epsilon = 1e-4, and a learning rate of 0.001 * 10^(-i/7) for
3^i passes over the data, i = 0..7: 3,280 passes in all (``BurdaSchedule``).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from models.base import Autoencoder
from models.mlp_networks import build_mlp_decoder, build_mlp_encoder
from models.registry import register_model
from models.vae_bernoulli import BernoulliVAE

#: Adam's epsilon in Burda et al.; Keras' default (1e-7) lets steps grow where gradients vanish.
BURDA_EPSILON = 1e-4
#: Stages of the schedule: stage i lasts 3^i passes at 0.001 * 10^(-i/7).
BURDA_STAGES = 8
BURDA_LEARNING_RATE = 1e-3


def burda_passes(stages: int = BURDA_STAGES) -> int:
    """Passes over the data of the whole schedule: sum of 3^i, i < stages (3,280 for 8)."""
    return (3**stages - 1) // 2


@keras.saving.register_keras_serializable(package="vaebench")
class BurdaSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Learning rate ``initial * 10^(-i/7)`` during stage i, which lasts 3^i passes.

    A function of the optimizer's step count alone, so that a model restored with its
    optimizer state continues the schedule. Stage i covers passes (0-based)
    (3^i - 1)/2 to (3^(i+1) - 1)/2 - 1; after the last stage the rate stays at its value.

    Parameters
    ----------
    steps_per_pass : int
        Optimizer steps in one pass over the training data, ceil(n_train / batch_size).
    initial : float, default=1e-3
        Rate of stage 0.
    stages : int, default=8
        Number of stages (i = 0..stages-1).
    """

    def __init__(
        self, steps_per_pass: int, initial: float = BURDA_LEARNING_RATE, stages: int = BURDA_STAGES
    ):
        if steps_per_pass < 1:
            raise ValueError(f"steps_per_pass must be at least 1, got {steps_per_pass}")
        self.steps_per_pass = int(steps_per_pass)
        self.initial = float(initial)
        self.stages = int(stages)

    def __call__(self, step):
        # Integer division: a float32 step count would blur pass boundaries after ~16M steps.
        passes_done = ops.floor_divide(ops.cast(step, "int64"), self.steps_per_pass)
        starts = np.array([burda_passes(i + 1) for i in range(self.stages - 1)], np.int64)
        stage = ops.sum(ops.cast(ops.greater_equal(passes_done, starts), "float32"))
        return self.initial * ops.power(10.0, -stage / 7.0)

    def get_config(self):
        return {
            "steps_per_pass": self.steps_per_pass,
            "initial": self.initial,
            "stages": self.stages,
        }


@keras.saving.register_keras_serializable(package="vaebench")
class MLPBernoulliVAE(BernoulliVAE):
    """``vae_bernoulli``'s likelihood and loss on Burda et al.'s fully connected networks.

    ``steps_per_epoch`` (optimizer steps per pass) is set by the harness before it calls
    ``make_optimizer``; without it (a model compiled by hand) the rate stays at stage 0's.
    """

    steps_per_epoch: int | None = None

    def __init__(self, image_shape, latent_dim: int, beta: float = 1.0, **kwargs):
        # VAE.__init__ would build (and track) the convolutional backbone; this model
        # replaces only the networks, so the base class is initialised directly.
        Autoencoder.__init__(self, image_shape, latent_dim, **kwargs)
        if not beta >= 0:
            raise ValueError(f"beta must be >= 0, got {beta}")
        self.beta = float(beta)
        self.encoder = build_mlp_encoder(self.image_shape, self.latent_dim)
        self.decoder = build_mlp_decoder(self.image_shape, self.latent_dim)
        self.noise = keras.random.SeedGenerator(self.seed)
        self.nll_tracker = keras.metrics.Mean(name="nll")
        self.kl_tracker = keras.metrics.Mean(name="kl")

    def make_optimizer(self) -> keras.optimizers.Adam:
        """Adam (0.9, 0.999, epsilon 1e-4) on ``BurdaSchedule`` over ``steps_per_epoch``."""
        rate = BurdaSchedule(self.steps_per_epoch) if self.steps_per_epoch else BURDA_LEARNING_RATE
        return keras.optimizers.Adam(
            learning_rate=rate, beta_1=0.9, beta_2=0.999, epsilon=BURDA_EPSILON
        )


@register_model
def vae_bernoulli_mlp(
    image_shape, latent_dim: int = 50, beta: float = 1.0, **config
) -> MLPBernoulliVAE:
    return MLPBernoulliVAE(image_shape, latent_dim, beta=beta, **config)
