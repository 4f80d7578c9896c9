"""The command line of ``run_all.py``: parse, validate, run the grid, write the reports."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmark.config import DEFAULT_LATENT_DIM, PRESETS, RANGES, RunConfig
from benchmark.data import DATA_DIR_ENV, DATASETS, resolve_data_dir
from benchmark.device import (
    DEFAULT_STEPS_PER_EXECUTION,
    JIT_CHOICES,
    PRECISION_CHOICES,
    detect,
    resolve_jit,
    resolve_precision,
)
from benchmark.errors import UsageError

PROG = "run_all.py"

#: Comma-separated plugin modules to import when ``--plugins`` is not given.
PLUGINS_ENV = "VAEBENCH_PLUGINS"

#: Environment variables that change what a run does, recorded with its command line.
RECORDED_ENV = ("KERAS_BACKEND", DATA_DIR_ENV, PLUGINS_ENV, "VAEBENCH_CACHE_DIR", "TF_ENABLE_ONEDNN_OPTS")


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports an error as one line (no usage dump) with exit status 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {one_line(message)}\n")


#: Every character that ``str.splitlines`` breaks at, mapped to its escape sequence.
_LINE_BREAKS = {ord(c): c.encode("unicode_escape").decode() for c in "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"}


def one_line(text: str) -> str:
    """``text`` with line breaks and unprintable bytes of argv (lone surrogates) escaped.

    An error message then stays one line, and any stream can print it.
    """
    return text.translate(_LINE_BREAKS).encode("utf-8", "backslashreplace").decode("utf-8")


def whole_number(key: str) -> Callable[[str], int]:
    """An argparse type: a whole number in the range ``RANGES[key]`` of ``benchmark.config``."""
    low, high = RANGES[key]

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text[:40]!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be at least {low} and at most {high}, got {value}")
        return value

    return parse


def name_list(text: str) -> tuple[str, ...]:
    """Comma-separated names, stripped, each once, in order."""
    names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    if not names:
        raise argparse.ArgumentTypeError("expected comma-separated names")
    return names


def load_plugins(names: tuple[str, ...]) -> None:
    """Import each plugin module; a plugin registers its models with ``@register_model``."""
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as exc:
            raise UsageError(f"cannot import plugin {name!r}: {type(exc).__name__}: {exc}") from None


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
    parser.add_argument("--seeds", type=whole_number("seeds"), help="number of seeds per model, 0..N-1 (default: the preset's)")
    parser.add_argument("--epochs", type=whole_number("epochs"), help="training epochs (default: the preset's)")
    parser.add_argument("--latent-dim", type=whole_number("latent_dim"), help=f"latent size (default: {DEFAULT_LATENT_DIM})")
    parser.add_argument("--batch-size", type=whole_number("batch_size"), help="training batch size (default: the preset's)")
    parser.add_argument("--train-limit", type=whole_number("train_limit"), help="use the first N training images (default: the preset's)")
    parser.add_argument("--test-limit", type=whole_number("test_limit"), help="score on the first N test images (default: the preset's)")
    parser.add_argument("--data-dir", help="folder with <dataset>/*-ubyte.gz files (default: $VAEBENCH_DATA_DIR, else tensorflow-datasets)")
    parser.add_argument("--out", type=Path, help="output folder (default: reports/<preset>)")
    parser.add_argument("--force", action="store_true", help="retrain every unit from the start, complete or not (default: skip complete units, resume unfinished ones)")
    parser.add_argument("--plugins", type=name_list, metavar="MODULE[,MODULE]",
                        help=f"import these modules first; each may register extra models with models.register_model (they must be importable, e.g. through PYTHONPATH; default: ${PLUGINS_ENV})")
    parser.add_argument("--precision", choices=PRECISION_CHOICES, default="auto",
                        help="arithmetic: auto (default: mixed_bfloat16 where the device has fast bfloat16, a CPU with AMX or AVX-512 BF16 or a GPU of compute capability 8.0+, else float32), float32, or mixed_bfloat16 (float32 variables, bfloat16 compute)")
    parser.add_argument("--jit", choices=JIT_CHOICES, default="auto",
                        help="XLA compilation: auto (default: on with JAX, and with TensorFlow on a GPU; off, plain graph mode, with TensorFlow on a CPU), on, off")
    parser.add_argument("--steps-per-execution", type=whole_number("steps_per_execution"), default=DEFAULT_STEPS_PER_EXECUTION,
                        help=f"training steps per compiled call: fewer round trips between host and device (default: {DEFAULT_STEPS_PER_EXECUTION})")
    parser.add_argument("--quiet", action="store_true", help="no per-epoch progress display")
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("A", "B"),
                        help="print B - A of every summary score of two run folders, write it to B/compare-vs-<A>.csv, and exit")
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
    resolve_data_dir(args.data_dir)  # a data directory that was named must exist
    out = args.out or Path("reports") / args.preset
    try:
        if out.exists() and not out.is_dir():
            raise UsageError(f"output directory {str(out)!r} is a file, not a folder")
    except OSError as exc:  # e.g. a name too long for the file system
        raise UsageError(f"output directory {str(out)!r} cannot be used: {exc.strerror}") from None

    def pick(key):
        value = getattr(args, key)
        return preset[key] if value is None else value

    # Probed once the input has passed: a TensorFlow without a GPU logs its search to stderr.
    with quiet_native_stderr():
        device = detect(backend)

    return RunConfig(
        models=tuple(model_names),
        datasets=tuple(datasets),
        seeds=pick("seeds"),
        epochs=pick("epochs"),
        latent_dim=DEFAULT_LATENT_DIM if args.latent_dim is None else args.latent_dim,
        batch_size=pick("batch_size"),
        train_limit=pick("train_limit"),
        test_limit=pick("test_limit"),
        out=out,
        preset=args.preset,
        backend=backend,
        data_dir=args.data_dir,
        force=args.force,
        plugins=plugin_names(args),
        precision=resolve_precision(args.precision, device),
        jit=resolve_jit(args.jit, backend, device),
        steps_per_execution=args.steps_per_execution,
    )


def plugin_names(args: argparse.Namespace) -> tuple[str, ...]:
    """``--plugins``, else ``$VAEBENCH_PLUGINS``."""
    if args.plugins is not None:
        return args.plugins
    return tuple(n.strip() for n in os.environ.get(PLUGINS_ENV, "").split(",") if n.strip())


def command_record(argv: list[str]) -> dict[str, Any]:
    """What repeats this run: the command line, where it ran, and the settings from the environment."""
    return {
        "argv": [PROG, *argv],
        "cwd": os.getcwd(),
        "python": sys.executable,
        "env": {key: os.environ[key] for key in RECORDED_ENV if key in os.environ},
    }


def main(argv: list[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); returns the exit status.

    0: done; 1: some unit failed (named on stderr); 2: bad input, one line on stderr;
    130: interrupted (Ctrl-C), after writing the tables of the units complete so far.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    try:
        return run(args, argv)
    except (UsageError, OSError) as exc:
        # OSError: a path the system refuses (too long, unreadable) or a full disk; its
        # message names the file, and a traceback would add nothing for the user.
        print(f"{PROG}: error: {one_line(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; complete units are kept (and listed in the tables), "
              "the command resumes the rest when repeated", file=sys.stderr)  # fmt: skip
        return 130


def compare(a: Path, b: Path) -> int:
    """``--compare A B``: the table of differences, printed and written into B."""
    from benchmark.report import compare_runs

    table, path = compare_runs(a, b)
    print(f"B - A per dataset, model and score (A: {a}, B: {b}):")
    print(table.to_markdown(index=False, floatfmt=".4g") if len(table) else "(no scores in common)")
    print(f"\nWritten to {path}")
    return 0


@contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Send what is written to stderr meanwhile to /dev/null, if TF_CPP_MIN_LOG_LEVEL asks for quiet.

    TensorFlow 2.21 logs its start-up lines (oneDNN, CUDA stubs) before its logging honours
    TF_CPP_MIN_LOG_LEVEL; left alone, they would precede a one-line error message. An import
    that fails still shows its traceback: stderr is restored before it propagates.
    """
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0") in ("", "0"):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def run(args: argparse.Namespace, argv: list[str]) -> int:
    if args.compare:
        return compare(*args.compare)
    with quiet_native_stderr():
        import keras

        import models

    load_plugins(plugin_names(args))
    if args.list_models:
        print("\n".join(models.list_models()))
        return 0
    from benchmark.aggregate import write_tables
    from benchmark.environment import environment
    from benchmark.harness import run_grid
    from benchmark.report import write_report

    config = resolve(args, keras.backend.backend())
    verbose = 0 if args.quiet else (1 if sys.stdout.isatty() else 2)
    rows = run_grid(config, environment=environment, verbose=verbose, command=command_record(argv))
    results, summary, markdown = write_tables(rows, config.out)
    print(f"\nSummary ({config.out}):\n{markdown}")
    print(f"Report: {write_report(config.out, results, summary)}")
    failed = [r["unit_id"] for r in rows if r.get("status") != "ok"]
    if failed:
        print(f"{PROG}: {len(failed)} unit(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0
