"""Scores of a trained model: reconstruction, sharpness, likelihood, fidelity, latent probes."""
