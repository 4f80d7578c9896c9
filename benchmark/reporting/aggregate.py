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
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd
from scipy import stats

from benchmark.io import write_atomic
from benchmark.scoring.scores import BY_NAME, DESCRIPTIVE, LOWER, SCORES
from benchmark.scoring.verdicts import SPACE

#: The leading columns of ``results.csv``, in this order; other columns follow.
RESULT_COLUMNS = [
    "model", "dataset", "seed", "backend", "epochs", "latent_dim",
    "recon_mse", "recon_bce",
    "sharpness_real", "sharpness_recon", "sharpness_sample",
    "blurriness_recon", "blurriness_sample", "fd_sample",
    "latent_acc_logreg", "latent_acc_knn", "neg_elbo",
    "train_seconds", "samples_per_sec", "status",
]  # fmt: skip

#: Scores summarised per (dataset, model, setting), with the direction in which they are
#: better (``benchmark.scoring.scores``). Descriptive scores are summarised but never ranked
#: nor highlighted.
SUMMARY_SCORES = {score.name: score.direction for score in SCORES}

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


def summary_frame(
    results: pd.DataFrame, axes: Sequence[str] = (), verdicts: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Per ``["dataset", "model", *axes]`` (and ``stale``, when some rows are out of date):
    ``seeds``, ``has_prior`` (when the results have it), then per score ``_mean``, ``_std``,
    ``_ci95``, ``_n`` (the seeds with a value of that score) and, for ranked scores, ``_rank``.

    Only completed units count; scores absent from every row are left out. A missing axis value
    (a parameter the model lacks) is a value of its own. An infinite value (a collapsed seed)
    makes the mean infinite: the worst, never dropped. ``_std`` and ``_ci95`` are NaN with one
    seed. ``_rank`` ranks the means among the models of the same dataset and setting (1 =
    best; ties share the better rank), among rows with at least two seeds with a value; it is
    empty for a model alone at its setting, for stale rows (``--reuse-stale``: never pooled
    with, nor ranked against, fresh ones), for N(0, I)-sample scores of a model without a
    prior, and where the score failed its checks on the run's control sets (``verdicts``,
    ``benchmark.scoring.verdicts``).
    """
    ok = results[results["status"] == "ok"].copy()
    keys = group_keys(ok, axes)
    if "stale" in ok and as_bool(ok["stale"]).astype("boolean").fillna(False).astype(bool).any():
        ok["stale"] = as_bool(ok["stale"]).astype("boolean").fillna(False).astype(bool)
        keys = [*keys, "stale"]
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
        columns[f"{score}_n"] = count[score].astype(int)
    summary = pd.DataFrame(columns).reset_index()
    failed = _failed_controls(ok, by, summary, verdicts)
    peers = [k for k in keys if k not in ("model", "stale")]
    for score in (s for s in scores if is_ranked(s)):
        rank = ranks(summary, score, keys)
        if score in failed:
            rank = rank.where(~failed[score])
        summary[f"{score}_rank"] = rank
        # Ties share the better rank; the flag lets tables and findings say "tied".
        summary[f"{score}_tied"] = rank.notna() & summary.assign(_r=rank).duplicated([*peers, "_r"], keep=False)
    order = keys + ["seeds"] + ([HAS_PRIOR] if HAS_PRIOR in summary else [])
    stats = ("mean", "std", "ci95", "n", "rank", "tied")
    stat_columns = [f"{s}_{stat}" for s in scores for stat in stats if f"{s}_{stat}" in summary]
    return summary[order + stat_columns]


def _failed_controls(ok: pd.DataFrame, by: list[pd.Series], summary: pd.DataFrame,
                     verdicts: pd.DataFrame | None) -> dict[str, pd.Series]:  # fmt: skip
    """``{score: (summary rows,) bool}``: True where the score failed its controls in the
    row's feature space (dataset, train_limit, test_limit)."""
    if verdicts is None or verdicts.empty or not all(k in ok for k in SPACE):
        return {}
    space = ok[list(SPACE)].groupby(by, sort=True, dropna=False).first().reset_index(drop=True)
    fails = verdicts[verdicts["status"] == "fail"]
    out = {}
    for score, rows in fails.groupby("score"):
        bad = {tuple(_space_key(v) for v in r) for r in rows[list(SPACE)].itertuples(index=False)}
        out[score] = pd.Series(
            [tuple(_space_key(v) for v in r) in bad for r in space.itertuples(index=False)], index=summary.index
        )
    return out


def _space_key(value: object) -> object:
    """A feature-space value comparable across CSV round trips: None for a missing limit."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    return int(value) if isinstance(value, float) and value.is_integer() else value


def ranks(summary: pd.DataFrame, score: str, keys: list[str]) -> pd.Series:
    """Rank of each row's mean of ``score`` among the rows that share every key but ``model``.

    Rows without a prior are left out of N(0, I)-sample scores, and so are stale rows and rows
    with fewer than two seeds with a value (no spread, no rank); a row alone in its group has
    no rank. Ties share the better rank.
    """
    mean = summary[f"{score}_mean"].copy()
    if is_prior_sample_score(score) and HAS_PRIOR in summary:
        mean[~summary[HAS_PRIOR].astype(bool)] = float("nan")
    if "stale" in summary:
        mean[summary["stale"].astype(bool)] = float("nan")
    if f"{score}_n" in summary:
        mean[summary[f"{score}_n"] < 2] = float("nan")
    peers = [summary[k] for k in keys if k not in ("model", "stale")]
    grouped = mean.groupby(peers, dropna=False) if peers else mean.groupby(lambda _: 0)
    rank = grouped.rank(method="min", ascending=SUMMARY_SCORES[score] == LOWER)
    return rank.where(grouped.transform("count") >= 2)


def decimals(score: str) -> int:
    """Decimal places a score is shown with."""
    return BY_NAME[score].decimals if score in BY_NAME else 2


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


def cell_parts(row: pd.Series, score: str) -> tuple[str, str, str, str] | None:
    """``(value, interval, rank, note)`` of one score of one summary row; None if absent.

    ``value`` is ``mean ± std``, or the mean alone with one seed (no spread to show);
    ``interval`` is ``[lo, hi]`` or empty; ``rank`` is ``#2``, ``#1 (tied)`` or empty where the
    score is not ranked; ``note`` is ``no prior`` for N(0, I)-sample scores of a model without
    a prior.
    """
    mean = row.get(f"{score}_mean")
    if mean is None or pd.isna(mean):
        return None
    d = decimals(score)
    std, ci = row.get(f"{score}_std"), row.get(f"{score}_ci95")
    value = f"{mean:.{d}f}" if std is None or pd.isna(std) else f"{mean:.{d}f} ± {std:.{d}f}"
    interval = "" if ci is None or pd.isna(ci) else f"[{mean - ci:.{d}f}, {mean + ci:.{d}f}]"
    rank = row.get(f"{score}_rank")
    label = "" if rank is None or pd.isna(rank) else f"#{int(rank)}"
    if label and bool(row.get(f"{score}_tied", False)):
        label += " (tied)"
    return value, interval, label, "no prior" if no_prior(row, score) else ""


def is_best(row: pd.Series, score: str) -> bool:
    """Whether ``row`` ranks first at ``score`` (alone or tied)."""
    rank = row.get(f"{score}_rank")
    return rank is not None and not pd.isna(rank) and int(rank) == 1


def score_cell(row: pd.Series, score: str) -> str:
    """``mean ± std [lo, hi] #rank`` for Markdown, the best of its setting (rank 1) in bold."""
    parts = cell_parts(row, score)
    if parts is None:
        return ""
    value, interval, rank, note = parts
    pieces = [f"**{value}**" if is_best(row, score) else value, interval, rank, f"({note})" if note else ""]
    return " ".join(p for p in pieces if p)


def summary_markdown(
    summary: pd.DataFrame,
    axes: Sequence[str] = (),
    scores: Sequence[str] | None = None,
    verdicts: pd.DataFrame | None = None,
) -> str:
    """The summary as a Markdown table (cells as ``score_cell``), with a short legend.

    ``scores``: the columns to show, in ``SUMMARY_SCORES`` order (default: all of them);
    ``verdicts``: the control checks (``benchmark.scoring.verdicts``), to say which scores
    were not ranked because they failed them.
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
        f"models of the dataset{setting} (1 = best, **bold**); one seed: the mean alone, no rank."
    )
    if descriptive:
        legend += f" Not ranked (descriptive): {descriptive}."
    if HAS_PRIOR in summary and not summary[HAS_PRIOR].astype(bool).all():
        legend += " no prior: N(0, I)-sample scores of a model without a prior, shown but not ranked."
    if "stale" in summary:
        legend += " stale: results of out-of-date units (--reuse-stale), never pooled with fresh ones nor ranked."
    for line in control_failures(verdicts, [s for s in table.columns if s in SUMMARY_SCORES]):
        legend += f" {line}"
    return table.to_markdown(index=False) + "\n\n" + legend


def control_failures(verdicts: pd.DataFrame | None, scores: Sequence[str]) -> list[str]:
    """One sentence per score of ``scores`` that failed its control checks, per dataset."""
    if verdicts is None or verdicts.empty:
        return []
    fails = verdicts[(verdicts["status"] == "fail") & verdicts["score"].isin(list(scores))]
    return [
        f"Not ranked on {row['dataset']} (failed its controls, controls.csv): {row['score']} {row['reason']}."
        for _, row in fails.iterrows()
    ]


def write_tables(
    rows: list[dict],
    out: Path,
    axes: Sequence[str] = (),
    verdicts: pd.DataFrame | None = None,
    headline: Callable[[pd.DataFrame, pd.DataFrame], str] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """Write ``results.csv``, ``summary.csv`` and ``summary.md`` into ``out``.

    ``axes`` are the result columns swept by the grid; the summary groups by them.
    ``verdicts``: the run's control checks; a score that failed them is not ranked.
    ``headline(summary, results)``: Markdown put before the full table in ``summary.md``.
    """
    results = results_frame(rows)
    summary = summary_frame(results, axes, verdicts)
    markdown = summary_markdown(summary, axes, verdicts=verdicts)
    if headline is not None and len(summary):
        markdown = f"## Headline\n\n{headline(summary, results)}\n\n## Every score\n\n{markdown}"
    write_atomic(out / "results.csv", results.to_csv(index=False))
    write_atomic(out / "summary.csv", summary.to_csv(index=False))
    write_atomic(out / "summary.md", markdown + "\n")
    return results, summary, markdown
