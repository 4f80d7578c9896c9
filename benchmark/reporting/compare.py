"""Comparing two runs: B − A of each score's mean, per dataset, model and setting
(``vaebench --compare A B``)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from benchmark.errors import UsageError
from benchmark.io import write_atomic
from benchmark.reporting.aggregate import SUMMARY_SCORES
from benchmark.scoring.scores import DESCRIPTIVE, HIGHER


def read_summary(run_dir: Path) -> pd.DataFrame:
    """A run folder's ``summary.csv``; a UsageError when the folder or the file is missing."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UsageError(f"no run folder {str(run_dir)!r}")
    path = run_dir / "summary.csv"
    if not path.is_file():
        raise UsageError(f"{str(run_dir)!r} has no summary.csv: not a finished vaebench run")
    try:
        # Round-trip parsing: an unchanged score must compare as exactly equal.
        summary = pd.read_csv(path, float_precision="round_trip")
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise UsageError(f"{path} cannot be read: {exc}") from None
    if not {"dataset", "model"} <= set(summary.columns):
        raise UsageError(f"{path} has no dataset and model columns")
    return summary


def compare_summaries(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """B − A of each score's mean, one row per (dataset, model, setting, score) in either summary.

    The setting is given by the grouping columns (those before ``seeds``) that both summaries
    share. Columns: dataset, model, the setting's columns, score, a, b, diff (b − a; empty where
    one side lacks the score) and ``change``: better, worse or same in the score's direction
    ("changed" for descriptive scores), or "only in A" / "only in B".
    """
    keys = [k for k in _key_columns(a) if k in _key_columns(b)]
    merged = a.merge(b, on=keys, how="outer", suffixes=("_a", "_b"))
    rows = []
    for score, direction in SUMMARY_SCORES.items():
        col_a, col_b = _mean_column(a, score, "_a", b), _mean_column(b, score, "_b", a)
        if col_a is None and col_b is None:
            continue
        for _, r in merged.iterrows():
            va = r[col_a] if col_a else float("nan")
            vb = r[col_b] if col_b else float("nan")
            if pd.isna(va) and pd.isna(vb):
                continue
            diff = vb - va
            sign = 0 if pd.isna(diff) or diff == 0 else (1 if diff > 0 else -1)
            better = sign == (1 if direction == HIGHER else -1)
            if pd.isna(diff):
                change = "only in A" if pd.isna(vb) else "only in B"
            elif sign == 0:
                change = "same"
            else:
                change = "changed" if direction == DESCRIPTIVE else "better" if better else "worse"
            rows.append({**{k: r[k] for k in keys}, "score": score,
                         "a": va, "b": vb, "diff": diff, "change": change})  # fmt: skip
    return pd.DataFrame(rows, columns=[*keys, "score", "a", "b", "diff", "change"])


def _key_columns(summary: pd.DataFrame) -> list[str]:
    """A summary's grouping columns: dataset, model and the swept settings, before ``seeds``."""
    columns = list(summary.columns)
    return columns[: columns.index("seeds")] if "seeds" in columns else ["dataset", "model"]


def _mean_column(frame: pd.DataFrame, score: str, suffix: str, other: pd.DataFrame) -> str | None:
    """The merged frame's column of ``score``'s mean from ``frame``, or None if absent."""
    column = f"{score}_mean"
    if column not in frame:
        return None
    return column + suffix if column in other else column


def compare_runs(a: Path, b: Path) -> tuple[pd.DataFrame, Path]:
    """Compare the summaries of run folders ``a`` and ``b``; write the table into ``b``.

    Returns the table and the CSV written: ``<b>/compare-vs-<name of a>.csv``.
    """
    table = compare_summaries(read_summary(a), read_summary(b))
    path = Path(b) / f"compare-vs-{Path(a).resolve().name}.csv"
    write_atomic(path, table.to_csv(index=False))
    return table, path
