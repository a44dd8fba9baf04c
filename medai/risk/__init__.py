"""Stroke and cardiovascular risk: typed cohort specs, adapters of the official releases, the risk predictor."""

from __future__ import annotations

from medai.risk.spec import CohortSpec, FeatureSpec, FeatureType

__all__ = ["CohortSpec", "FeatureSpec", "FeatureType"]
