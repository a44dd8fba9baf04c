"""Fixtures of the DICOM core tests: phantom studies generated in code (small, so the suite stays fast)."""

from __future__ import annotations

from pathlib import Path

import pytest

from medai.dicom.phantoms import Phantom, make_cine_sax_study


@pytest.fixture(scope="session")
def cine_stack() -> Phantom:
    """A small cine SAX phantom stored as one series per stack (GE/Sunnybrook style)."""
    return make_cine_sax_study(n_slices=6, n_phases=10, rows=64, cols=64, pixel_spacing=2.5, seed=11)


@pytest.fixture(scope="session")
def cine_stack_bytes(cine_stack: Phantom) -> list[bytes]:
    return cine_stack.to_bytes()


@pytest.fixture()
def cine_folder(tmp_path: Path) -> Phantom:
    """The same kind of phantom written to a folder, one series per slice (Siemens style)."""
    return make_cine_sax_study(
        tmp_path / "study", n_slices=5, n_phases=8, rows=48, cols=48, pixel_spacing=3.0, one_series_per_slice=True
    )
