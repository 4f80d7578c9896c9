"""Download the original IDX files of a dataset, check their SHA-256, and store them.

A dataset's four files are fetched from ``<base URL><file name>`` (``data.SOURCES``, or a
mirror laid out like a data folder: ``<base URL>/<dataset>/<file name>``), hashed while they
stream in, and renamed into ``<data folder>/<dataset>/`` together once all four match the
published SHA-256 (``data.SHA256``). A failure (no network, a server error, a wrong checksum)
leaves nothing behind: no partial file and no folder that was not there before.
"""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.request
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

from benchmark.data.idx import IDX_FILES, SHA256, SOURCES, has_files, sha256_of
from benchmark.errors import UsageError
from benchmark.io import atomic_path

#: Seconds to wait for the server to accept the connection, and then for each read.
TIMEOUT_SECONDS = 5.0

#: Bytes read at a time while downloading.
CHUNK = 1 << 20

FETCHABLE = tuple(SHA256)


def source_url(name: str, base_url: str | None = None) -> str:
    """Where ``name``'s files are: ``SOURCES[name]``, or ``<base_url>/<name>/`` for a mirror."""
    return SOURCES[name] if base_url is None else f"{base_url.rstrip('/')}/{name}/"


def file_urls(name: str, base_url: str | None = None) -> dict[str, str]:
    """File name -> URL of each of ``name``'s files."""
    base = source_url(name, base_url)
    return {filename: base + filename for filename in IDX_FILES.values()}


def download(url: str, path: Path, expected_sha256: str) -> int:
    """Stream ``url`` into ``path`` and check its SHA-256; returns the number of bytes.

    Raises UsageError (one line) when the server cannot be reached or answers with an
    error, or when the bytes are not the published ones.
    """
    digest = hashlib.sha256()
    size = 0
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response, open(path, "wb") as f:
            for block in iter(lambda: response.read(CHUNK), b""):
                digest.update(block)
                f.write(block)
                size += len(block)
    except urllib.error.HTTPError as exc:
        raise UsageError(f"cannot download {url}: the server answered {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise UsageError(f"cannot download {url}: {_reason(exc.reason)}") from None
    except (OSError, ValueError) as exc:  # a timeout or a reset mid-transfer; a malformed URL
        raise UsageError(f"cannot download {url}: {_reason(exc)}") from None
    if digest.hexdigest() != expected_sha256:
        raise UsageError(
            f"{url} is not the published file (its SHA-256 differs: corrupted or altered); nothing was kept"
        )
    return size


def _reason(exc: object) -> str:
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return text if text != "timed out" else f"no answer within {TIMEOUT_SECONDS:g} s"


def fetch_dataset(
    name: str, root: Path, base_url: str | None = None, *, say: Callable[[str], None] = print
) -> Path:
    """Download ``name``'s files into ``root/<name>/`` unless they are there and intact.

    Returns the dataset's folder. All four files are renamed into place only once every one
    has downloaded and matched its checksum; on failure the folders this call created are
    removed again.
    """
    folder = root / name
    expected = SHA256[name]
    if has_files(name, root) and all(sha256_of(folder / f) == h for f, h in expected.items()):
        say(f"{name}: already in {folder} (checksums verified)")
        return folder
    created = [p for p in (folder, *folder.parents) if not p.exists()]
    try:
        total = 0
        with ExitStack() as files:
            for filename, url in file_urls(name, base_url).items():
                tmp = files.enter_context(atomic_path(folder / filename))
                size = download(url, tmp, expected[filename])
                total += size
                say(f"  {filename}: {_megabytes(size)}, SHA-256 verified")
    except BaseException:
        for path in created:  # innermost first
            try:
                path.rmdir()
            except OSError:
                break  # not empty or not ours to remove
        raise
    say(f"{name}: {_megabytes(total)} downloaded and verified, in {folder}")
    return folder


def _megabytes(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def fetch(
    names: tuple[str, ...], root: Path, base_url: str | None = None, *, say: Callable[[str], None] = print
) -> list[Path]:
    """``fetch_dataset`` for each of ``names``; unknown or file-less names are a UsageError."""
    for name in names:
        if name not in FETCHABLE:
            raise UsageError(f"cannot fetch {name!r}: the datasets with files are {', '.join(FETCHABLE)}")
    folders = []
    for name in names:
        say(f"fetching {name} from {source_url(name, base_url)}")
        folders.append(fetch_dataset(name, root, base_url, say=say))
    return folders


def fetch_on_first_use(name: str, root: Path) -> None:
    """Fill the default data folder ``root`` with ``name``'s files, saying so; a UsageError
    telling how to get them when the download fails."""
    print(f"{name} is not in {root} yet: downloading it once from {SOURCES[name]}", flush=True)
    try:
        fetch_dataset(name, root, say=lambda line: print(line, flush=True))
    except UsageError as exc:
        raise UsageError(
            f"no {name} data ({exc}); run `vaebench fetch {name}` where there is network, "
            f"or set VAEBENCH_DATA_DIR to a folder holding {name}/*-ubyte.gz"
        ) from None
