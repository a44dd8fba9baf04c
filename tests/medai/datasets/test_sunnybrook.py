"""Sunnybrook contours -> masks, aligned with the DICOM images."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from medai.datasets.base import CardiacPhase
from medai.datasets.sunnybrook import contour_to_mask, load_sunnybrook, parse_contour_name, read_contour


def test_contour_name_mapping() -> None:
    c = parse_contour_name(Path("IM-0001-0048-icontour-manual.txt"))
    assert c.image_number == 48 and c.slice_index == 2 and c.phase == 8 and c.kind == "i"
    o = parse_contour_name(Path("IM-0001-0020-ocontour-manual.txt"))
    assert o.slice_index == 0 and o.phase == 20 and o.kind == "o"


def test_contour_to_mask_square() -> None:
    # square with corners at pixel centres x 2..6 (columns), y 1..3 (rows): interior pixel centres only
    pts = np.array([[1.5, 0.5], [6.5, 0.5], [6.5, 3.5], [1.5, 3.5]])
    m = contour_to_mask(pts, (6, 10))
    assert m.sum() == 5 * 3
    assert m[1:4, 2:7].all() and not m[:, :2].any() and not m[4:].any()  # x = column, y = row


@pytest.fixture(scope="module")
def sunnybrook(data_dir: Path) -> Path:
    root = data_dir / "cardiac" / "sunnybrook"
    if not root.is_dir():
        pytest.skip("Sunnybrook data absent")
    return root


def test_sunnybrook_masks_match_derived_volumes(sunnybrook: Path) -> None:
    cases = load_sunnybrook(sunnybrook)
    assert len(cases) == 10
    derived = {r["patient_id"]: r for r in csv.DictReader((sunnybrook / "derived_lv_volumes.csv").open())}
    for c in cases:
        assert c.label is not None and c.label.shape == c.image.shape
        row = derived[c.patient_id]
        phase = int(row["ed_phase"] if c.phase is CardiacPhase.ED else row["es_phase"])
        assert c.meta["phase"] == phase
        assert c.spacing_mm is not None
        ml = (c.label == 3).sum() * float(np.prod(c.spacing_mm)) / 1000.0
        key = "lv_edv_ml_contoured_slices" if c.phase is CardiacPhase.ED else "lv_esv_ml_contoured_slices"
        ref = float(row[key])
        # filled pixel centres vs polygon area: within 5 %
        assert ml == pytest.approx(ref, rel=0.05), c.case_id
        if c.phase is CardiacPhase.ED:
            assert (c.label == 2).any()  # epicardium drawn at ED


def test_sunnybrook_masks_aligned_with_images(sunnybrook: Path) -> None:
    ed = load_sunnybrook(sunnybrook)[0]
    assert ed.case_id == "SCD0000101_ED" and ed.image.shape == (9, 256, 256)
    img, lab = ed.image, ed.label
    assert lab is not None
    blood = img[lab == 3].mean()
    myo = img[lab == 2].mean()
    # bright blood pool, darker myocardium: a transposed (x/y swapped) mask would mix them
    assert blood > 1.5 * myo
    swapped = np.transpose(lab, (0, 2, 1))
    assert img[swapped == 3].mean() < blood
    # LV cavity area per slice is plausible (2-60 cm2 at 1.37 mm pixels)
    areas = (lab == 3).sum(axis=(1, 2)) * 1.367188**2 / 100.0
    assert ((areas > 0.5) & (areas < 60)).all()


def test_read_contour_points(sunnybrook: Path) -> None:
    path = next((sunnybrook / "contourfiles" / "SC-HF-I-1" / "i-contours").glob("*.txt"))
    pts = read_contour(path)
    assert pts.shape[1] == 2 and len(pts) > 20 and (pts >= 0).all() and (pts < 256).all()
