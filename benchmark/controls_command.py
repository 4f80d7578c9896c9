"""The run's control sets from the command line: scored after the grid (their verdicts decide
what is ranked) or alone (``--controls-only``)."""

from __future__ import annotations

import sys
from typing import Any

from benchmark.arguments import one_line, program_name
from benchmark.errors import UsageError
from benchmark.native_output import quiet_native_stderr


def failed_by_dataset(checks: Any) -> dict[str, dict[str, str]]:
    """``{dataset: {score: why}}`` of the scores that failed their control sets."""
    from benchmark.scoring.verdicts import failed_scores

    if checks is None or checks.empty:
        return {}
    return {d: failed_scores(checks, d) for d in checks["dataset"].unique()}


def score_controls(config: Any, quiet: bool) -> Any:
    """The verdicts of the run's control sets (``controls.csv``); None, with one line on stderr,
    when they cannot be scored: the units' results are written all the same, ranked unchecked."""
    from benchmark.running.controls_run import controls_for_run
    from benchmark.scoring.verdicts import verdicts

    try:
        with quiet_native_stderr(quiet):
            return verdicts(controls_for_run(config))
    except (KeyboardInterrupt, UsageError):
        raise
    except Exception as exc:
        print(f"{program_name()}: the control sets could not be scored ({type(exc).__name__}: {one_line(str(exc))}); "
              "scores are ranked without their checks", file=sys.stderr)  # fmt: skip
        return None


def controls_only(config: Any, quiet: bool) -> int:
    """``--controls-only``: score and print the control sets, train nothing."""
    from benchmark.io import run_lock
    from benchmark.reporting.controls_table import controls_text
    from benchmark.running.controls_run import controls_for_run

    with run_lock(config.out), quiet_native_stderr(quiet):
        controls = controls_for_run(config)
    if controls.empty:
        print(f"{program_name()}: no control set could be built (see the lines above)", file=sys.stderr)
        return 1
    print(controls_text(controls))
    print(f"Written: {config.out / 'controls.csv'}")
    return 0
