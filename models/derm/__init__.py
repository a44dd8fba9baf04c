"""Dermatology networks (registered in :data:`medai.registry.NETWORKS` on import)."""

from __future__ import annotations

from models.derm import networks as networks  # noqa: F401  (registers the networks)
