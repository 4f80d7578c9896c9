"""An ex-post density on the latent space, so that every model can be sampled.

Ghosh et al. 2020 ("From Variational to Deterministic Autoencoders") fit a 10-component
Gaussian mixture with full covariances to the training images' latent codes and decode its
samples: this gives a model without a prior (the plain autoencoder) a sampler, and a VAE whose
aggregate posterior does not fill N(0, I) a better one. The mixture is scikit-learn's, with a
fixed ``random_state`` so a unit's samples depend only on its latent codes.
"""

from __future__ import annotations

import numpy as np
from sklearn.mixture import GaussianMixture

GMM_COMPONENTS = 10
GMM_RANDOM_STATE = 0

#: Latent codes whose spread (the largest per-dimension standard deviation) is below this
#: are constant for the mixture's purpose: its components would sit on one point.
MIN_LATENT_STD = 1e-6


class DegenerateLatents(ValueError):
    """The latent codes cannot support the mixture (too few, or constant); says why."""


def fit_latent_gmm(
    z: np.ndarray, n_components: int = GMM_COMPONENTS, *, random_state: int = GMM_RANDOM_STATE
) -> GaussianMixture:
    """A full-covariance Gaussian mixture fitted to latent codes ``z`` (n, latent_dim).

    Raises ``DegenerateLatents`` with fewer codes than components, with codes that do not vary,
    with fewer distinct codes than components, or when scikit-learn's fit fails.
    """
    z = np.asarray(z, np.float64)
    if len(z) < n_components:
        raise DegenerateLatents(f"{len(z)} training latents are fewer than the {n_components} mixture components")
    if not np.all(np.isfinite(z)):
        raise DegenerateLatents("the training latents are not all finite")
    if float(z.std(axis=0).max()) < MIN_LATENT_STD:
        raise DegenerateLatents("the training latents are constant: the mixture is degenerate")
    if len(np.unique(z, axis=0)) < n_components:
        raise DegenerateLatents(
            f"the training latents have fewer distinct values than the {n_components} mixture components"
        )
    gmm = GaussianMixture(n_components=n_components, covariance_type="full", random_state=random_state)
    try:
        return gmm.fit(z)
    except ValueError as exc:  # e.g. a component's covariance is not positive definite
        raise DegenerateLatents(f"the mixture could not be fitted ({exc})") from exc


def sample_latent_gmm(gmm: GaussianMixture, n: int, *, seed: int) -> np.ndarray:
    """(n, latent_dim) float32 draws from ``gmm``, in random order.

    ``GaussianMixture.sample`` returns its draws grouped by component; they are shuffled so
    that any prefix (e.g. the images saved for figures) is a sample of the whole mixture.
    """
    z, _ = gmm.sample(n)
    return z[np.random.default_rng(seed).permutation(n)].astype(np.float32)
