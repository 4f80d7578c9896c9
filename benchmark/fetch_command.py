"""``vaebench fetch [DATASET ...]``: download the IDX files of the datasets, check and store them."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from benchmark.arguments import PROG, ArgumentParser, one_line
from benchmark.data.datasets import DATA_DIR_ENV, default_data_dir
from benchmark.errors import UsageError


def build_fetch_parser(prog: str) -> ArgumentParser:
    from benchmark.data.fetch import FETCHABLE

    parser = ArgumentParser(
        prog=f"{prog} fetch",
        description="Download the original IDX files of the datasets, check each against its "
        "published SHA-256, and store them in the data folder, where runs find them.",
    )
    parser.add_argument("datasets", nargs="*", metavar="DATASET",
                        help=f"among {', '.join(FETCHABLE)} (default: all of them)")
    parser.add_argument("--data-dir", help=f"folder to store them in (default: ${DATA_DIR_ENV}, else {default_data_dir()})")
    parser.add_argument("--base-url", metavar="URL",
                        help="fetch <URL>/<dataset>/<file> instead: a mirror or a local server laid out like a "
                             "data folder (default: where each dataset is published)")
    return parser  # fmt: skip


def fetch_main(argv: list[str], prog: str = PROG) -> int:
    """``fetch [DATASET ...]``: download, verify and store; 2 with one line on any failure."""
    from benchmark.data.fetch import FETCHABLE, fetch

    args = build_fetch_parser(prog).parse_args(argv)
    chosen = args.data_dir or os.environ.get(DATA_DIR_ENV) or None
    root = Path(chosen).expanduser() if chosen else default_data_dir()
    try:
        fetch(tuple(dict.fromkeys(args.datasets)) or FETCHABLE, root, args.base_url)
    except (UsageError, OSError) as exc:
        print(f"{prog} fetch: error: {one_line(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog} fetch: interrupted; nothing half-written was kept", file=sys.stderr)
        return 130
    if chosen is None:
        print(f"Data folder: {root} (runs read it by default)")
    else:
        print(f"Data folder: {root} (runs read it with --data-dir {root} or {DATA_DIR_ENV}={root})")
    return 0
