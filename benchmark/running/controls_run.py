"""The run's control sets, scored once per feature space, written to ``<out>/controls.csv``.

A feature space is a dataset at a training and a test limit: the feature classifier is trained
on that training split and the test images are the reference, exactly as for the units. Every
control set (``benchmark.scoring.controls``) is scored as samples (``kind = sample``) and, where
it degrades real images one for one, as their reconstructions (``kind = recon``), by the code
that scores the models (``benchmark.scoring.image_sets``). No model is trained.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import pandas as pd
from threadpoolctl import threadpool_limits

from benchmark.data.dataset import Dataset
from benchmark.io import write_atomic
from benchmark.running.config import RunConfig
from benchmark.running.plan import load_datasets
from benchmark.scoring import controls as control_sets
from benchmark.scoring.frechet import FeatureClassifier, cache_dir_for, load_or_train
from benchmark.scoring.image_sets import make_reference, reconstruction_scores, sample_set_scores
from benchmark.scoring.verdicts import SPACE

CONTROLS_CSV = "controls.csv"


def score_controls(data: Dataset, classifier: FeatureClassifier | None) -> tuple[pd.DataFrame, list[str]]:
    """Every control set of ``data`` (already cut to its limits) scored against its test split:
    rows ``control, family, level, kind, n, <scores>``, and notes on what was skipped."""
    data = data.fixed()
    sets, notes = control_sets.build_controls(data)
    if not sets:
        return pd.DataFrame(), notes
    with threadpool_limits(limits=1, user_api="blas"):  # as the units' scoring (evaluate.py)
        ref = make_reference(data.x_test, classifier, notes)
        originals = make_reference(sets[0].images, None, notes)  # the ``real`` images the others degrade
        rows = []
        for control in sets:
            head = {"control": control.name, "family": control.family, "level": control.level, "n": len(control.images)}
            scores = sample_set_scores(control.images, ref, seed=control_sets.CONTROL_SEED, notes=notes,
                                       label=control.name)  # fmt: skip
            rows.append({**head, "kind": "sample", **scores})
            if control.originals is not None:
                recon = reconstruction_scores(control.images, originals.images, notes=notes, label=control.name,
                                              reference=originals)  # fmt: skip
                rows.append({**head, "kind": "recon", **recon})
    return pd.DataFrame(rows), notes


def feature_spaces(datasets: tuple[str, ...], train_limits, test_limits) -> list[tuple[str, int | None, int | None]]:
    """The (dataset, train_limit, test_limit) of a grid, in grid order."""
    return list(itertools.product(datasets, train_limits, test_limits))


def run_controls(
    datasets: dict[str, Dataset],
    spaces: list[tuple[str, int | None, int | None]],
    out: Path,
    *,
    with_classifier: bool = True,
    score_split: str = "test",
) -> pd.DataFrame:
    """Score the controls of every feature space, print one line each, write ``controls.csv``.

    ``datasets`` are whole (``benchmark.running.plan.load_datasets``); the classifier of a
    space is loaded from the run's cache (trained and cached when missing, as for the units).
    """
    frames = []
    for dataset, train_limit, test_limit in spaces:
        start = time.perf_counter()
        data = datasets[dataset].subset(train_limit, test_limit, score_split)
        classifier = load_or_train(data.fixed(), cache_dir_for(out)) if with_classifier else None
        table, notes = score_controls(data, classifier)
        if table.empty:
            print(f"[controls] {dataset}: none scored ({'; '.join(notes)})", flush=True)
            continue
        table.insert(0, "test_limit", test_limit)
        table.insert(0, "train_limit", train_limit)
        table.insert(0, "dataset", dataset)
        table["notes"] = "; ".join(notes)
        frames.append(table)
        print(f"[controls] {dataset}: {table['control'].nunique()} control sets of {int(table['n'].max())} images "
              f"scored in {time.perf_counter() - start:.1f} s", flush=True)  # fmt: skip
    controls = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=[*SPACE, "control"])
    write_atomic(out / CONTROLS_CSV, controls.to_csv(index=False))
    return controls


def read_controls(out: Path) -> pd.DataFrame | None:
    """``<out>/controls.csv``, or None when the run has none."""
    path = out / CONTROLS_CSV
    if not path.is_file():
        return None
    try:
        return pd.read_csv(path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError):
        return None


def controls_for_run(run: RunConfig) -> pd.DataFrame:
    """Score the controls of every feature space of ``run`` (its datasets at each training
    and test limit) into ``<run.out>/controls.csv``."""
    run.out.mkdir(parents=True, exist_ok=True)
    spaces = feature_spaces(run.datasets, run.train_limit, run.test_limit)
    return run_controls(load_datasets(run), spaces, run.out, score_split=run.score_split)
