"""Published results reproduced with vaebench: score a unit while it trains, and read the record.

A reproduction lives in ``docs/reproductions/<name>/``: a ``README.md`` (commands, machine,
timings) and ``curve.csv``, one row per measurement of a unit's checkpoint::

    passes,is_samples,n_images,nll_is,stderr,seconds

``passes`` the epochs the checkpoint had trained, ``is_samples`` the K of the importance-weighted
bound, ``n_images`` the first images of the test split it was measured on, ``nll_is`` its mean
(nats per image), ``stderr`` the standard error over those images, ``seconds`` the wall-clock
time of the measurement.

A unit's scores are computed only once it completes; ``score_checkpoint`` scores the latest
checkpoint of a unit still training, so that the bound can be followed against passes::

    python -m benchmark.reproductions reports/iwae/units/<unit_id> \\
        --samples 5000 --images 500 --csv docs/reproductions/iwae/curve.csv

``readme_mismatches`` checks that a table of the README quoting a measured point quotes the
figure of its CSV.
"""

from __future__ import annotations

import argparse
import math
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

#: Columns of a reproduction's ``curve.csv``.
CURVE_COLUMNS = ("passes", "is_samples", "n_images", "nll_is", "stderr", "seconds")

#: The folder of the reproductions, beside the README of the repository.
REPRODUCTIONS_DIR = Path(__file__).resolve().parents[1] / "docs" / "reproductions"


def read_curves(root: Path = REPRODUCTIONS_DIR) -> dict[str, pd.DataFrame]:
    """``{reproduction name: its curve.csv}`` for every ``<root>/<name>/curve.csv``."""
    return {path.parent.name: pd.read_csv(path) for path in sorted(root.glob("*/curve.csv"))}


def reproduction_figures(root: Path = REPRODUCTIONS_DIR) -> list[dict[str, Any]]:
    """Every measured point of every reproduction, as a README table would quote it.

    Returns one dict per CSV row: ``name``, ``passes``, ``is_samples``, ``n_images`` (int) and
    ``nll_is`` (nats, float).
    """
    return [
        {
            "name": name,
            **{k: int(row[k]) for k in ("passes", "is_samples", "n_images")},
            "nll_is": float(row["nll_is"]),
        }
        for name, curve in read_curves(root).items()
        for _, row in curve.iterrows()
    ]


def curve_table(curve: pd.DataFrame) -> str:
    """``curve`` (a ``curve.csv``) as the markdown table a README quotes, one row per point."""
    lines = ["| passes | K | test images | `nll_is` (nats) | standard error | seconds |",
             "| --: | --: | --: | --: | --: | --: |"]  # fmt: skip
    for _, row in curve.iterrows():
        lines.append(
            f"| {int(row['passes'])} | {int(row['is_samples']):,} | {int(row['n_images']):,} "
            f"| {row['nll_is']:.2f} | {row['stderr']:.2f} | {row['seconds']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def _section(text: str, title: str) -> str:
    """The body of the markdown section whose heading contains ``title`` ('' if none)."""
    match = re.search(rf"^(#+)[^\n]*{re.escape(title)}[^\n]*$", text, flags=re.M | re.I)
    if match is None:
        return ""
    level = len(match.group(1))
    rest = text[match.end() :]
    end = re.search(rf"^#{{1,{level}}} ", rest, flags=re.M)
    return rest[: end.start()] if end else rest


def _numbers(cell: str) -> set[str]:
    """The numbers written in a table cell ("**5,000**" -> "5000", "96.94 ± 0.87" -> both)."""
    joined = re.sub(r"(?<=\d)[,\u2009\u202f](?=\d{3})", "", cell)  # thousands separators
    return set(re.findall(r"\d+(?:\.\d+)?", joined))


def table_rows(text: str) -> list[list[str]]:
    """The cells of every markdown table row of ``text`` (separator rows left out)."""
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("|") and not re.fullmatch(r"\|[\s:|-]+\|?", line):
            rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def readme_mismatches(
    readme: str, figures: list[dict[str, Any]], section: str | None = "Reproductions"
) -> list[str]:
    """Rows of the tables of ``section`` (None: the whole text) that quote a measured point
    with another figure.

    A row quotes a point when its cells hold the point's passes, K and number of images; it
    must then hold the point's ``nll_is`` to two decimals. Returns one line per mismatch
    (empty: none, also when the section or its tables do not exist).
    """
    problems = []
    for cells in table_rows(readme if section is None else _section(readme, section)):
        numbers = set().union(*(_numbers(cell) for cell in cells))
        for point in figures:
            quoted = {str(point["passes"]), str(point["is_samples"]), str(point["n_images"])}
            if not quoted <= numbers:
                continue
            if f"{point['nll_is']:.2f}" not in numbers:
                problems.append(
                    f"{' | '.join(cells)}: expected nll_is {point['nll_is']:.2f} ({point['name']})"
                )
    return problems


def latest_checkpoint(unit_dir: Path, copy_to: Path) -> tuple[Path, int]:
    """Copy the unit's newest whole checkpoint model to ``copy_to``: ``(copy, passes done)``.

    The trainer replaces its checkpoint every minute (``checkpoint.json`` last, then the old
    files deleted), so the file named by the record may vanish before it is copied: retried.
    """
    from benchmark.io import read_json_or_none
    from benchmark.running.checkpoints import CHECKPOINT_JSON, _checkpoint_stem

    for _ in range(10):
        saved = read_json_or_none(unit_dir / CHECKPOINT_JSON)
        if saved is None:
            raise FileNotFoundError(f"{unit_dir} has no checkpoint (not started, or complete)")
        done = int(saved["epochs_done"])
        try:
            shutil.copyfile(unit_dir / f"{_checkpoint_stem(done)}.keras", copy_to)
        except FileNotFoundError:
            time.sleep(1.0)
            continue
        return copy_to, done
    raise RuntimeError(f"{unit_dir}: the checkpoint kept changing while being copied")


def score_checkpoint(
    unit_dir: Path, *, samples: int, images: int | None, data_dir: str | None = None
) -> dict[str, Any]:
    """``nll_is`` of the latest checkpoint of a unit on the first ``images`` test images.

    The unit's own data and seed (its ``config.json``); the same noise as the harness's score
    (``nll_is`` seeded with the unit's seed). Returns a ``CURVE_COLUMNS`` row.
    """
    import keras

    import models  # noqa: F401  (registers the model classes for loading)
    from benchmark.data.datasets import load_dataset
    from benchmark.io import read_json
    from benchmark.scoring.likelihood import likelihood_issue, nll_is

    config = read_json(unit_dir / "config.json")
    x_test = load_dataset(config["dataset"], data_dir).x_test[:images]
    with tempfile.TemporaryDirectory() as tmp:
        path, passes = latest_checkpoint(unit_dir, Path(tmp) / "checkpoint.keras")
        model = keras.saving.load_model(path, safe_mode=True, compile=False)
    issue = likelihood_issue(model, x_test)
    if issue is not None:
        raise ValueError(issue)
    start = time.perf_counter()
    values = nll_is(model, x_test, samples=samples, seed=int(config["seed"]))
    seconds = time.perf_counter() - start
    return {
        "passes": passes,
        "is_samples": samples,
        "n_images": len(x_test),
        "nll_is": round(float(np.mean(values)), 3),
        "stderr": round(float(np.std(values, ddof=1) / math.sqrt(len(values))), 3),
        "seconds": round(seconds, 1),
    }


def append_row(csv: Path, row: dict[str, Any]) -> None:
    """Add ``row`` to ``csv`` (created with ``CURVE_COLUMNS`` when missing), sorted by passes and K."""
    from benchmark.io import write_atomic

    new = pd.DataFrame([row])[list(CURVE_COLUMNS)]
    if csv.exists():
        new = pd.concat([pd.read_csv(csv), new], ignore_index=True)
    new = new.sort_values(["passes", "is_samples", "n_images"], kind="stable")
    csv.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(csv, new.to_csv(index=False))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("unit_dir", type=Path, help="a unit folder, <out>/units/<unit_id>")
    parser.add_argument("--samples", type=int, default=5000, help="K of the bound (default 5000)")
    parser.add_argument(
        "--images", type=int, default=None, help="first N test images (default all)"
    )
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--csv", type=Path, default=None, help="append the row to this curve.csv")
    args = parser.parse_args(argv)
    row = score_checkpoint(
        args.unit_dir, samples=args.samples, images=args.images, data_dir=args.data_dir
    )
    print(",".join(CURVE_COLUMNS))
    print(",".join(str(row[c]) for c in CURVE_COLUMNS), flush=True)
    if args.csv is not None:
        append_row(args.csv, row)


if __name__ == "__main__":
    main()
