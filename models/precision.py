"""Mixed precision: build a model under a Keras dtype policy, and bring outputs back to float32.

Under ``mixed_bfloat16`` every layer keeps its variables in float32 and computes in bfloat16.
The models then draw their noise in the compute dtype, and cast logits, means, log-variances
and discriminator features to float32 (``as_float32``) before any loss, KL, likelihood or
score: bfloat16 keeps 8 significant bits, too few for a sum over 784 pixels.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import keras
from keras import ops

#: The precisions a model can be built in (names of Keras dtype policies).
PRECISIONS = ("float32", "mixed_bfloat16")


def as_float32(x):
    """``x`` cast to float32 (a no-op on float32 tensors)."""
    return ops.cast(x, "float32")


@contextmanager
def dtype_policy(name: str) -> Iterator[None]:
    """Keras' global dtype policy set to ``name`` inside the block, restored after it.

    Layers take the policy in force when they are created and keep it (it is saved with them),
    so building a model inside the block is enough; nothing global outlives it.
    """
    if name not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {name!r}")
    saved = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(saved)
