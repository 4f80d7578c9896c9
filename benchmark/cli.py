"""The command line of ``vaebench`` (and ``run_all.py``): parse, validate, run the grid, write
the reports; ``fetch`` as the first word downloads the datasets instead."""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
import traceback
from pathlib import Path
from typing import Any

from benchmark.arguments import (
    PROG,
    ArgumentParser,
    device_list,
    gpu_fraction,
    name_list,
    one_line,
    program_name,
    set_spec,
    whole_number,
    whole_numbers,
)
from benchmark.data.datasets import (
    DATA_DIR_ENV,
    DATASETS,
    default_data_dir,
    resolve_data_dir,
    unknown_dataset_message,
)
from benchmark.data.tfds_images import TFDS_IMAGES
from benchmark.errors import UsageError, did_you_mean
from benchmark.interrupts import interruptible

# NATIVE_NOISE is re-exported: it was defined here, and callers import it from here.
from benchmark.native_output import (  # noqa: F401
    NATIVE_NOISE,
    import_tensorflow,
    quiet_native_stderr,
    tensorflow_missing,
)
from benchmark.plugins import load_plugins
from benchmark.running.config import (
    DEFAULT_IS_SAMPLES,
    DEFAULT_LATENT_DIM,
    DEFAULT_STEPS_PER_EXECUTION,
    EXECUTORS,
    JIT_CHOICES,
    PRECISION_CHOICES,
    PRESETS,
    RUN_AXES,
    SCORE_SPLITS,
    RunConfig,
)
from benchmark.running.grid import check_settings, flag_settings, load_grid_file

#: Defaults of the run-level settings that no preset sets.
RUN_DEFAULTS = {"latent_dim": DEFAULT_LATENT_DIM, "is_samples": DEFAULT_IS_SAMPLES}


#: Comma-separated plugin modules to import when ``--plugins`` is not given.
PLUGINS_ENV = "VAEBENCH_PLUGINS"

#: Environment variables that change what a run does, recorded with its command line.
RECORDED_ENV = ("KERAS_BACKEND", DATA_DIR_ENV, PLUGINS_ENV, "VAEBENCH_CACHE_DIR", "TF_ENABLE_ONEDNN_OPTS")


EXAMPLES = """\
examples:
  {prog} --preset quick
      MNIST on a laptop CPU (about 10 minutes); the data are fetched on first use
  {prog} --preset quick --latent-dim 2,16 --set vae_bernoulli.beta=0.5,2 --out reports/sweep
      a sweep: every combination of the listed values, ranked within each
  {prog} --compare reports/quick reports/sweep
      B - A of every summary score of two finished runs
"""


def build_parser(prog: str = PROG) -> ArgumentParser:
    """The parser of the command line, ``prog`` as the program's name in its help."""
    presets = "Presets: " + "; ".join(f"{k}: {v}" for k, v in PRESETS.items())
    command = f"python {prog}" if prog == PROG else prog  # as typed in a shell
    parser = ArgumentParser(
        prog=prog,
        description="Train and score generative autoencoders on equal terms; write report tables.\n"
        f"`{command} fetch [DATASET ...]` downloads and checks the data instead (see its --help).",
        epilog=textwrap.fill(presets, 88) + "\n\n" + EXAMPLES.format(prog=command),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--list-models", action="store_true", help="print the registered model names and exit")
    # Added in the order --help lists them.
    add_grid_arguments(parser)
    add_training_arguments(parser)
    add_execution_arguments(parser)
    parser.add_argument("--quiet", action="store_true", help="no per-epoch progress display")
    parser.add_argument("--verbose", action="store_true", help="show the start-up log lines of TensorFlow, XLA and CUDA (hidden by default)")
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("A", "B"),
                        help="print B - A of every summary score of two run folders, write it to B/compare-vs-<A>.csv, and exit")  # fmt: skip
    return parser


def add_grid_arguments(parser: ArgumentParser) -> None:
    """What the grid is: the preset or grid file, models, datasets, seeds, the run-level
    axes, model settings, and where the data and the results are."""
    parser.add_argument("--preset", choices=sorted(PRESETS),
                        help="grid to run: full (default, for a GPU box), quick (MNIST on a laptop CPU), smoke (seconds); "
                             "latent, beta, likelihood-choice: one question each; likelihood: the published likelihood figure, for a GPU box (see the README)")
    parser.add_argument("--config", type=Path, metavar="GRID.toml",
                        help="read the grid from a TOML file (keys as the flags, lists for axes, [set.MODEL] tables); flags override it")
    parser.add_argument("--models", type=name_list, help="comma-separated model names (default: the preset's, else all registered)")
    parser.add_argument("--datasets", type=name_list, help=f"comma-separated datasets among {', '.join(DATASETS)} (default: the preset's)")
    parser.add_argument("--seeds", type=whole_number("seeds"), help="number of seeds per model, 0..N-1 (default: the preset's)")
    parser.add_argument("--epochs", type=whole_numbers("epochs"), help="training epochs, or a comma-separated list to sweep (default: the preset's)")
    parser.add_argument("--latent-dim", type=whole_numbers("latent_dim"), help=f"latent size, or a list to sweep, e.g. 2,8,16,32 (default: {DEFAULT_LATENT_DIM})")
    parser.add_argument("--batch-size", type=whole_numbers("batch_size"), help="training batch size, or a list (default: the preset's)")
    parser.add_argument("--train-limit", type=whole_numbers("train_limit"), help="use the first N training images, or a list (default: the preset's)")
    parser.add_argument("--test-limit", type=whole_numbers("test_limit"), help="score on the first N test images, or a list (default: the preset's)")
    parser.add_argument("--is-samples", type=whole_numbers("is_samples"), help=f"importance samples K of the likelihood nll_is, or a list (default: the preset's, else {DEFAULT_IS_SAMPLES})")
    parser.add_argument("--set", type=set_spec, action="append", default=[], metavar="MODEL.PARAM=V1[,V2...]", dest="settings",
                        help="set a model parameter, or sweep it over a list (repeatable; *.PARAM: every model that has it), "
                             "e.g. vae_mse.obs_std=0.05,0.1 or *.beta=0.5,1,2")
    parser.add_argument("--data-dir", help=f"folder with <dataset>/*-ubyte.gz files or tensorflow-datasets folders (default: ${DATA_DIR_ENV}, else {default_data_dir()}, filled on first use)")
    parser.add_argument("--out", type=Path, help="output folder (default: reports/<preset>)")  # fmt: skip


def add_training_arguments(parser: ArgumentParser) -> None:
    """What is done with the units and how they train: retraining, reuse of stale results,
    planning or controls only, plugins, precision, compile path, the score split."""
    parser.add_argument("--force", action="store_true", help="retrain every unit from the start, complete or not (default: skip complete units, resume unfinished ones)")
    parser.add_argument("--reuse-stale", action="store_true",
                        help="keep the results of units whose model settings or code changed since they were trained, marked stale=true (default: train them anew)")
    parser.add_argument("--plan", action="store_true", help="print the grid's units and what would be done with each, then exit without training or writing")
    parser.add_argument("--controls-only", action="store_true",
                        help="train nothing: score the control image sets of each dataset at the given limits, "
                             "print them and which scores this setting can rank, write controls.csv, exit")  # fmt: skip
    parser.add_argument("--plugins", type=name_list, metavar="MODULE[,MODULE]",
                        help=f"import these modules first; each may register extra models with models.register_model (they must be importable, e.g. through PYTHONPATH; default: ${PLUGINS_ENV})")
    parser.add_argument("--precision", choices=PRECISION_CHOICES, default="auto",
                        help="arithmetic: auto (default: mixed_bfloat16 where the device has fast bfloat16, a CPU with AMX or AVX-512 BF16 or a GPU of compute capability 8.0+, else float32), float32, or mixed_bfloat16 (float32 variables, bfloat16 compute)")
    parser.add_argument("--jit", choices=JIT_CHOICES, default="auto",
                        help="XLA compilation: auto (default: on with JAX, and with TensorFlow on a GPU; off, plain graph mode, with TensorFlow on a CPU), on, off")
    parser.add_argument("--score-split", choices=SCORE_SPLITS, default="test",
                        help="score on the test split (default; the final scores) or on half the validation split, "
                             "to choose settings without looking at the test split")  # fmt: skip
    parser.add_argument("--steps-per-execution", type=whole_number("steps_per_execution"), default=DEFAULT_STEPS_PER_EXECUTION,
                        help=f"training steps per compiled call: fewer round trips between host and device (default: {DEFAULT_STEPS_PER_EXECUTION})")  # fmt: skip


def add_execution_arguments(parser: ArgumentParser) -> None:
    """Where the units run: worker processes, GPUs, the executor and its Ray cluster."""
    parser.add_argument("--workers", type=whole_number("workers"), metavar="N",
                        help="train N units at a time, each in a process of its own (default: 1, one after another in this process; "
                             "with --executor ray: as many as the cluster fits)")
    parser.add_argument("--devices", type=device_list, metavar="auto|I,J,...",
                        help="GPUs the workers take in turn, by index, several workers per GPU allowed "
                             "(default: auto, every visible GPU, else the CPU)")
    parser.add_argument("--executor", choices=EXECUTORS, default="local",
                        help="where units run: local (default: this machine) or ray (each unit a Ray task; "
                             'needs pip install -e ".[ray]" and the output folder on storage every node shares)')
    parser.add_argument("--ray-address", metavar="ADDRESS",
                        help="the Ray cluster to use, e.g. auto or HEAD:6379 (default: start a local Ray instance)")
    parser.add_argument("--gpus-per-unit", type=gpu_fraction, metavar="G",
                        help="GPUs of each unit's Ray task, fractions allowed: 0.25 puts four units on a GPU "
                             "(default: 1 when the cluster has GPUs, else 0)")  # fmt: skip


def resolve(args: argparse.Namespace, backend: str) -> RunConfig:
    """The grid: flags override the grid file (``--config``), which overrides the preset;
    names and model parameters checked against the registries."""
    import models  # imports Keras: only once the arguments are known to parse

    grid = load_grid_file(args.config) if args.config is not None else {}
    preset_name = args.preset or grid.get("preset") or "full"
    preset = known_preset(preset_name)

    def pick(key, default=None):
        value = getattr(args, key, None)
        if value is not None:
            return value
        return grid.get(key, preset.get(key, default))

    model_names = pick("models") or tuple(models.list_models())
    datasets = pick("datasets")
    check_names(model_names, datasets, args)
    data_dir = pick("data_dir")
    resolve_data_dir(data_dir)  # a data directory that was named must exist
    out = Path(pick("out", Path("reports") / preset_name))
    check_out(out)
    settings = check_settings(
        [
            (f"preset {preset_name}", preset.get("set", {}), False),
            (f"grid file {args.config.name}" if args.config else "grid file", grid.get("set", {}), False),
            ("--set", flag_settings(args.settings), True),
        ],
        tuple(model_names),
        plugin_names(args),
    )
    from benchmark.running.device import detect, resolve_jit, resolve_precision

    # Probed once the input has passed: a TensorFlow without a GPU logs its search to stderr.
    with quiet_native_stderr(not args.verbose):
        device = detect(backend)
        execution = resolve_execution(args, backend)
    return RunConfig(
        models=tuple(model_names),
        datasets=tuple(datasets),
        seeds=pick("seeds"),
        out=out,
        preset=preset_name,
        backend=backend,
        data_dir=data_dir,
        force=args.force,
        plugins=plugin_names(args),
        model_settings=settings,
        reuse_stale=args.reuse_stale,
        **{key: pick(key, RUN_DEFAULTS.get(key)) for key in RUN_AXES},
        precision=resolve_precision(args.precision, device),
        jit=resolve_jit(args.jit, backend, device),
        steps_per_execution=args.steps_per_execution,
        score_split=args.score_split,
        **execution,
    )


def known_preset(name: str) -> dict[str, Any]:
    """The preset ``name``; ``UsageError`` naming the known ones if there is none."""
    if name not in PRESETS:
        known = ", ".join(sorted(PRESETS))
        raise UsageError(f"unknown preset {name!r}{did_you_mean(name, PRESETS)}; known presets: {known}")
    return PRESETS[name]


def check_names(model_names: tuple[str, ...], datasets: tuple[str, ...], args: argparse.Namespace) -> None:
    """``UsageError`` for a model or dataset that is not registered (the hint for a model
    names the plugins of ``args``), or a dataset this machine cannot read."""
    import models  # imports Keras: only once the arguments are known to parse

    for name in model_names:
        if not models.is_model(name):
            raise UsageError(models.registry.unknown_model_message(name, plugin_names(args)))
    for name in datasets:
        if name not in DATASETS:
            raise UsageError(unknown_dataset_message(name))
    check_tensorflow(datasets)


def check_out(out: Path) -> None:
    """``UsageError`` when the output folder ``out`` cannot be one (an existing file, a name
    the file system refuses)."""
    try:
        if out.exists() and not out.is_dir():
            raise UsageError(f"output directory {str(out)!r} is a file, not a folder")
    except OSError as exc:  # e.g. a name too long for the file system
        raise UsageError(f"output directory {str(out)!r} cannot be used: {exc.strerror}") from None


def check_tensorflow(datasets: tuple[str, ...]) -> None:
    """``UsageError`` when a dataset read through tensorflow-datasets is asked for on a machine
    without it (a JAX box may lack TensorFlow; the other datasets need neither)."""
    needing = [name for name in datasets if name in TFDS_IMAGES]
    missing = tensorflow_missing() if needing else []
    if missing:
        raise UsageError(
            f"{', '.join(needing)} {'is' if len(needing) == 1 else 'are'} read through tensorflow-datasets, "
            f"which needs {' and '.join(missing)}, not installed here: pip install tensorflow "
            f"tensorflow-datasets, or choose among {', '.join(d for d in DATASETS if d not in TFDS_IMAGES)}"
        )


def resolve_execution(args: argparse.Namespace, backend: str) -> dict[str, Any]:
    """``--workers``, ``--devices``, ``--executor`` and the Ray flags, checked together."""
    from benchmark.running.executors import import_ray, resolve_devices

    if args.executor == "ray":
        if args.devices is not None:
            raise UsageError("--devices is for --executor local; Ray gives each unit --gpus-per-unit GPUs")
        import_ray()
        return {"executor": "ray", "workers": args.workers, "ray_address": args.ray_address,
                "gpus_per_unit": args.gpus_per_unit}  # fmt: skip
    for flag, value in (("--ray-address", args.ray_address), ("--gpus-per-unit", args.gpus_per_unit)):
        if value is not None:
            raise UsageError(f"{flag} is for --executor ray")
    return {"executor": "local", "workers": args.workers or 1, "devices": resolve_devices(args.devices, backend)}


def parallel(args: argparse.Namespace) -> bool:
    """Whether the command runs units in worker processes (not one by one in this one)."""
    return args.executor == "ray" or (args.workers or 1) > 1


def plugin_names(args: argparse.Namespace) -> tuple[str, ...]:
    """``--plugins``, else the grid file's ``plugins``, else ``$VAEBENCH_PLUGINS``."""
    if args.plugins is not None:
        return args.plugins
    if args.config is not None and (names := load_grid_file(args.config).get("plugins")):
        return tuple(names)
    return tuple(n.strip() for n in os.environ.get(PLUGINS_ENV, "").split(",") if n.strip())


def command_record(argv: list[str]) -> dict[str, Any]:
    """What repeats this run: the command line, where it ran, and the settings from the environment."""
    return {
        "argv": [program_name(), *argv],
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
    prog = program_name()
    if argv[:1] == ["fetch"]:
        from benchmark.fetch_command import fetch_main

        return fetch_main(argv[1:], prog)
    args = build_parser(prog).parse_args(argv)
    if not args.verbose:
        # Read by TensorFlow when it is imported, which happens only after this.
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from benchmark.running.executors import driver_environment

    # Before the backend starts: a driver leaves the GPUs' memory to its workers.
    with driver_environment(parallel(args)):
        return run_reporting_errors(args, argv, prog)


def run_reporting_errors(args: argparse.Namespace, argv: list[str], prog: str) -> int:
    """``run``, with bad input and Ctrl-C turned into a line on stderr and an exit status."""
    try:
        with interruptible():
            return run(args, argv)
    except (UsageError, OSError) as exc:
        # OSError: a path the system refuses (too long, unreadable) or a full disk; its
        # message names the file, and a traceback would add nothing for the user.
        print(f"{prog}: error: {one_line(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; complete units are kept (and listed in the tables), "
              "the command resumes the rest when repeated", file=sys.stderr)  # fmt: skip
        return 130


def compare(a: Path, b: Path) -> int:
    """``--compare A B``: the table of differences, printed and written into B."""
    from benchmark.reporting.compare import compare_runs

    table, path = compare_runs(a, b)
    print(f"B - A per dataset, model and score (A: {a}, B: {b}):")
    print(table.to_markdown(index=False, floatfmt=".4g") if len(table) else "(no scores in common)")
    print(f"\nWritten to {path}")
    return 0


def run(args: argparse.Namespace, argv: list[str]) -> int:
    """The command ``args`` (parsed from ``argv``): compare two runs, list the models, score
    the controls, or plan or run the grid and write its tables and report. Returns the exit
    status (0 done, 1 some unit failed or the report could not be drawn)."""
    if args.compare:
        return compare(*args.compare)
    quiet = not args.verbose
    with quiet_native_stderr(quiet):
        import keras

        import models

        import_tensorflow()
        load_plugins(plugin_names(args))
    if args.list_models:
        print("\n".join(models.list_models()))
        return 0
    from benchmark.controls_command import controls_only
    from benchmark.reporting.aggregate import write_tables
    from benchmark.running.driver import GridInterrupted, run_grid
    from benchmark.running.environment import device_line, environment

    def probe() -> dict[str, Any]:
        # Probing the devices is when TensorFlow looks for CUDA, and says so on stderr.
        with quiet_native_stderr(quiet):
            env = environment()
        print(device_line(env, config.precision, config.jit), flush=True)
        return env

    config = resolve(args, keras.backend.backend())
    if args.controls_only:
        return controls_only(config, quiet)
    verbose = 0 if args.quiet else (1 if sys.stdout.isatty() else 2)
    try:
        rows = run_grid(config, environment=probe, verbose=verbose, command=command_record(argv),
                        dry_run=args.plan)  # fmt: skip
    except GridInterrupted as stop:  # the tables of the units complete so far, then exit 130
        write_tables(stop.rows, config.out, axes=config.axes)
        raise
    if args.plan:
        return 0
    return write_outputs(config, rows, quiet)


def write_outputs(config: RunConfig, rows: list[dict[str, Any]], quiet: bool) -> int:
    """Score the controls, write the tables of ``rows`` (one per unit) and the report into
    ``config.out``, and print the headline. Returns the exit status: 1 when the report could
    not be drawn or a unit failed, else 0."""
    from benchmark.controls_command import failed_by_dataset, score_controls
    from benchmark.reporting.aggregate import write_tables
    from benchmark.reporting.headline import changed_settings, headline_markdown
    from benchmark.reporting.report import write_report

    checks = score_controls(config, quiet)
    failed = failed_by_dataset(checks)
    results, summary, _ = write_tables(
        rows, config.out, axes=config.axes, verdicts=checks,
        headline=lambda s, r: headline_markdown(s, r, config.axes, failed),
    )  # fmt: skip
    if len(summary):
        text = headline_markdown(summary, None, config.axes, failed)
        print(f"\nHeadline ({config.out}; every score in summary.md and report.html):\n\n{text}")
        print(changed_settings(results))
    else:
        print(f"\nNo unit finished: nothing to summarize ({config.out / 'results.csv'} lists the failures)")
    try:
        print(f"Report: {write_report(config.out, results, summary, axes=config.axes)}")
    except Exception as exc:
        # The tables are written: a page that cannot be drawn must not hide them behind a traceback.
        (config.out / "report-traceback.txt").write_text(traceback.format_exc())
        print(f"{program_name()}: report.html not written ({type(exc).__name__}: {one_line(str(exc))}; "
              f"see report-traceback.txt); the tables are in {config.out}", file=sys.stderr)  # fmt: skip
        return 1
    return report_failures(results)


def report_failures(results: Any) -> int:
    """Name each failed unit of ``results`` on stderr, one line each; 1 if any failed, else 0."""
    from benchmark.reporting.report import failures

    failed = failures(results)
    if not failed:
        return 0
    prog = program_name()
    print(f"{prog}: {len(failed)} unit(s) failed: {', '.join(f['unit_id'] for f in failed)}", file=sys.stderr)
    for f in failed:
        print(f"{prog}: failed: {f['model']} seed {f['seed']} on {f['dataset']}: {one_line(f['error'])} "
              f"(units/{f['unit_id']}/traceback.txt)", file=sys.stderr)  # fmt: skip
    return 1
