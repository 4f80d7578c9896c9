"""Published claims tested on recorded results: the statistics, and the README quoting them."""

from pathlib import Path

import pandas as pd
import pytest
from scipy import stats

from benchmark.reporting import claims
from benchmark.reporting.claims import CLAIMS, claim_table, markdown_rows

ROOT = Path(__file__).resolve().parents[1]


def record(tmp_path: Path, values: dict[tuple[str, str], list[float]]) -> Path:
    rows = {}
    for (model, score), seeds in values.items():
        for seed, value in enumerate(seeds):
            rows.setdefault((model, seed), {"dataset": "mnist", "model": model, "seed": seed})[score] = value
    (tmp_path / "ghosh").mkdir()
    pd.DataFrame(rows.values()).to_csv(tmp_path / "ghosh" / "results.csv", index=False)
    return tmp_path


def test_a_claim_is_reproduced_refuted_or_undecided_by_a_one_sided_holm_adjusted_welch_test(tmp_path):
    ae_gmm, ae_n = [5.0, 6.0, 7.0], [200.0, 210.0, 220.0]
    vae_gmm, vae_n = [30.0, 31.0, 32.0], [9.0, 10.0, 11.0]  # the mixture hurts: the claim is refuted
    root = record(tmp_path, {("ae", "fd_sample_gmm"): ae_gmm, ("ae", "fd_sample"): ae_n,
                             ("vae_mse", "fd_sample_gmm"): vae_gmm, ("vae_mse", "fd_sample"): vae_n})  # fmt: skip
    table = claim_table("ghosh", root).set_index("claim")
    # The Bernoulli VAE's claims have no cells here; AE+GMM against vae_mse+N(0, I) does.
    assert list(table["verdict"]) == ["reproduced", "not reproduced", "reproduced"]
    first = table.iloc[0]
    one_sided = stats.ttest_ind(ae_gmm, ae_n, equal_var=False).pvalue / 2
    assert first["better_mean"] == 6.0 and first["worse_mean"] == 210.0
    assert one_sided <= first["p_holm"] <= 3 * one_sided  # Holm over the three claims tested


def test_close_means_are_not_distinguishable(tmp_path):
    root = record(tmp_path, {("ae", "fd_sample_gmm"): [5.0, 6.0, 7.0], ("ae", "fd_sample"): [5.5, 6.5, 6.0]})
    assert list(claim_table("ghosh", root)["verdict"]) == ["not distinguishable"]


@pytest.mark.parametrize("name", sorted(CLAIMS))
def test_the_readme_quotes_each_claim_as_its_record_computes_it(name):
    if not (claims.REPRODUCTIONS_DIR / name / "results.csv").is_file():
        pytest.skip(f"no recorded results for {name}")
    readme = (ROOT / "README.md").read_text()
    for row in markdown_rows(name):
        assert row in readme, row
