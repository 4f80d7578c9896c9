"""Aggregation: result rows -> ``results.csv``, ``summary.csv`` and ``summary.md`` (pandas)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from benchmark.io import write_atomic

#: The leading columns of ``results.csv``, in this order; other columns follow.
RESULT_COLUMNS = [
    "model", "dataset", "seed", "backend", "epochs", "latent_dim",
    "recon_mse", "recon_bce",
    "sharpness_real", "sharpness_recon", "sharpness_sample",
    "blurriness_recon", "blurriness_sample",
    "latent_acc_logreg", "latent_acc_knn", "neg_elbo",
    "train_seconds", "samples_per_sec", "status",
]  # fmt: skip

#: Scores summarised per (dataset, model), with the direction in which they are better.
SUMMARY_SCORES = {
    "recon_mse": "lower",
    "recon_bce": "lower",
    "blurriness_recon": "lower",
    "blurriness_sample": "lower",
    "latent_acc_logreg": "higher",
    "latent_acc_knn": "higher",
    "neg_elbo": "lower",
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


def summary_frame(results: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over seeds of each score, per dataset and model (completed units only)."""
    ok = results[results["status"] == "ok"]
    scores = [s for s in SUMMARY_SCORES if s in ok and ok[s].notna().any()]
    grouped = ok.groupby(["dataset", "model"], sort=True)[scores].agg(["mean", "std"])
    grouped.columns = [f"{score}_{stat}" for score, stat in grouped.columns]
    grouped.insert(0, "seeds", ok.groupby(["dataset", "model"], sort=True).size())
    return grouped.reset_index()


def summary_markdown(summary: pd.DataFrame) -> str:
    """The summary as a Markdown table, ``mean ± std`` per score."""
    table = summary[["dataset", "model", "seeds"]].copy()
    for score in SUMMARY_SCORES:
        if f"{score}_mean" in summary:
            mean, std = summary[f"{score}_mean"], summary[f"{score}_std"].fillna(0.0)
            digits = 0 if score == "samples_per_sec" else 4 if score.startswith(("recon_mse", "blur", "latent")) else 2
            table[score] = [
                "" if pd.isna(m) else f"{m:.{digits}f} ± {s:.{digits}f}"
                for m, s in zip(mean, std, strict=True)
            ]
    return table.to_markdown(index=False)


def write_tables(rows: list[dict], out: Path) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """Write ``results.csv``, ``summary.csv`` and ``summary.md`` into ``out``."""
    results = results_frame(rows)
    summary = summary_frame(results)
    markdown = summary_markdown(summary)
    write_atomic(out / "results.csv", results.to_csv(index=False))
    write_atomic(out / "summary.csv", summary.to_csv(index=False))
    write_atomic(out / "summary.md", markdown + "\n")
    return results, summary, markdown
