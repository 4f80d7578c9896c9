"""Configurations: presets, one training unit, and a whole run (a grid of units).

Everything a result depends on is in ``UnitConfig``: the settings the run chose and, filled
in by ``benchmark.running.identity`` before training, the resolved model configuration, a
fingerprint of the model's code, the data's identity and the vaebench version. Its hash
names the unit's directory, so a changed setting, default or model never reuses a stale
result.

A run is a grid: every run-level setting in ``RUN_AXES`` and every model parameter set with
``--set`` may take several values, and the units are their product (per model, over the
parameters it has) times the seeds.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmark.errors import UsageError

#: Run-level settings that may take a list of values (each an axis of the grid), in the
#: order units are enumerated and axes are reported.
RUN_AXES = ("latent_dim", "epochs", "batch_size", "train_limit", "test_limit", "is_samples")

#: The budget of the ``quick`` preset, shared by the presets that answer one question each.
_QUICK = {"datasets": ("mnist",), "epochs": 5, "batch_size": 128, "train_limit": 30000, "test_limit": None}

#: Named grids. ``full`` (the default) is what a GPU box is for; ``quick`` is the MNIST
#: comparison that fits a laptop CPU; ``smoke`` takes seconds, for tests. ``latent``,
#: ``beta`` and ``likelihood-choice`` each answer one question (see the README) on the quick
#: budget over three seeds. A preset may name its ``models``, give lists for the settings in
#: ``RUN_AXES`` and set model parameters in ``set`` (``{model or "*": {param: values}}``).
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
    # What does the size of the latent code change?
    "latent": {**_QUICK, "seeds": 3, "latent_dim": (2, 4, 8, 16, 32, 64)},
    # What does the KL weight do (rate against distortion, sharpness, sample quality)?
    "beta": {
        **_QUICK,
        "seeds": 3,
        "models": ("vae_mse", "vae_bernoulli", "vae_gan"),
        "set": {"*": {"beta": (0.25, 0.5, 1.0, 2.0, 4.0)}},
    },
    # Does a Bernoulli likelihood beat a Gaussian one, whatever the Gaussian's noise level?
    "likelihood-choice": {
        **_QUICK,
        "seeds": 3,
        "models": ("vae_bernoulli", "vae_mse"),
        "set": {"vae_mse": {"obs_std": (0.05, 0.1, 0.2, 0.4)}},
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
    # Burda et al. (2016), Table 1: their VAE with one stochastic layer (86.76 nats at K = 5000
    # on dynamically binarized MNIST): fully connected networks, batch 20, 50 latent units,
    # Adam with its staged learning rate over 3,280 passes. See docs/reproductions/iwae/.
    "iwae": {
        "datasets": ("binarized_mnist",),
        "models": ("vae_bernoulli_mlp",),
        "seeds": 1,
        "epochs": 3280,
        "batch_size": 20,
        "latent_dim": 50,
        "train_limit": None,
        "test_limit": None,
        "is_samples": 5000,
    },
    # Ghosh et al. (2020), Table 1: samples from N(0, I) against a 10-component mixture fitted
    # to the training latents (``fd_sample``, ``fd_sample_gmm``), with and without a prior.
    "ghosh": {**_QUICK, "seeds": 3, "models": ("ae", "vae_mse", "vae_bernoulli")},
    # The faces of Larsen et al. (2016): CelebA at 64x64 (the DCGAN-style backbone), batch 64,
    # 128 latent dimensions, and the VAE-GAN's RMSprop at the paper's learning rate 3e-4; the
    # other models keep their Adam at 1e-3 (not a parameter). For a GPU box: its cost is in
    # the README.
    "faces": {
        "datasets": ("celeb_a",),
        "seeds": 3,
        "epochs": 10,
        "batch_size": 64,
        "latent_dim": 128,
        "train_limit": None,
        "test_limit": None,
        "set": {"vae_gan": {"learning_rate": (3e-4,)}},
    },
}

DEFAULT_LATENT_DIM = 16

#: ``--precision``: ``auto`` or a Keras dtype policy of ``models.precision.PRECISIONS``.
PRECISION_CHOICES = ("auto", "float32", "mixed_bfloat16")
#: ``--jit``: XLA compilation, or ``auto`` (``benchmark.running.device.resolve_jit``).
JIT_CHOICES = ("auto", "on", "off")
#: Training steps per compiled call (``--steps-per-execution``). Measured on a 2-core CPU,
#: TensorFlow, vae_bernoulli at batch 128: see the README's performance section.
DEFAULT_STEPS_PER_EXECUTION = 1

#: ``--score-split``: score the units on the test split (the final scores) or on half the
#: validation split (to choose settings; the test split is not read).
SCORE_SPLITS = ("test", "val")

#: ``--executor``: where the units of a grid run. ``local``: on this machine, one process per
#: unit once ``--workers`` > 1 (``benchmark.running.parallel``); ``ray``: each unit a Ray task.
EXECUTORS = ("local", "ray")

#: K of the importance-sampled likelihood (``benchmark.scoring.likelihood``) where a preset sets none:
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
    "steps_per_execution": (1, 10_000),
    "workers": (1, 1024),
}

#: Training examples whose latent means train the latent-space classifiers (scikit-learn);
#: enough for stable accuracies, small enough that scoring costs seconds.
CLASSIFIER_TRAIN_SIZE = 10000


@dataclass(frozen=True)
class UnitConfig:
    """One training unit: a model trained on a dataset with a seed, then scored.

    ``model_args`` are the model parameters the run chose (``--set``); ``model_config``,
    ``code``, ``data`` and ``version`` (``IDENTITY_FIELDS``) are filled in by
    ``benchmark.running.identity.resolve_unit``: every parameter of the model as built, defaults
    included; a digest per source module of the model; the data's identity; the vaebench
    version. Every field is part of ``unit_id``.
    """

    model: str
    dataset: str
    seed: int
    epochs: int
    latent_dim: int
    batch_size: int
    train_limit: int | None
    test_limit: int | None
    backend: str
    #: K of the importance-sampled likelihood (``nll_is``).
    is_samples: int = DEFAULT_IS_SAMPLES
    #: The split scores are computed on: ``test``, or ``val`` (half the validation split;
    #: ``Dataset.subset``) to choose settings without looking at the test split.
    score_split: str = "test"
    model_config: dict[str, Any] = field(default_factory=dict)
    # How the unit computes (resolved, never "auto"): they can change the results.
    precision: str = "float32"  # a Keras dtype policy: "float32" or "mixed_bfloat16"
    jit: bool = True  # XLA compilation
    steps_per_execution: int = 1  # training steps per compiled call
    model_args: dict[str, Any] = field(default_factory=dict)
    code: dict[str, str] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    version: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def unit_id(self) -> str:
        """``<model>-<dataset>-s<seed>-<hash>``: readable, and unique per resolved config."""
        config = self.to_dict()
        if config["score_split"] == "test":  # added later: the default keeps earlier units' ids
            del config["score_split"]
        blob = json.dumps(config, sort_keys=True).encode()
        return f"{self.model}-{self.dataset}-s{self.seed}-{hashlib.sha256(blob).hexdigest()[:8]}"


#: Fields of ``UnitConfig`` that the run does not choose: they are resolved from the code,
#: the data and the package. Two units that differ only in these are the same point of a
#: grid, one of them out of date.
IDENTITY_FIELDS = ("model_config", "code", "data", "version")


def grid_point(config: dict[str, Any]) -> dict[str, Any]:
    """The chosen settings of a unit config (``UnitConfig.to_dict()``, as saved): every field
    but ``IDENTITY_FIELDS``, a field missing from an older config at its default."""
    point = {}
    for f in dataclasses.fields(UnitConfig):
        if f.name in IDENTITY_FIELDS:
            continue
        if f.name in config:
            point[f.name] = config[f.name]
        elif f.default is not dataclasses.MISSING:
            point[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            point[f.name] = f.default_factory()
        else:
            point[f.name] = None
    return point


@dataclass(frozen=True)
class RunConfig:
    """A grid of units and where its results go.

    Each setting of ``RUN_AXES`` is a tuple of values (a single value is taken as a tuple of
    one); ``model_settings`` maps a model to its parameters' values
    (``{"vae_mse": {"beta": (0.5, 2.0)}}``), already checked against the model's factory.
    """

    models: tuple[str, ...]
    datasets: tuple[str, ...]
    seeds: int
    epochs: tuple[int, ...]
    latent_dim: tuple[int, ...]
    batch_size: tuple[int, ...]
    train_limit: tuple[int | None, ...]
    test_limit: tuple[int | None, ...]
    out: Path
    preset: str
    backend: str
    data_dir: str | None = None
    force: bool = False
    plugins: tuple[str, ...] = ()
    is_samples: tuple[int, ...] = (DEFAULT_IS_SAMPLES,)
    score_split: str = "test"  # SCORE_SPLITS
    model_settings: dict[str, dict[str, tuple[Any, ...]]] = field(default_factory=dict)
    reuse_stale: bool = False
    precision: str = "float32"
    jit: bool = True
    steps_per_execution: int = 1
    # How the grid is executed; none of these is part of a unit (its hash or its results).
    workers: int | None = 1  # units at a time; None: as many as the Ray cluster fits
    devices: tuple[int, ...] = ()  # GPU indices the local workers take in turn; (): the CPU
    executor: str = "local"
    ray_address: str | None = None  # None: start a local Ray instance
    gpus_per_unit: float | None = None  # GPUs of a Ray task (fractions); None: 1 if the cluster has GPUs

    def __post_init__(self):
        """Reject out-of-range numbers and empty name lists with a ``UsageError``."""
        for name in RUN_AXES:
            value = getattr(self, name)
            values = tuple(dict.fromkeys(value)) if isinstance(value, (tuple, list)) else (value,)
            object.__setattr__(self, name, values)
        for name, (low, high) in RANGES.items():
            values = getattr(self, name)
            for value in values if name in RUN_AXES else (values,):
                if value is None and (name.endswith("_limit") or name == "workers"):
                    continue  # all images; as many workers as the Ray cluster fits
                if isinstance(value, bool) or not isinstance(value, int):
                    raise UsageError(f"--{_flag(name)} must be a whole number, got {value!r}")
                if not low <= value <= high:
                    raise UsageError(
                        f"--{_flag(name)} must be at least {low} and at most {high}, got {value}"
                    )
        for name in (*RUN_AXES, "models", "datasets"):
            if not getattr(self, name):
                raise UsageError(f"--{_flag(name)} names nothing")
        if self.score_split not in SCORE_SPLITS:
            raise UsageError(f"--score-split must be one of {', '.join(SCORE_SPLITS)}, got {self.score_split!r}")
        if self.executor not in EXECUTORS:
            raise UsageError(f"--executor must be one of {', '.join(EXECUTORS)}, got {self.executor!r}")

    @property
    def in_process(self) -> bool:
        """Whether the units run one after another in this process (one local worker)."""
        return self.executor == "local" and self.workers == 1

    def units(self) -> list[UnitConfig]:
        """Every unit of the grid, in the order they are trained: per dataset and model, the
        product of the run-level settings and the model's parameter values, then the seeds."""
        units = []
        for dataset, model in itertools.product(self.datasets, self.models):
            settings = self.model_settings.get(model, {})
            for run_values in itertools.product(*(getattr(self, k) for k in RUN_AXES)):
                for values in itertools.product(*settings.values()):
                    chosen = dict(zip(RUN_AXES, run_values, strict=True))
                    units += [
                        UnitConfig(
                            model=model,
                            dataset=dataset,
                            seed=seed,
                            backend=self.backend,
                            model_args=dict(zip(settings, values, strict=True)),
                            precision=self.precision,
                            score_split=self.score_split,
                            jit=self.jit,
                            steps_per_execution=self.steps_per_execution,
                            **chosen,
                        )
                        for seed in range(self.seeds)
                    ]
        return units

    @property
    def axes(self) -> list[str]:
        """The result columns that vary across the grid: the run-level settings with several
        values, then every model parameter with several values for some model."""
        params = [
            param
            for settings in self.model_settings.values()
            for param, values in settings.items()
            if len(values) > 1
        ]
        return [k for k in RUN_AXES if len(getattr(self, k)) > 1] + list(dict.fromkeys(params))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["out"] = str(self.out)
        return d


def _flag(name: str) -> str:
    return name.replace("_", "-")
