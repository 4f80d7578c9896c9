"""Plugins: modules outside vaebench that register models with ``@register_model``
(``--plugins`` / ``VAEBENCH_PLUGINS``), imported by the command line and by every worker."""

from __future__ import annotations

import importlib
import os
import sys

from benchmark.errors import UsageError


def load_plugins(names: tuple[str, ...]) -> None:
    """Import each plugin module; a plugin registers its models with ``@register_model``.

    A module in the working directory is found as well as one on ``PYTHONPATH``.
    """
    # `python -m` puts the working directory on the path, a console script or `python run_all.py`
    # does not; appended, a stray file there shadows no installed module.
    if names and os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.append(os.getcwd())
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as exc:
            raise UsageError(f"cannot import plugin {name!r}: {type(exc).__name__}: {exc}") from None
