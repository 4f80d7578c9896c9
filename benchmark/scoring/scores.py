"""Every summary score in one table: its direction, decimals, unit, meaning, and what the run's
control sets (``benchmark.scoring.controls``) must show before the score is ranked.

A score is *ranked* (``lower`` or ``higher`` is better) or *descriptive* (summarised, never
ranked). An image-set score names the control scores it is checked with (``control``: the kind,
``sample`` or ``recon``, and the column of ``controls.csv``), and its ``checks``:

- ``Worse(families)``: every control of these families scores worse than ``real`` (for the
  ``recon`` kind, ``real`` is the perfect reconstruction);
- ``Monotone(families)``: within each family, a stronger degradation scores worse;

and every checked score, ``NotBetter(DEGRADED)``: no degraded control scores better than
``real`` (a tie is allowed: relative sharpness cannot see contrast, by design).

A ranked score whose checks fail on a dataset is shown but not ranked there, with the reason
(``benchmark.scoring.verdicts``).
"""

from __future__ import annotations

from dataclasses import dataclass

LOWER, HIGHER, DESCRIPTIVE = "lower", "higher", "descriptive"


@dataclass(frozen=True)
class Worse:
    """Each control of ``families`` must score worse than ``real``."""

    families: tuple[str, ...]


@dataclass(frozen=True)
class Monotone:
    """Within each of ``families``, a larger level must score worse."""

    families: tuple[str, ...]


@dataclass(frozen=True)
class NotBetter:
    """No control of ``families`` may score better than ``real`` (ties allowed)."""

    families: tuple[str, ...]


Check = Worse | Monotone | NotBetter

#: The controls that degrade real images: none may ever score better than ``real``.
DEGRADED = ("blur", "noise", "contrast", "blob", "mixture")

_SHARPNESS = (Worse(("blur", "noise", "mixture")), Monotone(("blur", "noise")))
_DISTRIBUTION = (Worse(("blur", "noise", "contrast", "blob", "one_class", "mixture")),)
_COVERAGE = (Worse(("one_class", "blob")),)
_CONTRAST = (Worse(("contrast",)),)
_ERROR = (Worse(("blur", "noise", "contrast", "mixture")),)

#: The checks of each control score, by (kind, column of controls.csv).
CHECKS: dict[tuple[str, str], tuple[Check, ...]] = {
    ("recon", "mse"): _ERROR,
    ("recon", "bce"): _ERROR,
    ("recon", "sharpness_gap"): _SHARPNESS,
    ("recon", "contrast_gap"): _CONTRAST,
    ("recon", "spectral_gap"): _SHARPNESS,
    ("sample", "sharpness_gap"): _SHARPNESS,
    ("sample", "contrast_gap"): _CONTRAST,
    ("sample", "spectral_gap"): _SHARPNESS,
    ("sample", "fd"): _DISTRIBUTION,
    ("sample", "kid"): _DISTRIBUTION,
    # Shown in the controls table to say why precision is not ranked.
    ("sample", "precision"): (Worse(("blob", "blur")),),
    ("sample", "recall"): _COVERAGE,
    ("sample", "coverage"): _COVERAGE,
}


@dataclass(frozen=True)
class Score:
    """One summary score. ``control``: (kind, column) of its control scores, or None."""

    name: str
    direction: str
    decimals: int
    unit: str
    help: str
    control: tuple[str, str] | None = None
    #: The direction a descriptive score is usually ranked in (checked against its controls).
    sense: str | None = None

    @property
    def ranked(self) -> bool:
        return self.direction != DESCRIPTIVE

    @property
    def checks(self) -> tuple[Check, ...]:
        declared = CHECKS.get(self.control, ()) if self.control else ()
        return (NotBetter(DEGRADED), *declared) if declared else ()


_LOG = "natural-log units, 0 = real"
_FEATURES = "the feature classifier's features"


def _sample_scores(suffix: str, what: str) -> list[Score]:
    """The scores of one sample set (``sample``: N(0, I); ``sample_gmm``: the fitted mixture)."""
    return [
        Score(f"sharpness_gap_{suffix}", LOWER, 3, _LOG,
              f"Wasserstein distance between the per-image log relative sharpness (Laplacian variance / pixel "
              f"variance) of {what} and of test images: blur and noise both raise it", ("sample", "sharpness_gap")),
        Score(f"contrast_gap_{suffix}", LOWER, 3, _LOG,
              f"Wasserstein distance between the per-image log pixel std of {what} and of test images",
              ("sample", "contrast_gap")),
        Score(f"spectral_gap_{suffix}", LOWER, 3, _LOG,
              f"mean over frequency rings of the Wasserstein distance between the per-image log relative ring power "
              f"of {what} and of test images", ("sample", "spectral_gap")),
        Score(f"fd_{suffix}", LOWER, 2, f"squared feature units ({_FEATURES})",
              f"Fréchet distance between {what} and test images in {_FEATURES}", ("sample", "fd")),
        Score(f"kid_{suffix}", LOWER, 4, "squared kernel units, cubic kernel (x·y/d + 1)³",
              f"kernel distance (unbiased MMD², cubic kernel) between {what} and test images in {_FEATURES}",
              ("sample", "kid")),
        Score(f"precision_{suffix}", DESCRIPTIVE, 4, "fraction",
              f"fraction of {what} inside the test images' k = 3 neighbourhoods; descriptive: a blurry average "
              "or blurred real images score higher than real images (see the controls)", ("sample", "precision"),
              sense=HIGHER),
        Score(f"recall_{suffix}", HIGHER, 4, "fraction",
              f"fraction of test images inside the k = 3 neighbourhoods of {what}", ("sample", "recall")),
        Score(f"coverage_{suffix}", HIGHER, 4, "fraction",
              f"fraction of test images whose k = 5 neighbourhood holds one of {what} (Naeem et al. 2020)",
              ("sample", "coverage")),
    ]  # fmt: skip


SCORES: tuple[Score, ...] = (
    Score("recon_mse", LOWER, 4, "pixel units²", "mean squared error of test reconstructions", ("recon", "mse")),
    Score("recon_bce", LOWER, 2, "nats per image",
          "binary cross-entropy of test reconstructions: the distortion, the same quantity for every model",
          ("recon", "bce")),
    Score("sharpness_gap_recon", LOWER, 3, _LOG,
          "mean over test images of |log relative sharpness of the reconstruction − that of its original|",
          ("recon", "sharpness_gap")),
    Score("contrast_gap_recon", LOWER, 3, _LOG,
          "mean over test images of |log pixel std of the reconstruction − that of its original|",
          ("recon", "contrast_gap")),
    Score("spectral_gap_recon", LOWER, 3, _LOG,
          "mean over test images of the RMS over rings of the log relative ring power's difference between the "
          "reconstruction and its original", ("recon", "spectral_gap")),
    *_sample_scores("sample", "samples decoded from z ~ N(0, I)"),
    *_sample_scores("sample_gmm", "samples of a 10-component Gaussian mixture fitted to the training latent means"),
    Score("latent_acc_logreg", HIGHER, 4, "fraction", "test accuracy of logistic regression on the latent means"),
    Score("latent_acc_knn", HIGHER, 4, "fraction", "test accuracy of k-nearest neighbours on the latent means"),
    Score("nll_is", LOWER, 2, "nats per image",
          "importance-weighted upper bound on the negative log-likelihood of the test images (discrete likelihood, "
          "K samples); ranked only on the same dataset"),
    Score("bits_per_dim", LOWER, 4, "bits per pixel", "nll_is in bits per pixel"),
    Score("neg_elbo", DESCRIPTIVE, 2, "nats per image",
          "negative ELBO under the model's own likelihood: not comparable across models"),
    Score("kl", DESCRIPTIVE, 2, "nats per image", "KL(q(z|x) || p(z)) of the test images: the rate"),
    Score("active_units", DESCRIPTIVE, 1, "latent dimensions",
          "latent dimensions whose posterior mean varies over the test images (Cov > 0.01)"),
    Score("blurriness_recon", DESCRIPTIVE, 4, "fraction",
          "1 − sharpness of reconstructions / sharpness of test images (Laplacian variance; signed: negative is "
          "sharper than real)"),
    Score("blurriness_sample", DESCRIPTIVE, 4, "fraction", "the same for samples decoded from z ~ N(0, I)"),
    Score("samples_per_sec", DESCRIPTIVE, 0, "images per second",
          "training throughput; descriptive: it depends on the device and on --workers"),
)  # fmt: skip

#: Scores by name.
BY_NAME: dict[str, Score] = {s.name: s for s in SCORES}
