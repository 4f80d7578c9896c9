"""Figures of one trained unit, each a PNG written from the unit's saved arrays.

Also the figures of a sweep: scores against a swept setting, the rate–distortion plane and
the same test images reconstructed at every setting.

Built on ``matplotlib.figure.Figure`` (no pyplot): rendering goes through the Agg canvas,
needs no display and keeps no global figure state. Images are (n, H, W, C) in [0, 1] with
C = 1 (greyscale) or 3.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.decomposition import PCA

DPI = 100
#: Points of the latent scatter plot; more only hide each other.
MAX_SCATTER = 5000
#: Pixels of padding between the images of a mosaic.
PAD = 1
#: Panels per row of the learning-curve figure.
CURVE_COLUMNS = 4


def mosaic(images: np.ndarray, pad: int = PAD) -> np.ndarray:
    """(rows, cols, H, W, C) -> one (rows*(H+pad)-pad, cols*(W+pad)-pad, C) image, white gaps."""
    rows, cols, height, width, channels = images.shape
    out = np.ones((rows * (height + pad) - pad, cols * (width + pad) - pad, channels), np.float32)
    for r in range(rows):
        for c in range(cols):
            top, left = r * (height + pad), c * (width + pad)
            out[top : top + height, left : left + width] = images[r, c]
    return out


def _show(ax, picture: np.ndarray) -> None:
    """Draw an (H, W, C) image in [0, 1] without smoothing."""
    picture = np.clip(picture, 0.0, 1.0)
    if picture.shape[-1] == 1:
        ax.imshow(picture[..., 0], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    else:
        ax.imshow(picture, interpolation="nearest")


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    return path


def _image_rows(rows: list[np.ndarray], labels: list[str], title: str, path: Path) -> Path:
    """Rows of equally many images, each row labelled on the left."""
    grid = np.stack(rows)  # (rows, cols, H, W, C)
    n_rows, n_cols = grid.shape[:2]
    fig = Figure(figsize=(0.75 * n_cols + 1.4, 0.75 * n_rows + 0.5))
    ax = fig.add_subplot()
    _show(ax, mosaic(grid))
    height = grid.shape[2] + PAD
    ax.set_yticks([r * height + (height - PAD) / 2 for r in range(n_rows)], labels)
    ax.set_xticks([])
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_title(title, fontsize=10)
    return _save(fig, path)


def reconstructions_figure(
    originals: np.ndarray, epochs: np.ndarray, snapshots: np.ndarray, path: Path, *, title: str
) -> Path:
    """Originals (n, H, W, C) above their reconstructions after each epoch in ``epochs`` (k,).

    ``snapshots`` is (k, n, H, W, C).
    """
    labels = ["original"] + [f"epoch {int(e)}" for e in epochs]
    return _image_rows([originals, *snapshots], labels, title, path)


def samples_figure(samples: np.ndarray, path: Path, *, title: str, cols: int = 8) -> Path:
    """A grid of the first ``cols * cols`` decoded prior samples (n, H, W, C)."""
    n = min(len(samples), cols * cols) // cols * cols
    grid = samples[:n].reshape(n // cols, cols, *samples.shape[1:])
    fig = Figure(figsize=(4.5, 0.56 * len(grid) + 0.5))
    ax = fig.add_subplot()
    _show(ax, mosaic(grid))
    ax.set_axis_off()
    ax.set_title(title, fontsize=10)
    return _save(fig, path)


def interpolation_figure(interpolations: np.ndarray, path: Path, *, title: str) -> Path:
    """One row per image pair: the decoded straight path between their latent means.

    ``interpolations`` is (pairs, steps, H, W, C).
    """
    labels = [f"pair {i + 1}" for i in range(len(interpolations))]
    return _image_rows(list(interpolations), labels, title, path)


def latent_figure(z: np.ndarray, y: np.ndarray, path: Path, *, title: str) -> Path:
    """Test latent means (n, d) projected on their first two principal components, by class."""
    keep = np.random.default_rng(0).permutation(len(z))[:MAX_SCATTER]
    z, y = np.asarray(z, np.float64)[keep], np.asarray(y)[keep]
    n_components = min(2, z.shape[1])
    pca = PCA(n_components=n_components).fit(z)
    points = pca.transform(z)
    if n_components == 1:  # a 1-D latent: spread the points along a zero axis
        points = np.column_stack([points[:, 0], np.zeros(len(points))])
    fig = Figure(figsize=(5.2, 4.4))
    ax = fig.add_subplot()
    classes = np.unique(y)
    cmap = _class_colours(len(classes))
    for i, label in enumerate(classes):
        mask = y == label
        ax.scatter(points[mask, 0], points[mask, 1], s=6, alpha=0.7, color=cmap[i], label=str(label), linewidths=0)
    ratios = [*pca.explained_variance_ratio_, 0.0]
    ax.set_xlabel(f"PC 1 ({ratios[0]:.0%} of variance)")
    ax.set_ylabel(f"PC 2 ({ratios[1]:.0%} of variance)" if n_components == 2 else "")
    ax.legend(title="class", fontsize=7, title_fontsize=8, markerscale=2, loc="center left", bbox_to_anchor=(1, 0.5))
    ax.set_title(title, fontsize=10)
    return _save(fig, path)


def _class_colours(n: int) -> list:
    """n distinguishable colours: tab10 for up to 10 classes, else a continuous map."""
    from matplotlib import colormaps

    if n <= 10:
        return [colormaps["tab10"](i) for i in range(n)]
    return [colormaps["viridis"](i / max(1, n - 1)) for i in range(n)]


def learning_curves_figure(history: pd.DataFrame, path: Path, *, title: str) -> Path:
    """One panel per logged quantity of ``history.csv`` (columns ``epoch`` plus losses),
    ``CURVE_COLUMNS`` panels to a row; a quantity's ``val_`` twin (the validation split) is
    drawn dashed in the same panel.

    Columns that were never logged (all empty) are left out.
    """
    present = [c for c in history.columns if c != "epoch" and history[c].notna().any()]
    logged = [c for c in present if not (c.startswith("val_") and c.removeprefix("val_") in present)]
    epochs = history["epoch"].to_numpy() + 1 if "epoch" in history else np.arange(1, len(history) + 1)
    n_cols = min(CURVE_COLUMNS, max(1, len(logged)))
    n_rows = max(1, -(-len(logged) // n_cols))
    fig = Figure(figsize=(2.6 * n_cols, 2.1 * n_rows + 0.4))
    axes = fig.subplots(n_rows, n_cols, squeeze=False).ravel()
    for ax, column in zip(axes, logged, strict=False):
        ax.plot(epochs, history[column].to_numpy(dtype=float), marker="o", markersize=3, label="training")
        if f"val_{column}" in present:
            ax.plot(epochs, history[f"val_{column}"].to_numpy(dtype=float), linestyle="--",
                    marker="o", markersize=3, fillstyle="none", label="validation")  # fmt: skip
            ax.legend(fontsize=7)
        ax.set_title(column, fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    for ax in axes[len(logged) :]:
        ax.set_axis_off()
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def sharpness_figure(real: np.ndarray, recon: np.ndarray, sample: np.ndarray, path: Path, *, title: str) -> Path:
    """Histograms of per-image sharpness (variance of the Laplacian, (n,) each), log scale.

    Blurry and sharp images differ by orders of magnitude, hence logarithmic bins; values
    below the first bin (e.g. 0 for a flat image) are counted in it.
    """
    sets = {"real test images": real, "reconstructions": recon, "prior samples": sample}
    everything = np.concatenate([np.ravel(v) for v in sets.values()])
    positive = everything[everything > 0]
    top = float(positive.max()) if len(positive) else 1.0
    low = max(float(positive.min()) if len(positive) else top, top * 1e-4)
    bins = np.geomspace(low, top, 40) if top > low else np.array([low / 2, top * 2])
    fig = Figure(figsize=(5.2, 3.2))
    ax = fig.add_subplot()
    for label, values in sets.items():
        ax.hist(np.clip(values, bins[0], bins[-1]), bins=bins, histtype="step", linewidth=1.5,
                label=f"{label} (mean {np.mean(values):.3g})")  # fmt: skip
    ax.set_xscale("log")
    ax.set_xlabel("sharpness: variance of the Laplacian (log scale)")
    ax.set_ylabel("images")
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    return _save(fig, path)


# --- trends over a swept setting ---------------------------------------------------------


@dataclass(frozen=True)
class Line:
    """One model's means of a score at each value of a swept setting.

    ``x`` (k,) the setting's values in axis order (numbers or labels), ``mean`` (k,) the mean
    over seeds, ``half`` (k,) the half-width of its 95% interval (NaN with one seed).
    """

    label: str
    x: np.ndarray
    mean: np.ndarray
    half: np.ndarray


def _numeric(values: list) -> bool:
    return all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) for v in values)


def _x_positions(lines: list[Line]) -> tuple[dict, bool]:
    """{value: x position} over every line's values, and whether the axis is logarithmic.

    Numbers sit at their value (log scale when positive and spanning a factor 8 or more, as
    latent sizes and KL weights do); labels sit at 0, 1, 2, ... in order of appearance.
    """
    values = list(dict.fromkeys(v for line in lines for v in line.x))
    if values and _numeric(values):
        positive = all(float(v) > 0 for v in values)
        return {v: float(v) for v in values}, positive and max(values) / min(values) >= 8
    return {v: float(i) for i, v in enumerate(values)}, False


def line_colours(labels: list[str]) -> dict[str, tuple]:
    """A colour per line label, the same in every figure drawn with the same labels."""
    labels = sorted(set(labels))
    return dict(zip(labels, _class_colours(len(labels)), strict=True))


def trend_figure(
    panels: dict[str, list[Line]], axis: str, path: Path, *, title: str, colours: dict[str, tuple] | None = None
) -> Path:
    """One panel per score: its mean against ``axis``, one line per model, with the 95% band."""
    panels = {score: lines for score, lines in panels.items() if lines}
    labels = sorted({line.label for lines in panels.values() for line in lines})
    colours = colours or line_colours(labels)
    n_cols = min(CURVE_COLUMNS, max(1, len(panels)))
    n_rows = max(1, -(-len(panels) // n_cols))
    fig = Figure(figsize=(2.9 * n_cols, 2.3 * n_rows + 0.7))
    axes = fig.subplots(n_rows, n_cols, squeeze=False).ravel()
    for ax, (score, lines) in zip(axes, panels.items(), strict=False):
        where, log = _x_positions(lines)
        for line in lines:
            x = np.array([where[v] for v in line.x])
            mean, half = np.asarray(line.mean, float), np.asarray(line.half, float)
            ax.plot(x, mean, marker="o", markersize=3, color=colours[line.label], label=line.label)
            known = ~np.isnan(half)
            if known.any():
                ax.fill_between(x[known], (mean - half)[known], (mean + half)[known],
                                color=colours[line.label], alpha=0.2, linewidth=0)  # fmt: skip
        if log:
            ax.set_xscale("log")
        ticks = sorted(where.items(), key=lambda kv: kv[1])
        ax.set_xticks([p for _, p in ticks], [f"{v:g}" if _numeric([v]) else str(v) for v, _ in ticks])
        ax.minorticks_off()
        ax.set_title(score, fontsize=9)
        ax.set_xlabel(axis, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in axes[len(panels) :]:
        ax.set_axis_off()
    handles = [axes[0].plot([], [], color=colours[label], marker="o", label=label)[0] for label in labels]
    fig.legend(handles=handles, loc="lower center", ncol=min(4, len(labels)), fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.06 + 0.02 * (len(labels) // 4), 1, 1))
    return _save(fig, path)


@dataclass(frozen=True)
class RatePoints:
    """One model's (rate, distortion) means in axis order, with the setting's value of each."""

    label: str
    rate: np.ndarray
    distortion: np.ndarray
    settings: list[str]


def rate_distortion_figure(
    lines: list[RatePoints], path: Path, *, title: str, axis: str, colours: dict[str, tuple] | None = None
) -> Path:
    """The rate–distortion plane (Alemi et al. 2018): rate = KL in nats, distortion = the
    reconstruction cross-entropy in nats per image; each model's points joined in axis order."""
    colours = colours or line_colours([line.label for line in lines])
    fig = Figure(figsize=(5.6, 4.2))
    ax = fig.add_subplot()
    for line in lines:
        ax.plot(line.rate, line.distortion, marker="o", markersize=4, color=colours[line.label], label=line.label)
        for r, d, text in zip(line.rate, line.distortion, line.settings, strict=True):
            ax.annotate(f"{axis}={text}", (r, d), fontsize=6, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("rate: KL(q(z|x) || p(z)), nats per image")
    ax.set_ylabel("distortion: recon_bce, nats per image")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    return _save(fig, path)


#: Pixels between the settings' blocks of the comparison figure.
BLOCK_GAP = 6


def comparison_figure(
    originals: np.ndarray | None,
    rows: dict[str, dict[str, np.ndarray]],
    settings: list[str],
    path: Path,
    *,
    title: str,
    axis: str,
) -> Path:
    """The same test images reconstructed by every model (rows) at each setting (columns).

    ``rows`` maps a model to {setting: (n, H, W, C) reconstructions}; a missing setting stays
    white. ``originals`` (n, H, W, C), when given, is the top row.
    """
    stacks = [r for cells in rows.values() for r in cells.values()] + ([originals] if originals is not None else [])
    n = min(len(s) for s in stacks)
    height, width, channels = stacks[0].shape[1:]
    block = n * (width + PAD) - PAD
    labels = (["test images"] if originals is not None else []) + list(rows)
    canvas = np.ones((len(labels) * (height + PAD) - PAD, len(settings) * (block + BLOCK_GAP) - BLOCK_GAP, channels))
    grid = ([dict.fromkeys(settings, originals)] if originals is not None else []) + list(rows.values())
    for r, cells in enumerate(grid):
        for c, setting in enumerate(settings):
            if setting not in cells:
                continue
            left, top = c * (block + BLOCK_GAP), r * (height + PAD)
            canvas[top : top + height, left : left + block] = mosaic(cells[setting][None, :n])[:height]
    fig = Figure(figsize=(0.42 * n * len(settings) + 1.6, 0.5 * len(labels) + 0.9))
    ax = fig.add_subplot()
    _show(ax, canvas)
    ax.set_yticks([r * (height + PAD) + height / 2 for r in range(len(labels))], labels)
    ax.set_xticks([c * (block + BLOCK_GAP) + block / 2 for c in range(len(settings))],
                  [f"{axis}={s}" for s in settings])  # fmt: skip
    ax.tick_params(length=0, labelsize=8)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_title(title, fontsize=10)
    return _save(fig, path)
