"""The HTML report of a smoke run (rendered in headless Chromium), findings and --compare."""

import math
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from benchmark.cli import main
from benchmark.reporting.aggregate import results_frame, summary_frame
from benchmark.reporting.compare import compare_summaries
from benchmark.reporting.figures import latent_figure, mosaic, sharpness_figure
from benchmark.reporting.findings import findings
from benchmark.reporting.report import FIGURE_KINDS, summary_table_html
from benchmark.reporting.significance import format_p
from benchmark.scoring.evaluate import interpolate, interpolation_pairs

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip

# Marks <body> once the page has loaded: how many images there are and which failed.
IMAGE_CHECK = """<script>
window.addEventListener("load", () => {
  const images = Array.from(document.images);
  const broken = images.filter((i) => !(i.complete && i.naturalWidth > 0)).map((i) => i.getAttribute("src"));
  document.body.setAttribute("data-images", String(images.length));
  document.body.setAttribute("data-broken", broken.join(" "));
  document.body.setAttribute("data-scroll-width", String(document.documentElement.scrollWidth));
  document.body.setAttribute("data-inner-width", String(window.innerWidth));
  document.body.setAttribute("data-first-table", document.querySelector("table").className);
  document.body.setAttribute("data-checked", "yes");
});
</script>"""


class Links(HTMLParser):
    """Collects ``img src``, ``a href`` and the classes of tables."""

    def __init__(self):
        super().__init__()
        self.images: list[str] = []
        self.links: list[str] = []
        self.tables: list[str] = []
        self.body: dict[str, str] = {}

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        elif tag == "a":
            self.links.append(attrs.get("href", ""))
        elif tag == "table":
            self.tables.append(attrs.get("class", ""))
        elif tag == "body":
            self.body = attrs


def parse(html: str) -> Links:
    links = Links()
    links.feed(html)
    return links


# --- the report of a real run -------------------------------------------------------------


def test_report_has_the_summary_table_with_every_model(smoke_run):
    html = (smoke_run / "report.html").read_text()
    results = pd.read_csv(smoke_run / "results.csv")
    assert "summary" in parse(html).tables
    for model in results["model"]:
        assert f">{model}<" in html
    assert "Findings" in html and "seed-to-seed spread is unknown" in html and "not ranked" in html
    assert "n/a" not in html and "p = " not in html  # one seed: the mean alone, no test
    assert "<h3>Controls</h3>" in html and ">blur 0.5<" in html and "controls.csv" in html


def test_every_figure_kind_of_every_model_is_linked_and_local(smoke_run):
    page = parse((smoke_run / "report.html").read_text())
    models = pd.read_csv(smoke_run / "results.csv")["model"].unique()
    assert len(page.images) == len(FIGURE_KINDS) * len(models)
    for src in page.images:
        assert (smoke_run / src).is_file(), src
        assert (smoke_run / src).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for ref in page.images + page.links:
        assert not ref.startswith(("http:", "https:", "//")), ref


def test_results_carry_the_fd_score_and_its_classifier_accuracy(smoke_run):
    results = pd.read_csv(smoke_run / "results.csv")
    assert results["fd_sample"].notna().all() and (results["fd_sample"] >= 0).all()
    # Two epochs of training cannot match real images: the FD must separate them.
    assert (results["fd_sample"] > results["fd_real"]).all()
    assert results["fd_classifier_acc"].between(0.9, 1.0).all()
    summary = pd.read_csv(smoke_run / "summary.csv")
    assert {"fd_sample_mean", "fd_sample_ci95", "fd_sample_rank"} <= set(summary.columns)
    assert (smoke_run.parent / ".cache").is_dir()


def test_interpolations_are_saved_for_the_figures(smoke_run):
    unit = next((smoke_run / "units").glob("ae-*"))
    with np.load(unit / "arrays.npz") as arrays:
        paths, pairs, y = arrays["interpolations"], arrays["interp_pairs"], arrays["y_test"]
    assert paths.ndim == 5 and paths.shape[0] == len(pairs) > 0 and paths.shape[2:] == (8, 8, 1)
    assert (y[pairs[:, 0]] != y[pairs[:, 1]]).all()
    assert np.isfinite(paths).all() and paths.min() >= 0 and paths.max() <= 1


@pytest.mark.skipif(shutil.which("chromium") is None, reason="no chromium on PATH to render the report")
def test_report_renders_offline_in_headless_chromium(smoke_run, tmp_path):
    check = smoke_run / "_render_check.html"  # beside the report, so relative links resolve
    check.write_text((smoke_run / "report.html").read_text().replace("</body>", IMAGE_CHECK + "</body>"))
    done = subprocess.run(
        ["chromium", *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
         "--window-size=1280,900", "--virtual-time-budget=10000", "--dump-dom", check.as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    dom = parse(done.stdout)
    assert dom.body.get("data-checked") == "yes", "the page never finished loading"
    assert int(dom.body["data-images"]) == len(dom.images) > 0
    assert dom.body["data-broken"] == "", f"images that did not load: {dom.body['data-broken']}"
    assert "summary" in dom.tables
    # At 1,280 px the page does not scroll sideways, and the headline is the first table.
    assert int(dom.body["data-inner-width"]) == 1280
    assert int(dom.body["data-scroll-width"]) <= 1280, dom.body["data-scroll-width"]
    assert "headline" in dom.body["data-first-table"].split()


# --- findings and the summary table, from made-up summaries -------------------------------


def summary_of(per_model: dict[str, list[float]], score: str = "recon_mse") -> pd.DataFrame:
    data = [
        {"dataset": "digits", "model": m, "seed": s, "status": "ok", score: v}
        for m, values in per_model.items()
        for s, v in enumerate(values)
    ]
    return summary_frame(results_frame(data))


def test_findings_quote_welch_tests_holm_adjusted_over_the_comparisons():
    values = {"a": [0.10, 0.11, 0.12], "b": [0.50, 0.51, 0.52], "c": [0.10, 0.40, 0.25]}
    text = next(f for f in findings(summary_of(values), "digits") if f.startswith("recon_mse"))
    raw = [stats.ttest_ind(values["a"], values[m], equal_var=False).pvalue for m in ("b", "c")]
    # Holm by hand, m = 2: the smaller p doubled, the larger kept (never below the first).
    small, large = sorted(raw)
    adj_b, adj_c = (min(1, 2 * small), max(min(1, 2 * small), large))
    assert raw[0] < raw[1]
    assert f"lower than b's 0.5100 ({format_p(adj_b)}, Welch t-test over 3 seeds, Holm-adjusted over 2 comparisons)" in text
    assert f"not distinguishable at the 5% level from c's 0.2500 ({format_p(adj_c)}, Welch t-test over 3 seeds" in text
    assert "reconstructs best" not in text  # c is not beaten: no overall claim
    assert "overlap" not in text and "exceeds the" not in text


def test_findings_make_the_claim_when_every_comparison_holds():
    text = findings(summary_of({"a": [0.10, 0.11, 0.12], "b": [0.50, 0.51, 0.52]}), "digits")
    assert text == [
        "recon_mse: a has the lowest mean, 0.1100 (3 seeds); lower than b's 0.5100 (p < 0.001, Welch t-test "
        "over 3 seeds, Holm-adjusted over 1 comparison). a reconstructs best."
    ]


def test_findings_name_the_best_in_the_scores_direction():
    text = " ".join(findings(summary_of({"a": [0.7, 0.71], "b": [0.9, 0.91]}, "latent_acc_knn"), "digits"))
    assert text.startswith("latent_acc_knn: b has the highest mean")
    assert "has the most class-separating latent space" in text


def test_findings_with_one_seed_say_so_once_and_claim_nothing():
    text = findings(summary_of({"a": [0.1], "b": [0.2]}), "digits")
    assert len(text) == 1 and "spread is unknown" in text[0] and "not ranked" in text[0]
    assert not any("p =" in f or "p <" in f or "lower than" in f or "reconstructs best" in f for f in text)


def test_welch_counts_the_seeds_that_have_the_score():
    # A = [0.10, 0.14, NaN] against B: with n = 3 the test would claim p = 0.0098; with n = 2, p = 0.0665.
    summary = summary_of({"a": [0.10, 0.14, float("nan")], "b": [0.20, 0.24, 0.22]})
    text = next(f for f in findings(summary, "digits") if f.startswith("recon_mse"))
    expected = stats.ttest_ind([0.10, 0.14], [0.20, 0.24, 0.22], equal_var=False).pvalue
    assert f"not distinguishable at the 5% level from b's 0.2200 ({format_p(expected)}, Welch t-test over 2 and 3 seeds" in text
    assert expected == pytest.approx(0.0665, abs=5e-4)


def test_tied_models_are_said_to_be_tied():
    text = findings(summary_of({"a": [0.0, 0.0], "b": [0.0, 0.0], "c": [0.3, 0.4]}), "digits")
    assert text[0].startswith("recon_mse: a and b are tied for the lowest mean, 0.0000")
    assert "has the lowest" not in text[0] and "reconstructs best" not in text[0]


def test_the_likelihood_finding_names_a_bound_and_its_k():
    summary = summary_of({"a": [90.0, 91.0], "b": [99.0, 100.0]}, "nll_is")
    text = findings(summary, "digits", is_samples=5)[0]
    assert "an upper bound at K = 5 importance samples" in text and "highest likelihood" not in text


def test_a_score_that_failed_its_controls_gets_a_finding_saying_so():
    summary = summary_of({"a": [1.0, 1.1], "b": [2.0, 2.1]}, "kid_sample")
    text = findings(summary, "digits", failed_controls={"kid_sample": "scores blur 1 better than real (638 vs 1514)"})
    assert text[-1] == "kid_sample is not ranked on digits: on this run's control sets it scores blur 1 better than real (638 vs 1514)."


def test_sharpness_findings_are_two_sided():
    # b's samples are over-sharp (negative blurriness): far from real, not "the sharpest".
    data = [{"dataset": "digits", "model": m, "seed": s, "status": "ok", "sharpness_gap_sample": g + 0.01 * s,
             "blurriness_sample": b} for m, g, b in (("a", 0.05, 0.05), ("b", 0.80, -1.2)) for s in range(3)]  # fmt: skip
    text = " ".join(findings(summary_frame(results_frame(data)), "digits"))
    assert "a has the samples closest to real sharpness" in text
    assert "closer to real sharpness than b's" in text
    assert "sharpest" not in text and "blurriness" not in text


def test_findings_cover_the_new_scores_and_skip_absent_ones():
    scores = ["kid_sample", "precision_sample", "recall_sample", "coverage_sample", "fd_sample_gmm", "nll_is"]
    data = [{"dataset": "d", "model": m, "seed": s, "status": "ok", **{k: v + 0.01 * s for k in scores}}
            for m, v in (("a", 0.3), ("b", 0.9)) for s in range(3)]  # fmt: skip
    text = findings(summary_frame(results_frame(data)), "d")
    assert [f.split(":")[0] for f in text] == [s for s in scores if s != "precision_sample"]  # descriptive
    assert "recon_mse" not in " ".join(text)


def test_a_model_without_a_prior_is_never_named_best_on_its_prior_samples():
    data = [{"dataset": "d", "model": m, "seed": s, "status": "ok", "has_prior": m != "ae", "fd_sample": v + s}
            for m, v in (("ae", 1.0), ("vae", 20.0), ("gan", 30.0)) for s in range(3)]  # fmt: skip
    summary = summary_frame(results_frame(data))
    text = " ".join(findings(summary, "d"))
    assert text.startswith("fd_sample: vae has the lowest mean") and "Not ranked: ae (no prior" in text
    html = summary_table_html(summary, "d")
    assert "no prior" in html


def test_summary_table_highlights_the_best_cell_of_each_column():
    summary = summary_of({"a": [0.30, 0.31], "b": [0.10, 0.12]})
    html = summary_table_html(summary, "digits")
    best_row = int(np.flatnonzero(summary["model"] == "b")[0])
    score_col = 2  # model, seeds, then recon_mse
    assert f"row{best_row}_col{score_col}" in html.split("</style>")[0]
    assert f"row{1 - best_row}_col{score_col}" not in html.split("</style>")[0]
    assert "#1" in html and "#2" in html and "CI n/a" not in html


# --- compare ------------------------------------------------------------------------------


def test_compare_summaries_gives_b_minus_a_and_its_direction():
    a = summary_of({"ae": [0.2, 0.2], "vae": [0.3, 0.3]})
    b = summary_of({"ae": [0.1, 0.1], "gan": [0.5, 0.5]})
    table = compare_summaries(a, b).set_index(["model", "score"])
    assert table.loc[("ae", "recon_mse"), "diff"] == pytest.approx(-0.1)
    assert table.loc[("ae", "recon_mse"), "change"] == "better"  # lower recon_mse is better
    assert math.isnan(table.loc[("vae", "recon_mse"), "diff"])
    assert table.loc[("vae", "recon_mse"), "change"] == "only in A"
    assert table.loc[("gan", "recon_mse"), "change"] == "only in B"


def test_compare_cli_writes_the_table_and_exits_0(smoke_run, tmp_path, capsys):
    other = tmp_path / "other"
    shutil.copytree(smoke_run, other, ignore=shutil.ignore_patterns("units", "figures"))
    summary = pd.read_csv(other / "summary.csv", float_precision="round_trip")
    summary["recon_mse_mean"] *= 2
    summary.to_csv(other / "summary.csv", index=False)

    assert main(["--compare", str(smoke_run), str(other)]) == 0
    out = capsys.readouterr().out
    written = other / f"compare-vs-{smoke_run.name}.csv"
    assert str(written) in out
    table = pd.read_csv(written)
    mse = table[table["score"] == "recon_mse"]
    np.testing.assert_allclose(mse["diff"], mse["a"])  # 2a - a
    assert (mse["change"] == "worse").all()
    others = table[table["score"] != "recon_mse"]
    assert (others["diff"] == 0).all() and (others["change"] == "same").all()


@pytest.mark.parametrize("missing", ["folder", "summary"])
def test_compare_of_a_missing_run_is_one_line_and_status_2(smoke_run, tmp_path, missing):
    target = tmp_path / "nowhere"
    if missing == "summary":
        target.mkdir()
    done = subprocess.run(
        [sys.executable, "run_all.py", "--compare", str(smoke_run), str(target)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and str(target) in lines[0]
    assert "Traceback" not in done.stderr


# --- figure helpers on edge cases ---------------------------------------------------------


def test_mosaic_places_every_image_with_gaps():
    images = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5, 1)
    tiled = mosaic(images, pad=1)
    assert tiled.shape == (2 * 5 - 1, 3 * 6 - 1, 1)
    np.testing.assert_array_equal(tiled[5:9, 12:17], images[1, 2])


def test_figures_cope_with_a_one_dimensional_latent_and_flat_images(tmp_path):
    y = np.arange(40) % 4
    latent_figure(np.random.default_rng(0).standard_normal((40, 1)), y, tmp_path / "z.png", title="t")
    sharpness_figure(np.zeros(10), np.zeros(10), np.linspace(0, 1, 10), tmp_path / "s.png", title="t")
    assert (tmp_path / "z.png").stat().st_size > 0 and (tmp_path / "s.png").stat().st_size > 0


class LinearModel:
    """encode: flatten; decode: reshape. Interpolations are then pixel blends."""

    def encode(self, x):
        return x.reshape(len(x), -1)

    def decode(self, z):
        return z.reshape(len(z), 2, 2, 1)


def test_interpolation_runs_between_the_pairs_latent_means():
    x = np.random.default_rng(0).random((6, 2, 2, 1)).astype(np.float32)
    y = np.array([1, 1, 2, 1, 3, 3])
    pairs = interpolation_pairs(y, 3)
    assert [tuple(p) for p in pairs] == [(0, 2), (1, 4), (3, 5)]
    paths = interpolate(LinearModel(), x, pairs, steps=5)
    assert paths.shape == (3, 5, 2, 2, 1)
    np.testing.assert_allclose(paths[:, 0], x[pairs[:, 0]], rtol=1e-6)
    np.testing.assert_allclose(paths[:, -1], x[pairs[:, 1]], rtol=1e-6)
    np.testing.assert_allclose(paths[:, 2], (x[pairs[:, 0]] + x[pairs[:, 1]]) / 2, rtol=1e-6)
    assert len(interpolation_pairs(np.zeros(5, int), 3)) == 0  # one class: no pairs


def test_every_summary_score_has_its_legend_text():
    from benchmark.reporting.aggregate import SUMMARY_SCORES
    from benchmark.reporting.report import SCORE_HELP

    assert set(SCORE_HELP) == set(SUMMARY_SCORES)
    assert all(SCORE_HELP.values())


def test_summary_md_leads_with_the_headline_and_each_models_settings(smoke_run):
    text = (smoke_run / "summary.md").read_text()
    assert text.startswith("## Headline") and text.index("## Every score") > text.index("Settings:")
    assert "reconstruction (recon_mse ↓)" in text and "representation (latent_acc_knn ↑)" in text
    settings = text.split("Settings:", 1)[1].split("## Every score")[0]
    vae_line = next(line for line in settings.splitlines() if line.startswith("| vae_bernoulli "))
    assert "beta 1" in vae_line  # a parameter no one swept, shown all the same
    assert "One seed: no spread" in text
