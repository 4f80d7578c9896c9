"""Control image sets: how they are built, how a score's checks judge them, and that every
ranked score orders them as it must on MNIST at the quick preset's budget."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmark.data.dataset import Dataset
from benchmark.scoring import controls, sharpness
from benchmark.scoring.scores import BY_NAME, SCORES
from benchmark.scoring.verdicts import check_score, failed_scores, verdicts

ROOT = Path(__file__).resolve().parents[1]


def dataset(n_val: int = 60, labels: str = "classes") -> Dataset:
    rng = np.random.default_rng(0)
    images = lambda n: rng.random((n, 8, 8, 1)).astype(np.float32)  # noqa: E731
    y = {"classes": lambda n: rng.integers(0, 3, n), "attributes": lambda n: rng.integers(0, 2, (n, 4)),
         "none": lambda n: None}[labels]  # fmt: skip
    return Dataset("toy", images(200), y(200), images(50), y(50), "test", x_val=images(n_val), y_val=y(n_val))


def test_the_family_of_controls_and_what_each_is():
    data = dataset()
    built, notes = controls.build_controls(data)
    names = [c.name for c in built]
    assert names == ["real", "blur 0.5", "blur 1", "blur 2", "noise 0.05", "noise 0.1", "noise 0.2",
                     "contrast 0.7", "mixture", "blob", "one_class", "copies"]  # fmt: skip
    assert notes == []
    by = {c.name: c for c in built}
    real = by["real"].images
    assert len(real) == controls.control_size(data) == 50  # as many as the test split, from validation images
    assert all(np.any(np.all(data.x_val == image, axis=(1, 2, 3))) for image in real)
    for name in ("blur 1", "noise 0.1", "contrast 0.7", "mixture"):
        assert by[name].originals is real and by[name].images.shape == real.shape
    for name in ("blob", "one_class", "copies"):
        assert by[name].originals is None
    # Blur lowers and noise raises the relative sharpness of every image; contrast keeps it.
    s = {n: sharpness.image_stats(by[n].images).log_sharpness for n in ("real", "blur 1", "noise 0.2", "contrast 0.7")}
    assert np.all(s["blur 1"] < s["real"]) and np.mean(s["noise 0.2"] > s["real"]) > 0.5
    np.testing.assert_allclose(s["contrast 0.7"], s["real"], atol=1e-5)
    assert np.all((by["noise 0.2"].images >= 0) & (by["noise 0.2"].images <= 1))
    # One class: the validation images of the most frequent label among the drawn ones.
    assert len(by["one_class"].images) < len(real)
    assert all(any(np.array_equal(img, x) for x in data.x_train) for img in by["copies"].images[:5])


def test_controls_are_the_same_in_every_run():
    a, _ = controls.build_controls(dataset())
    b, _ = controls.build_controls(dataset())
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x.images, y.images)


@pytest.mark.parametrize(("labels", "note"), [("attributes", "one_class needs class labels"),
                                               ("none", "one_class needs class labels")])  # fmt: skip
def test_one_class_is_skipped_with_a_note_without_class_labels(labels, note):
    built, notes = controls.build_controls(dataset(labels=labels))
    assert "one_class" not in [c.name for c in built] and any(note in n for n in notes)


def test_too_small_a_validation_split_gives_no_controls_and_says_why():
    built, notes = controls.build_controls(dataset(n_val=5))
    assert built == [] and "too few" in notes[0]


# --- checks ------------------------------------------------------------------------------


def table(values: dict[str, float], kind: str = "sample", column: str = "fd") -> pd.DataFrame:
    """A control table of one score: ``{control name: value}``."""
    rows = []
    for name, value in values.items():
        family, _, level = name.partition(" ")
        rows.append({"dataset": "d", "train_limit": None, "test_limit": None, "control": name, "family": family,
                     "level": float(level) if level else np.nan, "kind": kind, column: value})  # fmt: skip
    return pd.DataFrame(rows)


GOOD_FD = {"real": 1.0, "blur 0.5": 3.0, "blur 1": 30.0, "blur 2": 170.0, "noise 0.05": 2.0, "noise 0.1": 4.0,
           "noise 0.2": 16.0, "contrast 0.7": 54.0, "mixture": 29.0, "blob": 325.0, "one_class": 250.0,
           "copies": 0.9}  # fmt: skip


def test_a_score_that_orders_its_controls_passes():
    assert check_score(table(GOOD_FD), BY_NAME["fd_sample"]) == ("pass", "")


def test_a_degraded_control_better_than_real_fails_and_is_named():
    status, reason = check_score(table({**GOOD_FD, "blur 1": 0.5}), BY_NAME["fd_sample"])
    assert status == "fail" and reason == "scores blur 1 better than real (0.50 vs 1.00)"


def test_copies_may_beat_real_they_are_real_data():
    assert check_score(table({**GOOD_FD, "copies": 0.1}), BY_NAME["fd_sample"])[0] == "pass"


def test_one_class_must_lose_on_coverage_scores():
    values = {"real": 0.96, "blob": 0.01, "one_class": 0.99, "blur 1": 0.7}
    status, reason = check_score(table(values, column="coverage"), BY_NAME["coverage_sample"])
    assert status == "fail" and reason == "scores one_class better than real (0.9900 vs 0.9600)"


def test_sharpness_gaps_must_grow_with_blur_and_tie_with_contrast():
    values = {"real": 0.05, "blur 0.5": 0.6, "blur 1": 1.9, "blur 2": 3.8, "noise 0.05": 0.2, "noise 0.1": 0.5,
              "noise 0.2": 1.1, "contrast 0.7": 0.05, "mixture": 1.5, "blob": 0.8}  # fmt: skip
    score = BY_NAME["sharpness_gap_sample"]
    assert check_score(table(values, column="sharpness_gap"), score) == ("pass", "")  # contrast: a tie, by design
    status, reason = check_score(table({**values, "blur 2": 1.0}, column="sharpness_gap"), score)
    assert status == "fail" and reason == "scores blur 2 (1.000) no worse than blur 1 (1.900)"
    status, reason = check_score(table({**values, "mixture": 0.05}, column="sharpness_gap"), score)
    assert status == "fail" and reason == "does not tell mixture from real (0.050 vs 0.050)"


def test_no_control_scores_leave_a_score_unchecked_and_ranked():
    status, _ = check_score(table({"real": 1.0}, column="kid"), BY_NAME["fd_sample"])
    assert status == "unchecked"
    assert check_score(table(GOOD_FD), BY_NAME["latent_acc_knn"]) == ("unchecked", "")


def test_verdicts_cover_every_checked_score_per_feature_space():
    frame = pd.concat([table(GOOD_FD), table({**GOOD_FD, "real": 500.0}).assign(dataset="e")])
    result = verdicts(frame)
    checked = [s.name for s in SCORES if s.checks and s.control == ("sample", "fd")]
    assert set(result.loc[result["dataset"] == "d", "score"]) >= set(checked)
    assert failed_scores(result, "d") == {}
    assert set(failed_scores(result, "e")) == {"fd_sample", "fd_sample_gmm"}


# --- on MNIST, at the quick preset's budget ------------------------------------------------


@pytest.fixture(scope="module")
def mnist_controls(data_dir, fd_cache):
    from benchmark.data.datasets import load_dataset
    from benchmark.running.controls_run import score_controls
    from benchmark.scoring.frechet import load_or_train

    data = load_dataset("mnist", data_dir).subset(30000, None)
    table, notes = score_controls(data, load_or_train(data.fixed(), fd_cache))
    return table.assign(dataset="mnist", train_limit=30000, test_limit=None), notes


@pytest.mark.mnist
def test_every_ranked_score_orders_the_mnist_controls_as_it_declares(mnist_controls):
    table, notes = mnist_controls
    assert notes == []
    result = verdicts(table)
    ranked = result[result["score"].map(lambda s: BY_NAME[s].ranked)]
    assert (ranked["status"] == "pass").all(), ranked[ranked["status"] != "pass"].to_dict("records")
    # Precision is descriptive because of what its controls show: a blurry average beats real.
    precision = result.set_index("score").loc["precision_sample"]
    assert precision["status"] == "fail" and "scores blob better than real" in precision["reason"]


def test_controls_only_prints_the_table_and_what_can_be_ranked(tmp_path, run_env):
    out = tmp_path / "controls"
    done = subprocess.run([sys.executable, "run_all.py", "--controls-only", "--datasets", "digits", "--out", str(out)],
                          cwd=ROOT, env=run_env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Controls, digits" in done.stdout and "| blur 0.5 " in done.stdout and "Ranked" in done.stdout
    assert "Not ranked: precision_sample" in done.stdout
    written = pd.read_csv(out / "controls.csv")
    assert set(written["kind"]) == {"sample", "recon"} and not (out / "units").exists()
    assert os.listdir(out) == ["controls.csv"] or set(os.listdir(out)) <= {"controls.csv", ".lock"}
