"""Quiet start-up of the backends: TensorFlow's native log lines held back, and TensorFlow
imported (when installed) where its noise can be held back."""

from __future__ import annotations

import importlib.util
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress

#: Start-up lines of TensorFlow and XLA that say nothing about the run: absl's notice, its
#: info and warning lines (oneDNN, CPU features, XLA services), the CPU-feature hint, and
#: errors about CUDA libraries or drivers that a machine without a GPU lacks.
NATIVE_NOISE = re.compile(
    r"WARNING: All log messages before absl::InitializeLog"
    r"|[IW]\d{4} [\d:.]+\s+\d+ \S+:\d+\]"
    r"|E\d{4} .*(cuda|cuinit|cudnn|cufft|cublas|tensorrt)"
    r"|To enable the following instructions:",
    re.IGNORECASE,
)


@contextmanager
def quiet_native_stderr(enabled: bool = True) -> Iterator[None]:
    """Hold back TensorFlow's start-up lines written to stderr meanwhile; pass on the rest.

    TensorFlow 2.21 logs its start-up lines (oneDNN, CPU features, CUDA stubs, a failed
    ``cuInit`` on a machine without GPU) from native code, some before its logging honours
    TF_CPP_MIN_LOG_LEVEL, so the file descriptor itself is redirected to a temporary file.
    When the block ends, every line that is not ``NATIVE_NOISE`` (a Python warning, a real
    error) is written to stderr; a traceback still shows, after them.
    """
    if not enabled:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            lines = capture.read().decode("utf-8", "replace").splitlines(keepends=True)
            kept = "".join(line for line in lines if not NATIVE_NOISE.match(line))
            if kept:
                sys.stderr.write(kept)
                sys.stderr.flush()


def import_tensorflow() -> None:
    """Import TensorFlow now, if it is installed, whatever the backend.

    Keras' data pipeline imports it under the JAX backend too, during the first epoch;
    imported here, inside a quiet block, its start-up lines are held back. (Its runtime is
    not started: under JAX it would claim GPU memory.)
    """
    # A JAX box may lack TensorFlow: Keras then reads the data without tf.data.
    with suppress(ImportError):
        import tensorflow  # noqa: F401


def tensorflow_missing() -> list[str]:
    """The packages, of TensorFlow and tensorflow-datasets, that cannot be imported here.

    Found without importing tensorflow-datasets, which is slow; an import hook that refuses
    them counts as missing.
    """
    missing = []
    for module, package in (("tensorflow", "tensorflow"), ("tensorflow_datasets", "tensorflow-datasets")):
        try:
            found = module in sys.modules or importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(package)
    return missing
