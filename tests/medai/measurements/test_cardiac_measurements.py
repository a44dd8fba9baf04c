"""Measurements on the phantom's exact labels equal the phantom's truth; codes, units, ranges and flags."""

from __future__ import annotations

import math

import numpy as np
import pytest

from medai.dicom.phantoms import make_cine_sax_study
from medai.domain.measurement import Flag
from medai.measurements import (
    MEASUREMENTS,
    PatientInfo,
    by_name,
    function_measurements,
    reference_range,
    volume_curves,
    wall_thickness_by_segment,
)
from tests.medai.cardiac.helpers import phantom_labelmap


@pytest.fixture(scope="module")
def phantom():
    return make_cine_sax_study(n_slices=10, n_phases=16, rows=96, cols=96)


def test_volumes_ef_mass_equal_phantom_truth(phantom) -> None:
    tr = phantom.truth
    lm = phantom_labelmap(phantom)
    m = by_name(function_measurements(lm, tr.ed_phase, tr.es_phase, PatientInfo(sex="M")))
    assert m["lv_edv"].value == pytest.approx(tr.lv_edv_ml, rel=1e-9)
    assert m["lv_esv"].value == pytest.approx(tr.lv_esv_ml, rel=1e-9)
    assert m["lv_ef"].value == pytest.approx(tr.lv_ef_pct, rel=1e-9)
    assert m["lv_sv"].value == pytest.approx(tr.lv_edv_ml - tr.lv_esv_ml, rel=1e-9)
    assert m["lv_mass"].value == pytest.approx(tr.lv_mass_g, rel=1e-9)
    assert m["rv_edv"].value == pytest.approx(tr.rv_edv_ml, rel=1e-9)
    assert m["rv_esv"].value == pytest.approx(tr.rv_esv_ml, rel=1e-9)
    assert m["rv_ef"].value == pytest.approx(tr.rv_ef_pct, rel=1e-9)
    curves = volume_curves(lm)
    np.testing.assert_allclose(curves["lv_ml"], tr.lv_volume_ml, rtol=1e-9)
    np.testing.assert_allclose(curves["rv_ml"], tr.rv_volume_ml, rtol=1e-9)
    assert curves["times_ms"] == list(phantom.frame_times_ms)


def test_codes_units_and_conditional_values(phantom) -> None:
    tr = phantom.truth
    lm = phantom_labelmap(phantom)
    bare = by_name(function_measurements(lm, tr.ed_phase, tr.es_phase, PatientInfo()))
    assert "lv_co" not in bare and "lv_edvi" not in bare  # no heart rate, no height/weight: not invented
    ef = bare["lv_ef"]
    assert (ef.code.value, ef.code.scheme, ef.unit.code) == ("10230-1", "LN", "%")
    assert bare["lv_mass"].unit.code == "g" and bare["lv_edv"].unit.code == "mL"
    full = by_name(function_measurements(lm, tr.ed_phase, tr.es_phase, PatientInfo("F", 1.64, 58.0, 72.0)))
    bsa = math.sqrt(164 * 58 / 3600)  # Mosteller
    assert full["bsa"].value == pytest.approx(bsa)
    assert full["lv_edvi"].value == pytest.approx(tr.lv_edv_ml / bsa)
    assert full["lv_co"].value == pytest.approx((tr.lv_edv_ml - tr.lv_esv_ml) * 72 / 1000)
    assert full["lv_co"].unit.code == "L/min"
    assert full["lv_ci"].value == pytest.approx(full["lv_co"].value / bsa)
    assert full["lv_massi"].unit.code == "g/m2"
    for m in full.values():  # every measurement comes from the registry
        assert MEASUREMENTS.get(m.name).code == m.code


def test_reference_ranges_by_sex_and_flags() -> None:
    male, female, unknown = (reference_range("lv_edv", s) for s in ("M", "F", ""))
    assert (male.low, male.high) == (106.0, 214.0)  # 160 +/- 2 x 27 mL
    assert (female.low, female.high) == (86.0, 178.0)
    assert unknown.low == 86.0 and unknown.high == 214.0 and "Kawel-Boehm" in unknown.source
    assert male.flag(100) == Flag.LOW and male.flag(150) == Flag.NORMAL and male.flag(300) == Flag.HIGH
    assert reference_range("rv_edv", "M") is None  # no verified range tabulated: flagged unknown, not invented


def test_heart_rate_from_dicom_and_patient_info() -> None:
    from medai.dicom.ingest import ingest
    from medai.measurements import patient_info

    p = make_cine_sax_study(n_slices=3, n_phases=4, rows=32, cols=32, heart_rate=75, height_m=1.8, weight_kg=81)
    study = ingest([d for d in p.to_bytes()]).studies[0]
    info = patient_info(study, study.series)
    assert info.heart_rate_bpm == pytest.approx(75) and info.sex == "M"
    assert info.bsa_m2 == pytest.approx(math.sqrt(180 * 81 / 3600))


def test_wall_thickness_matches_phantom_wall(phantom) -> None:
    lm = phantom_labelmap(phantom)
    wt = wall_thickness_by_segment(lm, phantom.truth.ed_phase)
    assert sorted(wt) == list(range(1, 17))
    # phantom ED wall: 9 mm x (0.6 + 0.4 taper) -> ~8.9 mm basal, thinner towards the apex
    for s in range(1, 7):
        assert wt[s] == pytest.approx(8.9, abs=0.6)
    assert np.mean([wt[s] for s in range(13, 17)]) < np.mean([wt[s] for s in range(1, 7)])


def test_wall_thickness_sectors_face_the_rv(phantom) -> None:
    """Thin the wall on the RV side only: the septal segments (2, 3, 8, 9, 14) must be the thin ones."""
    lm = phantom_labelmap(phantom)
    arr = lm.volume.array.copy()
    ed = phantom.truth.ed_phase
    from scipy import ndimage

    for z in range(arr.shape[1]):
        sl = arr[ed, z]
        lv = sl == 3
        if not lv.any():
            continue
        cy, cx = ndimage.center_of_mass(lv)
        yy, xx = np.mgrid[0 : sl.shape[0], 0 : sl.shape[1]]
        angle = np.degrees(np.arctan2(yy - cy, -(xx - cx)))  # 0 deg = towards -x, where the phantom's RV lies
        far = ndimage.distance_transform_edt(~lv) > 2
        sl[(sl == 2) & (np.abs(angle) < 60) & far] = 0
    thin = lm.__class__(volume=lm.volume.with_array(arr), labels=lm.labels)
    wt = wall_thickness_by_segment(thin, ed)
    septal = np.mean([wt[s] for s in (2, 3, 8, 9)])
    lateral = np.mean([wt[s] for s in (5, 6, 11, 12)])
    assert septal < 0.75 * lateral
    assert wt[14] < wt[16]
