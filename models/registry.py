"""Model registry: variants register a factory by name; the harness builds them by name.

A factory has the signature ``factory(image_shape, latent_dim, **config) -> keras.Model``.
Its tunable parameters are the keyword parameters it declares, with a type annotation and a
default (e.g. ``obs_std: float = 0.1``): those can be set and swept from the command line.
"""

from __future__ import annotations

import fnmatch
import inspect
import typing
from collections.abc import Callable
from typing import Any

import keras

ModelFactory = Callable[..., keras.Model]

#: Factory arguments the harness sets for every model: not tunable parameters.
BUILD_ARGS = ("image_shape", "latent_dim", "seed")

#: Annotations written as text that are understood without evaluating them.
_BUILTIN_TYPES = {"float": float, "int": int, "str": str, "bool": bool}

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
    return get_factory(name)(image_shape=tuple(image_shape), latent_dim=latent_dim, **config)


def get_factory(name: str) -> ModelFactory:
    """The factory registered as ``name``; ``UnknownModelError`` if none is."""
    if name not in _MODELS:
        raise UnknownModelError(f"unknown model {name!r}; known models: {', '.join(list_models())}")
    return _MODELS[name]


def tunable_parameters(name: str) -> dict[str, inspect.Parameter]:
    """The parameters of model ``name`` that a run may set: the factory's named keyword
    parameters with a default, in declaration order, besides ``BUILD_ARGS``."""
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return {
        p.name: p
        for p in inspect.signature(get_factory(name)).parameters.values()
        if p.kind in kinds and p.name not in BUILD_ARGS and p.default is not inspect.Parameter.empty
    }


def parameter_types(name: str) -> dict[str, Any]:
    """The annotated type of each tunable parameter of model ``name`` (``Any`` if none).

    Annotations are evaluated in the factory's module; one that cannot be (a name the
    module does not define) falls back to the built-in type it names, else ``Any``.
    """
    factory = get_factory(name)
    try:
        hints = typing.get_type_hints(factory)
    except Exception:
        hints = {}
    types = {}
    for pname, param in tunable_parameters(name).items():
        annotation = hints.get(pname, param.annotation)
        if isinstance(annotation, str):
            annotation = _BUILTIN_TYPES.get(annotation, Any)
        types[pname] = Any if annotation is inspect.Parameter.empty else annotation
    return types
