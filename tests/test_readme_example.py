"""The README's worked example of adding a variant runs as written."""

import re
import types
from pathlib import Path

import keras
import numpy as np
import pytest

from models import registry

README = Path(__file__).resolve().parents[1] / "README.md"

pytestmark = pytest.mark.backend


def test_readme_variant_registers_trains_and_saves(monkeypatch, tmp_path, harness_jit):
    section = README.read_text().split("## Adding a variant", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.setattr(registry, "_MODELS", dict(registry._MODELS))
    module = types.ModuleType("vae_laplace_example")
    exec(compile(code, str(README), "exec"), module.__dict__)

    assert "vae_laplace" in registry.list_models()
    model = registry.create_model("vae_laplace", (8, 8, 1), latent_dim=3, seed=0, scale=0.2)
    model.compile(optimizer=model.make_optimizer(), jit_compile=harness_jit)
    x = np.random.default_rng(0).random((8, 8, 8, 1)).astype("float32")
    history = model.fit(x, batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][-1]) and history.history["nll"][-1] > 0
    model.save(tmp_path / "m.keras")
    assert keras.saving.load_model(tmp_path / "m.keras").get_config()["scale"] == 0.2
