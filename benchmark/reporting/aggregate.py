"""Aggregation: result rows -> ``results.csv``, ``summary.csv`` and ``summary.md`` (pandas).

Per dataset, model and swept setting (the grid's ``axes``), each score is summarised over
seeds by its mean, standard deviation, the half-width of a 95% confidence interval of the
mean (t-distribution with n - 1 degrees of freedom; NaN with one seed, where the spread is
unknown) and, for ranked scores, its rank among the models that share the dataset and the
setting (1 = best, in the score's direction; ties share the better rank).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
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

LOWER, HIGHER, DESCRIPTIVE = "lower", "higher", "descriptive"

#: Scores summarised per (dataset, model, setting), with the direction in which they are
#: better. Descriptive scores are summarised but never ranked nor highlighted: ``neg_elbo``
#: and ``kl`` are each model's own bound under its own likelihood, ``blurriness_*`` is
#: signed (over-sharp is not better), ``active_units`` has no better direction.
SUMMARY_SCORES = {
    "recon_mse": LOWER,
    "recon_bce": LOWER,
    "sharpness_gap_recon": LOWER,
    "spectral_gap_recon": LOWER,
    "sharpness_gap_sample": LOWER,
    "spectral_gap_sample": LOWER,
    "fd_sample": LOWER,
    "kid_sample": LOWER,
    "precision_sample": HIGHER,
    "recall_sample": HIGHER,
    "fd_sample_gmm": LOWER,
    "kid_sample_gmm": LOWER,
    "precision_sample_gmm": HIGHER,
    "recall_sample_gmm": HIGHER,
    "sharpness_gap_sample_gmm": LOWER,
    "spectral_gap_sample_gmm": LOWER,
    "latent_acc_logreg": HIGHER,
    "latent_acc_knn": HIGHER,
    "nll_is": LOWER,
    "bits_per_dim": LOWER,
    "neg_elbo": DESCRIPTIVE,
    "kl": DESCRIPTIVE,
    "active_units": DESCRIPTIVE,
    "blurriness_recon": DESCRIPTIVE,
    "blurriness_sample": DESCRIPTIVE,
    "samples_per_sec": HIGHER,
}

#: The result column saying whether a model has a prior p(z) to sample from.
HAS_PRIOR = "has_prior"


def is_ranked(score: str) -> bool:
    """Whether ``score`` has a better direction (ranked, best highlighted)."""
    return SUMMARY_SCORES[score] != DESCRIPTIVE


def is_prior_sample_score(score: str) -> bool:
    """Scores of images decoded from z ~ N(0, I) (``*_sample``; not the mixture's ``*_sample_gmm``).

    They are not ranked for a model without a prior: its N(0, I) samples measure the scale of
    its latent space, not the model.
    """
    return score.endswith("_sample")


def group_keys(frame: pd.DataFrame, axes: Sequence[str] = ()) -> list[str]:
    """``["dataset", "model", *axes]``, leaving out axes that ``frame`` lacks."""
    extra = [a for a in dict.fromkeys(axes) if a in frame and a not in ("dataset", "model")]
    return ["dataset", "model", *extra]


def as_bool(values: pd.Series) -> pd.Series:
    """Booleans from a column read back from CSV ("True"/"False"/1/0); missing -> NA."""
    mapping = {"true": True, "false": False, "1": True, "0": False, "1.0": True, "0.0": False}
    return values.map(lambda v: v if isinstance(v, bool) else mapping.get(str(v).strip().lower(), pd.NA))


def results_frame(rows: list[dict]) -> pd.DataFrame:
    """One row per unit: ``RESULT_COLUMNS`` first, then the other summary scores present, then
    the rest; absent leading columns are empty (NaN)."""
    df = pd.DataFrame(rows)
    for column in RESULT_COLUMNS:
        if column not in df:
            df[column] = pd.NA
    if "model_config" in df:
        df["model_config"] = df["model_config"].map(
            lambda c: c if isinstance(c, str) or c is None or c is pd.NA else json.dumps(c, sort_keys=True)
        )
    leading = RESULT_COLUMNS + [s for s in SUMMARY_SCORES if s in df and s not in RESULT_COLUMNS]
    return df[leading + [c for c in df.columns if c not in leading]]


#: Confidence level of the summary's intervals.
CONFIDENCE = 0.95


def ci_halfwidth(std: float, n: int, confidence: float = CONFIDENCE) -> float:
    """Half-width of the t confidence interval of a mean of ``n`` values with sample std ``std``.

    ``t_{(1 + confidence) / 2, n - 1} * std / sqrt(n)``; NaN for ``n < 2`` (no spread to use).
    """
    if n < 2 or pd.isna(std):
        return float("nan")
    return float(stats.t.ppf((1 + confidence) / 2, n - 1) * std / math.sqrt(n))


def summary_frame(results: pd.DataFrame, axes: Sequence[str] = ()) -> pd.DataFrame:
    """Per ``["dataset", "model", *axes]``: ``seeds``, ``has_prior`` (when the results have it),
    then per score ``_mean``, ``_std``, ``_ci95`` and, for ranked scores, ``_rank``.

    Only completed units count; scores absent from every row are left out. A missing axis value
    (a parameter the model lacks) is a value of its own. ``_std`` and ``_ci95`` are NaN with one
    seed. ``_rank`` ranks the means among the models of the same dataset and setting (1 = best);
    it is empty for a model alone at its setting, and for N(0, I)-sample scores of a model
    without a prior. All ranks are within one dataset, so ``nll_is`` and ``bits_per_dim`` are
    only compared on the same data in the same discrete likelihood space.
    """
    ok = results[results["status"] == "ok"]
    keys = group_keys(ok, axes)
    values = ok[[s for s in SUMMARY_SCORES if s in ok]].apply(pd.to_numeric, errors="coerce")
    scores = [s for s in values if values[s].notna().any()]
    by = [ok[k] for k in keys]
    grouped = values[scores].groupby(by, sort=True, dropna=False)
    mean, std, count = (getattr(grouped, f)().astype(float) for f in ("mean", "std", "count"))
    columns = {"seeds": ok.groupby(by, sort=True, dropna=False).size()}
    if HAS_PRIOR in ok:
        # A model has a prior unless its rows say it has none.
        prior = as_bool(ok[HAS_PRIOR]).fillna(True).astype(bool)
        columns[HAS_PRIOR] = prior.groupby(by, sort=True, dropna=False).all()
    for score in scores:
        columns[f"{score}_mean"] = mean[score]
        columns[f"{score}_std"] = std[score]
        columns[f"{score}_ci95"] = pd.Series(
            [ci_halfwidth(sd, int(n)) for sd, n in zip(std[score], count[score], strict=True)],
            index=mean.index,
        )
    summary = pd.DataFrame(columns).reset_index()
    for score in (s for s in scores if is_ranked(s)):
        summary[f"{score}_rank"] = ranks(summary, score, keys)
    order = keys + ["seeds"] + ([HAS_PRIOR] if HAS_PRIOR in summary else [])
    stat_columns = [f"{s}_{stat}" for s in scores for stat in ("mean", "std", "ci95", "rank") if f"{s}_{stat}" in summary]
    return summary[order + stat_columns]


def ranks(summary: pd.DataFrame, score: str, keys: list[str]) -> pd.Series:
    """Rank of each row's mean of ``score`` among the rows that share every key but ``model``.

    Rows without a prior are left out of N(0, I)-sample scores; a row alone in its group has no rank.
    """
    mean = summary[f"{score}_mean"].copy()
    if is_prior_sample_score(score) and HAS_PRIOR in summary:
        mean[~summary[HAS_PRIOR].astype(bool)] = float("nan")
    peers = [summary[k] for k in keys if k != "model"]
    grouped = mean.groupby(peers, dropna=False)
    rank = grouped.rank(method="min", ascending=SUMMARY_SCORES[score] == LOWER)
    return rank.where(grouped.transform("count") >= 2)


def decimals(score: str) -> int:
    """Decimal places a score is shown with."""
    if score == "samples_per_sec":
        return 0
    if score == "active_units":
        return 1
    if score.startswith(("recon_mse", "blur", "latent", "precision", "recall", "kid", "bits")):
        return 4
    if score.startswith(("sharpness_gap", "spectral_gap")):
        return 3
    return 2


def no_prior(row: pd.Series, score: str) -> bool:
    """Whether ``row``'s value of ``score`` comes from N(0, I) samples of a model without a prior."""
    if not is_prior_sample_score(score) or HAS_PRIOR not in row or pd.isna(row[HAS_PRIOR]):
        return False
    return not bool(row[HAS_PRIOR])


def setting_value(value: object) -> str:
    """A swept setting's value for tables and text: ``2``, ``0.5``, ``relu``; ``–`` when the
    model lacks the parameter."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def cell_parts(row: pd.Series, score: str) -> tuple[str, str, int | None, str] | None:
    """``(value, interval, rank, note)`` of one score of one summary row; None if absent.

    ``value`` is ``mean ± std``, or the mean alone with one seed (no spread to show);
    ``interval`` is ``[lo, hi]`` or empty; ``rank`` is None where the score is not ranked;
    ``note`` is ``no prior`` for N(0, I)-sample scores of a model without a prior.
    """
    mean = row.get(f"{score}_mean")
    if mean is None or pd.isna(mean):
        return None
    d = decimals(score)
    std, ci = row.get(f"{score}_std"), row.get(f"{score}_ci95")
    value = f"{mean:.{d}f}" if std is None or pd.isna(std) else f"{mean:.{d}f} ± {std:.{d}f}"
    interval = "" if ci is None or pd.isna(ci) else f"[{mean - ci:.{d}f}, {mean + ci:.{d}f}]"
    rank = row.get(f"{score}_rank")
    rank = None if rank is None or pd.isna(rank) else int(rank)
    return value, interval, rank, "no prior" if no_prior(row, score) else ""


def score_cell(row: pd.Series, score: str) -> str:
    """``mean ± std [lo, hi] #rank`` for Markdown, the best of its setting (rank 1) in bold."""
    parts = cell_parts(row, score)
    if parts is None:
        return ""
    value, interval, rank, note = parts
    pieces = [f"**{value}**" if rank == 1 else value, interval]
    pieces += [f"#{rank}" if rank is not None else "", f"({note})" if note else ""]
    return " ".join(p for p in pieces if p)


#: The scores of the short summary printed at the end of a run (``summary.md`` has them all).
HEADLINE_SCORES = (
    "recon_mse", "sharpness_gap_recon", "sharpness_gap_sample", "fd_sample", "recall_sample",
    "fd_sample_gmm", "latent_acc_knn", "nll_is", "kl",
)  # fmt: skip


def summary_markdown(
    summary: pd.DataFrame, axes: Sequence[str] = (), scores: Sequence[str] | None = None
) -> str:
    """The summary as a Markdown table (cells as ``score_cell``), with a short legend.

    ``scores``: the columns to show, in ``SUMMARY_SCORES`` order (default: all of them).
    """
    keys = group_keys(summary, axes)
    table = summary[[*keys, "seeds"]].copy()
    for axis in keys[2:]:
        table[axis] = table[axis].map(setting_value)
    for score in SUMMARY_SCORES:
        if f"{score}_mean" in summary and (scores is None or score in scores):
            table[score] = [score_cell(row, score) for _, row in summary.iterrows()]
    setting = " and setting" if len(keys) > 2 else ""
    descriptive = ", ".join(s for s in SUMMARY_SCORES if not is_ranked(s) and s in table)
    legend = (
        f"mean ± std over seeds [{CONFIDENCE:.0%} CI of the mean, t-distribution] #rank among the "
        f"models of the dataset{setting} (1 = best, **bold**); one seed: the mean alone."
    )
    if descriptive:
        legend += f" Not ranked (descriptive): {descriptive}."
    if HAS_PRIOR in summary and not summary[HAS_PRIOR].astype(bool).all():
        legend += " no prior: N(0, I)-sample scores of a model without a prior, shown but not ranked."
    return table.to_markdown(index=False) + "\n\n" + legend


def write_tables(
    rows: list[dict], out: Path, axes: Sequence[str] = ()
) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """Write ``results.csv``, ``summary.csv`` and ``summary.md`` into ``out``.

    ``axes`` are the result columns swept by the grid; the summary groups by them.
    """
    results = results_frame(rows)
    summary = summary_frame(results, axes)
    markdown = summary_markdown(summary, axes)
    write_atomic(out / "results.csv", results.to_csv(index=False))
    write_atomic(out / "summary.csv", summary.to_csv(index=False))
    write_atomic(out / "summary.md", markdown + "\n")
    return results, summary, markdown
