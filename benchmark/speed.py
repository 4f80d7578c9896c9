"""Speed benchmark: ``python -m benchmark.speed``.

For each registered model, on the active Keras backend: training samples per second
(steady state), compile time, scoring time (all metrics), peak memory, FLOPs per training
sample, and the fraction of the machine's measured matrix-multiply throughput achieved.
Each model runs in its own process, so compile caches and peak memory do not mix.
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
    name: str, *, batch_size: int, steps: int, image_shape: tuple[int, int, int], jit_compile: bool = True
) -> dict:
    """Train ``name`` on synthetic images and time it; synthetic data cost the same FLOPs."""
    import keras
    import numpy as np

    import models
    from benchmark.data import Dataset
    from benchmark.evaluate import evaluate_model

    rng = np.random.default_rng(0)
    n_test = 10000
    x = rng.random((batch_size * steps, *image_shape), dtype=np.float32)
    keras.utils.set_random_seed(0)
    model = models.create_model(name, image_shape, 16, seed=0)
    model.compile(optimizer=model.make_optimizer(), jit_compile=jit_compile)

    start = time.perf_counter()
    model.fit(x, batch_size=batch_size, epochs=1, shuffle=False, verbose=0)
    first = time.perf_counter() - start
    timings = []
    for _ in range(3):
        start = time.perf_counter()
        model.fit(x, batch_size=batch_size, epochs=1, shuffle=False, verbose=0)
        timings.append(time.perf_counter() - start)
    steady = min(timings)

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
        "jit_compile": jit_compile,
        "samples_per_sec": len(x) / steady,
        "compile_seconds": max(0.0, first - steady),
        "eval_seconds": eval_seconds,
        "peak_memory_mib": peak_memory_mib(),
        "train_mflop_per_sample": model.train_flops_per_sample() / 1e6,
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmark.speed", description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", help="comma-separated model names (default: all registered)")
    parser.add_argument("--batch-size", type=int, default=128, help="training batch size (default: 128)")
    parser.add_argument("--steps", type=int, default=100, help="training steps per timed epoch (default: 100)")
    parser.add_argument("--out", type=Path, default=Path("reports/speed"), help="folder for speed.csv (default: reports/speed)")
    parser.add_argument("--no-jit", action="store_true", help="compile without XLA (TensorFlow), to measure what XLA gains")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    shape = (28, 28, 1)
    if args.worker:
        row = measure_model(
            args.worker, batch_size=args.batch_size, steps=args.steps, image_shape=shape, jit_compile=not args.no_jit
        )
        print("RESULT " + json.dumps(row))
        return 0

    import keras
    import pandas as pd

    import models

    names = args.models.split(",") if args.models else models.list_models()
    unknown = [n for n in names if not models.is_model(n)]
    if unknown:
        print(f"benchmark.speed: error: unknown model {unknown[0]!r}; known models: {', '.join(models.list_models())}", file=sys.stderr)
        return 2
    ceiling = matmul_gflops()
    print(f"backend {keras.backend.backend()}: float32 matmul {ceiling:.0f} GFLOP/s", flush=True)
    rows = []
    for name in names:
        command = [sys.executable, "-m", "benchmark.speed", "--worker", name,
                   "--batch-size", str(args.batch_size), "--steps", str(args.steps)]  # fmt: skip
        if args.no_jit:
            command.append("--no-jit")
        done = subprocess.run(command, capture_output=True, text=True)
        lines = [ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")]
        if done.returncode != 0 or not lines:
            print(f"{name}: failed\n{done.stderr[-2000:]}", file=sys.stderr)
            continue
        row = json.loads(lines[-1].removeprefix("RESULT "))
        row["achieved_gflops"] = row["samples_per_sec"] * row["train_mflop_per_sample"] / 1e3
        row["matmul_gflops"] = ceiling
        row["fraction_of_matmul"] = row["achieved_gflops"] / ceiling
        rows.append(row)
        print(f"{name}: {row['samples_per_sec']:.0f} samples/s", flush=True)
    table = pd.DataFrame(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / "speed.csv", index=False)
    print(table.to_markdown(index=False, floatfmt=".3g"))
    return 0 if len(rows) == len(names) else 1


if __name__ == "__main__":
    sys.exit(main())
