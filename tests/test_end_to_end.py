"""End to end through the command line: a smoke run on digits, and a small MNIST run."""

import json

import numpy as np
import pandas as pd
import pytest

from benchmark.cli import main
from benchmark.data.datasets import load_dataset
from benchmark.reporting.aggregate import RESULT_COLUMNS
from benchmark.scoring.metrics import recon_mse

pytestmark = pytest.mark.backend


def test_smoke_run_writes_the_report_files(smoke_run):
    out = smoke_run  # the run exited 0 (the fixture checks it)
    for name in ["results.csv", "summary.csv", "summary.md", "config.json"]:
        assert (out / name).is_file(), name
    results = pd.read_csv(out / "results.csv")
    assert list(results.columns[: len(RESULT_COLUMNS)]) == RESULT_COLUMNS
    assert sorted(results["model"]) == ["ae", "vae_bernoulli"]
    assert (results["status"] == "ok").all()
    assert results.loc[results["model"] == "ae", "neg_elbo"].isna().all()
    assert results.loc[results["model"] == "vae_bernoulli", "neg_elbo"].notna().all()
    assert results["latent_acc_knn"].between(0, 1).all()
    assert (results["sharpness_real"] > 0).all()


def test_config_records_the_run_and_environment(smoke_run):
    out = smoke_run
    config = json.loads((out / "config.json").read_text())
    assert config["run"]["models"] == ["ae", "vae_bernoulli"]
    assert config["run"]["datasets"] == ["digits"]
    env = config["environment"]
    assert env["backend"] in {"tensorflow", "jax"} and env["packages"]["keras"].startswith("3.")


def test_summary_has_one_row_per_model(smoke_run):
    out = smoke_run
    summary = pd.read_csv(out / "summary.csv")
    assert sorted(summary["model"]) == ["ae", "vae_bernoulli"]
    assert {"recon_mse_mean", "recon_mse_std", "latent_acc_knn_mean"} <= set(summary.columns)
    assert "vae_bernoulli" in (out / "summary.md").read_text()


@pytest.mark.mnist
def test_small_mnist_run(data_dir, tmp_path):
    argv = ["--datasets", "mnist", "--models", "ae,vae_bernoulli", "--seeds", "1", "--epochs", "2", "--batch-size", "32",
            "--train-limit", "6000", "--test-limit", "500", "--data-dir", str(data_dir),
            "--quiet", "--out", str(tmp_path)]  # fmt: skip
    assert main(argv) == 0
    results = pd.read_csv(tmp_path / "results.csv").set_index("model")
    # Even a short run beats the best constant image (the training mean) and chance (0.1).
    mnist = load_dataset("mnist", data_dir)
    mean_image = mnist.x_train[:6000].mean(axis=0, keepdims=True)
    baseline = recon_mse(mnist.x_test[:500], np.broadcast_to(mean_image, mnist.x_test[:500].shape))
    assert (results["recon_mse"] < 0.8 * baseline).all()
    assert (results["latent_acc_knn"] > 0.5).all()
