"""Share the dermatology fixtures (synthetic images, tiny package) with the pipeline tests."""

from __future__ import annotations

from tests.medai.derm.conftest import tiny_package  # noqa: F401
