"""Grid settings from the command line and from a TOML file: ``--set``, value lists, ``--config``.

``--set MODEL.PARAM=V1,V2,...`` gives a model parameter one or more values (``*.PARAM``: every
model of the run that has the parameter); the values are parsed to the type the model's
factory annotates and checked against its signature. A grid file holds the same settings:

.. code-block:: toml

    preset = "quick"
    models = ["vae_bernoulli", "vae_mse"]
    latent_dim = [2, 16]          # a list is an axis of the grid; a number is one value
    seeds = 2

    [set.vae_bernoulli]           # or [set."*"] for every model that has the parameter
    beta = [0.5, 2.0]

Flags override the file, the file overrides the preset.
"""

from __future__ import annotations

import math
import tomllib
import types
import typing
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from benchmark.errors import UsageError, did_you_mean
from benchmark.running.config import RANGES, RUN_AXES

#: Keys a grid file may hold.
FILE_KEYS = ("preset", "models", "datasets", "seeds", *RUN_AXES, "out", "data_dir", "plugins", "set")

#: ``model or "*"`` -> parameter -> values, in the order given.
Settings = dict[str, dict[str, tuple[Any, ...]]]

_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")
_NONE = ("none", "null")


def parse_set(text: str) -> tuple[str, str, tuple[str, ...]]:
    """``"MODEL.PARAM=V1,V2"`` -> ``(MODEL, PARAM, ("V1", "V2"))``; ``ValueError`` if malformed."""
    target, sep, values = text.partition("=")
    model, dot, param = target.strip().rpartition(".")
    raw = tuple(v.strip() for v in values.split(","))
    if not sep or not dot or not model.strip() or not param.strip() or not all(raw):
        raise ValueError(f"expected MODEL.PARAM=VALUE[,VALUE...], got {text[:60]!r}")
    return model.strip(), param.strip(), raw


def coerce(value: Any, annotation: Any) -> Any:
    """``value`` (text from the command line, or a TOML value) as a value of ``annotation``.

    Understands ``float``, ``int``, ``bool``, ``str``, ``X | None`` and ``Literal[...]``;
    raises ``ValueError`` for a value that is not one.
    """
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return _coerce_union(value, annotation)
    if origin is typing.Literal:
        return _coerce_literal(value, annotation)
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
            return value.strip().lower() in _TRUE
        raise ValueError("not a boolean (true or false)")
    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
        raise ValueError("not a whole number")
    if annotation is float:
        return _coerce_float(value)
    if annotation is str:
        if isinstance(value, str):
            return value
        raise ValueError("not a string")
    if annotation is Any:
        if isinstance(value, (bool, int, float, str)):
            return value
        raise ValueError("not a number, boolean or string")
    raise ValueError(f"of a type that cannot be set from the command line ({_type_name(annotation)})")


def _coerce_union(value: Any, annotation: Any) -> Any:
    """``value`` as the first option of the union ``annotation`` that takes it; ``none`` or
    ``null`` (any case) as None where the union allows None."""
    options = typing.get_args(annotation)
    if type(None) in options and (value is None or str(value).strip().lower() in _NONE):
        return None
    for option in options:
        if option is type(None):
            continue
        try:
            return coerce(value, option)
        except ValueError:
            pass
    raise ValueError(f"not {_type_name(annotation)}")


def _coerce_literal(value: Any, annotation: Any) -> Any:
    """The choice of ``Literal[...]`` ``annotation`` that ``value``, read as its type, equals."""
    for choice in typing.get_args(annotation):
        try:
            if coerce(value, type(choice)) == choice:
                return choice
        except ValueError:
            pass
    raise ValueError(f"not one of {', '.join(map(repr, typing.get_args(annotation)))}")


def _coerce_float(value: Any) -> float:
    """``value`` (a number, not a boolean, or its text) as a finite float."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise ValueError("not a number") from None
    else:
        raise ValueError("not a number")
    if not math.isfinite(number):
        raise ValueError("not a finite number")
    return number


def _type_name(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def check_settings(
    sources: Iterable[tuple[str, Settings, bool]],
    models: tuple[str, ...],
    plugins: tuple[str, ...] | None = None,
) -> dict[str, dict[str, tuple[Any, ...]]]:
    """Merge the settings of ``sources`` (``(where, settings, strict)``, later ones override
    earlier ones per model and parameter) into ``{model: {param: values}}`` for ``models``.

    Every model and parameter is checked against the registry and every value parsed to its
    parameter's type; a problem raises ``UsageError`` naming ``where``. A strict source (the
    command line) must name models of the run, and parameters some model of the run has; the
    settings of a file or a preset for models the run leaves out are skipped. A misspelt
    name is answered with the closest known one; ``plugins`` (the plugin modules the run
    loaded) shapes the hint given for a model that is not registered.
    """
    import models as registry  # imports Keras: only once the arguments are known to parse

    merged: dict[str, dict[str, tuple[Any, ...]]] = {}
    for where, settings, strict in sources:
        for model, params in settings.items():
            if model != "*" and not registry.is_model(model):
                raise UsageError(f"{where}: {registry.registry.unknown_model_message(model, plugins)}")
            if strict and model != "*" and model not in models:
                raise UsageError(
                    f"{where}: model {model!r} is not among the models of this run"
                    f"{did_you_mean(model, models)}"
                )
            targets = models if model == "*" else (model,) if model in models else ()
            for param, values in params.items():
                having = [m for m in targets if param in registry.registry.tunable_parameters(m)]
                if model != "*" and param not in registry.registry.tunable_parameters(model):
                    own = registry.registry.tunable_parameters(model)
                    raise UsageError(
                        f"{where}: model {model!r} has no parameter {param!r}{did_you_mean(param, own)} "
                        f"(its parameters: {', '.join(own) or 'none'})"
                    )
                if model == "*" and not having and strict:
                    anywhere = {p for m in models for p in registry.registry.tunable_parameters(m)}
                    raise UsageError(
                        f"{where}: no model of this run has a parameter {param!r}"
                        f"{did_you_mean(param, sorted(anywhere))}"
                    )
                if not values:
                    raise UsageError(f"{where}: {model}.{param} has no values")
                for target in having:
                    annotation = registry.registry.parameter_types(target)[param]
                    parsed = []
                    for value in values:
                        try:
                            parsed.append(coerce(value, annotation))
                        except ValueError as exc:
                            raise UsageError(
                                f"{where}: {target}.{param} = {str(value)[:40]!r} is {exc}"
                            ) from None
                    merged.setdefault(target, {})[param] = tuple(dict.fromkeys(parsed))
    return merged


def flag_settings(specs: Iterable[tuple[str, str, tuple[str, ...]]]) -> Settings:
    """The ``--set`` specs as settings, a later spec of one model and parameter winning."""
    settings: Settings = {}
    for model, param, values in specs:
        settings.setdefault(model, {})[param] = values
    return settings


def load_grid_file(path: Path) -> dict[str, Any]:
    """Read and check a grid file (see the module docstring); ``UsageError`` if unusable.

    Returns its keys with lists as tuples, and ``set`` as ``Settings``.
    """
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as exc:
        raise UsageError(f"grid file {str(path)!r} cannot be read: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"grid file {str(path)!r} is not valid TOML: {exc}") from None
    except ValueError as exc:  # e.g. a NUL byte in the path
        raise UsageError(f"grid file {str(path)!r} cannot be read: {exc}") from None
    where = f"grid file {path.name}"
    unknown = sorted(set(data) - set(FILE_KEYS))
    if unknown:
        raise UsageError(
            f"{where}: unknown key {unknown[0]!r}{did_you_mean(unknown[0], FILE_KEYS)}; "
            f"known keys: {', '.join(FILE_KEYS)}"
        )
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key == "set":
            out["set"] = _file_settings(value, where)
        elif key in ("models", "datasets", "plugins"):
            names = [value] if isinstance(value, str) else value
            if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
                raise UsageError(f"{where}: {key} must be a name or a list of names")
            out[key] = tuple(dict.fromkeys(names))
        elif key in ("preset", "out", "data_dir"):
            if not isinstance(value, str) or not value:
                raise UsageError(f"{where}: {key} must be a non-empty string")
            out[key] = value
        else:  # seeds and the run-level settings: whole numbers, the latter also lists
            values = value if isinstance(value, list) and key in RUN_AXES else [value]
            low, high = RANGES[key]
            for v in values:
                if isinstance(v, bool) or not isinstance(v, int) or not low <= v <= high:
                    raise UsageError(
                        f"{where}: {key} must be whole numbers from {low} to {high}, got {v!r}"
                    )
            if not values:
                raise UsageError(f"{where}: {key} is an empty list")
            out[key] = tuple(values) if key in RUN_AXES else values[0]
    return out


def _file_settings(value: Any, where: str) -> Settings:
    """The ``[set]`` table of a grid file: ``{model: {param: value or list}}``."""
    if not isinstance(value, dict):
        raise UsageError(f"{where}: set must be a table of models")
    settings: Settings = {}
    for model, params in value.items():
        if not isinstance(params, dict):
            raise UsageError(f"{where}: set.{model} must be a table of parameters")
        for param, values in params.items():
            listed = values if isinstance(values, list) else [values]
            if any(isinstance(v, (dict, list)) for v in listed):
                raise UsageError(f"{where}: set.{model}.{param} must be a value or a list of values")
            settings.setdefault(model, {})[param] = tuple(listed)
    return settings
