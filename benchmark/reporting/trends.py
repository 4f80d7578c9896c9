"""Trends over a grid's swept settings: per dataset and swept axis, figures and sentences.

For each axis that takes two values or more on a dataset: every main score against the
setting (one line per model, mean with the 95% t-interval over seeds), the rate–distortion
plane (rate = ``kl``, distortion = ``recon_bce``, both nats per image and the same quantity for
every model; Alemi et al. 2018), the same test images reconstructed by every model at each
setting, and sentences on where each model's score is best and how it moves away from there.
With several axes, a model has one line per value of the other axes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.reporting import figures
from benchmark.reporting.aggregate import (
    HAS_PRIOR,
    SUMMARY_SCORES,
    decimals,
    group_keys,
    is_prior_sample_score,
    is_ranked,
    setting_value,
)
from benchmark.reporting.significance import format_p, holm, welch_p
from benchmark.scoring.scores import LOWER

#: Scores drawn against each swept setting, where present.
TREND_SCORES = (
    "recon_mse", "recon_bce", "sharpness_gap_recon", "spectral_gap_recon", "sharpness_gap_sample",
    "spectral_gap_sample", "fd_sample", "kid_sample", "recall_sample", "coverage_sample", "fd_sample_gmm",
    "sharpness_gap_sample_gmm", "nll_is", "bits_per_dim", "latent_acc_knn", "kl", "active_units", "neg_elbo",
    "blurriness_recon", "blurriness_sample",
)  # fmt: skip

#: Scores the trend sentences speak about, where present: every ranked score drawn, and the rate.
TREND_FINDINGS = (*(s for s in TREND_SCORES if SUMMARY_SCORES[s] != "descriptive"), "kl")

#: Scores measured in the feature classifier's space: a classifier is trained per training and
#: test limit, so along those axes their values are in different spaces and not compared.
FEATURE_SPACE_AXES = ("train_limit", "test_limit")
FEATURE_SPACE_SCORES = ("fd_", "kid_", "precision_", "recall_", "coverage_")


def comparable_along(score: str, axis: str) -> bool:
    """Whether ``score``'s values along ``axis`` are in one space (see ``FEATURE_SPACE_AXES``)."""
    return not (axis in FEATURE_SPACE_AXES and score.startswith(FEATURE_SPACE_SCORES))

#: Test images per model and setting in the comparison figure.
COMPARE_IMAGES = 8


def swept_axes(rows: pd.DataFrame, axes: Sequence[str]) -> list[str]:
    """The axes of ``axes`` that take two values or more among ``rows``."""
    return [a for a in group_keys(rows, axes)[2:] if rows[a].dropna().nunique() >= 2]


def _label(row: pd.Series, others: list[str]) -> str:
    """``model`` or ``model (beta 2)``: the other axes' values that the model has."""
    fixed = [f"{a} {setting_value(row[a])}" for a in others if not pd.isna(row[a])]
    return f"{row['model']} ({', '.join(fixed)})" if fixed else str(row["model"])


def score_lines(rows: pd.DataFrame, axis: str, axes: Sequence[str], score: str) -> list[tuple[str, pd.DataFrame]]:
    """``[(label, rows in axis order)]``: one line per model and value of the other axes.

    ``rows`` is one dataset's summary; rows that lack the score or the axis value are left out,
    and so are N(0, I)-sample scores of models without a prior (not ranked, not drawn).
    """
    if f"{score}_mean" not in rows or not comparable_along(score, axis):
        return []
    keep = rows[f"{score}_mean"].notna() & rows[axis].notna()
    if is_prior_sample_score(score) and HAS_PRIOR in rows:
        keep &= rows[HAS_PRIOR].astype(bool)
    others = [a for a in group_keys(rows, axes)[2:] if a != axis]
    varying = [a for a in swept_axes(rows, axes) if a != axis]
    lines = []
    for _, group in rows[keep].groupby(["model", *others], sort=True, dropna=False):
        group = group.sort_values(axis)
        lines.append((_label(group.iloc[0], varying), group))
    return lines


def trend_sentence(label: str, group: pd.DataFrame, axis: str, score: str) -> str | None:
    """Where ``label``'s score is best along ``axis`` and how far it moves from there to the ends.

    The best setting is tested against each end by Welch's t-test over seeds, Holm-adjusted over
    those comparisons; with one seed no test is made. Descriptive scores are described from the
    first to the last setting.
    """
    if len(group) < 2:
        return None
    d = decimals(score)
    xs = [setting_value(x) for x in group[axis]]
    mean, std = (group[f"{score}_{s}"].to_numpy(float) for s in ("mean", "std"))
    seeds = group[f"{score}_n" if f"{score}_n" in group else "seeds"].to_numpy(int)
    if np.ptp(mean) == 0:
        return f"{score} of {label} is {mean[0]:.{d}f} at every {axis}; means over {_seeds(seeds)}."
    if not is_ranked(score):
        text = f"{score} of {label} goes from {mean[0]:.{d}f} at {axis} {xs[0]} to {mean[-1]:.{d}f} at {axis} {xs[-1]}"
        lo, hi = int(np.argmin(mean)), int(np.argmax(mean))
        if {lo, hi} != {0, len(mean) - 1}:
            text += f" (lowest {mean[lo]:.{d}f} at {xs[lo]}, highest {mean[hi]:.{d}f} at {xs[hi]})"
        return text + f"; means over {_seeds(seeds)}."
    lower = SUMMARY_SCORES[score] == LOWER
    best = int(np.argmin(mean) if lower else np.argmax(mean))
    ends = [i for i in (0, len(mean) - 1) if i != best and mean[i] != mean[best]]
    p = holm([welch_p(mean[best], std[best], seeds[best], mean[i], std[i], seeds[i]) for i in ends])
    m = int(np.sum(~np.isnan(p)))
    worse, better = ("rises", "falls") if lower else ("falls", "rises")
    numeric = pd.api.types.is_numeric_dtype(group[axis])
    text = f"{score} of {label} is {'lowest' if lower else 'highest'} at {axis} {xs[best]} ({mean[best]:.{d}f})"
    for i, p_adj in zip(ends, p, strict=True):
        gap = abs(mean[i] - mean[best])
        if i < best:
            part = f"from {axis} {xs[i]} to {xs[best]} it {better} by {gap:.{d}f}"
        elif numeric:
            part = f"above {xs[best]} it {worse} by {gap:.{d}f}, to {mean[i]:.{d}f} at {axis} {xs[i]}"
        else:
            part = f"from {axis} {xs[best]} to {xs[i]} it {worse} by {gap:.{d}f}"
        if min(seeds[best], seeds[i]) < 2:
            test = "one seed: no test"
        elif np.isnan(p_adj):
            test = "no spread over seeds: no test"
        else:
            n = f"{seeds[best]} seeds" if seeds[best] == seeds[i] else f"{seeds[best]} and {seeds[i]} seeds"
            test = f"{format_p(p_adj)}, Welch t-test over {n}, Holm-adjusted over {m} comparison{'s' * (m != 1)}"
        text += f"; {part} ({test})"
    return text + f"; means over {_seeds(seeds)}."


def _seeds(seeds: np.ndarray) -> str:
    low, high = int(seeds.min()), int(seeds.max())
    if high == 1:
        return "one seed"
    return f"{low} seeds" if low == high else f"{low}–{high} seeds"


def _figure_lines(lines: list[tuple[str, pd.DataFrame]], axis: str, score: str) -> list[figures.Line]:
    return [figures.Line(label, g[axis].to_numpy(), g[f"{score}_mean"].to_numpy(float),
                         g[f"{score}_ci95"].to_numpy(float)) for label, g in lines]  # fmt: skip


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def comparison_images(
    results: pd.DataFrame, out: Path, dataset: str, axis: str, axes: Sequence[str]
) -> tuple[np.ndarray | None, dict[str, dict[str, np.ndarray]], list[str]]:
    """``(originals, {model: {setting: recon}}, settings)`` from the units' ``arrays.npz``.

    Per model and value of ``axis``: the completed unit at the model's first value of the
    other axes, lowest seed; ``recon`` holds reconstructions of the first test images, and
    ``snapshot_images`` those images.
    """
    ok = results[(results["dataset"] == dataset) & (results["status"] == "ok") & results[axis].notna()]
    if "unit_id" not in ok:
        return None, {}, []
    others = [a for a in group_keys(ok, axes)[2:] if a != axis]
    settings = [setting_value(v) for v in sorted(ok[axis].unique())]
    originals, rows = None, {}
    for model, units in ok.groupby("model", sort=True):
        units = units.sort_values([*others, "seed"], na_position="last")
        if others:
            first = units.iloc[0]
            same = np.logical_and.reduce([(units[a] == first[a]) | (units[a].isna() & pd.isna(first[a])) for a in others])
            units = units[same]
        cells = {}
        for value, unit in units.groupby(axis, sort=True):
            path = out / "units" / str(unit.iloc[0]["unit_id"]) / "arrays.npz"
            if not path.is_file():
                continue
            with np.load(path, allow_pickle=False) as npz:
                if "recon" in npz.files:
                    cells[setting_value(value)] = npz["recon"][:COMPARE_IMAGES]
                if originals is None and "snapshot_images" in npz.files:
                    originals = npz["snapshot_images"][:COMPARE_IMAGES]
        if cells:
            rows[model] = cells
    return originals, rows, settings


def dataset_trends(
    results: pd.DataFrame, summary: pd.DataFrame, out: Path, fig_dir: Path, dataset: str, axes: Sequence[str]
) -> list[dict]:
    """Per swept axis of ``dataset``: ``{axis, figures: [{src, caption}], findings: [str]}``.

    Figures are PNGs in ``fig_dir``; ``src`` is relative to ``out``.
    """
    rows = summary[summary["dataset"] == dataset]
    sections = []
    for axis in swept_axes(rows, axes):
        drawn = []
        panels = {s: _figure_lines(score_lines(rows, axis, axes, s), axis, s) for s in TREND_SCORES}
        panels = {s: lines for s, lines in panels.items() if lines}
        colours = figures.line_colours([line.label for lines in panels.values() for line in lines])
        if panels:
            path = figures.trend_figure(panels, axis, fig_dir / f"{dataset}-trend-{_slug(axis)}.png",
                                        title=f"{dataset}: scores against {axis}", colours=colours)  # fmt: skip
            drawn.append((path, f"Each score's mean against {axis}, one line per model, with the 95% t-interval "
                                "over seeds as a band (none with one seed). N(0, I)-sample scores of models "
                                "without a prior are not drawn."))  # fmt: skip
        rd = [
            figures.RatePoints(label, g["kl_mean"].to_numpy(float), g["recon_bce_mean"].to_numpy(float),
                               [setting_value(v) for v in g[axis]])
            for label, g in score_lines(rows, axis, axes, "kl")
            if "recon_bce_mean" in g and g["recon_bce_mean"].notna().all()
        ]  # fmt: skip
        if rd:
            path = figures.rate_distortion_figure(rd, fig_dir / f"{dataset}-rate-distortion-{_slug(axis)}.png",
                                                  title=f"{dataset}: rate and distortion over {axis}", axis=axis,
                                                  colours=colours if {p.label for p in rd} <= colours.keys() else None)  # fmt: skip
            drawn.append((path, "Rate (KL, nats per image) against distortion (recon_bce, nats per image, the "
                                f"same quantity for every model; Alemi et al. 2018): means over seeds, each "
                                f"model's points joined in order of {axis}."))  # fmt: skip
        originals, images, settings = comparison_images(results, out, dataset, axis, axes)
        if images:
            path = figures.comparison_figure(originals, images, settings,
                                             fig_dir / f"{dataset}-compare-{_slug(axis)}.png",
                                             title=f"{dataset}: the same test images at each {axis}", axis=axis)  # fmt: skip
            drawn.append((path, f"The first {COMPARE_IMAGES} test images (top) reconstructed by each model (rows) "
                                f"at each {axis} (columns); lowest seed, other settings at their first value."))  # fmt: skip
        sentences = [
            s
            for score in TREND_FINDINGS
            for label, group in score_lines(rows, axis, axes, score)
            if (s := trend_sentence(label, group, axis, score))
        ]
        sections.append({
            "axis": axis,
            "figures": [{"src": p.relative_to(out).as_posix(), "caption": c} for p, c in drawn],
            "findings": sentences,
        })  # fmt: skip
    return sections
