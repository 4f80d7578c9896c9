"""Aggregation: result rows -> ``results.csv``, ``summary.csv`` and ``summary.md`` (pandas).

Per dataset and model, each score is summarised over seeds by its mean, standard deviation,
the half-width of a 95% confidence interval of the mean (t-distribution with n - 1 degrees of
freedom; NaN with one seed, where the spread is unknown) and its rank among the models
(1 = best, in the score's direction; ties share the better rank).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
from scipy import stats

from benchmark.io import write_atomic

#: The leading columns of ``results.csv``, in this order; other columns follow.
RESULT_COLUMNS = [
    "model", "dataset", "seed", "backend", "epochs", "latent_dim",
    "recon_mse", "recon_bce",
    "sharpness_real", "sharpness_recon", "sharpness_sample",
    "blurriness_recon", "blurriness_sample", "fd_sample",
    "latent_acc_logreg", "latent_acc_knn", "neg_elbo",
    "train_seconds", "samples_per_sec", "status",
]  # fmt: skip

#: Scores summarised per (dataset, model), with the direction in which they are better.
SUMMARY_SCORES = {
    "recon_mse": "lower",
    "recon_bce": "lower",
    "blurriness_recon": "lower",
    "blurriness_sample": "lower",
    "fd_sample": "lower",
    "latent_acc_logreg": "higher",
    "latent_acc_knn": "higher",
    "neg_elbo": "lower",
    "kl": "lower",
    "samples_per_sec": "higher",
}


def results_frame(rows: list[dict]) -> pd.DataFrame:
    """One row per unit, ``RESULT_COLUMNS`` first; absent scores are empty (NaN)."""
    df = pd.DataFrame(rows)
    for column in RESULT_COLUMNS:
        if column not in df:
            df[column] = pd.NA
    if "model_config" in df:
        df["model_config"] = df["model_config"].map(lambda c: json.dumps(c, sort_keys=True))
    return df[RESULT_COLUMNS + [c for c in df.columns if c not in RESULT_COLUMNS]]


#: Confidence level of the summary's intervals.
CONFIDENCE = 0.95


def ci_halfwidth(std: float, n: int, confidence: float = CONFIDENCE) -> float:
    """Half-width of the t confidence interval of a mean of ``n`` values with sample std ``std``.

    ``t_{(1 + confidence) / 2, n - 1} * std / sqrt(n)``; NaN for ``n < 2`` (no spread to use).
    """
    if n < 2 or pd.isna(std):
        return float("nan")
    return float(stats.t.ppf((1 + confidence) / 2, n - 1) * std / math.sqrt(n))


def summary_frame(results: pd.DataFrame, axes: tuple[str, ...] | list[str] = ()) -> pd.DataFrame:
    """Per dataset, model and value of each of the grid's ``axes``: ``seeds``, then per score
    ``_mean``, ``_std``, ``_ci95``, ``_rank``.

    Only completed units count. ``_std`` and ``_ci95`` are NaN with one seed; ``_rank`` ranks
    the means within the dataset and axis values (1 = best).
    """
    ok = results[results["status"] == "ok"]
    axes = [a for a in axes if a in ok]
    keys = ["dataset", "model", *axes]
    scores = [s for s in SUMMARY_SCORES if s in ok and ok[s].notna().any()]
    # dropna=False: a model without a swept parameter (an empty cell) keeps its rows.
    grouped = ok.groupby(keys, sort=True, dropna=False)[scores]
    # Columns may arrive as object dtype (a score absent from some rows).
    mean, std, count = (getattr(grouped, f)().astype(float) for f in ("mean", "std", "count"))
    columns = {"seeds": ok.groupby(keys, sort=True, dropna=False).size()}
    for score in scores:
        columns[f"{score}_mean"] = mean[score]
        columns[f"{score}_std"] = std[score]
        columns[f"{score}_ci95"] = pd.Series(
            [ci_halfwidth(sd, int(n)) for sd, n in zip(std[score], count[score], strict=True)],
            index=mean.index,
        )
        columns[f"{score}_rank"] = mean[score].groupby(level=["dataset", *axes], dropna=False).rank(
            method="min", ascending=SUMMARY_SCORES[score] == "lower"
        )
    return pd.DataFrame(columns).reset_index()


def decimals(score: str) -> int:
    """Decimal places a score is shown with."""
    if score == "samples_per_sec":
        return 0
    return 4 if score.startswith(("recon_mse", "blur", "latent")) else 2


def cell_parts(row: pd.Series, score: str) -> tuple[str, str, int] | None:
    """``("mean ± std", "[lo, hi]", rank)`` of one score of one summary row; None if absent.

    With one seed the std and the interval are ``n/a``: the spread is unknown.
    """
    mean = row.get(f"{score}_mean")
    if mean is None or pd.isna(mean):
        return None
    d = decimals(score)
    std, ci = row.get(f"{score}_std"), row.get(f"{score}_ci95")
    value = f"{mean:.{d}f} ± " + ("n/a" if pd.isna(std) else f"{std:.{d}f}")
    interval = "[n/a]" if pd.isna(ci) else f"[{mean - ci:.{d}f}, {mean + ci:.{d}f}]"
    return value, interval, int(row[f"{score}_rank"])


def score_cell(row: pd.Series, score: str) -> str:
    """``mean ± std [lo, hi] #rank`` for Markdown, the dataset's best (rank 1) in bold."""
    parts = cell_parts(row, score)
    if parts is None:
        return ""
    value, interval, rank = parts
    return f"{f'**{value}**' if rank == 1 else value} {interval} #{rank}"


def summary_markdown(summary: pd.DataFrame, axes: tuple[str, ...] | list[str] = ()) -> str:
    """The summary as a Markdown table (cells as ``score_cell``), with a one-line legend."""
    axes = [a for a in axes if a in summary]
    table = summary[["dataset", "model", *axes, "seeds"]].copy()
    for axis in axes:  # empty where a model lacks the swept parameter
        table[axis] = table[axis].map(lambda v: "" if pd.isna(v) else f"{v:g}" if isinstance(v, float) else v)
    for score in SUMMARY_SCORES:
        if f"{score}_mean" in summary:
            table[score] = [score_cell(row, score) for _, row in summary.iterrows()]
    legend = (
        f"mean ± std over seeds [{CONFIDENCE:.0%} CI of the mean, t-distribution] #rank among the "
        "models of the dataset (1 = best, **bold**); n/a: one seed, spread unknown."
    )
    return table.to_markdown(index=False) + "\n\n" + legend


def write_tables(
    rows: list[dict], out: Path, axes: tuple[str, ...] | list[str] = ()
) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """Write ``results.csv``, ``summary.csv`` and ``summary.md`` into ``out``; the summary
    groups by the grid's ``axes`` (result columns) too."""
    results = results_frame(rows)
    summary = summary_frame(results, axes)
    markdown = summary_markdown(summary, axes)
    write_atomic(out / "results.csv", results.to_csv(index=False))
    write_atomic(out / "summary.csv", summary.to_csv(index=False))
    write_atomic(out / "summary.md", markdown + "\n")
    return results, summary, markdown
