"""The import graph of vaebench's own modules, read from the source (lazy imports inside
functions included): no module imports a layer above its own, and there is no import circle."""

import ast
import graphlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Layers from the bottom; a module belongs to the first entry whose name it starts with.
LAYERS = (
    ("benchmark.errors", "benchmark.interrupts", "benchmark.io", "benchmark.native_output", "benchmark.plugins"),
    ("benchmark.data",),
    ("models",),
    ("benchmark.running.config", "benchmark.running.device", "benchmark.running.identity",
     "benchmark.running.grid", "benchmark.running.progress", "benchmark.running.precision_record",
     "benchmark.running.checkpoints", "benchmark.running.train"),
    ("benchmark.scoring",),
    ("benchmark.running",),  # unit, plan, timing, precision, workers, executors, driver, controls
    ("benchmark.reporting",),
    ("benchmark.arguments", "benchmark.fetch_command", "benchmark.controls_command", "benchmark.cli", "benchmark.speed",
     "benchmark.reproductions", "run_all"),
)  # fmt: skip


def modules() -> dict[str, Path]:
    found = {"run_all": ROOT / "run_all.py"}
    for path in [*ROOT.glob("benchmark/**/*.py"), *ROOT.glob("models/*.py")]:
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        found[name.removesuffix(".__init__")] = path
    return found


def layer(name: str) -> int:
    for level, prefixes in enumerate(LAYERS):
        if any(name == p or name.startswith(p + ".") for p in prefixes):
            return level
    raise AssertionError(f"{name} is in no layer: add it to LAYERS")


def imports(path: Path, known: dict[str, Path]) -> set[str]:
    """The vaebench modules that ``path`` imports, anywhere in it."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                found.add(full if full in known else node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {m for m in found if m in known}


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(path, known) - {name} for name, path in known.items()}


def test_no_module_imports_a_layer_above_its_own(graph):
    upward = [f"{a} -> {b}" for a, deps in graph.items() for b in deps if layer(b) > layer(a)]
    assert not upward, upward


def test_there_is_no_import_circle(graph):
    graphlib.TopologicalSorter(graph).prepare()  # raises CycleError naming the circle


def test_the_checks_can_fail():
    with pytest.raises(graphlib.CycleError):
        graphlib.TopologicalSorter({"a": {"b"}, "b": {"a"}}).prepare()
    assert layer("benchmark.cli") > layer("benchmark.running.unit") > layer("benchmark.scoring.evaluate")
