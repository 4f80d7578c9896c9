"""A unit's identity: everything that decides its result, and what changed between two.

``resolve_unit`` fills the ``IDENTITY_FIELDS`` of a ``UnitConfig``:

- ``model_config``: every tunable parameter of the model as built, defaults included (the
  factory's signature bound with the run's values, updated with the built model's
  ``get_config()`` less the build arguments and Keras' own keys);
- ``code``: a digest of each source module that defines the model: the modules of its
  class and base classes that live in ``models/`` or in the factory's own module (a plugin),
  and the ``models/`` modules those import (``networks``, ``losses``, ...), transitively. The
  digest is of the module's syntax tree without docstrings, so a comment or a docstring
  changes nothing. A model class may declare ``code_version = "..."`` instead;
- ``data``: the data's source and a digest of its arrays as cut to the limits (plus, for
  the IDX files, their published SHA-256); memory-mapped images (``ImageArray``) are digested
  as stored, uint8, a chunk at a time;
- ``version``: the vaebench version.

Code outside the model (the harness, the scores, the report) is not part of the identity:
editing it retrains nothing.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import hashlib
import importlib.metadata
import inspect
import json
import sys
import tomllib
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from benchmark.data.dataset import Dataset
from benchmark.data.idx import SHA256
from benchmark.data.images import ImageArray
from benchmark.errors import UsageError
from benchmark.running.config import UnitConfig

#: Keys of ``get_config()`` that are not parameters of the model.
NOT_PARAMETERS = ("image_shape", "latent_dim", "seed", "name", "trainable", "dtype")

#: Modules of the ``models`` package that hold no model code (the registry's plumbing).
NOT_MODEL_CODE = ("models", "models.registry")

ROOT = Path(__file__).resolve().parents[2]


@functools.cache
def vaebench_version() -> str:
    """The version in the source tree's ``pyproject.toml``, else the installed one."""
    try:
        with open(ROOT / "pyproject.toml", "rb") as f:
            return str(tomllib.load(f)["project"]["version"])
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        try:
            return importlib.metadata.version("vaebench")
        except importlib.metadata.PackageNotFoundError:
            return "unknown"


def build_model(config: UnitConfig, image_shape: tuple[int, ...]):
    """The unit's model, built with its chosen parameters; ``UsageError`` for a value the
    model refuses (e.g. a negative ``obs_std``)."""
    import models

    try:
        return models.create_model(
            config.model, image_shape, config.latent_dim, seed=config.seed, **config.model_args
        )
    except (ValueError, TypeError) as exc:
        args = ", ".join(f"{k}={v!r}" for k, v in config.model_args.items())
        raise UsageError(f"model {config.model}({args}) cannot be built: {exc}") from None


def resolved_model_config(name: str, model: Any, args: dict[str, Any]) -> dict[str, Any]:
    """Every parameter of ``model`` (built by factory ``name`` with ``args``), defaults included."""
    from models.registry import tunable_parameters

    config = {p: args.get(p, param.default) for p, param in tunable_parameters(name).items()}
    built = model.get_config() if hasattr(model, "get_config") else {}
    for key, value in built.items():
        if key not in NOT_PARAMETERS and _is_plain(value):
            config[key] = value
    return json.loads(json.dumps(config, sort_keys=True))  # tuples -> lists, as saved


def _is_plain(value: Any) -> bool:
    """JSON numbers, strings, booleans, None and lists of them."""
    if isinstance(value, (list, tuple)):
        return all(_is_plain(v) for v in value)
    return value is None or isinstance(value, (bool, int, float, str))


# -- code ---------------------------------------------------------------------------------


def code_fingerprint(name: str, model: Any) -> dict[str, str]:
    """``{source path: digest}`` of the modules that define model ``name`` (see the module
    docstring), or ``{"code_version": ...}`` when the model's class declares one."""
    from models.registry import get_factory

    declared = getattr(type(model), "code_version", None)
    if declared is not None:
        return {"code_version": str(declared)}
    factory_module = get_factory(name).__module__
    roots = {factory_module} | {
        cls.__module__ for cls in type(model).__mro__ if _is_model_module(cls.__module__, factory_module)
    }
    seen: set[str] = set()
    todo = sorted(roots)
    while todo:
        module_name = todo.pop()
        if module_name in seen or module_name in NOT_MODEL_CODE:
            continue
        seen.add(module_name)
        module = sys.modules.get(module_name)
        if module is not None:
            todo += sorted(_imported_model_modules(module) - seen)
    return {_display_path(m): source_digest(sys.modules[m]) for m in sorted(seen) if m in sys.modules}


def _is_model_module(module_name: str, factory_module: str) -> bool:
    return module_name == factory_module or module_name.startswith("models.")


def _imported_model_modules(module: ModuleType) -> set[str]:
    """The ``models.*`` modules that ``module`` uses: imported modules and the modules of
    imported functions and classes."""
    used = set()
    for value in vars(module).values():
        name = value.__name__ if isinstance(value, ModuleType) else getattr(value, "__module__", None)
        if isinstance(name, str) and name.startswith("models."):
            used.add(name)
    return used


def _display_path(module_name: str) -> str:
    """``models.vae`` -> ``models/vae.py``: how the module is named in messages."""
    return module_name.replace(".", "/") + ".py"


def source_digest(module: ModuleType) -> str:
    """SHA-256 (16 hex digits) of the module's syntax tree without docstrings and comments."""
    try:  # read from disk: the file as it is now, even if edited since the import
        text = Path(inspect.getsourcefile(module) or "").read_text()
    except (OSError, TypeError):
        return "no-source"
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return hashlib.sha256(text.encode()).hexdigest()[:16]
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
    return hashlib.sha256(ast.dump(tree).encode()).hexdigest()[:16]


# -- data ---------------------------------------------------------------------------------


def dataset_identity(data: Dataset) -> dict[str, Any]:
    """The data's name, source kind, and a digest of every array (and flag) of ``data``."""
    digest = hashlib.sha256()
    for f in dataclasses.fields(data):
        value = getattr(data, f.name)
        if f.name in ("name", "source") or (isinstance(value, tuple) and not value):  # no label names, probes
            continue
        if isinstance(value, ImageArray):  # hashed as stored (uint8), a chunk at a time
            digest.update(f"{f.name}:".encode())
            value.digest_into(digest)
        elif isinstance(value, np.ndarray):
            array = np.ascontiguousarray(value)
            digest.update(f"{f.name}:{array.dtype.str}:{array.shape}".encode())
            digest.update(memoryview(array).cast("B"))
        else:
            digest.update(f"{f.name}={value!r}".encode())
    source = data.source if data.source.startswith(("sklearn", "tensorflow")) else "idx files"
    identity = {"name": data.name, "source": source, "sha256": digest.hexdigest()[:16]}
    if source == "idx files" and data.name in SHA256:
        identity["files"] = dict(SHA256[data.name])
    return identity


# -- one unit -----------------------------------------------------------------------------


def model_identity(
    config: UnitConfig, image_shape: tuple[int, ...]
) -> tuple[dict[str, Any], dict[str, str], int]:
    """``(model_config, code, training FLOPs per sample)`` of the unit's model, built once."""
    model = build_model(config, image_shape)
    flops = model.train_flops_per_sample() if hasattr(model, "train_flops_per_sample") else 0
    return (
        resolved_model_config(config.model, model, config.model_args),
        code_fingerprint(config.model, model),
        int(flops),
    )


def resolve_unit(
    config: UnitConfig,
    model: tuple[dict[str, Any], dict[str, str], int],
    data_identity: dict[str, Any],
) -> UnitConfig:
    """``config`` with its identity filled in from ``model_identity`` and ``dataset_identity``."""
    model_config, code, _ = model
    return dataclasses.replace(
        config, model_config=model_config, code=code, data=data_identity, version=vaebench_version()
    )


def stale_reasons(old: dict[str, Any], new: UnitConfig) -> list[str]:
    """What differs between a saved unit config ``old`` and ``new``, in words:
    ``beta: 4.0 -> 0.5``, ``models/vae.py changed``."""
    if not old.get("code"):
        return ["trained before vaebench recorded its model's parameters and code"]
    reasons = []
    old_params, new_params = old.get("model_config") or {}, new.model_config
    for key in sorted(set(old_params) | set(new_params)):
        a, b = old_params.get(key, "(none)"), new_params.get(key, "(none)")
        if a != b:
            reasons.append(f"{key}: {_show(a)} -> {_show(b)}")
    old_code, new_code = old.get("code") or {}, new.code
    for path in sorted(set(old_code) | set(new_code)):
        if path not in old_code:
            reasons.append(f"{path} {'declared' if path == 'code_version' else 'now used'}")
        elif path not in new_code:
            reasons.append(f"{path} {'no longer declared' if path == 'code_version' else 'no longer used'}")
        elif old_code[path] != new_code[path]:
            reasons.append(
                f"code_version: {old_code[path]} -> {new_code[path]}"
                if path == "code_version"
                else f"{path} changed"
            )
    old_data, new_data = old.get("data") or {}, new.data
    if old_data.get("source") != new_data.get("source"):
        reasons.append(f"data source: {old_data.get('source')} -> {new_data.get('source')}")
    elif old_data != new_data:
        reasons.append(f"{new.dataset} data changed")
    if old.get("version", "") != new.version:
        reasons.append(f"vaebench {old.get('version') or '(unrecorded)'} -> {new.version}")
    return reasons or ["its identity changed"]


def _show(value: Any) -> str:
    return repr(value) if isinstance(value, str) and value != "(none)" else str(value)
