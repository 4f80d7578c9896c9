"""Large image splits kept as uint8 (in memory or memory-mapped from disk) and seen as float32.

A 200,000-image split of 64x64x3 images is 2.5 GB as uint8 and 9.8 GB as float32. ``ImageArray``
keeps the uint8 array (typically ``np.load(..., mmap_mode="r")``) and converts only the rows
an index asks for, so memory is bounded by what is asked for at once: a batch.
"""

from __future__ import annotations

import hashlib

import numpy as np


class ImageArray:
    """(n, H, W, C) uint8 images read as float32 in [0, 1].

    ``x[key]`` (an int, a slice, an index array) returns a float32 ``np.ndarray`` of those rows
    only; ``x.rows(start, stop)`` returns another ``ImageArray`` without reading anything;
    ``np.asarray(x)`` converts the whole array (for splits known to be small).
    """

    dtype = np.dtype(np.float32)

    def __init__(self, raw: np.ndarray):
        if raw.dtype != np.uint8 or raw.ndim != 4:
            raise ValueError(f"expected (n, H, W, C) uint8 images, got {raw.dtype} {raw.shape}")
        self.raw = raw

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.raw.shape)

    @property
    def ndim(self) -> int:
        return 4

    def __len__(self) -> int:
        return len(self.raw)

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, np.ndarray) and key.dtype != bool and key.ndim == 1 and len(key) > 1:
            # A memory map reads sorted rows sequentially; put them back in the asked order.
            order = np.argsort(key, kind="stable")
            out = np.empty((len(key), *self.raw.shape[1:]), np.float32)
            out[order] = self.raw[key[order]]
        else:
            out = np.array(self.raw[key], np.float32)
        out /= np.float32(255.0)
        return out

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        return np.asarray(self[:], dtype=dtype)

    def rows(self, start: int | None, stop: int | None) -> ImageArray:
        """Rows ``start:stop``, still uint8 and unread."""
        return ImageArray(self.raw[start:stop])

    def digest_into(self, digest: hashlib._Hash, chunk: int = 4096) -> None:
        """Feed the uint8 bytes to ``digest``, ``chunk`` images at a time."""
        digest.update(f"uint8:{self.raw.shape}".encode())
        for i in range(0, len(self.raw), chunk):
            digest.update(np.ascontiguousarray(self.raw[i : i + chunk]).tobytes())


def rows(x, start: int | None, stop: int | None):
    """``x[start:stop]`` that stays an ``ImageArray`` (unread) when ``x`` is one."""
    return x.rows(start, stop) if isinstance(x, ImageArray) else x[start:stop]
