"""The summary statistics: mean, std, 95% t-interval, ranks and best-marking per dataset."""

import math

import numpy as np
import pandas as pd
import pytest

from benchmark.reporting.aggregate import (
    RESULT_COLUMNS,
    ci_halfwidth,
    results_frame,
    summary_frame,
    summary_markdown,
    write_tables,
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
    # neg_elbo is descriptive: summarised, never ranked.
    assert "neg_elbo_rank" not in summary and summary.loc["vae", "neg_elbo_mean"] == pytest.approx(110.0)


def test_ranks_are_within_a_dataset_and_ties_share_the_better_rank():
    data = (
        rows("digits", "a", recon_mse=[0.1, 0.2]) + rows("digits", "b", recon_mse=[0.2, 0.1])
        + rows("digits", "c", recon_mse=[0.3, 0.3])
        + rows("mnist", "a", recon_mse=[0.5, 0.5]) + rows("mnist", "b", recon_mse=[0.2, 0.2])
    )  # fmt: skip
    summary = summary_frame(results_frame(data)).set_index(["dataset", "model"])
    rank, tied = summary["recon_mse_rank"], summary["recon_mse_tied"]
    assert rank[("digits", "a")] == rank[("digits", "b")] == 1 and tied[("digits", "a")] and tied[("digits", "b")]
    assert rank[("digits", "c")] == 3 and not tied[("digits", "c")]
    assert rank[("mnist", "b")] == 1 and rank[("mnist", "a")] == 2 and not tied[("mnist", "b")]
    table = summary_markdown(summary.reset_index())
    assert table.count("#1 (tied)") == 2 and "#3" in table


def test_summary_keeps_the_earlier_columns_and_adds_ci_and_rank(results):
    summary = summary_frame(results)
    assert list(summary.columns[:3]) == ["dataset", "model", "seeds"]
    for score in ["recon_mse", "latent_acc_knn"]:
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


def test_one_seed_shows_the_mean_alone_with_no_rank_and_no_bold():
    summary = summary_frame(results_frame(rows("digits", "ae", recon_mse=[0.1]) + rows("digits", "vae", recon_mse=[0.2])))
    assert summary["recon_mse_ci95"].isna().all() and summary["recon_mse_std"].isna().all()
    assert summary["recon_mse_rank"].isna().all()
    body = summary_markdown(summary).split("\n\n")[0]
    assert "0.1 |" in body and "0.2 |" in body
    assert "n/a" not in body and "±" not in body and "**" not in body and "#" not in body


# --- directions, priors and swept settings -------------------------------------------------


def test_descriptive_scores_are_summarised_never_ranked_nor_bolded():
    data = rows("d", "a", kl=[10.0, 12.0], blurriness_sample=[-0.8, -0.7], active_units=[3, 4]) + rows(
        "d", "b", kl=[30.0, 31.0], blurriness_sample=[0.1, 0.2], active_units=[8, 8]
    )
    summary = summary_frame(results_frame(data))
    for score in ["kl", "blurriness_sample", "active_units"]:
        assert f"{score}_mean" in summary and f"{score}_rank" not in summary
    body, legend = summary_markdown(summary).split("\n\n")
    assert "**" not in body and "#" not in body
    assert [c.strip() for c in body.splitlines()[0].split("|")[4:7]] == ["kl", "active_units", "blurriness_sample"]
    assert "Not ranked (descriptive): kl, active_units, blurriness_sample" in legend


def test_prior_sample_scores_are_not_ranked_without_a_prior_but_mixture_samples_are():
    data = (
        rows("d", "ae", fd_sample=[5.0, 5.0], fd_sample_gmm=[9.0, 9.1], recon_mse=[0.1, 0.1])
        + rows("d", "vae", fd_sample=[20.0, 21.0], fd_sample_gmm=[10.0, 10.1], recon_mse=[0.2, 0.2])
        + rows("d", "gan", fd_sample=[15.0, 16.0], fd_sample_gmm=[12.0, 12.1], recon_mse=[0.3, 0.3])
    )  # fmt: skip
    for r in data:
        r["has_prior"] = r["model"] != "ae"
    summary = summary_frame(results_frame(data)).set_index("model")
    assert not summary.loc["ae", "has_prior"] and summary.loc["vae", "has_prior"]
    assert math.isnan(summary.loc["ae", "fd_sample_rank"])  # the lowest fd_sample, yet no rank
    assert summary.loc["gan", "fd_sample_rank"] == 1 and summary.loc["vae", "fd_sample_rank"] == 2
    assert summary.loc["ae", "fd_sample_gmm_rank"] == 1 and summary.loc["ae", "recon_mse_rank"] == 1
    table = summary_markdown(summary.reset_index())
    ae_line = next(line for line in table.splitlines() if "| ae " in line)
    assert "5.00 ± 0.00 [5.00, 5.00] (no prior)" in ae_line and "**5.00" not in ae_line


def test_has_prior_read_back_from_csv_text_still_counts():
    data = (rows("d", "ae", fd_sample=[5.0, 5.0]) + rows("d", "vae", fd_sample=[20.0, 20.0])
            + rows("d", "gan", fd_sample=[15.0, 15.0]))  # fmt: skip
    for r in data:
        r["has_prior"] = "False" if r["model"] == "ae" else "True"
    summary = summary_frame(results_frame(data)).set_index("model")
    assert math.isnan(summary.loc["ae", "fd_sample_rank"]) and summary.loc["gan", "fd_sample_rank"] == 1


def test_nll_is_is_ranked_only_within_a_dataset():
    data = (
        rows("mnist", "a", nll_is=[100.0, 101.0]) + rows("mnist", "b", nll_is=[90.0, 91.0])
        + rows("binarized_mnist", "a", nll_is=[80.0, 81.0]) + rows("binarized_mnist", "b", nll_is=[95.0, 96.0])
    )  # fmt: skip
    ranks = summary_frame(results_frame(data)).set_index(["dataset", "model"])["nll_is_rank"]
    assert ranks[("mnist", "b")] == 1 and ranks[("mnist", "a")] == 2
    assert ranks[("binarized_mnist", "a")] == 1 and ranks[("binarized_mnist", "b")] == 2


def swept() -> list[dict]:
    """Two models at latent_dim 2 and 8; ``vae`` also at beta 0.5 and 2, ``ae`` without beta."""
    data = []
    for ld in (2, 8):
        data += [{**r, "latent_dim": ld} for r in rows("d", "ae", recon_mse=[0.05 * ld, 0.05 * ld + 0.01])]
        data += [{**r, "latent_dim": ld} for r in rows("d", "mse", recon_mse=[0.3 / ld, 0.3 / ld + 0.01])]
        for beta in (0.5, 2.0):
            data += [{**r, "latent_dim": ld, "beta": beta} for r in rows("d", "vae", recon_mse=[beta / ld, beta / ld])]
    return data


def test_summary_groups_by_the_swept_settings_and_a_missing_value_is_its_own():
    summary = summary_frame(results_frame(swept()), ["latent_dim", "beta"])
    assert list(summary.columns[:5]) == ["dataset", "model", "latent_dim", "beta", "seeds"]
    assert len(summary) == 2 * 2 + 2 * 2  # ae and mse: one row per latent_dim; vae: 2 x 2
    ae = summary[summary["model"] == "ae"]
    assert ae["beta"].isna().all() and (ae["seeds"] == 2).all()
    # ae and mse share (latent_dim, no beta): ranked against each other; vae is alone at each beta.
    at2 = summary[(summary["latent_dim"] == 2) & summary["beta"].isna()].set_index("model")["recon_mse_rank"]
    assert at2["ae"] == 1 and at2["mse"] == 2
    at8 = summary[(summary["latent_dim"] == 8) & summary["beta"].isna()].set_index("model")["recon_mse_rank"]
    assert at8["mse"] == 1 and at8["ae"] == 2
    assert summary.loc[summary["model"] == "vae", "recon_mse_rank"].isna().all()


def test_absent_axes_are_skipped_and_no_axes_keeps_the_old_grouping():
    summary = summary_frame(results_frame(swept()), ["latent_dim", "not_a_column"])
    assert "not_a_column" not in summary and len(summary) == 6
    assert list(summary_frame(results_frame(swept())).columns[:3]) == ["dataset", "model", "seeds"]


def test_write_tables_with_axes(tmp_path):
    _, _, markdown = write_tables(swept(), tmp_path, axes=["latent_dim", "beta"])
    written = pd.read_csv(tmp_path / "summary.csv")
    assert {"latent_dim", "beta"} <= set(written.columns) and len(written) == 8
    header = [c.strip() for c in markdown.splitlines()[0].split("|")[1:-1]]
    assert header[:5] == ["dataset", "model", "latent_dim", "beta", "seeds"]
    ae_line = next(line for line in markdown.splitlines() if "| ae " in line)
    assert [c.strip() for c in ae_line.split("|")[1:-1]][3] == "–"  # ae has no beta
    assert (tmp_path / "summary.md").read_text().startswith("| dataset")


# --- statistics that mean what they say ------------------------------------------------------


def test_n_is_per_score_and_a_missing_seed_is_not_counted():
    data = rows("d", "a", fd_sample=[0.10, 0.14, float("nan")], recon_mse=[1.0, 1.1, 1.2])
    summary = summary_frame(results_frame(data)).iloc[0]
    assert summary["seeds"] == 3 and summary["fd_sample_n"] == 2 and summary["recon_mse_n"] == 3
    assert summary["fd_sample_ci95"] == pytest.approx(12.706 * np.std([0.10, 0.14], ddof=1) / math.sqrt(2), rel=1e-3)


def test_an_infinite_value_is_the_worst_never_dropped():
    data = rows("d", "a", sharpness_gap_sample=[0.1, float("inf")]) + rows("d", "b", sharpness_gap_sample=[0.5, 0.6])
    summary = summary_frame(results_frame(data)).set_index("model")
    assert summary.loc["a", "sharpness_gap_sample_mean"] == float("inf")
    assert summary.loc["a", "sharpness_gap_sample_rank"] == 2 and summary.loc["b", "sharpness_gap_sample_rank"] == 1


def test_throughput_is_descriptive():
    data = rows("d", "a", samples_per_sec=[100.0, 110.0]) + rows("d", "b", samples_per_sec=[900.0, 950.0])
    summary = summary_frame(results_frame(data))
    assert "samples_per_sec_mean" in summary and "samples_per_sec_rank" not in summary


def test_stale_rows_are_a_row_of_their_own_never_ranked():
    data = rows("d", "a", recon_mse=[0.1, 0.1]) + rows("d", "b", recon_mse=[0.3, 0.4])
    data += [{**r, "stale": True} for r in rows("d", "b", recon_mse=[0.01, 0.02])]
    summary = summary_frame(results_frame(data))
    b = summary[summary["model"] == "b"].set_index("stale")
    assert b.loc[False, "recon_mse_mean"] == pytest.approx(0.35) and b.loc[True, "recon_mse_mean"] == pytest.approx(0.015)
    assert math.isnan(b.loc[True, "recon_mse_rank"])  # the best mean, but out of date
    fresh = summary[~summary["stale"]].set_index("model")["recon_mse_rank"]
    assert fresh["a"] == 1 and fresh["b"] == 2
    assert "stale: results of out-of-date units" in summary_markdown(summary)


def test_a_score_that_failed_its_controls_is_not_ranked_on_that_dataset_alone():
    data = []
    for dataset in ("mnist", "fashion_mnist"):
        data += [{**r, "train_limit": 3000, "test_limit": 1000}
                 for m, v in (("a", 1.0), ("b", 2.0)) for r in rows(dataset, m, kid_sample=[v, v + 0.1], fd_sample=[v, v])]  # fmt: skip
    verdicts = pd.DataFrame([
        {"dataset": "mnist", "train_limit": 3000, "test_limit": 1000, "score": "kid_sample", "status": "fail",
         "reason": "scores blur 1 better than real (638 vs 1514)"},
        {"dataset": "mnist", "train_limit": 3000, "test_limit": 1000, "score": "fd_sample", "status": "pass", "reason": ""},
    ])  # fmt: skip
    summary = summary_frame(results_frame(data), verdicts=verdicts).set_index(["dataset", "model"])
    assert summary["kid_sample_rank"].loc["mnist"].isna().all()
    assert summary.loc[("fashion_mnist", "a"), "kid_sample_rank"] == 1
    assert summary.loc[("mnist", "a"), "fd_sample_rank"] == 1
    legend = summary_markdown(summary.reset_index(), verdicts=verdicts).split("\n\n")[1]
    assert "Not ranked on mnist (failed its controls, controls.csv): kid_sample scores blur 1 better than real" in legend
