"""The run's HTML report, ``<out>/report.html``, and the comparison of two runs.

The report is one self-contained page that opens offline: inline CSS, no script, and PNG
figures in ``<out>/figures/`` linked by relative paths. Per dataset it holds the summary table
(``benchmark.reporting.aggregate``), the generation-quality note (``benchmark.scoring.frechet``), findings
written from the numbers, and per-model figures of seed 0 (``benchmark.reporting.figures``).
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

from benchmark.errors import UsageError
from benchmark.io import read_json, write_atomic
from benchmark.reporting import figures, trends
from benchmark.reporting.aggregate import (
    CONFIDENCE,
    DESCRIPTIVE,
    HAS_PRIOR,
    HIGHER,
    LOWER,
    SUMMARY_SCORES,
    cell_parts,
    decimals,
    group_keys,
    is_prior_sample_score,
    setting_value,
)
from benchmark.reporting.significance import ALPHA, format_p, holm, welch_p

REPORT_NAME = "report.html"
FIGURES_DIR = "figures"

#: What each summary score measures, for the table's legend.
SCORE_HELP = {
    "recon_mse": "mean squared error of test reconstructions (pixel units²)",
    "recon_bce": "binary cross-entropy of test reconstructions (nats per image): the distortion, the same "
                 "quantity for every model",
    "sharpness_gap_recon": "|log(sharpness of reconstructions / sharpness of real images)|: 0 as sharp as real, "
                           "larger blurrier or noisier",
    "spectral_gap_recon": "log-spectral distance of the reconstructions' radially averaged power spectrum to "
                          "real test images'",
    "sharpness_gap_sample": "the sharpness gap of samples decoded from z ~ N(0, I)",
    "spectral_gap_sample": "the spectral gap of samples decoded from z ~ N(0, I)",
    "fd_sample": "Fréchet distance between N(0, I) samples and test images in the FD classifier's features",
    "kid_sample": "kernel inception distance (cubic kernel, unbiased) of N(0, I) samples in the same features",
    "precision_sample": "fraction of N(0, I) samples inside the test images' k = 3 neighbourhoods (fidelity)",
    "recall_sample": "fraction of test images inside the samples' k = 3 neighbourhoods (coverage)",
    "fd_sample_gmm": "Fréchet distance of samples from a 10-component Gaussian mixture fitted to the training "
                     "latent means",
    "kid_sample_gmm": "KID of the mixture's samples",
    "precision_sample_gmm": "precision of the mixture's samples",
    "recall_sample_gmm": "recall of the mixture's samples",
    "sharpness_gap_sample_gmm": "the sharpness gap of the mixture's samples",
    "spectral_gap_sample_gmm": "the spectral gap of the mixture's samples",
    "latent_acc_logreg": "test accuracy of logistic regression on the latent means",
    "latent_acc_knn": "test accuracy of k-nearest neighbours on the latent means",
    "nll_is": "importance-weighted bound on the negative log-likelihood of the test images (nats per image, "
              "discrete likelihood); ranked only on the same dataset",
    "bits_per_dim": "nll_is in bits per pixel",
    "neg_elbo": "negative ELBO under the model's own likelihood (nats per image): not comparable across models",
    "kl": "KL(q(z|x) || p(z)) of the test images (nats per image): the rate",
    "active_units": "latent dimensions whose posterior mean varies over the test images (Cov > 0.01)",
    "blurriness_recon": "1 − sharpness of reconstructions / sharpness of real images (signed: negative is "
                        "sharper than real)",
    "blurriness_sample": "the same for samples decoded from z ~ N(0, I)",
    "samples_per_sec": "training throughput (images per second)",
}  # fmt: skip

#: What ``neg_elbo`` is under each likelihood, shown beside the table when it is present.
NEG_ELBO_NOTE = (
    "neg_elbo is each model's own negative ELBO, under its own likelihood, so it is not comparable across "
    "models and is not ranked. With Gaussian pixels of fixed obs_std σ (vae_mse) it is a density: it carries "
    "the constant (D/2)·log(2πσ²), −1084.8 nats for 784 pixels at σ = 0.1, and may be negative. With a "
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


@dataclass(frozen=True)
class Finding:
    """A score the findings speak about: the phrase for a best model whose lead is established,
    and the comparison for a tested difference (default: "lower than" / "higher than")."""

    score: str
    best: str
    comparison: str = ""


FINDINGS = (
    Finding("recon_mse", "reconstructs best"),
    Finding("sharpness_gap_recon", "has the reconstructions closest to real sharpness", "closer to real sharpness than"),
    Finding("sharpness_gap_sample", "has the samples closest to real sharpness", "closer to real sharpness than"),
    Finding("fd_sample", "has the N(0, I) samples closest to the test images (Fréchet distance)"),
    Finding("kid_sample", "has the N(0, I) samples closest to the test images (KID)"),
    Finding("precision_sample", "has the most realistic N(0, I) samples (precision)"),
    Finding("recall_sample", "has the N(0, I) samples that cover the test images best (recall)"),
    Finding("fd_sample_gmm", "has the mixture samples closest to the test images (Fréchet distance)"),
    Finding("nll_is", "gives the test images the highest likelihood (importance-sampled bound)"),
    Finding("latent_acc_knn", "has the most class-separating latent space (k-NN accuracy)"),
)  # fmt: skip


# --- numbers -> sentences ----------------------------------------------------------------


def _seeds_text(n1: int, n2: int) -> str:
    return f"over {n1} seeds" if n1 == n2 else f"over {n1} and {n2} seeds"


def finding(rows: pd.DataFrame, item: Finding, where: str = "") -> str | None:
    """One sentence on the best model of ``rows`` (one dataset and setting) at ``item.score``.

    The best model is compared with each other ranked model by Welch's t-test over seeds; the
    p-values are Holm-adjusted over the comparisons made. A difference is claimed only where
    the adjusted p-value is below ``ALPHA``; with one seed no test is made and none is claimed.
    ``where`` names the setting (``latent_dim 8``) when the grid sweeps one.
    """
    score = item.score
    if f"{score}_rank" not in rows:
        return None
    ranked = rows[rows[f"{score}_rank"].notna()].sort_values(f"{score}_rank", kind="stable")
    if len(ranked) < 2:
        return None
    d = decimals(score)
    lower = SUMMARY_SCORES[score] == LOWER
    best, others = ranked.iloc[0], ranked.iloc[1:]
    mean = f"{score}_mean"
    n_best = int(best["seeds"])
    at = f" at {where}" if where else ""
    lead = f"{score}{at}: {best['model']} has the {'lowest' if lower else 'highest'} mean, {best[mean]:.{d}f}"
    lead += f" ({n_best} seeds)" if n_best > 1 else " (one seed)"
    p = [welch_p(best[mean], best[f"{score}_std"], n_best, o[mean], o[f"{score}_std"], int(o["seeds"]))
         for _, o in others.iterrows()]  # fmt: skip
    adjusted = holm(p)
    m = int(np.sum(~np.isnan(adjusted)))
    comparison = item.comparison or ("lower than" if lower else "higher than")
    parts = []
    for (_, other), p_adj in zip(others.iterrows(), adjusted, strict=True):
        theirs = f"{other['model']}'s {other[mean]:.{d}f}"
        n_other = int(other["seeds"])
        if min(n_best, n_other) < 2:
            parts.append(f"{theirs} (one seed: no test)")
            continue
        if np.isnan(p_adj):
            parts.append(f"{theirs} (no spread over seeds: no test)")
            continue
        test = f"{format_p(p_adj)}, Welch t-test {_seeds_text(n_best, n_other)}, Holm-adjusted over {m} comparison{'s' * (m != 1)}"
        if other[f"{score}_rank"] == best[f"{score}_rank"] or p_adj >= ALPHA:
            parts.append(f"not distinguishable at the {ALPHA:.0%} level from {theirs} ({test})")
        else:
            parts.append(f"{comparison} {theirs} ({test})")
    sentence = f"{lead}; " + "; ".join(parts) + "."
    if all(part.startswith(comparison) for part in parts):
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


def findings(summary: pd.DataFrame, dataset: str, axes: Sequence[str] = ()) -> list[str]:
    """Sentences about one dataset, each backed by the summary's numbers, per setting of ``axes``.

    A leading caveat names the models with a single seed, between which nothing is tested.
    """
    rows = summary[summary["dataset"] == dataset]
    axes = group_keys(rows, axes)[2:]
    sentences = []
    groups = rows.groupby(axes, sort=True, dropna=False) if axes else [((), rows)]
    for _, group in groups:
        where = setting_text(group.iloc[0], axes)
        sentences += [s for s in (finding(group, item, where) for item in FINDINGS) if s]
    single = sorted(set(rows.loc[rows["seeds"] < 2, "model"]))
    if sentences and single:
        who = "every model" if len(single) == rows["model"].nunique() else ", ".join(single)
        sentences.insert(
            0,
            f"With one seed for {who} the seed-to-seed spread is unknown: no test is made and no "
            "difference is claimed for them (one seed: no test); run more seeds (--seeds) to test them.",
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
    value, interval, rank, note = parts
    below = [f'<span class="ci">{interval}</span>' if interval else "",
             f'<span class="rank">#{rank}</span>' if rank is not None else "",
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
<a href="results.csv">results.csv</a><a href="summary.csv">summary.csv</a><a href="summary.md">summary.md</a></nav>
{% if failed %}<div class="failed"><b>{{ failed|length }} unit(s) failed</b> and are left out of every
table and figure: {{ failed|join(", ") }} (see units/&lt;unit_id&gt;/traceback.txt).</div>{% endif %}
{% for d in datasets %}
<section id="{{ d.name }}">
<h2>{{ d.name }}</h2>
<h3>Summary</h3>
<div class="table-wrap">{{ d.table }}</div>
<p class="legend">Each cell: mean ± sample std over seeds; below it the {{ confidence }} confidence interval of the
mean (t-distribution, n − 1 degrees of freedom) and the model's rank {{ rank_scope }} (#1 best, highlighted).
With one seed the cell holds the mean alone. ↓ lower is better, ↑ higher is better; columns without an arrow are
descriptive, never ranked. "no prior": N(0, I)-sample scores of a model without a prior, shown but not ranked.</p>
<dl class="legend">{% for s, text in d.score_help %}<dt>{{ s }}</dt><dd>{{ text }}</dd>{% endfor %}</dl>
{% if d.neg_elbo_note %}<p class="legend">{{ d.neg_elbo_note }}</p>{% endif %}
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
        parts += [
            f"preset {run.get('preset')}",
            f"models {', '.join(run.get('models', []))}",
            f"{run.get('seeds')} seed(s)",
            f"{run.get('epochs')} epoch(s)",
            f"latent_dim {run.get('latent_dim')}",
            f"backend {run.get('backend')}",
        ]
        packages = env.get("packages", {})
        # Keras and the backend in use (its package has its name), not the others installed.
        parts += [f"{k} {v}" for k, v in packages.items() if v and k in ("keras", run.get("backend"))]
    parts.append(f"written {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}")
    return " · ".join(parts)


def write_report(out: Path, results: pd.DataFrame, summary: pd.DataFrame, axes: Sequence[str] = ()) -> Path:
    """Write ``out/report.html`` and its figures (``out/figures/*.png``); returns the page's path.

    ``axes`` are the result columns swept by the grid: the tables and findings are per setting,
    and a Trends section shows each score against each swept axis. Figures of earlier runs
    into ``out`` that this run did not redraw are removed, so the folder holds exactly what the
    page links.
    """
    out = Path(out)
    axes = group_keys(results, axes)[2:]
    datasets = []
    for dataset in sorted(results["dataset"].dropna().unique()):
        models = sorted(results.loc[results["dataset"] == dataset, "model"].unique())
        in_summary = summary[summary["dataset"] == dataset]
        present = [s for s in SUMMARY_SCORES if f"{s}_mean" in in_summary and in_summary[f"{s}_mean"].notna().any()]
        datasets.append({
            "name": dataset,
            "table": Markup(summary_table_html(summary, dataset, axes)) if len(in_summary) else "",
            "score_help": [(s, SCORE_HELP.get(s, "")) for s in present],
            "neg_elbo_note": NEG_ELBO_NOTE if "neg_elbo" in present else "",
            "fd_note": fd_note(results, dataset),
            "findings": findings(summary, dataset, axes),
            "figures": dataset_figures(results, out, dataset, models, axes),
            "trends": trends.dataset_trends(results, summary, out, out / FIGURES_DIR, dataset, axes) if axes else [],
        })  # fmt: skip
    drawn = {out / f["src"] for d in datasets for figs in d["figures"].values() for f in figs}
    drawn |= {out / f["src"] for d in datasets for t in d["trends"] for f in t["figures"]}
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
        rank_scope="among the models of this dataset" + (" at the same setting" if axes else ""),
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
