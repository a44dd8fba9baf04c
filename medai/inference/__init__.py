"""Inference: model packages and the one predict path."""

from __future__ import annotations

from medai.inference.compiled import export_package
from medai.inference.package import ModelMetadata, read_metadata, resolve_package, shipped_packages, write_metadata
from medai.inference.predictor import Predictor

__all__ = ["ModelMetadata", "Predictor", "export_package", "read_metadata", "resolve_package", "shipped_packages",
           "write_metadata"]
