"""The argument types of the command line, and an argparse that reports an error as one line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmark.errors import did_you_mean
from benchmark.running.config import RANGES
from benchmark.running.grid import parse_set

#: The command's name in messages (``vaebench`` when run as the installed script).
PROG = "run_all.py"
#: The name of the installed console script (``pyproject.toml``).
SCRIPT = "vaebench"


def program_name() -> str:
    """``vaebench`` when started as the console script, else ``run_all.py``."""
    return SCRIPT if Path(sys.argv[0]).name == SCRIPT else PROG


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports an error as one line (no usage dump) with exit status 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {one_line(message)}\n")

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        # argparse names the valid choices of a flag; a likely typo gets the closest one too.
        try:
            super()._check_value(action, value)
        except argparse.ArgumentError as exc:
            hint = did_you_mean(str(value), map(str, action.choices or ()))
            raise argparse.ArgumentError(action, f"{exc.message}{hint}") from None


#: Every character that ``str.splitlines`` breaks at, mapped to its escape sequence.
_LINE_BREAKS = {ord(c): c.encode("unicode_escape").decode() for c in "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"}


def one_line(text: str) -> str:
    """``text`` with line breaks and unprintable bytes of argv (lone surrogates) escaped.

    An error message then stays one line, and any stream can print it.
    """
    return text.translate(_LINE_BREAKS).encode("utf-8", "backslashreplace").decode("utf-8")


def whole_number(key: str) -> Callable[[str], int]:
    """An argparse type: a whole number in the range ``RANGES[key]`` of ``benchmark.running.config``."""
    low, high = RANGES[key]

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text[:40]!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be at least {low} and at most {high}, got {value}")
        return value

    return parse


def whole_numbers(key: str) -> Callable[[str], tuple[int, ...]]:
    """An argparse type: comma-separated whole numbers, each in the range ``RANGES[key]``."""
    parse = whole_number(key)

    def parse_list(text: str) -> tuple[int, ...]:
        parts = [part.strip() for part in text.split(",")]
        if not all(parts):
            raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers, got {text[:40]!r}")
        return tuple(dict.fromkeys(parse(part) for part in parts))

    return parse_list


def device_list(text: str) -> tuple[int, ...] | None:
    """An argparse type: ``--devices``, ``auto`` (None) or comma-separated GPU indices."""
    if text.strip() == "auto":
        return None
    parts = [part.strip() for part in text.split(",")]
    if not all(part.isdigit() for part in parts):
        raise argparse.ArgumentTypeError(f"expected auto or comma-separated GPU indices such as 0,1, got {text[:40]!r}")
    return tuple(dict.fromkeys(int(part) for part in parts))


def gpu_fraction(text: str) -> float:
    """An argparse type: ``--gpus-per-unit``, a fraction of a GPU or a whole number of them."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text[:40]!r}") from None
    if not (0 <= value <= 1 or (value <= 1024 and value.is_integer())):
        raise argparse.ArgumentTypeError(f"must be a fraction between 0 and 1 or a whole number, got {text[:40]}")
    return value


def set_spec(text: str) -> tuple[str, str, tuple[str, ...]]:
    """An argparse type: ``MODEL.PARAM=V1,V2,...`` (checked against the model once it is known)."""
    try:
        return parse_set(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def name_list(text: str) -> tuple[str, ...]:
    """Comma-separated names, stripped, each once, in order."""
    names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    if not names:
        raise argparse.ArgumentTypeError("expected comma-separated names")
    return names
