"""Datasets: loading, checksums, splits and fetching."""
