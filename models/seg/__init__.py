"""Segmentation networks (plain ``nn.Module`` factories from MONAI), registered in :data:`medai.registry.NETWORKS`."""

from __future__ import annotations

from models.seg import networks as networks  # noqa: F401  (registers the networks)
