"""The summary statistics: mean, std, 95% t-interval, ranks and best-marking per dataset."""

import math

import numpy as np
import pandas as pd
import pytest

from benchmark.aggregate import (
    RESULT_COLUMNS,
    ci_halfwidth,
    results_frame,
    summary_frame,
    summary_markdown,
)

# Two-sided 95% quantiles of Student's t, from a printed t-table: t_{0.975, 2}, t_{0.975, 4}.
T_975_DF2 = 4.303
T_975_DF4 = 2.776


def rows(dataset: str, model: str, **scores: list[float]) -> list[dict]:
    """One completed result row per seed, with the given per-seed scores."""
    n = len(next(iter(scores.values())))
    return [
        {"dataset": dataset, "model": model, "seed": s, "status": "ok", **{k: v[s] for k, v in scores.items()}}
        for s in range(n)
    ]


@pytest.fixture
def results() -> pd.DataFrame:
    data = (
        rows("digits", "ae", recon_mse=[0.10, 0.12, 0.14], latent_acc_knn=[0.70, 0.72, 0.74])
        + rows("digits", "vae", recon_mse=[0.20, 0.22, 0.30], latent_acc_knn=[0.90, 0.91, 0.92],
               neg_elbo=[100.0, 110.0, 120.0])
        + [{"dataset": "digits", "model": "vae", "seed": 3, "status": "failed", "recon_mse": 99.0}]
    )  # fmt: skip
    return results_frame(data)


def test_ci_uses_the_t_quantile_with_n_minus_1_degrees_of_freedom():
    assert ci_halfwidth(2.0, 3) == pytest.approx(T_975_DF2 * 2.0 / math.sqrt(3), rel=1e-3)
    assert ci_halfwidth(0.5, 5) == pytest.approx(T_975_DF4 * 0.5 / math.sqrt(5), rel=1e-3)


def test_ci_is_nan_with_one_seed_not_a_zero_width_interval():
    assert math.isnan(ci_halfwidth(float("nan"), 1))
    assert math.isnan(ci_halfwidth(0.0, 1))


def test_summary_mean_std_and_ci_over_completed_seeds(results):
    summary = summary_frame(results).set_index("model")
    vae = np.array([0.20, 0.22, 0.30])  # the failed seed's 99.0 must not count
    assert summary.loc["vae", "seeds"] == 3
    assert summary.loc["vae", "recon_mse_mean"] == pytest.approx(vae.mean())
    assert summary.loc["vae", "recon_mse_std"] == pytest.approx(vae.std(ddof=1))
    expected_ci = T_975_DF2 * vae.std(ddof=1) / math.sqrt(3)
    assert summary.loc["vae", "recon_mse_ci95"] == pytest.approx(expected_ci, rel=1e-3)


def test_ranks_follow_each_scores_direction(results):
    summary = summary_frame(results).set_index("model")
    # recon_mse: lower is better; latent_acc_knn: higher is better.
    assert summary.loc["ae", "recon_mse_rank"] == 1 and summary.loc["vae", "recon_mse_rank"] == 2
    assert summary.loc["vae", "latent_acc_knn_rank"] == 1 and summary.loc["ae", "latent_acc_knn_rank"] == 2
    # A model without the score has no rank.
    assert math.isnan(summary.loc["ae", "neg_elbo_rank"]) and summary.loc["vae", "neg_elbo_rank"] == 1


def test_ranks_are_within_a_dataset_and_ties_share_the_better_rank():
    data = (
        rows("digits", "a", recon_mse=[0.1]) + rows("digits", "b", recon_mse=[0.1]) + rows("digits", "c", recon_mse=[0.3])
        + rows("mnist", "a", recon_mse=[0.5]) + rows("mnist", "b", recon_mse=[0.2])
    )  # fmt: skip
    summary = summary_frame(results_frame(data)).set_index(["dataset", "model"])["recon_mse_rank"]
    assert summary[("digits", "a")] == summary[("digits", "b")] == 1
    assert summary[("digits", "c")] == 3
    assert summary[("mnist", "b")] == 1 and summary[("mnist", "a")] == 2


def test_summary_keeps_the_earlier_columns_and_adds_ci_and_rank(results):
    summary = summary_frame(results)
    assert list(summary.columns[:3]) == ["dataset", "model", "seeds"]
    for score in ["recon_mse", "latent_acc_knn", "neg_elbo"]:
        for stat in ["mean", "std", "ci95", "rank"]:
            assert f"{score}_{stat}" in summary.columns


def test_fd_sample_is_a_result_column():
    assert "fd_sample" in RESULT_COLUMNS
    assert "fd_sample" in results_frame(rows("digits", "ae", recon_mse=[0.1])).columns


def test_markdown_bolds_the_best_and_shows_the_interval(results):
    summary = summary_frame(results)
    table = summary_markdown(summary)
    ae = summary.set_index("model").loc["ae"]
    lo, hi = ae["recon_mse_mean"] - ae["recon_mse_ci95"], ae["recon_mse_mean"] + ae["recon_mse_ci95"]
    ae_line = next(line for line in table.splitlines() if "| ae " in line)
    assert f"**{ae['recon_mse_mean']:.4f} ± {ae['recon_mse_std']:.4f}**" in ae_line
    assert f"[{lo:.4f}, {hi:.4f}] #1" in ae_line
    vae_line = next(line for line in table.splitlines() if "| vae " in line)
    assert "#2" in vae_line and f"**{summary.loc[1, 'recon_mse_mean']:.4f}" not in vae_line


def test_markdown_says_na_with_one_seed():
    summary = summary_frame(results_frame(rows("digits", "ae", recon_mse=[0.1]) + rows("digits", "vae", recon_mse=[0.2])))
    assert summary["recon_mse_ci95"].isna().all() and summary["recon_mse_std"].isna().all()
    table = summary_markdown(summary)
    assert "0.1000 ± n/a** [n/a] #1" in table
    assert "± 0.0000" not in table
