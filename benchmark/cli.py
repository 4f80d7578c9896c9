"""The command line of ``run_all.py``: parse, validate, run the grid, write the reports."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmark.config import DEFAULT_LATENT_DIM, PRESETS, RunConfig
from benchmark.data import DATASETS
from benchmark.errors import UsageError

PROG = "run_all.py"


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports an error as one line (no usage dump) with exit status 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def name_list(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if not names:
        raise argparse.ArgumentTypeError("expected comma-separated names")
    return names


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog=PROG,
        description="Train and score generative autoencoders on equal terms; write report tables.",
        epilog="Presets: " + "; ".join(f"{k}: {v}" for k, v in PRESETS.items()),
    )
    parser.add_argument("--list-models", action="store_true", help="print the registered model names and exit")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="full",
                        help="grid to run: full (default, for a GPU box), quick (MNIST on a laptop CPU), smoke (seconds)")
    parser.add_argument("--models", type=name_list, help="comma-separated model names (default: all registered)")
    parser.add_argument("--datasets", type=name_list, help=f"comma-separated datasets among {', '.join(DATASETS)} (default: the preset's)")
    parser.add_argument("--seeds", type=positive_int, help="number of seeds per model, 0..N-1 (default: the preset's)")
    parser.add_argument("--epochs", type=positive_int, help="training epochs (default: the preset's)")
    parser.add_argument("--latent-dim", type=positive_int, help=f"latent size (default: {DEFAULT_LATENT_DIM})")
    parser.add_argument("--batch-size", type=positive_int, help="training batch size (default: the preset's)")
    parser.add_argument("--train-limit", type=positive_int, help="use the first N training images (default: the preset's)")
    parser.add_argument("--test-limit", type=positive_int, help="score on the first N test images (default: the preset's)")
    parser.add_argument("--data-dir", help="folder with <dataset>/*-ubyte.gz files (default: $VAEBENCH_DATA_DIR, else tensorflow-datasets)")
    parser.add_argument("--out", type=Path, help="output folder (default: reports/<preset>)")
    parser.add_argument("--force", action="store_true", help="retrain units that are already complete")
    parser.add_argument("--quiet", action="store_true", help="no per-epoch progress display")
    return parser  # fmt: skip


def resolve(args: argparse.Namespace, backend: str) -> RunConfig:
    """Preset values overridden by the given flags, names checked against the registries."""
    import models  # imports Keras: only once the arguments are known to parse

    preset = PRESETS[args.preset]
    model_names = args.models or tuple(models.list_models())
    for name in model_names:
        if not models.is_model(name):
            raise UsageError(f"unknown model {name!r}; known models: {', '.join(models.list_models())}")
    datasets = args.datasets or preset["datasets"]
    for name in datasets:
        if name not in DATASETS:
            raise UsageError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}")

    def pick(key):
        value = getattr(args, key)
        return preset[key] if value is None else value

    return RunConfig(
        models=tuple(model_names),
        datasets=tuple(datasets),
        seeds=pick("seeds"),
        epochs=pick("epochs"),
        latent_dim=args.latent_dim or DEFAULT_LATENT_DIM,
        batch_size=pick("batch_size"),
        train_limit=pick("train_limit"),
        test_limit=pick("test_limit"),
        out=args.out or Path("reports") / args.preset,
        preset=args.preset,
        backend=backend,
        data_dir=args.data_dir,
        force=args.force,
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except UsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; complete units are kept and skipped when the command is repeated", file=sys.stderr)
        return 130


def run(args: argparse.Namespace) -> int:
    import keras

    import models

    if args.list_models:
        print("\n".join(models.list_models()))
        return 0
    from benchmark.aggregate import write_tables
    from benchmark.environment import environment
    from benchmark.harness import run_grid

    config = resolve(args, keras.backend.backend())
    verbose = 0 if args.quiet else (1 if sys.stdout.isatty() else 2)
    rows = run_grid(config, environment=environment(), verbose=verbose)
    _, _, markdown = write_tables(rows, config.out)
    print(f"\nSummary ({config.out}):\n{markdown}")
    failed = [r["unit_id"] for r in rows if r.get("status") != "ok"]
    if failed:
        print(f"{PROG}: {len(failed)} unit(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0
