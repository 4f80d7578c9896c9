"""The run's HTML report, ``<out>/report.html``.

The report is one self-contained page that opens offline: inline CSS, no script, and PNG
figures in ``<out>/figures/`` linked by relative paths. Per dataset it holds the summary table
(``benchmark.reporting.aggregate``), the run's control sets and what they let it rank
(``benchmark.reporting.controls_table``), the generation-quality note
(``benchmark.scoring.frechet``), findings written from the numbers
(``benchmark.reporting.findings``), and per-model figures of seed 0
(``benchmark.reporting.figures``).
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import jinja2
import numpy as np
import pandas as pd
from markupsafe import Markup, escape

from benchmark.io import read_json, write_atomic
from benchmark.reporting import figures, headline, trends
from benchmark.reporting.aggregate import (
    CONFIDENCE,
    SUMMARY_SCORES,
    cell_parts,
    group_keys,
    is_best,
    setting_value,
)
from benchmark.reporting.controls_table import controls_frames, verdict_lines
from benchmark.reporting.findings import findings, setting_text
from benchmark.running.controls_run import read_controls
from benchmark.scoring.scores import BY_NAME, DESCRIPTIVE, HIGHER, LOWER
from benchmark.scoring.verdicts import failed_scores, verdicts

REPORT_NAME = "report.html"
FIGURES_DIR = "figures"

#: What each summary score measures and its unit, for the table's legend.
SCORE_HELP = {name: f"{score.help} ({score.unit})" for name, score in BY_NAME.items()}

#: What ``neg_elbo`` is under each likelihood, shown beside the table when it is present.
NEG_ELBO_NOTE = (
    "neg_elbo is each model's own negative ELBO, under its own likelihood, so it is not comparable across "
    "models and is not ranked. With Gaussian pixels of fixed obs_std σ (vae_mse) it is a density: it carries "
    "the constant (D/2)·log(2πσ²), −541.4 nats for 784 pixels at the default σ = 0.2, and may be negative. With a "
    "Bernoulli likelihood on grey pixels (vae_bernoulli) it is a cross-entropy whose floor is the entropy of "
    "the grey targets, not 0. For the VAE-GAN it is measured in the discriminator's features. Compare a model "
    "with itself across settings; nll_is and bits_per_dim compare likelihoods on the same data."
)


@dataclass(frozen=True)
class FigureKind:
    """One kind of per-model figure: its file suffix, heading, caption and minimum width (px)."""

    key: str
    heading: str
    caption: str
    min_width: int = 300


FIGURE_KINDS = (
    FigureKind("samples", "Samples", "64 images decoded from z ~ N(0, I)."),
    FigureKind("samples_gmm", "Mixture samples",
               "64 images decoded from a 10-component Gaussian mixture fitted to the training latent means: "
               "the sampler every model has, the autoencoder included."),
    FigureKind("reconstructions", "Reconstructions during training",
               "Fixed test images (top row) and their reconstructions after the first, a middle and the last epoch.",
               420),
    FigureKind("interpolations", "Latent interpolations",
               "Decoded straight lines between the latent means of two test images of different classes; "
               "the ends are their reconstructions.", 420),
    FigureKind("latent", "Latent space", "Test latent means on their first two principal components, by class.", 360),
    FigureKind("sharpness", "Sharpness distributions",
               "Per-image variance of the Laplacian of real test images, reconstructions and prior samples.", 360),
    FigureKind("curves", "Learning curves", "Every loss logged per epoch: training set (solid, running mean over the epoch) and validation split (dashed, after the epoch).", 600),
)  # fmt: skip


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
    value, interval, rank, note = parts
    below = [f'<span class="ci">{interval}</span>' if interval else "",
             f'<span class="rank">{rank}</span>' if rank else "",
             f'<span class="rank">{note}</span>' if note else ""]  # fmt: skip
    below = " ".join(b for b in below if b)
    return f"{value}<br>{below}" if below else value


ARROWS = {LOWER: "↓", HIGHER: "↑", DESCRIPTIVE: ""}


def summary_table_html(summary: pd.DataFrame, dataset: str, axes: Sequence[str] = ()) -> str:
    """One dataset's summary as a styled HTML table: the best cell of each setting highlighted
    in each ranked column; descriptive columns are never highlighted."""
    rows = summary[summary["dataset"] == dataset].reset_index(drop=True)
    keys = group_keys(rows, axes)
    scores = [s for s in SUMMARY_SCORES if f"{s}_mean" in rows and rows[f"{s}_mean"].notna().any()]
    display = pd.DataFrame({"model": rows["model"].map(lambda m: str(escape(m)))})
    for axis in keys[2:]:
        display[str(escape(axis))] = rows[axis].map(lambda v: str(escape(setting_value(v))))
    display["seeds"] = rows["seeds"]
    lead = len(display.columns)
    for score in scores:
        # <wbr>: long score names may wrap at their underscores, keeping the table narrow.
        arrow = ARROWS[SUMMARY_SCORES[score]]
        label = score.replace("_", "_<wbr>") + (f"&nbsp;{arrow}" if arrow else "")
        display[label] = [_cell_html(r, score) for _, r in rows.iterrows()]

    def highlight(frame: pd.DataFrame) -> pd.DataFrame:
        css = pd.DataFrame("", index=frame.index, columns=frame.columns)
        for score, column in zip(scores, frame.columns[lead:], strict=True):
            if f"{score}_rank" in rows:
                best = [is_best(r, score) for _, r in rows.iterrows()]
                css.loc[best, column] = "background-color: #d9f2d9; font-weight: bold"
        return css

    styler = (
        display.style.apply(highlight, axis=None)
        .hide(axis="index")
        .set_table_attributes('class="summary"')
        .set_uuid(f"summary_{dataset}")
    )
    return styler.to_html()


# --- figures -----------------------------------------------------------------------------


def figure_unit(results: pd.DataFrame, dataset: str, model: str, axes: Sequence[str] = ()) -> pd.Series | None:
    """The completed unit whose figures stand for ``model``: its first setting, seed 0 or the lowest."""
    ok = results[(results["dataset"] == dataset) & (results["model"] == model) & (results["status"] == "ok")]
    order = [a for a in group_keys(ok, axes)[2:]] + ["seed"]
    return None if ok.empty else ok.sort_values(order, na_position="last").iloc[0]


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
        if "samples_gmm" in a and len(a["samples_gmm"]):
            drawn["samples_gmm"] = figures.samples_figure(a["samples_gmm"], path("samples_gmm"), title=title)
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


def dataset_figures(
    results: pd.DataFrame, out: Path, dataset: str, models: list[str], axes: Sequence[str] = ()
) -> dict[str, list[dict]]:
    """{kind: [{model, seed, src}]} for one dataset; ``src`` is relative to the report."""
    by_kind: dict[str, list[dict]] = {kind.key: [] for kind in FIGURE_KINDS}
    for model in models:
        unit = figure_unit(results, dataset, model, axes)
        if unit is None:
            continue
        seed = int(unit["seed"])
        setting = setting_text(unit, group_keys(results, axes)[2:])
        where = f"seed {seed}" + (f", {setting}" if setting else "")
        title = f"{model} on {dataset}, {where}"
        drawn = unit_figures(out / "units" / unit["unit_id"], out / FIGURES_DIR, f"{dataset}-{model}", title)
        for kind, png in drawn.items():
            by_kind[kind].append({"model": model, "seed": seed, "where": where,
                                  "src": png.relative_to(out).as_posix()})  # fmt: skip
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
p, li, dd { overflow-wrap: anywhere; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 2px solid #ccc; padding-bottom: 0.2em; margin-top: 2em; }
.meta { color: #555; font-size: 0.92em; }
nav a { margin-right: 1em; }
.table-wrap { overflow-x: auto; max-width: 100%; }
table.summary thead th { position: sticky; top: 0; z-index: 1; }
details { margin: 0.6em 0; } summary { cursor: pointer; font-weight: bold; }
ul.verdicts li { margin-bottom: 0.2em; }
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
section > figure { margin: 0.8em 0; }
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
<a href="results.csv">results.csv</a><a href="summary.csv">summary.csv</a><a href="summary.md">summary.md</a>
<a href="controls.csv">controls.csv</a></nav>
{% if failed %}<div class="failed"><b>{{ failed|length }} unit(s) failed</b> and are left out of every
table and figure (see units/&lt;unit_id&gt;/traceback.txt):
<ul>{% for f in failed %}<li>{{ f.model }} seed {{ f.seed }} on {{ f.dataset }} ({{ f.unit_id }}): {{ f.error }}</li>
{% endfor %}</ul></div>{% endif %}
{% for d in datasets %}
<section id="{{ d.name }}">
<h2>{{ d.name }}</h2>
<h3>Headline</h3>
<div class="table-wrap">{{ d.headline }}</div>
<ul class="verdicts">{% for v in d.verdicts %}<li>{{ v }}</li>{% endfor %}</ul>
<p class="legend">Each cell: mean ± sample std over seeds and the model's rank {{ rank_scope }} (#1 best,
highlighted; with one seed the mean alone, no rank). The full table below has every score with its
{{ confidence }} confidence interval.</p>
<details><summary>Settings of each model</summary><div class="table-wrap">{{ d.settings }}</div></details>
<details><summary>Every score ({{ d.score_help|length }} columns)</summary>
<div class="table-wrap">{{ d.table }}</div>
<p class="legend">Each cell: mean ± sample std over seeds; below it the {{ confidence }} confidence interval of the
mean (t-distribution, n − 1 degrees of freedom) and the model's rank {{ rank_scope }} (#1 best, highlighted).
With one seed the cell holds the mean alone. ↓ lower is better, ↑ higher is better; columns without an arrow are
descriptive, never ranked. "no prior": N(0, I)-sample scores of a model without a prior, shown but not ranked.</p>
<dl class="legend">{% for s, text in d.score_help %}<dt>{{ s }}</dt><dd>{{ text }}</dd>{% endfor %}</dl>
{% if d.neg_elbo_note %}<p class="legend">{{ d.neg_elbo_note }}</p>{% endif %}
</details>
{% if d.controls %}<h3>Controls</h3>
<p class="caption">Image sets whose right order is known, scored by the same code and against the same test images
as the models' samples (<code>kind = sample</code>) and, where they degrade real validation images one for one, as
their reconstructions: real images, Gaussian blur of σ 0.5, 1 and 2 px, pixel noise of σ 0.05, 0.1 and 0.2,
contrast × 0.7, half blurred and half noisy (mixture), the mean training image plus noise (blob), one class, and
training images (copies, what memorisation looks like: it is real data, so no distribution score flags it).
A ranked score is ranked only where no degraded control scores better than real and the controls it must tell
apart score worse (sharpness gaps: worse and monotone for blur and noise). Controls are never ranked among the
models. Every value is in controls.csv.</p>
{% for c in d.controls %}<h4>{{ c.label }}</h4>
<div class="table-wrap">{{ c.table }}</div>
<p class="legend">Ranked here: {{ c.ranked }}.</p>
{% if c.unranked %}<ul class="findings">{% for s, why in c.unranked %}<li><b>{{ s }}</b> not ranked: {{ why }}.</li>{% endfor %}</ul>{% endif %}
{% endfor %}{% endif %}
{% if d.fd_note %}<h3>Generation quality</h3><p>{{ d.fd_note }}</p>{% endif %}
<h3>Findings</h3>
{% if d.findings %}<ul class="findings">{% for f in d.findings %}<li>{{ f }}</li>{% endfor %}</ul>{% else %}<p>Too few models with scores to compare.</p>{% endif %}
{% for kind in kinds %}{% set figs = d.figures[kind.key] %}{% if figs %}
<h3>{{ kind.heading }}</h3>
<p class="caption">{{ kind.caption }}</p>
<div class="grid" style="grid-template-columns: repeat(auto-fill, minmax({{ kind.min_width }}px, 1fr));">
{% for f in figs %}<figure><a href="{{ f.src }}"><img src="{{ f.src }}" alt="{{ kind.heading }}: {{ f.model }}"></a>
<figcaption>{{ f.model }} ({{ f.where }})</figcaption></figure>
{% endfor %}</div>
{% endif %}{% endfor %}
{% if d.trends %}<h3>Trends</h3>
<p class="caption">How each score moves along the swept settings. Trend sentences give means over seeds and test
the best setting against each end of the axis.</p>
{% for t in d.trends %}<h4>{{ t.axis }}</h4>
{% for f in t.figures %}<figure><a href="{{ f.src }}"><img src="{{ f.src }}" alt="{{ t.axis }}: {{ f.caption }}"></a>
<figcaption>{{ f.caption }}</figcaption></figure>
{% endfor %}
{% if t.findings %}<ul class="findings">{% for f in t.findings %}<li>{{ f }}</li>{% endfor %}</ul>{% endif %}
{% endfor %}{% endif %}
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
        argv = config.get("command", {}).get("argv") or []
        given = not argv or any(a == "--preset" or a.startswith("--preset=") or a == "--config" for a in argv)
        parts += [
            f"preset {run.get('preset')}" if given else f"no preset (the defaults of {run.get('preset')})",
            f"models {', '.join(run.get('models', []))}",
            f"{run.get('seeds')} seed(s)",
            f"{_plain(run.get('epochs'))} epoch(s)",
            f"latent_dim {_plain(run.get('latent_dim'))}",
            f"backend {run.get('backend')}",
        ]
        packages = env.get("packages", {})
        # Keras and the backend in use (its package has its name), not the others installed.
        parts += [f"{k} {v}" for k, v in packages.items() if v and k in ("keras", run.get("backend"))]
    parts.append(f"written {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}")
    return " · ".join(parts)


def _plain(value: object) -> str:
    """``5`` or ``2, 16`` rather than a list's ``[2, 16]``."""
    return ", ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def write_report(out: Path, results: pd.DataFrame, summary: pd.DataFrame, axes: Sequence[str] = ()) -> Path:
    """Write ``out/report.html`` and its figures (``out/figures/*.png``); returns the page's path.

    ``axes`` are the result columns swept by the grid: the tables and findings are per setting,
    and a Trends section shows each score against each swept axis. Figures of earlier runs
    into ``out`` that this run did not redraw are removed, so the folder holds exactly what the
    page links.
    """
    out = Path(out)
    axes = group_keys(results, axes)[2:]
    controls = read_controls(out)
    checks = verdicts(controls) if controls is not None else None
    datasets = []
    for dataset in sorted(results["dataset"].dropna().unique()):
        models = sorted(results.loc[results["dataset"] == dataset, "model"].unique())
        in_summary = summary[summary["dataset"] == dataset]
        present = [s for s in SUMMARY_SCORES if f"{s}_mean" in in_summary and in_summary[f"{s}_mean"].notna().any()]
        datasets.append({
            "name": dataset,
            "table": Markup(summary_table_html(summary, dataset, axes)) if len(in_summary) else "",
            "headline": Markup(headline.headline_html(summary, dataset, axes)) if len(in_summary) else "",
            "verdicts": headline.verdicts(summary, dataset, axes, failed_scores(checks, dataset)),
            "settings": Markup(headline.plain_table(headline.settings_frame(results, dataset))),
            "score_help": [(s, SCORE_HELP.get(s, "")) for s in present],
            "neg_elbo_note": NEG_ELBO_NOTE if "neg_elbo" in present else "",
            "fd_note": fd_note(results, dataset),
            "controls": dataset_controls(controls, dataset),
            "findings": findings(summary, dataset, axes, failed_controls=failed_scores(checks, dataset),
                                 is_samples=single_value(results, dataset, "is_samples")),
            "figures": dataset_figures(results, out, dataset, models, axes),
            "trends": trends.dataset_trends(results, summary, out, out / FIGURES_DIR, dataset, axes) if axes else [],
        })  # fmt: skip
    drawn = {out / f["src"] for d in datasets for figs in d["figures"].values() for f in figs}
    drawn |= {out / f["src"] for d in datasets for t in d["trends"] for f in t["figures"]}
    for stale in (out / FIGURES_DIR).glob("*.png"):
        if stale not in drawn:
            stale.unlink()
    failed = failures(results)
    page = TEMPLATE.render(
        name=out.resolve().name,
        meta=run_meta(out),
        datasets=datasets,
        kinds=FIGURE_KINDS,
        failed=failed,
        confidence=f"{CONFIDENCE:.0%}",
        rank_scope="among the models of this dataset" + (" at the same setting" if axes else ""),
    )
    path = out / REPORT_NAME
    write_atomic(path, page)
    return path


def dataset_controls(controls: pd.DataFrame | None, dataset: str) -> list[dict]:
    """The controls tables of ``dataset``'s feature spaces, as HTML, with their verdicts."""
    if controls is None or controls.empty or "dataset" not in controls:
        return []
    rows = controls[controls["dataset"] == dataset]
    if rows.empty:
        return []
    lines = {label: (ranked, unranked) for label, ranked, unranked in verdict_lines(rows)}
    out = []
    for label, table in controls_frames(rows):
        ranked, unranked = lines.get(label, ([], []))
        html = table.style.hide(axis="index").set_table_attributes('class="summary"').to_html()
        out.append({"label": label, "table": Markup(html), "ranked": ", ".join(ranked) or "none",
                    "unranked": unranked})  # fmt: skip
    return out


def single_value(results: pd.DataFrame, dataset: str, column: str) -> int | None:
    """The one value of ``column`` among ``dataset``'s finished units, or None."""
    if column not in results:
        return None
    values = results.loc[(results["dataset"] == dataset) & (results["status"] == "ok"), column].dropna().unique()
    return int(values[0]) if len(values) == 1 else None


def failures(results: pd.DataFrame) -> list[dict[str, str]]:
    """The units of ``results`` that did not finish: model, dataset, seed, unit_id and error,
    as text, in unit order."""
    bad = results[results["status"] != "ok"] if "status" in results else results.iloc[:0]
    bad = bad.sort_values("unit_id") if "unit_id" in bad else bad
    keys = ("model", "dataset", "seed", "unit_id", "error")
    return [
        {key: "" if key not in row or pd.isna(row[key]) else str(row[key]) for key in keys}
        for _, row in bad.iterrows()
    ]
