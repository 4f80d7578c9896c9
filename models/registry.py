"""Model registry: variants register a factory by name; the harness builds them by name.

A factory has the signature ``factory(image_shape, latent_dim, **config) -> keras.Model``.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from typing import Any

import keras

ModelFactory = Callable[..., keras.Model]

_MODELS: dict[str, ModelFactory] = {}


class UnknownModelError(ValueError):
    """Raised for a model name that no variant registered."""


def register_model(factory: ModelFactory) -> ModelFactory:
    """Decorator: register ``factory`` under its function name.

    Registering two factories under one name is an error, so a variant cannot silently
    replace another.
    """
    name = factory.__name__
    if name in _MODELS and _MODELS[name] is not factory:
        raise ValueError(f"a model named {name!r} is already registered")
    _MODELS[name] = factory
    return factory


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching the shell-style ``pattern``, sorted."""
    return sorted(name for name in _MODELS if fnmatch.fnmatch(name, pattern))


def is_model(name: str) -> bool:
    return name in _MODELS


def create_model(
    name: str, image_shape: tuple[int, int, int], latent_dim: int = 16, **config: Any
) -> keras.Model:
    """Build the registered model ``name`` for images of ``image_shape`` (H, W, C).

    Extra keyword arguments go to the model's factory (e.g. ``obs_std`` for ``vae_mse``).
    """
    if name not in _MODELS:
        known = ", ".join(list_models())
        raise UnknownModelError(f"unknown model {name!r}; known models: {known}")
    return _MODELS[name](image_shape=tuple(image_shape), latent_dim=latent_dim, **config)
