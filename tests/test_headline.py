"""The headline: one score per question, its verdict in plain words, and each model's settings."""

import json

import pandas as pd
import pytest
from scipy import stats

from benchmark.reporting.aggregate import results_frame, summary_frame
from benchmark.reporting.headline import headline_frame, settings_frame, verdicts


def summary(per_model: dict[str, list[float]], score: str = "fd_sample", **extra) -> pd.DataFrame:
    rows = [{"dataset": "d", "model": m, "seed": s, "status": "ok", score: v, **extra}
            for m, values in per_model.items() for s, v in enumerate(values)]  # fmt: skip
    return summary_frame(results_frame(rows))


def test_one_column_per_question_with_the_score_that_answers_it():
    table = headline_frame(summary({"a": [10.0, 11.0], "b": [30.0, 31.0]}), "d")
    assert list(table.columns) == ["model", "seeds", "sample quality (fd_sample ↓)"]
    assert table.set_index("model").loc["a", "sample quality (fd_sample ↓)"] == "10.50 ± 0.71 #1"


def test_a_tested_lead_is_a_verdict_with_its_p_value():
    a, b = [10.0, 11.0, 12.0], [30.0, 31.0, 33.0]
    [text] = verdicts(summary({"a": a, "b": b}), "d")
    p = stats.ttest_ind(a, b, equal_var=False).pvalue
    assert text.startswith("sample quality: a, samples closest to the test images")
    assert f"p ≤ {p:.3f}" in text or "p < 0.001" in text


def test_an_untested_lead_says_so_once_for_one_seed():
    lines = verdicts(summary({"a": [10.0], "b": [30.0]}), "d")
    assert lines[0].startswith("One seed: no spread") and len(lines) == 2
    assert lines[1] == "sample quality: a has the best mean (fd_sample 10.00); not tested."


def test_a_close_race_is_not_a_win():
    lines = verdicts(summary({"a": [10.0, 14.0, 12.0], "b": [11.0, 13.0, 15.0]}), "d")
    assert "not distinguishable from b at the 5% level" in lines[0]


def test_a_score_alone_or_failed_says_why():
    only = summary({"a": [1500.0, 1510.0], "b": [float("nan"), float("nan")]}, "nll_is")
    assert verdicts(only, "d") == ["likelihood: only a has a value (nll_is 1505.00); nothing to compare."]
    failed = verdicts(summary({"a": [1.0, 2.0], "b": [3.0, 4.0]}, "kid_sample"), "d", failed_controls={})
    assert failed == []  # KID is not a headline score
    failed = verdicts(summary({"a": [1.0, 2.0], "b": [3.0, 4.0]}), "d", failed_controls={"fd_sample": "why"})
    assert failed == ["sample quality: not ranked, fd_sample failed its control sets on this run (why)."]


@pytest.mark.parametrize("prior", [True, False])
def test_a_model_without_a_prior_is_never_the_best_at_prior_samples(prior):
    rows = [{"dataset": "d", "model": m, "seed": 0, "status": "ok", "fd_sample": v, "has_prior": m != "ae" or prior}
            for m, v in (("ae", 1.0), ("vae", 5.0), ("gan", 9.0))]  # fmt: skip
    lines = verdicts(summary_frame(results_frame(rows)), "d")
    assert lines[1].startswith("sample quality: ae" if prior else "sample quality: vae")


def test_settings_show_every_resolved_parameter_swept_or_not():
    rows = [{"dataset": "d", "model": "beta_vae", "seed": s, "status": "ok", "epochs": 5, "batch_size": 128,
             "latent_dim": 16, "precision": "float32", "jit": False, "model_config": json.dumps({"beta": 4.0})}
            for s in range(2)]  # fmt: skip
    table = settings_frame(pd.DataFrame(rows), "d").iloc[0]
    assert table["parameters"] == "beta 4" and table["epochs"] == "5" and table["precision"] == "float32"
