"""Fixtures: a tiny randomly initialised cine segmentation package (plumbing tests only) and phantom studies."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.medai.cardiac.helpers import make_tiny_package


@pytest.fixture(scope="session")
def tiny_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight ``cine_sax_seg`` package in the shipped format (metadata.json, inference.json, weights.pt)."""
    return make_tiny_package(tmp_path_factory.mktemp("pkg") / "tiny_cine")
