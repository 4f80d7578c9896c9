"""Configurations: presets, one training unit, and a whole run (a grid of units).

Everything a result depends on is in ``UnitConfig``; its hash names the unit's directory, so
a changed setting never reuses a stale result.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmark.errors import UsageError

#: Named grids. ``full`` (the default) is what a GPU box is for; ``quick`` is the MNIST
#: comparison that fits a laptop CPU; ``smoke`` takes seconds, for tests.
PRESETS: dict[str, dict[str, Any]] = {
    "smoke": {
        "datasets": ("digits",),
        "seeds": 1,
        "epochs": 2,
        "batch_size": 64,
        "train_limit": None,
        "test_limit": None,
    },
    "quick": {
        "datasets": ("mnist",),
        "seeds": 1,
        "epochs": 5,
        "batch_size": 128,
        "train_limit": 30000,
        "test_limit": None,
    },
    "full": {
        "datasets": ("mnist", "fashion_mnist"),
        "seeds": 3,
        "epochs": 20,
        "batch_size": 128,
        "train_limit": None,
        "test_limit": None,
    },
    # The likelihood figure of the literature: the Bernoulli VAE on dynamically binarized
    # MNIST, batch 100 and 50 latent units as in Burda et al. (2016), scored with K = 5000.
    # For a GPU box: hundreds of epochs (Burda et al. trained 3,280; most of the gain comes
    # in the first few hundred).
    "likelihood": {
        "datasets": ("binarized_mnist",),
        "models": ("vae_bernoulli",),
        "seeds": 1,
        "epochs": 500,
        "batch_size": 100,
        "latent_dim": 50,
        "train_limit": None,
        "test_limit": None,
        "is_samples": 5000,
    },
}

DEFAULT_LATENT_DIM = 16

#: K of the importance-sampled likelihood (``benchmark.likelihood``) where a preset sets none:
#: on 10,000 MNIST test images it took 2.7 s on a 2-core CPU, a few percent of a quick unit
#: (about 100 s of training); see the README.
DEFAULT_IS_SAMPLES = 5

#: The allowed range of each whole-number setting of a run, checked in one place
#: (``RunConfig.__post_init__``). Upper bounds stop a typo (an extra zero or three) from
#: exhausting memory before the first unit starts; a ``None`` limit means "all images".
RANGES: dict[str, tuple[int, int]] = {
    "seeds": (1, 1000),
    "epochs": (1, 100_000),
    "latent_dim": (1, 4096),
    "batch_size": (1, 1_000_000),
    "train_limit": (1, 10**9),
    "test_limit": (1, 10**9),
    "is_samples": (1, 10**6),
}

#: Training examples whose latent means train the latent-space classifiers (scikit-learn);
#: enough for stable accuracies, small enough that scoring costs seconds.
CLASSIFIER_TRAIN_SIZE = 10000


@dataclass(frozen=True)
class UnitConfig:
    """One training unit: a model trained on a dataset with a seed, then scored."""

    model: str
    dataset: str
    seed: int
    epochs: int
    latent_dim: int
    batch_size: int
    train_limit: int | None
    test_limit: int | None
    backend: str
    model_config: dict[str, Any] = field(default_factory=dict)
    #: K of the importance-sampled likelihood (``nll_is``).
    is_samples: int = DEFAULT_IS_SAMPLES

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def unit_id(self) -> str:
        """``<model>-<dataset>-s<seed>-<hash>``: readable, and unique per resolved config."""
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return f"{self.model}-{self.dataset}-s{self.seed}-{hashlib.sha256(blob).hexdigest()[:8]}"


@dataclass(frozen=True)
class RunConfig:
    """A grid of units and where its results go."""

    models: tuple[str, ...]
    datasets: tuple[str, ...]
    seeds: int
    epochs: int
    latent_dim: int
    batch_size: int
    train_limit: int | None
    test_limit: int | None
    out: Path
    preset: str
    backend: str
    data_dir: str | None = None
    force: bool = False
    plugins: tuple[str, ...] = ()
    is_samples: int = DEFAULT_IS_SAMPLES

    def __post_init__(self):
        """Reject out-of-range numbers and empty name lists with a ``UsageError``."""
        for name, (low, high) in RANGES.items():
            value = getattr(self, name)
            if value is None and name.endswith("_limit"):
                continue
            if isinstance(value, bool) or not isinstance(value, int):
                raise UsageError(f"--{_flag(name)} must be a whole number, got {value!r}")
            if not low <= value <= high:
                raise UsageError(
                    f"--{_flag(name)} must be at least {low} and at most {high}, got {value}"
                )
        for name in ("models", "datasets"):
            if not getattr(self, name):
                raise UsageError(f"--{name} names nothing")

    def units(self) -> list[UnitConfig]:
        """Every (dataset, model, seed) unit, in the order they are trained."""
        return [
            UnitConfig(
                model=model,
                dataset=dataset,
                seed=seed,
                epochs=self.epochs,
                latent_dim=self.latent_dim,
                batch_size=self.batch_size,
                train_limit=self.train_limit,
                test_limit=self.test_limit,
                backend=self.backend,
                is_samples=self.is_samples,
            )
            for dataset in self.datasets
            for model in self.models
            for seed in range(self.seeds)
        ]

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["out"] = str(self.out)
        return d


def _flag(name: str) -> str:
    return name.replace("_", "-")
