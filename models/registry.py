"""Model registry: variants register a factory by name; the harness builds them by name.

A factory has the signature ``factory(image_shape, latent_dim, **config) -> keras.Model``.
Its tunable parameters are the keyword parameters it declares, with a type annotation and a
default (e.g. ``obs_std: float = 0.1``): those can be set and swept from the command line.
"""

from __future__ import annotations

import fnmatch
import inspect
import os
import re
import site
import sys
import typing
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import keras

from benchmark.errors import did_you_mean

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
        raise UnknownModelError(unknown_model_message(name))
    return _MODELS[name]


#: The flag and the environment variable that load plugin modules (``benchmark.cli``).
PLUGINS_HINT = "--plugins MODULE (or VAEBENCH_PLUGINS)"

#: Bounds on the search for a plugin that defines an unknown model: a message must stay quick
#: even with a large folder on the path.
_SCAN_FILES, _SCAN_BYTES = 300, 1_000_000


def unknown_model_message(name: str, plugins: Sequence[str] | None = None) -> str:
    """One line saying ``name`` is not registered: the closest registered name, the known
    ones, and how a model from outside vaebench gets registered.

    Parameters
    ----------
    name : str
        The model name that is not registered.
    plugins : sequence of str, optional
        The plugin modules this run imported; by default, the modules outside ``models``
        that registered a model.

    Returns
    -------
    str
        The message, naming a module on the path that defines a factory ``name`` (so that
        ``--plugins MODULE`` would register it) when there is one.
    """
    if plugins is None:
        plugins = sorted(
            {f.__module__ for f in _MODELS.values() if f.__module__.split(".")[0] != "models"}
        )
    message = f"unknown model {name!r}{did_you_mean(name, _MODELS)}; known models: {', '.join(list_models())}"
    found = next(plugin_modules_defining(name), None)
    if found is not None:
        module, path = found
        return f"{message}; {path} may register it: load it with --plugins {module}"
    if not plugins:
        return f"{message}; models from outside vaebench need {PLUGINS_HINT}"
    return f"{message}; the plugins loaded ({', '.join(plugins)}) do not register it"


def plugin_modules_defining(name: str) -> Iterator[tuple[str, Path]]:
    """``(module, path)`` of each top-level module in the working directory or on the path
    (``PYTHONPATH``, not the installed packages) that is named ``name`` or defines a function
    ``name``: a plugin that ``--plugins module`` would load."""
    if not name.isidentifier():
        return
    defines = re.compile(rf"^\s*def\s+{re.escape(name)}\s*\(", re.MULTILINE)
    installed = [
        Path(p).resolve()
        for p in (*site.getsitepackages(), site.getusersitepackages(), sys.base_prefix, sys.prefix)
    ]
    folders = dict.fromkeys(Path(p or os.curdir).resolve() for p in (os.curdir, *sys.path))
    scanned = 0
    for folder in folders:
        if any(folder.is_relative_to(root) for root in installed) or not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.py")):
            scanned += 1
            if scanned > _SCAN_FILES:
                return
            if path.stem == name:
                yield path.stem, path
                continue
            try:
                if path.stat().st_size <= _SCAN_BYTES and defines.search(
                    path.read_text("utf-8", "replace")
                ):
                    yield path.stem, path
            except OSError:  # unreadable: not a plugin this run could load either
                continue


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
