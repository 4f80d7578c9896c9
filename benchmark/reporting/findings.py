"""Findings: sentences written from the summary's numbers, each backed by a test over seeds.

The best model of a ranked score is compared with each other ranked model by Welch's t-test
over the seeds that have a value of that score (``<score>_n``); the p-values of one score are
Holm-adjusted over its comparisons. A difference is claimed only where the adjusted p-value is
below ``ALPHA``. Nothing is said about a score that is not ranked: one seed (no spread, no
rank), a score that failed its control sets (named with the control it failed), stale rows.
Control sets are never among the models.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from benchmark.reporting.aggregate import (
    HAS_PRIOR,
    decimals,
    group_keys,
    is_prior_sample_score,
    setting_value,
)
from benchmark.reporting.significance import ALPHA, format_p, holm, welch_p
from benchmark.scoring.scores import BY_NAME, LOWER


@dataclass(frozen=True)
class Finding:
    """A score the findings speak about: the phrase for a best model whose lead is established,
    and the comparison for a tested difference (default: "lower than" / "higher than")."""

    score: str
    best: str
    comparison: str = ""


FINDINGS = (
    Finding("recon_mse", "reconstructs best"),
    Finding("sharpness_gap_recon", "has the reconstructions closest to their originals' sharpness",
            "closer to the originals' sharpness than"),
    Finding("sharpness_gap_sample", "has the samples closest to real sharpness", "closer to real sharpness than"),
    Finding("fd_sample", "has the N(0, I) samples closest to the test images (Fréchet distance)"),
    Finding("kid_sample", "has the N(0, I) samples closest to the test images (KID)"),
    Finding("recall_sample", "has the N(0, I) samples that cover the test images best (recall)"),
    Finding("coverage_sample", "has the N(0, I) samples that cover the test images best (coverage)"),
    Finding("fd_sample_gmm", "has the mixture samples closest to the test images (Fréchet distance)"),
    Finding("nll_is", "has the lowest importance-weighted bound on −log p(x) of the test images"),
    Finding("latent_acc_knn", "has the most class-separating latent space (k-NN accuracy)"),
)  # fmt: skip


def _seeds_text(n1: int, n2: int) -> str:
    return f"over {n1} seeds" if n1 == n2 else f"over {n1} and {n2} seeds"


def _n(row: pd.Series, score: str) -> int:
    """The seeds with a value of ``score`` (the summary's ``_n``; ``seeds`` for older tables)."""
    n = row.get(f"{score}_n")
    return int(row["seeds"] if n is None or pd.isna(n) else n)


def _value(mean: float, d: int) -> str:
    return "inf (a seed with constant images)" if np.isinf(mean) else f"{mean:.{d}f}"


def finding(rows: pd.DataFrame, item: Finding, where: str = "", k: int | None = None) -> str | None:
    """One sentence on the best model of ``rows`` (one dataset and setting) at ``item.score``;
    None where fewer than two models are ranked. ``where`` names the setting (``latent_dim
    8``); ``k`` is the number of importance samples of ``nll_is``."""
    score = item.score
    if f"{score}_rank" not in rows:
        return None
    ranked = rows[rows[f"{score}_rank"].notna()].sort_values(f"{score}_rank", kind="stable")
    if len(ranked) < 2:
        return None
    d = decimals(score)
    lower = BY_NAME[score].direction == LOWER
    mean = f"{score}_mean"
    best, others = ranked.iloc[0], ranked.iloc[1:]
    n_best = _n(best, score)
    at = f" at {where}" if where else ""
    bound = f" (an upper bound at K = {k} importance samples)" if score == "nll_is" and k else ""
    tied_with = [o["model"] for _, o in others.iterrows() if o[f"{score}_rank"] == best[f"{score}_rank"]]
    if tied_with:
        lead = f"{score}{at}: {best['model']} and {', '.join(tied_with)} are tied for the {'lowest' if lower else 'highest'} mean, {_value(best[mean], d)}{bound}"
        others = others[~others["model"].isin(tied_with)]
    else:
        lead = f"{score}{at}: {best['model']} has the {'lowest' if lower else 'highest'} mean, {_value(best[mean], d)}{bound} ({n_best} seeds)"
    if others.empty:
        return lead + "."
    p = [welch_p(best[mean], best[f"{score}_std"], n_best, o[mean], o[f"{score}_std"], _n(o, score))
         for _, o in others.iterrows()]  # fmt: skip
    adjusted = holm(p)
    m = int(np.sum(~np.isnan(adjusted)))
    comparison = item.comparison or ("lower than" if lower else "higher than")
    parts = []
    for (_, other), p_adj in zip(others.iterrows(), adjusted, strict=True):
        theirs = f"{other['model']}'s {_value(other[mean], d)}"
        if np.isinf(other[mean]) and not np.isinf(best[mean]):
            parts.append(f"{comparison} {theirs} (infinite: ranked last, no test needed)")
            continue
        if np.isnan(p_adj):
            parts.append(f"{theirs} (no spread over seeds: no test)")
            continue
        test = f"{format_p(p_adj)}, Welch t-test {_seeds_text(n_best, _n(other, score))}, Holm-adjusted over {m} comparison{'s' * (m != 1)}"
        if p_adj >= ALPHA:
            parts.append(f"not distinguishable at the {ALPHA:.0%} level from {theirs} ({test})")
        else:
            parts.append(f"{comparison} {theirs} ({test})")
    sentence = f"{lead}; " + "; ".join(parts) + "."
    if not tied_with and all(part.startswith(comparison) for part in parts):
        sentence += f" {best['model']} {item.best}."
    excluded = rows[rows[mean].notna() & rows[f"{score}_rank"].isna()]
    if is_prior_sample_score(score) and HAS_PRIOR in rows and len(excluded):
        names = ", ".join(excluded.loc[~excluded[HAS_PRIOR].astype(bool), "model"])
        if names:
            sentence += f" Not ranked: {names} (no prior: N(0, I) samples shown in the table only)."
    return sentence


def setting_text(row: pd.Series, axes: Sequence[str]) -> str:
    """``latent_dim 8, beta 0.5`` for a summary row."""
    return ", ".join(f"{a} {setting_value(row[a])}" for a in axes)


def findings(
    summary: pd.DataFrame,
    dataset: str,
    axes: Sequence[str] = (),
    *,
    failed_controls: dict[str, str] | None = None,
    is_samples: int | None = None,
) -> list[str]:
    """Sentences about one dataset, each backed by the summary's numbers, per setting of ``axes``.

    A leading caveat names the models with a single seed, between which nothing is tested;
    ``failed_controls`` (``{score: reason}``) adds a sentence per finding's score that is not
    ranked because it failed its control sets.
    """
    rows = summary[summary["dataset"] == dataset]
    if rows.empty:  # every unit of the dataset failed: nothing to compare
        return []
    if "stale" in rows:
        rows = rows[~rows["stale"].astype(bool)]
    axes = group_keys(rows, axes)[2:]
    sentences = []
    groups = rows.groupby(axes, sort=True, dropna=False) if axes else [((), rows)]
    for _, group in groups:
        where = setting_text(group.iloc[0], axes)
        sentences += [s for s in (finding(group, item, where, is_samples) for item in FINDINGS) if s]
    single = sorted(set(rows.loc[rows["seeds"] < 2, "model"]))
    if single:
        who = "every model" if len(single) == rows["model"].nunique() else ", ".join(single)
        sentences.insert(
            0,
            f"One seed for {who}: the seed-to-seed spread is unknown, so {'these models are' if len(single) > 1 else 'it is'} "
            "not ranked and no difference is claimed; run more seeds (--seeds 3) to test them.",
        )
    for score, reason in (failed_controls or {}).items():
        if any(item.score == score for item in FINDINGS):
            sentences.append(f"{score} is not ranked on {dataset}: on this run's control sets it {reason}.")
    return sentences
