"""The one exception type that means "the user's input is wrong": the CLI prints it as one line;
and the "did you mean" hint that such a line carries for a misspelt name."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class UsageError(Exception):
    """Bad input (a name, a number, a path, a data file); exits with status 2, no traceback."""


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the known name closest to ``name``, else ``""``.

    Parameters
    ----------
    name : str
        The name as the user wrote it.
    known : iterable of str
        The names that would have been accepted.

    Returns
    -------
    str
        The hint, with a leading space, to append to an "unknown ..." message; empty when
        no known name is close enough to be a likely typo.
    """
    candidates = [k for k in known if k != name]
    # Case is compared loosely (VAE_MSE is vae_mse), but the suggestion keeps the real name.
    by_folded = {k.casefold(): k for k in candidates}
    close = difflib.get_close_matches(name.casefold(), list(by_folded), n=1, cutoff=0.6)
    return f" (did you mean {by_folded[close[0]]!r}?)" if close else ""
