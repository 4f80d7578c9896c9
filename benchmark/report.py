"""The run's HTML report, ``<out>/report.html``, and the comparison of two runs.

The report is one self-contained page that opens offline: inline CSS, no script, and PNG
figures in ``<out>/figures/`` linked by relative paths. Per dataset it holds the summary table
(``benchmark.aggregate``), the generation-quality note (``benchmark.frechet``), findings
written from the numbers, and per-model figures of seed 0 (``benchmark.figures``).
"""

from __future__ import annotations

import datetime
import math
from dataclasses import dataclass
from pathlib import Path

import jinja2
import numpy as np
import pandas as pd
from markupsafe import Markup, escape

from benchmark import figures
from benchmark.aggregate import CONFIDENCE, SUMMARY_SCORES, cell_parts, decimals
from benchmark.errors import UsageError
from benchmark.io import read_json, write_atomic

REPORT_NAME = "report.html"
FIGURES_DIR = "figures"

#: What each summary score measures, for the table's legend.
SCORE_HELP = {
    "recon_mse": "mean squared error of test reconstructions (pixel units²)",
    "recon_bce": "binary cross-entropy of test reconstructions (nats per image)",
    "blurriness_recon": "1 − sharpness of reconstructions / sharpness of real images (0: as sharp as real)",
    "blurriness_sample": "the same for samples decoded from z ~ N(0, I)",
    "fd_sample": "Fréchet distance between prior samples and test images in the FD classifier's features",
    "latent_acc_logreg": "test accuracy of logistic regression on the latent means",
    "latent_acc_knn": "test accuracy of k-nearest neighbours on the latent means",
    "neg_elbo": "negative ELBO (nats per image; VAEs only)",
    "kl": "KL(q(z|x) || p(z)) on the test split, the rate (nats per image; VAEs only)",
    "samples_per_sec": "training throughput (images per second)",
}


@dataclass(frozen=True)
class FigureKind:
    """One kind of per-model figure: its file suffix, heading, caption and minimum width (px)."""

    key: str
    heading: str
    caption: str
    min_width: int = 300


FIGURE_KINDS = (
    FigureKind("samples", "Samples", "64 images decoded from z ~ N(0, I)."),
    FigureKind("reconstructions", "Reconstructions during training",
               "Fixed test images (top row) and their reconstructions after the first, a middle and the last epoch.",
               420),
    FigureKind("interpolations", "Latent interpolations",
               "Decoded straight lines between the latent means of two test images of different classes; "
               "the ends are their reconstructions.", 420),
    FigureKind("latent", "Latent space", "Test latent means on their first two principal components, by class.", 360),
    FigureKind("sharpness", "Sharpness distributions",
               "Per-image variance of the Laplacian of real test images, reconstructions and prior samples.", 360),
    FigureKind("curves", "Learning curves", "Every loss logged per epoch (training set).", 600),
)  # fmt: skip

#: Scores that the findings paragraph speaks about, with the phrase for the best model.
FINDINGS = (
    ("recon_mse", "reconstructs best"),
    ("blurriness_recon", "has the sharpest reconstructions"),
    ("blurriness_sample", "has the sharpest samples"),
    ("fd_sample", "has the samples closest to the test images (lowest Fréchet distance)"),
    ("latent_acc_knn", "has the most class-separating latent space (k-NN accuracy)"),
)


# --- numbers -> sentences ----------------------------------------------------------------


def pooled_std(std1: float, n1: int, std2: float, n2: int) -> float:
    """Pooled sample standard deviation of two groups; NaN unless both have two values or more."""
    if n1 < 2 or n2 < 2:
        return float("nan")
    return math.sqrt(((n1 - 1) * std1**2 + (n2 - 1) * std2**2) / (n1 + n2 - 2))


def spread_verdict(best: pd.Series, other: pd.Series, score: str) -> str | None:
    """How the gap between two summary rows' means compares with the seed-to-seed spread.

    None when either row has a single seed: the spread is then unknown.
    """
    n1, n2 = int(best["seeds"]), int(other["seeds"])
    if min(n1, n2) < 2:
        return None
    m1, m2 = best[f"{score}_mean"], other[f"{score}_mean"]
    ci1, ci2 = best[f"{score}_ci95"], other[f"{score}_ci95"]
    d = decimals(score)
    if abs(m1 - m2) > ci1 + ci2:
        return f"their {CONFIDENCE:.0%} confidence intervals do not overlap: the gap exceeds the seed-to-seed spread"
    pooled = pooled_std(best[f"{score}_std"], n1, other[f"{score}_std"], n2)
    if abs(m1 - m2) > pooled:
        return (
            f"the gap is larger than the pooled seed std ({pooled:.{d}f}) but the {CONFIDENCE:.0%} "
            "confidence intervals overlap: suggestive, not established"
        )
    return f"the gap is within the seed-to-seed spread (pooled std {pooled:.{d}f}): no clear difference"


def finding(rows: pd.DataFrame, score: str, phrase: str) -> str | None:
    """One sentence on which model of ``rows`` (one dataset's summary) is best at ``score``."""
    if f"{score}_mean" not in rows:
        return None
    ranked = rows[rows[f"{score}_mean"].notna()].sort_values(f"{score}_rank", kind="stable")
    if len(ranked) < 2:
        return None
    d = decimals(score)
    best, runner = ranked.iloc[0], ranked.iloc[1]
    if best[f"{score}_rank"] == runner[f"{score}_rank"]:
        return f"{best['model']} and {runner['model']} tie on {score} ({best[f'{score}_mean']:.{d}f})."
    sentence = (
        f"{best['model']} {phrase}: {score} {best[f'{score}_mean']:.{d}f} against "
        f"{runner[f'{score}_mean']:.{d}f} for {runner['model']}, the next best"
    )
    verdict = spread_verdict(best, runner, score)
    return f"{sentence}; {verdict}." if verdict else f"{sentence}."


def findings(summary: pd.DataFrame, dataset: str) -> list[str]:
    """Sentences about one dataset, each backed by the summary's numbers.

    A leading caveat names the models with a single seed, whose orderings are not established.
    """
    rows = summary[summary["dataset"] == dataset]
    sentences = [s for s in (finding(rows, score, phrase) for score, phrase in FINDINGS) if s]
    single = sorted(rows.loc[rows["seeds"] < 2, "model"])
    if sentences and single:
        who = "every model" if len(single) == len(rows) else ", ".join(single)
        sentences.insert(
            0,
            f"With one seed for {who} the seed-to-seed spread is unknown, so the orderings below "
            "that involve them are not established; run more seeds (--seeds) to test them.",
        )
    return sentences


def fd_note(results: pd.DataFrame, dataset: str) -> str | None:
    """How far the FD classifier can be trusted on ``dataset``; None without FD scores."""
    ok = results[(results["dataset"] == dataset) & (results["status"] == "ok")]
    if "fd_classifier_acc" not in ok or ok["fd_classifier_acc"].isna().all():
        return None
    acc = float(ok["fd_classifier_acc"].dropna().iloc[0])
    real = float(ok["fd_real"].dropna().iloc[0]) if "fd_real" in ok and ok["fd_real"].notna().any() else float("nan")
    return (
        f"fd_sample is measured in the last hidden layer of a small convnet trained on the {dataset} "
        f"training split; it classifies {acc:.1%} of the test images correctly. Real training "
        f"images score {real:.2f} against the same test images: the floor a perfect generator "
        "would reach with this many images."
    )


# --- the summary table -------------------------------------------------------------------


def _cell_html(row: pd.Series, score: str) -> str:
    """``mean ± std`` over ``[lo, hi] #rank`` as HTML ('' when the model lacks the score)."""
    parts = cell_parts(row, score)
    if parts is None:
        return ""
    value, interval, rank = parts
    interval = "CI n/a" if interval == "[n/a]" else interval
    return f'{value}<br><span class="ci">{interval}</span> <span class="rank">#{rank}</span>'



def summary_table_html(summary: pd.DataFrame, dataset: str, axes: tuple[str, ...] | list[str] = ()) -> str:
    """One dataset's summary as a styled HTML table: best cell per column highlighted; a
    model's settings on the grid's ``axes`` follow its name."""
    rows = summary[summary["dataset"] == dataset].reset_index(drop=True)
    scores = [s for s in SUMMARY_SCORES if f"{s}_mean" in rows and rows[f"{s}_mean"].notna().any()]
    arrows = {"lower": "↓", "higher": "↑"}

    def name(r: pd.Series) -> str:
        settings = [f"{a}={r[a]:g}" if isinstance(r[a], float) else f"{a}={r[a]}"
                    for a in axes if a in r and pd.notna(r[a])]  # fmt: skip
        return " ".join([str(r["model"]), *settings])

    names = [name(r) for _, r in rows.iterrows()]
    display = pd.DataFrame({"model": [str(escape(n)) for n in names], "seeds": rows["seeds"]})
    for score in scores:
        # <wbr>: long score names may wrap at their underscores, keeping the table narrow.
        label = f"{score.replace('_', '_<wbr>')}&nbsp;{arrows[SUMMARY_SCORES[score]]}"
        display[label] = [_cell_html(r, score) for _, r in rows.iterrows()]

    def highlight(frame: pd.DataFrame) -> pd.DataFrame:
        css = pd.DataFrame("", index=frame.index, columns=frame.columns)
        for score, column in zip(scores, frame.columns[2:], strict=True):
            css.loc[rows[f"{score}_rank"] == 1, column] = "background-color: #d9f2d9; font-weight: bold"
        return css

    styler = (
        display.style.apply(highlight, axis=None)
        .hide(axis="index")
        .set_table_attributes('class="summary"')
        .set_uuid(f"summary_{dataset}")
    )
    return styler.to_html()


# --- figures -----------------------------------------------------------------------------


def figure_unit(results: pd.DataFrame, dataset: str, model: str) -> pd.Series | None:
    """The completed unit whose figures stand for ``model``: seed 0, else the lowest seed."""
    ok = results[(results["dataset"] == dataset) & (results["model"] == model) & (results["status"] == "ok")]
    return None if ok.empty else ok.sort_values("seed").iloc[0]


def unit_figures(unit_dir: Path, fig_dir: Path, stem: str, title: str) -> dict[str, Path]:
    """Draw every figure kind that the unit's saved files allow; returns {kind: png path}."""
    drawn: dict[str, Path] = {}
    arrays_path = unit_dir / "arrays.npz"
    if arrays_path.is_file():
        with np.load(arrays_path, allow_pickle=False) as npz:
            a = {k: npz[k] for k in npz.files}

        def path(kind: str) -> Path:
            return fig_dir / f"{stem}-{kind}.png"

        if "samples" in a:
            drawn["samples"] = figures.samples_figure(a["samples"], path("samples"), title=title)
        if {"snapshot_images", "snapshot_epochs", "snapshots"} <= a.keys():
            drawn["reconstructions"] = figures.reconstructions_figure(
                a["snapshot_images"], a["snapshot_epochs"], a["snapshots"], path("reconstructions"), title=title
            )
        if "interpolations" in a and len(a["interpolations"]):
            drawn["interpolations"] = figures.interpolation_figure(a["interpolations"], path("interpolations"), title=title)
        if {"z_test", "y_test"} <= a.keys():
            drawn["latent"] = figures.latent_figure(a["z_test"], a["y_test"], path("latent"), title=title)
        if {"sharpness_real", "sharpness_recon", "sharpness_sample"} <= a.keys():
            drawn["sharpness"] = figures.sharpness_figure(
                a["sharpness_real"], a["sharpness_recon"], a["sharpness_sample"], path("sharpness"), title=title
            )
    history = unit_dir / "history.csv"
    if history.is_file():
        drawn["curves"] = figures.learning_curves_figure(
            pd.read_csv(history), fig_dir / f"{stem}-curves.png", title=title
        )
    return drawn


def dataset_figures(results: pd.DataFrame, out: Path, dataset: str, models: list[str]) -> dict[str, list[dict]]:
    """{kind: [{model, seed, src}]} for one dataset; ``src`` is relative to the report."""
    by_kind: dict[str, list[dict]] = {kind.key: [] for kind in FIGURE_KINDS}
    for model in models:
        unit = figure_unit(results, dataset, model)
        if unit is None:
            continue
        seed = int(unit["seed"])
        title = f"{model} on {dataset}, seed {seed}"
        drawn = unit_figures(out / "units" / unit["unit_id"], out / FIGURES_DIR, f"{dataset}-{model}", title)
        for kind, png in drawn.items():
            by_kind[kind].append({"model": model, "seed": seed, "src": png.relative_to(out).as_posix()})
    return by_kind


# --- the page ----------------------------------------------------------------------------

TEMPLATE = jinja2.Template(
    """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>vaebench report: {{ name }}</title>
<style>
body { font-family: system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1500px; padding: 0 1.5em; color: #222; line-height: 1.45; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 2px solid #ccc; padding-bottom: 0.2em; margin-top: 2em; }
.meta { color: #555; font-size: 0.92em; }
nav a { margin-right: 1em; }
.table-wrap { overflow-x: auto; }
table.summary { border-collapse: collapse; font-size: 0.8em; margin: 0.6em 0; }
table.summary th, table.summary td { border: 1px solid #ccc; padding: 3px 6px; text-align: right;
                                     vertical-align: top; white-space: nowrap; }
table.summary th { background: #f0f0f0; white-space: normal; vertical-align: bottom; }
table.summary td:first-child, table.summary th:first-child { text-align: left; font-weight: bold; }
.ci, .rank { color: #666; font-size: 0.88em; font-weight: normal; }
.legend { font-size: 0.85em; color: #444; }
.legend dt { font-family: monospace; float: left; clear: left; width: 11.5em; }
.legend dd { margin-left: 12em; }
ul.findings li { margin-bottom: 0.3em; }
.failed { background: #fdecea; border-left: 4px solid #d33; padding: 0.5em 1em; }
.grid { display: grid; gap: 1em; align-items: start; }
figure { margin: 0; border: 1px solid #ddd; padding: 0.4em; background: #fff; }
figure img { max-width: 100%; height: auto; display: block; margin: 0 auto; }
figcaption { font-size: 0.85em; color: #444; text-align: center; }
p.caption { font-size: 0.9em; color: #444; margin-top: 0; }
</style>
</head>
<body>
<h1>vaebench report: {{ name }}</h1>
<p class="meta">{{ meta }}</p>
<nav>{% for d in datasets %}<a href="#{{ d.name }}">{{ d.name }}</a>{% endfor %}
<a href="results.csv">results.csv</a><a href="summary.csv">summary.csv</a><a href="summary.md">summary.md</a></nav>
{% if failed %}<div class="failed"><b>{{ failed|length }} unit(s) failed</b> and are left out of every
table and figure: {{ failed|join(", ") }} (see units/&lt;unit_id&gt;/traceback.txt).</div>{% endif %}
{% for d in datasets %}
<section id="{{ d.name }}">
<h2>{{ d.name }}</h2>
<h3>Summary</h3>
<div class="table-wrap">{{ d.table }}</div>
<p class="legend">Each cell: mean ± sample std over seeds; below it the {{ confidence }} confidence interval of the
mean (t-distribution, n − 1 degrees of freedom) and the model's rank on this dataset (#1 best, highlighted).
With one seed the spread is unknown: std and interval are n/a. ↓ lower is better, ↑ higher is better.</p>
<dl class="legend">{% for s, text in d.score_help %}<dt>{{ s }}</dt><dd>{{ text }}</dd>{% endfor %}</dl>
{% if d.fd_note %}<h3>Generation quality</h3><p>{{ d.fd_note }}</p>{% endif %}
<h3>Findings</h3>
{% if d.findings %}<ul class="findings">{% for f in d.findings %}<li>{{ f }}</li>{% endfor %}</ul>{% else %}<p>Too few models with scores to compare.</p>{% endif %}
{% for kind in kinds %}{% set figs = d.figures[kind.key] %}{% if figs %}
<h3>{{ kind.heading }}</h3>
<p class="caption">{{ kind.caption }}</p>
<div class="grid" style="grid-template-columns: repeat(auto-fill, minmax({{ kind.min_width }}px, 1fr));">
{% for f in figs %}<figure><a href="{{ f.src }}"><img src="{{ f.src }}" alt="{{ kind.heading }}: {{ f.model }}"></a>
<figcaption>{{ f.model }} (seed {{ f.seed }})</figcaption></figure>
{% endfor %}</div>
{% endif %}{% endfor %}
</section>
{% endfor %}
</body>
</html>
""",
    autoescape=True,
)


def run_meta(out: Path) -> str:
    """One line on the run: preset, grid, epochs, backend, package versions, date."""
    config_path = out / "config.json"
    parts = []
    if config_path.is_file():
        config = read_json(config_path)
        run, env = config.get("run", {}), config.get("environment", {})
        parts += [
            f"preset {run.get('preset')}",
            f"models {', '.join(run.get('models', []))}",
            f"{run.get('seeds')} seed(s)",
            f"{run.get('epochs')} epoch(s)",
            f"latent_dim {run.get('latent_dim')}",
            f"backend {run.get('backend')}",
        ]
        packages = env.get("packages", {})
        parts += [f"{k} {v}" for k, v in packages.items() if k in ("keras", "tensorflow", "jax")]
    parts.append(f"written {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}")
    return " · ".join(parts)


def write_report(
    out: Path, results: pd.DataFrame, summary: pd.DataFrame, axes: tuple[str, ...] | list[str] = ()
) -> Path:
    """Write ``out/report.html`` and its figures (``out/figures/*.png``); returns the page's path.

    ``axes``: the result columns that vary across the grid; the summary table shows each
    model's values of them (trends are not drawn yet).

    Figures of earlier runs into ``out`` that this run did not redraw are removed, so the
    folder holds exactly what the page links.
    """
    out = Path(out)
    datasets = []
    for dataset in sorted(results["dataset"].dropna().unique()):
        models = sorted(results.loc[results["dataset"] == dataset, "model"].unique())
        in_summary = summary[summary["dataset"] == dataset]
        present = [s for s in SUMMARY_SCORES if f"{s}_mean" in in_summary and in_summary[f"{s}_mean"].notna().any()]
        datasets.append({
            "name": dataset,
            "table": Markup(summary_table_html(summary, dataset, axes)) if len(in_summary) else "",
            "score_help": [(s, SCORE_HELP.get(s, "")) for s in present],
            "fd_note": fd_note(results, dataset),
            "findings": findings(summary, dataset),
            "figures": dataset_figures(results, out, dataset, models),
        })  # fmt: skip
    drawn = {out / f["src"] for d in datasets for figs in d["figures"].values() for f in figs}
    for stale in (out / FIGURES_DIR).glob("*.png"):
        if stale not in drawn:
            stale.unlink()
    failed = sorted(results.loc[results["status"] != "ok", "unit_id"].astype(str)) if "unit_id" in results else []
    page = TEMPLATE.render(
        name=out.resolve().name,
        meta=run_meta(out),
        datasets=datasets,
        kinds=FIGURE_KINDS,
        failed=failed,
        confidence=f"{CONFIDENCE:.0%}",
    )
    path = out / REPORT_NAME
    write_atomic(path, page)
    return path


# --- comparing two runs ------------------------------------------------------------------


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
    """B − A of each score's mean, one row per (dataset, model, score) in either summary.

    Columns: dataset, model, score, a, b, diff (b − a; empty where one side lacks the score)
    and ``change``: better, worse or same in the score's direction, or "only in A" / "only in B".
    """
    keys = ["dataset", "model"]
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
            better = sign == (1 if direction == "higher" else -1)
            if pd.isna(diff):
                change = "only in A" if pd.isna(vb) else "only in B"
            else:
                change = "same" if sign == 0 else "better" if better else "worse"
            rows.append({"dataset": r["dataset"], "model": r["model"], "score": score,
                         "a": va, "b": vb, "diff": diff, "change": change})  # fmt: skip
    return pd.DataFrame(rows, columns=["dataset", "model", "score", "a", "b", "diff", "change"])


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
