"""Reports of a swept grid, from made-up result rows and unit arrays: tables per setting,
the Trends section, its figures and sentences, and --compare across settings."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from benchmark.reporting.aggregate import results_frame, summary_frame, write_tables
from benchmark.reporting.compare import compare_summaries
from benchmark.reporting.report import write_report
from benchmark.reporting.significance import format_p, holm
from benchmark.reporting.trends import score_lines, trend_sentence

LATENT = (2, 8, 32)
#: fd_sample per latent size, seed offsets 0, +1, -1: lowest at 8 for both VAEs.
FD = {"vae_bernoulli": {2: 30.0, 8: 12.0, 32: 20.0}, "vae_mse": {2: 40.0, 8: 25.0, 32: 24.0}}
OFFSET = (0.0, 1.0, -1.0)


def grid_rows(out=None) -> list[dict]:
    """ae (no prior, no beta) and two VAEs (beta 1) at three latent sizes, three seeds each."""
    rows = []
    for model in ("ae", "vae_bernoulli", "vae_mse"):
        for ld in LATENT:
            for seed, off in enumerate(OFFSET):
                unit = f"{model}-d-s{seed}-ld{ld}"
                row = {"model": model, "dataset": "d", "seed": seed, "status": "ok", "unit_id": unit,
                       "latent_dim": ld, "has_prior": model != "ae", "recon_bce": 100.0 / ld + off,
                       "fd_sample": FD.get(model, {2: 5.0, 8: 5.0, 32: 5.0})[ld] + off}  # fmt: skip
                if model != "ae":
                    row |= {"beta": 1.0, "kl": 2.0 * ld + off, "neg_elbo": -600.0 + off}
                rows.append(row)
                if out is not None:
                    unit_dir = out / "units" / unit
                    unit_dir.mkdir(parents=True)
                    x = np.full((8, 4, 4, 1), ld / 32, np.float32)
                    np.savez(unit_dir / "arrays.npz", recon=x, snapshot_images=np.zeros_like(x))
    return rows


AXES = ["latent_dim", "beta"]


@pytest.fixture(scope="module")
def grid_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("grid")
    results, summary, _ = write_tables(grid_rows(out), out, axes=AXES)
    write_report(out, results, summary, axes=AXES)
    return out, (out / "report.html").read_text()


def test_trend_sentence_names_the_best_setting_and_the_rises_with_tests():
    summary = summary_frame(results_frame(grid_rows()), AXES)
    lines = dict(score_lines(summary[summary["dataset"] == "d"], "latent_dim", AXES, "fd_sample"))
    assert set(lines) == {"vae_bernoulli", "vae_mse"}  # ae has no prior: not drawn
    text = trend_sentence("vae_bernoulli", lines["vae_bernoulli"], "latent_dim", "fd_sample")
    at = {ld: [FD["vae_bernoulli"][ld] + o for o in OFFSET] for ld in LATENT}
    p = holm([stats.ttest_ind(at[8], at[ld], equal_var=False).pvalue for ld in (2, 32)])
    assert text == (
        "fd_sample of vae_bernoulli is lowest at latent_dim 8 (12.00); "
        f"from latent_dim 2 to 8 it falls by 18.00 ({format_p(p[0])}, Welch t-test over 3 seeds, Holm-adjusted over 2 comparisons); "
        f"above 8 it rises by 8.00, to 20.00 at latent_dim 32 ({format_p(p[1])}, Welch t-test over 3 seeds, "
        "Holm-adjusted over 2 comparisons); means over 3 seeds."
    )
    # vae_mse is best at the largest size: only the fall towards it is described.
    text = trend_sentence("vae_mse", lines["vae_mse"], "latent_dim", "fd_sample")
    assert text.startswith("fd_sample of vae_mse is lowest at latent_dim 32 (24.00); from latent_dim 2 to 32 it falls by 16.00")
    assert "above" not in text


def test_descriptive_trends_are_described_not_ranked():
    summary = summary_frame(results_frame(grid_rows()), AXES)
    group = dict(score_lines(summary, "latent_dim", AXES, "kl"))["vae_mse"]
    assert trend_sentence("vae_mse", group, "latent_dim", "kl") == (
        "kl of vae_mse goes from 4.00 at latent_dim 2 to 64.00 at latent_dim 32; means over 3 seeds."
    )


def test_the_report_has_a_trends_section_with_its_figures(grid_report):
    out, html = grid_report
    assert "<h3>Trends</h3>" in html and "<h4>latent_dim</h4>" in html and "<h4>beta</h4>" not in html
    for kind in ("trend", "rate-distortion", "compare"):
        png = out / "figures" / f"d-{kind}-latent_dim.png"
        assert f'src="figures/d-{kind}-latent_dim.png"' in html
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "fd_sample of vae_bernoulli is lowest at latent_dim 8 (12.00)" in html


def test_the_report_shows_kl_and_explains_neg_elbo_per_likelihood(grid_report):
    out, html = grid_report
    assert "<dt>kl</dt>" in html and ">kl</th>" in html
    assert "not comparable across models" in html and "Bernoulli" in html and "obs_std" in html
    summary = pd.read_csv(out / "summary.csv")
    assert {"kl_mean", "neg_elbo_mean"} <= set(summary.columns) and "neg_elbo_rank" not in summary
    header = [c.strip() for c in (out / "summary.md").read_text().splitlines()[0].split("|")]
    assert "kl" in header and "neg_elbo" in header


def test_the_tables_group_by_setting_and_mark_the_missing_prior(grid_report):
    out, html = grid_report
    summary = pd.read_csv(out / "summary.csv")
    assert len(summary) == 9 and list(summary.columns[:5]) == ["dataset", "model", "latent_dim", "beta", "seeds"]
    assert "no prior" in html and "n/a" not in html


def test_compare_matches_rows_by_setting():
    a = summary_frame(results_frame(grid_rows()), AXES)
    b = a.copy()
    b.loc[(b["model"] == "vae_mse") & (b["latent_dim"] == 8), "fd_sample_mean"] -= 1
    table = compare_summaries(a, b)
    assert {"latent_dim", "beta"} <= set(table.columns)
    changed = table[table["change"] != "same"]
    assert len(changed) == 1 and changed.iloc[0]["change"] == "better" and changed.iloc[0]["latent_dim"] == 8
    assert len(table[table["score"] == "fd_sample"]) == 9  # ae rows (no beta) matched too


def test_a_flat_trend_says_so():
    group = pd.DataFrame({"model": "m", "latent_dim": [2, 8], "seeds": 2, "kl_mean": 3.5, "kl_std": 0.1,
                          "fd_sample_mean": 4.0, "fd_sample_std": 0.1})  # fmt: skip
    assert trend_sentence("m", group, "latent_dim", "fd_sample") == "fd_sample of m is 4.00 at every latent_dim; means over 2 seeds."
    assert trend_sentence("m", group, "latent_dim", "kl").startswith("kl of m is 3.50 at every latent_dim")


def test_no_trend_of_a_feature_space_score_along_the_limits_that_change_the_space():
    data = [{"dataset": "d", "model": m, "seed": s, "status": "ok", "train_limit": n, "fd_sample": n / 1000 + s,
             "recon_mse": 1 / n + s} for m in ("a", "b") for n in (1000, 3000) for s in range(2)]  # fmt: skip
    summary = summary_frame(results_frame(data), ["train_limit"])
    assert score_lines(summary, "train_limit", ["train_limit"], "fd_sample") == []  # a classifier per limit
    assert len(score_lines(summary, "train_limit", ["train_limit"], "recon_mse")) == 2
