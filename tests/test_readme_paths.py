"""The README names no path outside the repository: its commands work from any checkout."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_names_no_path_outside_the_repository() -> None:
    text = README.read_text()
    outside = re.findall(r"(?<![\w.])\.\./\S*|/work/\S*|/home/\S*", text)
    assert outside == []
