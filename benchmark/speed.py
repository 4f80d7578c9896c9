"""Speed benchmark: ``python -m benchmark.speed``.

For each registered model and each configuration asked for (precision, compile path, steps
per compiled call), on the active Keras backend: training samples per second (steady state),
compile time, scoring time (all metrics), peak memory, FLOPs per training sample, and the
fraction of the machine's measured float32 matrix-multiply throughput achieved.

It measures what a run trains: each model is built and compiled by the harness
(``train.build_model``), fed as the harness feeds it and trained through the harness's
``fit`` with its callbacks (``benchmark.running.timing``); ``auto`` precision is resolved
as a run resolves it (``benchmark.running.autoprecision``), measured afresh, and the table
says what it chose. A model's configurations are timed in one process, in turns (A B, B A,
...) over ``--repeats`` rounds: the table gives the median and the spread, ratios are medians
of the rounds' ratios, and two configurations whose difference lies within the spread are
called a tie rather than ranked. Each model runs in its own process, so compile caches and
peak memory do not mix between models (the peak memory is that of all of a model's
configurations together). Every configuration is compared with float32 + XLA, one step per
call (``BASELINE``).

    python -m benchmark.speed --models vae_bernoulli --precision auto,float32,mixed_bfloat16 --jit off
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import keras

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def peak_memory_mib() -> float:
    """Peak memory: the accelerator's where the backend reports it, else the process RSS."""
    import keras

    if keras.backend.backend() == "jax":
        import jax

        stats = jax.devices()[0].memory_stats() or {}
        if "peak_bytes_in_use" in stats:
            return stats["peak_bytes_in_use"] / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure_model(
    name: str,
    configs: list[tuple[str, bool, int]],
    *,
    batch_size: int,
    steps: int,
    image_shape: tuple[int, int, int],
    repeats: int = 3,
    score: bool = True,
    host_data: bool = False,
) -> list[dict]:
    """Train ``name`` in each configuration (precision, jit, steps per call) on synthetic images,
    timed in turns; one row per configuration. Synthetic images cost the real ones' FLOPs.

    Each model is built and compiled as the harness builds a unit's (``train.build_model``;
    ``auto`` resolved as a run resolves it, by a fresh measurement: ``autoprecision``) and
    trained through the harness's ``fit`` (``timing.timed_epoch``). After one untimed epoch
    each (its compile), ``repeats`` rounds time one epoch of every configuration, the order
    reversed every round. With ``score``, also the time to score each on 10,000 test images.
    """
    from benchmark.running.timing import interleaved, synthetic_images

    built, rows = {}, []
    for precision, jit, steps_per_execution in configs:
        model, row = build_configuration(name, precision, jit, steps_per_execution, batch_size=batch_size,
                                         image_shape=image_shape, host_data=host_data)  # fmt: skip
        built[label(precision, jit, steps_per_execution)] = model
        rows.append(row)
    x = synthetic_images(batch_size * steps, image_shape)
    timings = interleaved(built, x, batch_size, repeats, host_data=host_data)
    for row, (key, model) in zip(rows, built.items(), strict=True):
        row |= {
            "samples_per_sec": timings.median(key), "spread": timings.spread(key),
            "rates": timings.rates[key], "repeats": len(timings.rates[key]),
            "compile_seconds": max(0.0, timings.first_seconds[key] - timings.steady_seconds[key]),
            "eval_seconds": score_seconds(model, image_shape) if score else float("nan"),
            "train_mflop_per_sample": model.train_flops_per_sample() / 1e6,
            "final_loss": timings.losses[key],
        }  # fmt: skip
    peak = peak_memory_mib()  # the process's: every configuration of the model together
    return [{**row, "peak_memory_mib": peak} for row in rows]


def build_configuration(
    name: str,
    precision: str,
    jit: bool,
    steps_per_execution: int,
    *,
    batch_size: int,
    image_shape: tuple[int, int, int],
    host_data: bool,
) -> tuple[keras.Model, dict[str, Any]]:
    """Model ``name`` built and compiled in one configuration as a run builds a unit's
    (``auto`` precision resolved by a fresh measurement), and the start of its table row:
    the settings asked for and chosen, and where the training images are kept."""
    import tempfile

    import keras

    from benchmark.running.autoprecision import AutoPrecision
    from benchmark.running.config import UnitConfig
    from benchmark.running.device import keeps_data_on_device
    from benchmark.running.train import build_model

    backend = keras.backend.backend()
    config = UnitConfig(
        model=name, dataset="synthetic", seed=0, epochs=1, latent_dim=16, batch_size=batch_size,
        train_limit=None, test_limit=None, backend=backend, precision=precision, jit=jit,
        steps_per_execution=steps_per_execution,
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as fresh:  # no cache, no earlier units: measured anew
        resolved, record = AutoPrecision(Path(fresh), backend, Path(fresh)).choose(config, image_shape)
    keras.utils.set_random_seed(0)
    model = build_model(resolved, image_shape)
    row = {
        "model": name, "backend": backend, "batch_size": batch_size, "precision_requested": precision,
        "precision": resolved.precision, "jit": jit, "steps_per_execution": steps_per_execution,
        "data_on_device": not host_data and keeps_data_on_device(backend),
        "auto_ratio": record.get("precision_auto_ratio"), "auto_note": record.get("precision_note"),
    }  # fmt: skip
    return model, row


def score_seconds(model, image_shape: tuple[int, int, int], n_test: int = 10000) -> float:
    """Seconds to score ``model`` (all metrics) on ``n_test`` synthetic test images."""
    import numpy as np

    from benchmark.data.dataset import Dataset
    from benchmark.scoring.evaluate import evaluate_model

    rng = np.random.default_rng(0)
    data = Dataset(
        "synthetic",
        rng.random((n_test, *image_shape), dtype=np.float32),
        rng.integers(0, 10, n_test),
        rng.random((n_test, *image_shape), dtype=np.float32),
        rng.integers(0, 10, n_test),
        source="random",
    )
    start = time.perf_counter()
    evaluate_model(model, data, seed=0)
    return time.perf_counter() - start


#: The reference every configuration is compared with: the setting before precision and
#: compile path were chosen per device (float32, XLA, one step per call).
BASELINE = ("float32", True, 1)


def choice_list(choices: tuple[str, ...]):
    """An argparse type: comma-separated values among ``choices``, each once, in order."""

    def parse(text: str) -> tuple[str, ...]:
        values = tuple(dict.fromkeys(v.strip() for v in text.split(",") if v.strip()))
        bad = [v for v in values if v not in choices]
        if not values or bad:
            raise argparse.ArgumentTypeError(
                f"expected comma-separated values among {', '.join(choices)}, got {text[:40]!r}"
            )
        return values

    return parse


def count_list(text: str) -> tuple[int, ...]:
    """An argparse type: comma-separated whole numbers from 1 to 10,000."""
    try:
        values = tuple(dict.fromkeys(int(v) for v in text.split(",") if v.strip()))
    except ValueError:
        values = ()
    if not values or not all(1 <= v <= 10_000 for v in values):
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers from 1 to 10000, got {text[:40]!r}")
    return values


def label(precision: str, jit: bool, steps_per_execution: int, resolved: str | None = None) -> str:
    """A configuration in a few words, e.g. ``bfloat16, graph, 4 steps/call``, or
    ``auto (float32), graph`` for ``auto`` resolved to ``resolved``."""
    short = {"mixed_bfloat16": "bfloat16"}
    name = short.get(precision, precision)
    if precision == "auto" and resolved:
        name = f"auto ({short.get(resolved, resolved)})"
    words = [name, "XLA" if jit else "graph"]
    if steps_per_execution != 1:
        words.append(f"{steps_per_execution} steps/call")
    return ", ".join(words)


def configuration_labels(table) -> list[str]:
    return [
        label(p, j, k, r)
        for p, j, k, r in zip(table["precision_requested"], table["jit"], table["steps_per_execution"],
                              table["precision"], strict=True)
    ]  # fmt: skip


def side_by_side(table):
    """One row per configuration, one column per model: median samples/s, the spread of the
    rounds, and the ratio to ``BASELINE`` (median of the rounds' ratios)."""
    import pandas as pd

    cells = table.assign(
        configuration=[label(p, j, k) for p, j, k in zip(table["precision_requested"], table["jit"], table["steps_per_execution"], strict=True)],
        cell=[f"{s:,.0f} ±{50 * d:.0f}% ({r:.2f}x)" for s, d, r in zip(table["samples_per_sec"], table["spread"], table["ratio_to_baseline"], strict=True)],
    )  # fmt: skip
    order = list(dict.fromkeys(cells["configuration"]))
    wide = cells.pivot(index="configuration", columns="model", values="cell").reindex(order)
    return pd.DataFrame(wide).reset_index()


def ranking(rows: list[dict]) -> str:
    """One model's configurations fastest first, ``>`` between two whose paired difference
    exceeds the spread of the rounds' ratios, ``≈`` (within noise: not ranked) otherwise."""
    from benchmark.running.timing import paired

    ordered = sorted(rows, key=lambda r: -r["samples_per_sec"])
    words = [label(ordered[0]["precision_requested"], ordered[0]["jit"], ordered[0]["steps_per_execution"], ordered[0]["precision"])]
    for faster, slower in itertools.pairwise(ordered):
        ratio, spread = paired(faster["rates"], slower["rates"])
        sign = ">" if ratio - 1 > spread else "≈"
        words.append(f" {sign} ({100 * (ratio - 1):+.1f}% ±{100 * spread:.1f}%) ")
        words.append(label(slower["precision_requested"], slower["jit"], slower["steps_per_execution"], slower["precision"]))
    return "".join(words)  # fmt: skip


def auto_checks(rows: list[dict]) -> list[str]:
    """For each model and compile setting with ``auto``, float32 and mixed_bfloat16 measured:
    what ``auto`` chose, which of the two was faster in this benchmark's rounds (or that they
    tie within the spread), and how far the chosen one falls from the faster."""
    from benchmark.running.timing import paired

    lines = []
    by_setting: dict[tuple, dict[str, dict]] = {}
    for row in rows:
        by_setting.setdefault((row["model"], row["jit"], row["steps_per_execution"]), {})[row["precision_requested"]] = row
    for (model, jit, k), found in by_setting.items():
        if not {"auto", "float32", "mixed_bfloat16"} <= set(found):
            continue
        chosen = found["auto"]["precision"]
        ratio, spread = paired(found["mixed_bfloat16"]["rates"], found["float32"]["rates"])
        faster = "mixed_bfloat16" if ratio > 1 else "float32"
        cost, cost_spread = paired(found[chosen]["rates"], found[faster]["rates"])
        tie = abs(ratio - 1) <= spread
        verdict = "within 3%" if cost >= 0.97 else ("NOT within 3% (within the noise)" if tie else "NOT within 3%")
        lines.append(f"{model}, {label('float32', jit, k).partition(', ')[2]}: bfloat16 {ratio:.2f}x float32 ±{100 * spread:.0f}%"
                     f"{' (a tie)' if tie else ''}; auto chose {chosen} ({found['auto']['auto_note'] or '-'}): "
                     f"{100 * (cost - 1):+.1f}% ±{100 * cost_spread:.0f}% against the faster, {verdict}")  # fmt: skip
    return lines


def build_parser() -> argparse.ArgumentParser:
    from benchmark.arguments import ArgumentParser  # errors as one line, exit status 2
    from benchmark.running.config import DEFAULT_STEPS_PER_EXECUTION, JIT_CHOICES, PRECISION_CHOICES

    parser = ArgumentParser(prog="python -m benchmark.speed", description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", help="comma-separated model names (default: all registered)")
    parser.add_argument("--batch-size", type=int, default=128, help="training batch size (default: 128)")
    parser.add_argument("--steps", type=int, default=100, help="training steps per timed epoch (default: 100)")
    parser.add_argument("--repeats", type=count_list, default=(3,),
                        help="timed rounds per configuration, taken in turns; the median is reported (default: 3)")
    parser.add_argument("--out", type=Path, default=Path("reports/speed"), help="folder for speed.csv (default: reports/speed)")
    parser.add_argument("--precision", type=choice_list(PRECISION_CHOICES), default=("auto",),
                        help="comma-separated precisions to compare, among auto (as a run chooses it, measured afresh), float32, mixed_bfloat16 (default: auto)")
    parser.add_argument("--jit", type=choice_list(JIT_CHOICES), default=("auto",),
                        help="comma-separated compile paths to compare, among auto, on (XLA), off (graph mode on TensorFlow) (default: auto)")
    parser.add_argument("--steps-per-execution", type=count_list, default=(DEFAULT_STEPS_PER_EXECUTION,),
                        help=f"comma-separated training steps per compiled call to compare (default: {DEFAULT_STEPS_PER_EXECUTION})")
    parser.add_argument("--no-jit", action="store_true", help="the same as --jit off")
    parser.add_argument("--no-score", action="store_true", help="skip timing the scoring of each model (quicker)")
    parser.add_argument("--host-data", action="store_true",
                        help="feed batches from host memory even on JAX, where training keeps the data on the device (to measure what that gains)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--configs", help=argparse.SUPPRESS)  # JSON, the worker's configurations
    return parser  # fmt: skip


def configurations(args: argparse.Namespace, backend: str) -> list[tuple[str, bool, int]]:
    """Every (precision, jit, steps_per_execution) asked for, ``BASELINE`` first; the compile
    path resolved, ``auto`` precision left for the model's worker to resolve."""
    from benchmark.running.device import detect, resolve_jit, resolve_precision

    device = detect(backend)
    jits = ("off",) if args.no_jit else args.jit
    asked = [
        (resolve_precision(p, device), resolve_jit(j, backend, device), k)
        for p in args.precision
        for j in jits
        for k in args.steps_per_execution
    ]
    return list(dict.fromkeys([BASELINE, *asked]))


def run_worker(name: str, configs: list, args: argparse.Namespace) -> tuple[list[dict], str]:
    """``measure_model`` for ``name`` in a process of its own (compile caches and peak memory
    do not mix between models): (its rows, its stderr)."""
    command = [sys.executable, "-m", "benchmark.speed", "--worker", name, "--configs", json.dumps(configs),
               "--batch-size", str(args.batch_size), "--steps", str(args.steps), "--repeats", str(args.repeats[0])]  # fmt: skip
    command += ["--no-score"] * args.no_score + ["--host-data"] * args.host_data
    done = subprocess.run(command, capture_output=True, text=True)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        return [], done.stderr[-2000:]
    return json.loads(lines[-1].removeprefix("RESULT ")), ""


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    shape = (28, 28, 1)
    if args.worker:
        configs = [(p, bool(j), int(k)) for p, j, k in json.loads(args.configs)]
        rows = measure_model(args.worker, configs, batch_size=args.batch_size, steps=args.steps, image_shape=shape,
                             repeats=args.repeats[0], score=not args.no_score, host_data=args.host_data)  # fmt: skip
        print("RESULT " + json.dumps(rows))
        return 0

    import keras
    import pandas as pd

    import models
    from benchmark.running.device import describe, detect
    from benchmark.running.environment import matmul_gflops

    names = args.models.split(",") if args.models else models.list_models()
    unknown = [n for n in names if not models.is_model(n)]
    if unknown:
        print(f"benchmark.speed: error: unknown model {unknown[0]!r}; known models: {', '.join(models.list_models())}", file=sys.stderr)
        return 2
    backend = keras.backend.backend()
    configs = configurations(args, backend)
    ceiling = matmul_gflops()
    print(f"backend {backend} on {describe(detect(backend))}: float32 matmul {ceiling:.0f} GFLOP/s; "
          f"{args.repeats[0]} rounds of {args.steps} steps per configuration, in turns", flush=True)  # fmt: skip
    rows = []
    for name in names:
        found, error = run_worker(name, configs, args)
        if not found:
            print(f"{name}: failed\n{error}", file=sys.stderr)
            continue
        rows += found
        print(f"{name}: {ranking(found)}", flush=True)
    if not rows:
        return 1
    table = summarise(rows, ceiling)
    args.out.mkdir(parents=True, exist_ok=True)
    table.drop(columns=["rates"]).to_csv(args.out / "speed.csv", index=False)
    print(table.drop(columns=["rates", "auto_note"]).to_markdown(index=False, floatfmt=".3g"))
    print(f"\nMedian samples/s ±half the range of {args.repeats[0]} rounds, and the ratio to {label(*BASELINE)} "
          "(the median of the rounds' ratios):")  # fmt: skip
    print(pd.DataFrame(side_by_side(table)).to_markdown(index=False))
    print("\nFastest first; '≈': the difference is within the spread, so the two are not ranked:")
    for name in dict.fromkeys(r["model"] for r in rows):
        print(f"  {name}: {ranking([r for r in rows if r['model'] == name])}")
    checks = auto_checks(rows)
    if checks:
        print("\nauto against the faster of float32 and bfloat16:\n  " + "\n  ".join(checks))
    return 0 if len(rows) == len(names) * len(configs) else 1


def summarise(rows: list[dict], ceiling: float):
    """The rows as a table, with the FLOP rate achieved, its fraction of the matmul ``ceiling``
    (GFLOP/s) and the ratio to ``BASELINE`` (median of the rounds' ratios) added."""
    import pandas as pd

    from benchmark.running.timing import paired

    table = pd.DataFrame(rows)
    table["achieved_gflops"] = table["samples_per_sec"] * table["train_mflop_per_sample"] / 1e3
    table["matmul_gflops"] = ceiling
    table["fraction_of_matmul"] = table["achieved_gflops"] / ceiling
    base = {r["model"]: r["rates"] for r in rows
            if (r["precision_requested"], r["jit"], r["steps_per_execution"]) == BASELINE}  # fmt: skip
    table["ratio_to_baseline"] = [
        paired(r["rates"], base[r["model"]])[0] if r["model"] in base else float("nan") for r in rows
    ]
    return table


if __name__ == "__main__":
    sys.exit(main())
