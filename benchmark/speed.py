"""Speed benchmark: ``python -m benchmark.speed``.

For each registered model and each configuration asked for (precision, compile path, steps
per compiled call), on the active Keras backend: training samples per second (steady
state), compile time, scoring time (all metrics), peak memory, FLOPs per training sample,
and the fraction of the machine's measured float32 matrix-multiply throughput achieved.
Each (model, configuration) runs in its own process, so compile caches and peak memory do
not mix. Every configuration is compared with float32 + XLA, one step per call (``BASELINE``).

    python -m benchmark.speed --models vae_bernoulli --precision float32,mixed_bfloat16 --jit on,off
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def matmul_gflops(n: int = 2048, repeats: int = 10) -> float:
    """Measured float32 matrix-multiply throughput of the active backend, GFLOP/s."""
    import numpy as np
    from keras import ops

    a = ops.convert_to_tensor(np.random.default_rng(0).random((n, n), dtype=np.float32))
    ops.convert_to_numpy(ops.matmul(a, a))  # warm-up (and compile, on JAX)
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        c = a
        for _ in range(repeats):
            c = ops.matmul(a, c) * 1e-3  # the scale keeps values finite
        ops.convert_to_numpy(c)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 * repeats / best / 1e9


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
    *,
    batch_size: int,
    steps: int,
    image_shape: tuple[int, int, int],
    precision: str = "float32",
    jit: bool = True,
    steps_per_execution: int = 1,
    score: bool = True,
    host_data: bool = False,
) -> dict:
    """Train ``name`` on synthetic images and time it; synthetic data cost the same FLOPs.

    The model is built and compiled, and its data fed, as the harness does for a unit
    (``harness.build_model``, ``device.epoch_data``); ``host_data`` keeps the images in host
    memory even where the harness would keep them on the device. With ``score``, also the time
    to score it on 10,000 synthetic test images.
    """
    import keras
    import numpy as np

    from benchmark.data.datasets import Dataset
    from benchmark.running.config import UnitConfig
    from benchmark.running.device import epoch_data, to_device
    from benchmark.running.harness import build_model
    from benchmark.scoring.evaluate import evaluate_model

    rng = np.random.default_rng(0)
    n_test = 10000
    x = rng.random((batch_size * steps, *image_shape), dtype=np.float32)
    keras.utils.set_random_seed(0)
    config = UnitConfig(
        model=name, dataset="synthetic", seed=0, epochs=1, latent_dim=16, batch_size=batch_size,
        train_limit=None, test_limit=None, backend=keras.backend.backend(), precision=precision,
        jit=jit, steps_per_execution=steps_per_execution,
    )  # fmt: skip
    model = build_model(config, image_shape)
    x_fit = x if host_data else to_device(x)
    order = np.arange(len(x))

    start = time.perf_counter()
    model.fit(**epoch_data(x_fit, order, batch_size), epochs=1, shuffle=False, verbose=0)
    first = time.perf_counter() - start
    timings = []
    for _ in range(3):
        start = time.perf_counter()
        history = model.fit(**epoch_data(x_fit, order, batch_size), epochs=1, shuffle=False, verbose=0)
        timings.append(time.perf_counter() - start)
    steady = min(timings)

    eval_seconds = float("nan")
    if score:
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
        eval_seconds = time.perf_counter() - start
    return {
        "model": name,
        "backend": keras.backend.backend(),
        "batch_size": batch_size,
        "precision": precision,
        "jit": jit,
        "steps_per_execution": steps_per_execution,
        "data_on_device": not isinstance(x_fit, np.ndarray),
        "samples_per_sec": len(x) / steady,
        "compile_seconds": max(0.0, first - steady),
        "eval_seconds": eval_seconds,
        "peak_memory_mib": peak_memory_mib(),
        "train_mflop_per_sample": model.train_flops_per_sample() / 1e6,
        "final_loss": float(history.history["loss"][-1]),
    }


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


def label(precision: str, jit: bool, steps_per_execution: int) -> str:
    """A configuration in a few words, e.g. ``bfloat16, graph, 4 steps/call``."""
    words = ["bfloat16" if precision == "mixed_bfloat16" else precision, "XLA" if jit else "graph"]
    if steps_per_execution != 1:
        words.append(f"{steps_per_execution} steps/call")
    return ", ".join(words)


def side_by_side(table):
    """One row per configuration, one column per model: samples/s and the ratio to ``BASELINE``."""
    import pandas as pd

    cells = table.assign(
        configuration=[label(p, j, k) for p, j, k in zip(table["precision"], table["jit"], table["steps_per_execution"], strict=True)],
        cell=[f"{s:,.0f} ({r:.2f}x)" for s, r in zip(table["samples_per_sec"], table["ratio_to_baseline"], strict=True)],
    )
    order = list(dict.fromkeys(cells["configuration"]))
    wide = cells.pivot(index="configuration", columns="model", values="cell").reindex(order)
    return pd.DataFrame(wide).reset_index()


def build_parser() -> argparse.ArgumentParser:
    from benchmark.cli import ArgumentParser  # errors as one line, exit status 2
    from benchmark.running.config import DEFAULT_STEPS_PER_EXECUTION, JIT_CHOICES, PRECISION_CHOICES

    parser = ArgumentParser(prog="python -m benchmark.speed", description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", help="comma-separated model names (default: all registered)")
    parser.add_argument("--batch-size", type=int, default=128, help="training batch size (default: 128)")
    parser.add_argument("--steps", type=int, default=100, help="training steps per timed epoch (default: 100)")
    parser.add_argument("--out", type=Path, default=Path("reports/speed"), help="folder for speed.csv (default: reports/speed)")
    parser.add_argument("--precision", type=choice_list(PRECISION_CHOICES), default=("auto",),
                        help="comma-separated precisions to compare, among auto, float32, mixed_bfloat16 (default: auto)")
    parser.add_argument("--jit", type=choice_list(JIT_CHOICES), default=("auto",),
                        help="comma-separated compile paths to compare, among auto, on (XLA), off (graph mode on TensorFlow) (default: auto)")
    parser.add_argument("--steps-per-execution", type=count_list, default=(DEFAULT_STEPS_PER_EXECUTION,),
                        help=f"comma-separated training steps per compiled call to compare (default: {DEFAULT_STEPS_PER_EXECUTION})")
    parser.add_argument("--no-jit", action="store_true", help="the same as --jit off")
    parser.add_argument("--no-score", action="store_true", help="skip timing the scoring of each model (quicker)")
    parser.add_argument("--host-data", action="store_true",
                        help="feed batches from host memory even on JAX, where training keeps the data on the device (to measure what that gains)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    return parser  # fmt: skip


def configurations(args: argparse.Namespace, backend: str) -> list[tuple[str, bool, int]]:
    """Every resolved (precision, jit, steps_per_execution) asked for, ``BASELINE`` first."""
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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    shape = (28, 28, 1)
    if args.worker:
        [precision], [jit], [steps_per_execution] = args.precision, args.jit, args.steps_per_execution
        row = measure_model(
            args.worker, batch_size=args.batch_size, steps=args.steps, image_shape=shape,
            precision=precision, jit=jit == "on", steps_per_execution=steps_per_execution,
            score=not args.no_score, host_data=args.host_data,
        )  # fmt: skip
        print("RESULT " + json.dumps(row))
        return 0

    import keras
    import pandas as pd

    import models
    from benchmark.running.device import describe, detect

    names = args.models.split(",") if args.models else models.list_models()
    unknown = [n for n in names if not models.is_model(n)]
    if unknown:
        print(f"benchmark.speed: error: unknown model {unknown[0]!r}; known models: {', '.join(models.list_models())}", file=sys.stderr)
        return 2
    backend = keras.backend.backend()
    configs = configurations(args, backend)
    ceiling = matmul_gflops()
    print(f"backend {backend} on {describe(detect(backend))}: float32 matmul {ceiling:.0f} GFLOP/s", flush=True)
    rows = []
    for name in names:
        for precision, jit, steps_per_execution in configs:
            # Each configuration in its own process: compile caches and peak memory do not mix.
            command = [sys.executable, "-m", "benchmark.speed", "--worker", name,
                       "--batch-size", str(args.batch_size), "--steps", str(args.steps),
                       "--precision", precision, "--jit", "on" if jit else "off",
                       "--steps-per-execution", str(steps_per_execution)]  # fmt: skip
            command += ["--no-score"] * args.no_score + ["--host-data"] * args.host_data
            done = subprocess.run(command, capture_output=True, text=True)
            lines = [ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")]
            what = f"{name}, {label(precision, jit, steps_per_execution)}"
            if done.returncode != 0 or not lines:
                print(f"{what}: failed\n{done.stderr[-2000:]}", file=sys.stderr)
                continue
            row = json.loads(lines[-1].removeprefix("RESULT "))
            row["achieved_gflops"] = row["samples_per_sec"] * row["train_mflop_per_sample"] / 1e3
            row["matmul_gflops"] = ceiling
            row["fraction_of_matmul"] = row["achieved_gflops"] / ceiling
            rows.append(row)
            print(f"{what}: {row['samples_per_sec']:.0f} samples/s", flush=True)
    if not rows:
        return 1
    table = pd.DataFrame(rows)
    base = table[(table["precision"] == BASELINE[0]) & (table["jit"] == BASELINE[1])
                 & (table["steps_per_execution"] == BASELINE[2])].set_index("model")["samples_per_sec"]  # fmt: skip
    table["ratio_to_baseline"] = table["samples_per_sec"] / table["model"].map(base)
    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / "speed.csv", index=False)
    print(table.to_markdown(index=False, floatfmt=".3g"))
    print(f"\nSamples/s, and the ratio to {label(*BASELINE)} (the setting before per-device choice):")
    print(side_by_side(table).to_markdown(index=False))
    return 0 if len(rows) == len(names) * len(configs) else 1


if __name__ == "__main__":
    sys.exit(main())
