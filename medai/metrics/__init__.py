"""Metrics of medai models (survival / risk: :mod:`medai.metrics.survival`)."""
