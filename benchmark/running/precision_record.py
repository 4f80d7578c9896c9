"""How a unit's precision was chosen, kept beside it: ``<unit>/precision.json``, written when
the grid is planned (``benchmark.running.autoprecision``) and read into the unit's row
(``benchmark.running.unit``), and the hint a unit that failed in bfloat16 gets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmark.io import read_json_or_none, write_json
from benchmark.running.config import UnitConfig

SIDECAR = "precision.json"
BFLOAT16 = "mixed_bfloat16"


def write_records(records: dict[str, dict[str, Any]], units_dir: Path) -> None:
    """Each unit's precision record (unit id -> record) into its folder, for its row; an
    empty record (a precision chosen by the user) removes an older one."""
    for unit_id, record in records.items():
        path = units_dir / unit_id / SIDECAR
        if record:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_json(path, record)
        else:
            path.unlink(missing_ok=True)


def unit_record(unit_dir: Path) -> dict[str, Any]:
    """The precision record of the unit in ``unit_dir`` ({} without one)."""
    record = read_json_or_none(unit_dir / SIDECAR)
    return record if isinstance(record, dict) else {}


def failure_hint(config: UnitConfig) -> dict[str, str]:
    """A hint for the row of a unit that failed in ``mixed_bfloat16`` (many models written for
    float32 mix a float32 weight with a bfloat16 activation), else nothing."""
    if config.precision != BFLOAT16:
        return {}
    return {"hint": "the unit computed in mixed_bfloat16; try --precision float32"}
