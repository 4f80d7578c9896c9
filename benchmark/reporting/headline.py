"""The headline: one row per model, one column per question the benchmark answers, each cell
the one score that answers it; a plain-words verdict per question; and the settings each model
was trained with. Shown first in the report, ``summary.md`` and the terminal.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import pandas as pd
from markupsafe import escape

from benchmark.reporting.aggregate import (
    HAS_PRIOR,
    cell_parts,
    group_keys,
    is_best,
    is_prior_sample_score,
    setting_value,
)
from benchmark.reporting.significance import ALPHA, format_p, holm, welch_p
from benchmark.scoring.scores import BY_NAME, LOWER

#: (question, the score that answers it, what the best model has).
HEADLINE = (
    ("reconstruction", "recon_mse", "the lowest reconstruction error"),
    ("sharpness of reconstructions", "sharpness_gap_recon", "reconstructions closest to their originals' sharpness"),
    ("sharpness of samples", "sharpness_gap_sample", "samples closest to real sharpness"),
    ("sample quality", "fd_sample", "samples closest to the test images (Fréchet distance)"),
    ("coverage", "coverage_sample", "samples that cover the test images best (coverage)"),
    ("likelihood", "nll_is", "the lowest bound on −log p(x)"),
    ("representation", "latent_acc_knn", "the most class-separating latent means (k-NN accuracy)"),
)  # fmt: skip

#: Scores of the headline, for the terminal's short summary.
HEADLINE_SCORES = tuple(score for _, score, _ in HEADLINE)

#: Run settings shown for every model, before its own parameters.
RUN_SETTINGS = ("epochs", "batch_size", "latent_dim", "precision", "jit")


def _cell(row: pd.Series, score: str) -> str:
    parts = cell_parts(row, score)
    if parts is None:
        return "–"
    value, _, rank, note = parts
    return " ".join(p for p in (value, rank, f"({note})" if note else "") if p)


def headline_frame(summary: pd.DataFrame, dataset: str, axes: Sequence[str] = ()) -> pd.DataFrame:
    """One row per model (and setting) of ``dataset``: ``model``, the swept settings, ``seeds``
    and one column per question present (``question (score, ↓/↑)``)."""
    rows = summary[summary["dataset"] == dataset].reset_index(drop=True)
    keys = group_keys(rows, axes)
    table = rows[[*keys[1:], "seeds"]].copy()
    for axis in keys[2:]:
        table[axis] = table[axis].map(setting_value)
    for question, score, _ in HEADLINE:
        if f"{score}_mean" in rows and rows[f"{score}_mean"].notna().any():
            arrow = "↓" if BY_NAME[score].direction == LOWER else "↑"
            table[f"{question} ({score} {arrow})"] = [_cell(r, score) for _, r in rows.iterrows()]
    return table


def best_cells(summary: pd.DataFrame, dataset: str) -> dict[str, list[bool]]:
    """``{score: [row is best]}`` for highlighting the headline's cells."""
    rows = summary[summary["dataset"] == dataset].reset_index(drop=True)
    return {score: [is_best(r, score) for _, r in rows.iterrows()] for _, score, _ in HEADLINE}


def verdict(rows: pd.DataFrame, question: str, score: str, phrase: str, failed: str | None) -> str | None:
    """One plain sentence answering ``question`` from one setting's summary ``rows``."""
    mean = f"{score}_mean"
    if mean not in rows or rows[mean].notna().sum() == 0:
        return None
    if failed:
        return f"{question}: not ranked, {score} failed its control sets on this run ({failed})."
    ranked = rows[rows[f"{score}_rank"].notna()].sort_values(f"{score}_rank") if f"{score}_rank" in rows else rows.iloc[:0]
    d = BY_NAME[score].decimals
    lower = BY_NAME[score].direction == LOWER
    candidates = rows[rows[mean].notna()]
    if is_prior_sample_score(score) and HAS_PRIOR in rows:  # no prior: N(0, I) samples are not its samples
        candidates = candidates[candidates[HAS_PRIOR].astype(bool)]
    if candidates.empty:
        return None
    if len(candidates) == 1:
        only = candidates.iloc[0]
        return f"{question}: only {only['model']} has a value ({score} {only[mean]:.{d}f}); nothing to compare."
    if len(ranked) < 2:
        best = candidates.loc[candidates[mean].idxmin() if lower else candidates[mean].idxmax()]
        return f"{question}: {best['model']} has the best mean ({score} {best[mean]:.{d}f}); not tested."
    best, others = ranked.iloc[0], ranked.iloc[1:]
    tied = others[others[f"{score}_rank"] == best[f"{score}_rank"]]
    if len(tied):
        return f"{question}: {', '.join([best['model'], *tied['model']])} tied ({score} {best[mean]:.{d}f})."
    n = lambda r: int(r.get(f"{score}_n", r["seeds"]))  # noqa: E731
    p = holm([welch_p(best[mean], best[f"{score}_std"], n(best), o[mean], o[f"{score}_std"], n(o))
              for _, o in others.iterrows()])  # fmt: skip
    if np.all(p < ALPHA):
        worst = float(np.max(p))
        bound = format_p(worst) if worst < 0.001 else format_p(worst).replace("=", "≤")
        return f"{question}: {best['model']}, {phrase} ({score} {best[mean]:.{d}f}; {bound} against each other model, Welch t-test, Holm-adjusted)."
    close = [o["model"] for (_, o), q in zip(others.iterrows(), p, strict=True) if not q < ALPHA]
    return f"{question}: {best['model']} has the best mean ({score} {best[mean]:.{d}f}), not distinguishable from {', '.join(close)} at the {ALPHA:.0%} level."


def verdicts(summary: pd.DataFrame, dataset: str, axes: Sequence[str] = (),
             failed_controls: dict[str, str] | None = None) -> list[str]:  # fmt: skip
    """The headline's verdicts for ``dataset``, per setting of ``axes``; the one-seed caveat
    once, first, when any model has a single seed."""
    rows = summary[summary["dataset"] == dataset]
    if "stale" in rows:
        rows = rows[~rows["stale"].astype(bool)]
    if rows.empty:
        return []
    axes = group_keys(rows, axes)[2:]
    out = []
    if (rows["seeds"] < 2).any():
        out.append("One seed: no spread, so nothing is ranked or tested; each verdict names the best mean only. "
                   "Run --seeds 3 to test the differences.")  # fmt: skip
    groups = rows.groupby(axes, sort=True, dropna=False) if axes else [((), rows)]
    for key, group in groups:
        if group["model"].nunique() < 2:  # a model alone at its setting: the trends compare settings
            continue
        where = ", ".join(f"{a} {setting_value(v)}" for a, v in zip(axes, key if isinstance(key, tuple) else (key,), strict=True))
        for question, score, phrase in HEADLINE:
            text = verdict(group, question, score, phrase, (failed_controls or {}).get(score))
            if text:
                out.append(f"[{where}] {text}" if where else text)
    return out


def settings_frame(results: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """One row per model of ``dataset``: the run settings (``RUN_SETTINGS``) and every resolved
    model parameter (``model_config``), each value once; several values are joined by ", "."""
    ok = results[(results["dataset"] == dataset) & (results["status"] == "ok")] if "status" in results else results
    rows = []
    for model, group in ok.groupby("model", sort=True):
        row: dict[str, str] = {"model": model}
        for column in RUN_SETTINGS:
            if column in group:
                row[column] = ", ".join(dict.fromkeys(setting_value(v) for v in group[column]))
        configs = [json.loads(c) for c in group.get("model_config", pd.Series(dtype=object)).dropna()]
        params = dict.fromkeys(k for c in configs for k in c)
        row["parameters"] = "; ".join(
            f"{k} {', '.join(dict.fromkeys(setting_value(c.get(k)) for c in configs))}" for k in params
        ) or "–"
        rows.append(row)
    return pd.DataFrame(rows)


def headline_markdown(summary: pd.DataFrame, results: pd.DataFrame | None, axes: Sequence[str] = (),
                      failed: dict[str, dict[str, str]] | None = None) -> str:  # fmt: skip
    """Per dataset: the headline table, its verdicts and the models' settings, as Markdown."""
    parts = []
    for dataset in sorted(summary["dataset"].dropna().unique()):
        parts.append(f"### {dataset}\n\n{headline_frame(summary, dataset, axes).to_markdown(index=False)}\n")
        parts += [f"- {v}" for v in verdicts(summary, dataset, axes, (failed or {}).get(dataset))]
        if results is not None and len(results):
            parts.append(f"\nSettings:\n\n{settings_frame(results, dataset).to_markdown(index=False)}\n")
    return "\n".join(parts)


def changed_settings(results: pd.DataFrame) -> str:
    """One line per model whose resolved parameters differ from its factory's defaults."""
    from models.registry import is_model, tunable_parameters

    lines = []
    ok = results[results["status"] == "ok"] if "status" in results else results
    for model, group in ok.groupby("model", sort=True):
        if not is_model(model) or "model_config" not in group:
            continue
        defaults = {k: p.default for k, p in tunable_parameters(model).items()}
        changed = {}
        for config in group["model_config"].dropna():
            for key, value in json.loads(config).items():
                if key in defaults and value != defaults[key]:
                    changed.setdefault(key, []).append(value)
        if changed:
            lines.append(f"  {model}: " + "; ".join(f"{k} {', '.join(map(str, dict.fromkeys(v)))}" for k, v in changed.items()))
    return ("Settings that differ from the models' defaults:\n" + "\n".join(lines)) if lines else ""


def headline_html(summary: pd.DataFrame, dataset: str, axes: Sequence[str] = ()) -> str:
    """The headline table of ``dataset`` as HTML, the best cell of each question highlighted;
    each header and cell on two lines (question over score, value over rank), so that the
    table fits a laptop's screen."""
    rows = summary[summary["dataset"] == dataset].reset_index(drop=True)
    table = headline_frame(summary, dataset, axes)
    best = best_cells(summary, dataset)
    questions = [c for c in table.columns if "(" in c]
    for column in questions:
        score = column.split("(")[1].split()[0]
        cells = []
        for _, row in rows.iterrows():
            parts = cell_parts(row, score)
            if parts is None:
                cells.append("–")
                continue
            value, _, rank, note = parts
            below = " ".join(p for p in (rank, note) if p)
            cells.append(f'{escape(value)}<br><span class="rank">{escape(below)}</span>' if below else str(escape(value)))
        table[column] = cells
    table["model"] = table["model"].map(lambda m: str(escape(m)))

    def highlight(frame: pd.DataFrame) -> pd.DataFrame:
        css = pd.DataFrame("", index=frame.index, columns=frame.columns)
        for column in questions:
            score = column.split("(")[1].split()[0]
            css.loc[best.get(score, [False] * len(frame)), column] = "background-color: #d9f2d9; font-weight: bold"
        return css

    table = table.rename(columns={c: c.replace(" (", "<br>(") for c in questions})
    questions = [c.replace(" (", "<br>(") for c in questions]
    styler = table.style.apply(highlight, axis=None).hide(axis="index")
    return styler.set_table_attributes('class="summary headline"').set_uuid(f"headline_{dataset}").to_html()


def plain_table(frame: pd.DataFrame) -> str:
    """A frame as a plain HTML table of the report's style."""
    return frame.style.format(escape="html").hide(axis="index").set_table_attributes('class="summary"').to_html()
