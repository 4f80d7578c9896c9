"""Published claims tested on vaebench's own results: Ghosh et al. (2020) and Larsen et al.
(2016) as orderings, each a one-sided comparison of two (model, score) cells over seeds.

A reproduction's record is ``docs/reproductions/<name>/results.csv``: one row per unit (dataset,
model, seed and the scores the claims use), written from a run folder by
``export_results``. ``claim_table`` recomputes every claim from it: the two means, Welch's
t-test over the seeds (two-sided p, halved for the claimed direction when the means are in
it), Holm-adjusted over the claims of the reproduction, and a verdict::

    python -m benchmark.reporting.claims ghosh larsen     # the README's table rows
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.io import write_atomic
from benchmark.reporting.significance import ALPHA, format_p, holm, welch_p

REPRODUCTIONS_DIR = Path(__file__).resolve().parents[2] / "docs" / "reproductions"


@dataclass(frozen=True)
class Claim:
    """``better`` scores lower than ``worse`` on ``dataset`` (both (model, score) cells)."""

    text: str
    dataset: str
    better: tuple[str, str]
    worse: tuple[str, str]


CLAIMS: dict[str, tuple[Claim, ...]] = {
    "ghosh": (
        Claim("a fitted mixture rescues the AE's samples: AE+GMM < AE+N(0, I)", "mnist",
              ("ae", "fd_sample_gmm"), ("ae", "fd_sample")),
        Claim("the mixture helps the Gaussian VAE: VAE+GMM < VAE+N(0, I)", "mnist",
              ("vae_mse", "fd_sample_gmm"), ("vae_mse", "fd_sample")),
        Claim("the mixture helps the Bernoulli VAE: VAE+GMM < VAE+N(0, I)", "mnist",
              ("vae_bernoulli", "fd_sample_gmm"), ("vae_bernoulli", "fd_sample")),
        Claim("AE+GMM is as good as or better than the Gaussian VAE+N(0, I)", "mnist",
              ("ae", "fd_sample_gmm"), ("vae_mse", "fd_sample")),
        Claim("AE+GMM is as good as or better than the Bernoulli VAE+N(0, I)", "mnist",
              ("ae", "fd_sample_gmm"), ("vae_bernoulli", "fd_sample")),
    ),
    "larsen": tuple(
        Claim(f"VAE-GAN samples closer to real sharpness than the {label}'s ({dataset})", dataset,
              ("vae_gan", "sharpness_gap_sample"), (model, "sharpness_gap_sample"))
        for dataset in ("mnist", "fashion_mnist")
        for model, label in (("vae_mse", "Gaussian VAE"), ("vae_bernoulli", "Bernoulli VAE"))
    ),
}  # fmt: skip


def export_results(run_dir: Path, name: str, root: Path = REPRODUCTIONS_DIR) -> Path:
    """Write the columns the claims of ``name`` use, from ``<run_dir>/results.csv`` (ok units
    only), into ``<root>/<name>/results.csv``; appends to what is there (other datasets)."""
    scores = sorted({cell[1] for claim in CLAIMS[name] for cell in (claim.better, claim.worse)})
    rows = pd.read_csv(Path(run_dir) / "results.csv")
    rows = rows[rows["status"] == "ok"][["dataset", "model", "seed", *scores]]
    path = root / name / "results.csv"
    if path.is_file():
        old = pd.read_csv(path)
        rows = pd.concat([old[~old["dataset"].isin(rows["dataset"].unique())], rows], ignore_index=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, rows.sort_values(["dataset", "model", "seed"]).to_csv(index=False))
    return path


def _cell(results: pd.DataFrame, dataset: str, cell: tuple[str, str]) -> np.ndarray:
    model, score = cell
    rows = results[(results["dataset"] == dataset) & (results["model"] == model)]
    return rows[score].dropna().to_numpy(float) if score in rows else np.zeros(0)


def claim_table(name: str, root: Path = REPRODUCTIONS_DIR) -> pd.DataFrame:
    """One row per claim of ``name`` present in its results: the claim, the two means (±
    std, seeds), the one-sided p (Holm-adjusted over the reproduction's claims) and the verdict:
    ``reproduced`` (the claimed order, adjusted p < ALPHA), ``not reproduced`` (the opposite
    order, adjusted p < ALPHA) or ``not distinguishable``."""
    results = pd.read_csv(root / name / "results.csv")
    rows, raw = [], []
    for claim in CLAIMS[name]:
        a, b = _cell(results, claim.dataset, claim.better), _cell(results, claim.dataset, claim.worse)
        if len(a) == 0 or len(b) == 0:
            continue
        p = welch_p(a.mean(), a.std(ddof=1), len(a), b.mean(), b.std(ddof=1), len(b)) if min(len(a), len(b)) > 1 else np.nan
        raw.append(p / 2 if not np.isnan(p) else np.nan)  # one-sided, in the direction the means lie
        rows.append({"claim": claim.text, "better": f"{claim.better[0]} {claim.better[1]}",
                     "better_mean": a.mean(), "better_std": a.std(ddof=1), "worse": f"{claim.worse[0]} {claim.worse[1]}",
                     "worse_mean": b.mean(), "worse_std": b.std(ddof=1), "seeds": min(len(a), len(b))})  # fmt: skip
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    table["p_holm"] = holm(raw)
    in_order = table["better_mean"] < table["worse_mean"]
    significant = table["p_holm"] < ALPHA
    table["verdict"] = np.where(significant & in_order, "reproduced",
                                np.where(significant, "not reproduced", "not distinguishable"))  # fmt: skip
    return table


def markdown_rows(name: str, root: Path = REPRODUCTIONS_DIR) -> list[str]:
    """The claims of ``name`` as README table rows: claim | vaebench | p | verdict."""
    out = []
    for _, r in claim_table(name, root).iterrows():
        figures = (f"{r['better']} {r['better_mean']:.2f} ± {r['better_std']:.2f} against "
                   f"{r['worse']} {r['worse_mean']:.2f} ± {r['worse_std']:.2f} ({int(r['seeds'])} seeds)")  # fmt: skip
        out.append(f"| {r['claim']} | {figures} | {format_p(r['p_holm'])} | {r['verdict']} |")
    return out


if __name__ == "__main__":
    for name in sys.argv[1:] or list(CLAIMS):
        print("\n".join(markdown_rows(name)))
