"""Property-based tests of the command line: no argument list ends in a traceback.

``benchmark.cli.main`` runs in this process on argument lists built from the parser's real
flags with junk values. Training and scoring never start: ``run_grid`` and ``controls_only``
are replaced by a stub that stops the call once the input has passed validation, and checks
what reached it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from benchmark import cli
from benchmark.data.datasets import DATASETS
from benchmark.running.config import RANGES, RunConfig


class ReachedTraining(Exception):
    """Raised by the stub ``run_grid``: the arguments were accepted."""


def parser_flags() -> tuple[list[str], list[str]]:
    """The parser's (flags taking values, flags taking none), read from the parser itself."""
    with_value, without = [], []
    for action in cli.build_parser()._actions:
        flags = [f for f in action.option_strings if f.startswith("--")]
        (without if action.nargs == 0 else with_value).extend(flags)
    return with_value, without


VALUE_FLAGS, SWITCHES = parser_flags()

NAMES = ["ae", "vae_mse", "vae_bernoulli", "vae_gan", *DATASETS, "smoke", "quick", "full"]

numbers = st.one_of(
    st.integers(min_value=1, max_value=64),  # plausible, so that some argv lists pass
    st.integers(min_value=-(10**6), max_value=10**6),
    st.sampled_from([0, -1, 1, 2**31, 2**63, 10**12, *[hi for _, hi in RANGES.values()]]),
    st.sampled_from([hi + 1 for _, hi in RANGES.values()]),
).map(str)

junk_text = st.one_of(
    st.text(max_size=12),
    # Lone surrogates: what Python makes of argv bytes that are not UTF-8.
    st.text(st.characters(min_codepoint=0xDC80, max_codepoint=0xDCFF), min_size=1, max_size=3),
    st.sampled_from(["", " ", ",", ",,", "-1", "1e3", "nan", "inf", "0x10", "1_000", "٣", "9" * 5000]),
)

names = st.lists(st.one_of(st.sampled_from(NAMES), junk_text), min_size=1, max_size=3).map(",".join)

# Plugin values stay away from importable junk (a module such as ``antigravity`` has effects).
plugins = st.one_of(
    st.sampled_from(["", ",", "..", ".x", "x..y", "benchmark.no_such_module", "benchmark.errors"]),
    st.text("abcxyz_", min_size=1, max_size=8).map(lambda t: f"vaebench_fuzz_{t}"),
)


@st.composite
def paths(draw: st.DrawFn) -> str:
    """Folders and files that exist, do not, or cannot (a path under a file, a NUL byte)."""
    return draw(st.sampled_from(["sandbox", "sandbox/file.txt", "sandbox/file.txt/below",
                                 "sandbox/missing/deeper", "a\x00b", ""]))  # fmt: skip


def value_for(flag: str) -> st.SearchStrategy[str]:
    if flag == "--plugins":
        return plugins
    if flag in ("--out", "--data-dir", "--compare"):
        return st.one_of(paths(), junk_text)
    if flag in ("--models", "--datasets", "--preset"):
        return st.one_of(names, st.sampled_from(NAMES), junk_text)
    return st.one_of(numbers, names, junk_text)


@st.composite
def argv_lists(draw: st.DrawFn) -> list[str]:
    """A few flags in any order, each with a junk or plausible value, and stray tokens."""
    argv: list[str] = []
    for _ in range(draw(st.integers(0, 5))):
        kind = draw(st.sampled_from(["value", "value", "switch", "stray"]))
        if kind == "value":
            flag = draw(st.sampled_from(VALUE_FLAGS))
            count = 2 if flag == "--compare" else draw(st.sampled_from([1, 1, 1, 0]))
            argv += [flag, *(draw(value_for(flag)) for _ in range(count))]
        elif kind == "switch":
            argv.append(draw(st.sampled_from([s for s in SWITCHES if s != "--help"])))
        else:
            argv.append(draw(st.one_of(junk_text, st.sampled_from(["--", "-", "--epochs=3", "-x"]))))
    return argv


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A working directory with a folder and a file for the path values to point at."""
    root = tmp_path_factory.mktemp("fuzz")
    (root / "sandbox").mkdir()
    (root / "sandbox" / "file.txt").write_text("not a folder")
    return root


def stub_run_grid(run: RunConfig, *args, **kwargs) -> list:
    """Stands in for training (and for ``--controls-only``'s scoring): checks that only valid
    settings got this far."""
    for key, (low, high) in RANGES.items():
        values = getattr(run, key)
        for value in values if isinstance(values, tuple) else (values,):
            assert value is None or low <= value <= high, (key, value)
    assert set(run.datasets) <= set(DATASETS)
    assert not run.out.exists() or run.out.is_dir()
    raise ReachedTraining


def outcome(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[object, str]:
    """``main(argv)``'s exit status (or ``"trained"``) and its stderr."""
    try:
        status: object = cli.main(argv)
    except SystemExit as exc:
        status = exc.code
    except ReachedTraining:
        status = "trained"
    return status, capsys.readouterr().err


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(argv=argv_lists())
def test_no_argument_list_gives_a_traceback(argv: list[str], sandbox: Path, capsys) -> None:
    """Every argv ends in exit 0 or 2 (one error line) or reaches training; never raises."""
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(sandbox)  # relative junk paths land in the sandbox
        mp.setattr("benchmark.running.driver.run_grid", stub_run_grid)
        mp.setattr("benchmark.controls_command.controls_only", stub_run_grid)
        mp.delenv("VAEBENCH_PLUGINS", raising=False)
        status, err = outcome(argv, capsys)
    event(f"status {status}")
    assert status in (0, 2, "trained"), (status, err)
    assert "Traceback" not in err
    if status == 2:
        lines = err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("run_all.py: error: "), err
    assert not (sandbox / "sandbox" / "missing").exists()  # nothing created for bad input


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.sampled_from(sorted(RANGES)), value=st.integers(-(10**12), 10**12))
def test_whole_number_flags_accept_exactly_their_range(key: str, value: int) -> None:
    """The parser and ``RunConfig`` agree on one declared range per number."""
    low, high = RANGES[key]
    parse = cli.whole_number(key)
    if low <= value <= high:
        assert parse(str(value)) == value
    else:
        with pytest.raises(argparse.ArgumentTypeError, match="must be at least"):
            parse(str(value))
