"""Aggregation of finished units into tables, statistics, figures and the HTML report."""
