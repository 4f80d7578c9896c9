"""vaebench models: a registry of generative autoencoders sharing one backbone.

Importing the package registers every variant module listed below; a new variant is one
module that uses ``@register_model`` and one line here.
"""

from models import ae, vae_bernoulli, vae_bernoulli_mlp, vae_gan, vae_mse  # noqa: F401  (registers the variants)
from models.registry import UnknownModelError, create_model, is_model, list_models, register_model

__all__ = ["UnknownModelError", "create_model", "is_model", "list_models", "register_model"]
