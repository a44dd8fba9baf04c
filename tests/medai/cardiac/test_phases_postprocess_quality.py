"""ED/ES selection, 3-D consistency cleaning and quality flags."""

from __future__ import annotations

import numpy as np

from medai.cardiac.phases import declared_phases, select_phases
from medai.cardiac.postprocess import clean_frame
from medai.cardiac.quality import coverage_flags, curve_flags, result_flags
from medai.dicom.ingest import ingest
from medai.dicom.phantoms import make_cine_sax_study
from medai.dicom.volumes import build_cine
from medai.domain.prediction import Severity
from tests.medai.cardiac.helpers import LABELS, phantom_labelmap


def test_ed_es_from_volume_curve_and_from_dicom() -> None:
    p = make_cine_sax_study(n_slices=4, n_phases=10, rows=48, cols=48)
    ph = select_phases(p.truth.lv_volume_ml)
    assert (ph.ed, ph.es, ph.source) == (p.truth.ed_phase, p.truth.es_phase, "lv_volume_curve")
    # the DICOM declares ED/ES (CardiacCyclePosition): it wins over the curve
    for ds in p.datasets:
        t = int(ds.InstanceNumber - 1) % 10
        if t in (2, 6):
            ds.CardiacCyclePosition = "END_DIASTOLE" if t == 2 else "END_SYSTOLE"
    study = ingest(p.to_bytes()).studies[0]
    vol = build_cine(study.series[0])
    declared = declared_phases(study.series, vol.source_sop_uids)
    assert declared == (2, 6)
    ph2 = select_phases(p.truth.lv_volume_ml, declared)
    assert (ph2.ed, ph2.es, ph2.source) == (2, 6, "dicom")
    assert select_phases([5.0, 5.0], (None, None)).ed == 0


def test_cleaning_removes_islands_fills_holes_and_moves_rv_out_of_lv() -> None:
    # 2.5 mm pixels: the whole heart lies inside the 160 mm field of view (no RV cut into pieces by its edge)
    p = make_cine_sax_study(n_slices=5, n_phases=2, rows=64, cols=64, pixel_spacing=2.5)
    ref = p.labels[0]
    noisy = ref.copy()
    noisy[2, 5:8, 5:8] = LABELS["lv"]  # an LV island far from the heart
    noisy[3, 60:63, 60:63] = LABELS["rv"]  # an RV island
    z, y, x = np.argwhere(ref == LABELS["lv"])[len(np.argwhere(ref == LABELS["lv"])) // 2]
    noisy[z, y - 1 : y + 2, x - 1 : x + 2] = LABELS["rv"]  # "RV" inside the LV cavity
    noisy[z, y + 3, x] = 0  # a hole in the blood pool
    cleaned = clean_frame(noisy, LABELS)
    np.testing.assert_array_equal(cleaned, ref)
    # clean_cine: every frame, into a new array or (as the predictor runs it) into the label map itself
    from medai.cardiac.postprocess import clean_cine

    cine = np.stack([noisy, ref])
    copy = clean_cine(cine, LABELS)
    assert copy is not cine and (cine[0] == noisy).all()
    np.testing.assert_array_equal(copy, np.stack([ref, ref]))
    same = clean_cine(cine, LABELS, inplace=True)
    assert same is cine
    np.testing.assert_array_equal(cine, np.stack([ref, ref]))


def test_quality_flags() -> None:
    p = make_cine_sax_study(n_slices=6, n_phases=4, rows=64, cols=64)
    lm = phantom_labelmap(p)
    ok = result_flags({"lv_edv": 120, "lv_ef": 60, "lv_mass": 110, "rv_edv": 150}, lm, 0)
    assert "ef_implausible" not in {f.code for f in ok}
    bad = {f.code: f for f in result_flags({"lv_edv": 700, "lv_ef": 96, "lv_mass": 900}, lm, 0)}
    assert {"ef_implausible", "lv_volume_implausible", "lv_mass_implausible", "no_rv_found"} <= set(bad)
    assert "96.0%" in bad["ef_implausible"].message
    none = result_flags({"lv_edv": 0.0}, lm, 0)
    assert [f.code for f in none] == ["no_lv_found"] and none[0].severity == Severity.ERROR
    assert curve_flags([100.0])[0].code == "single_phase"


def test_coverage_flags() -> None:
    p = make_cine_sax_study(n_slices=8, n_phases=2, rows=64, cols=64)
    lm = phantom_labelmap(p)
    # the phantom stack starts at the base (full LV at slice 0) and tapers to a small apex
    codes = {f.code for f in coverage_flags(lm, 0)}
    assert "basal_coverage_missing" in codes and "apical_coverage_missing" not in codes
    # drop the three apical slices: the apex is no longer covered
    cut = lm.__class__(volume=lm.volume.with_array(lm.volume.array[:, :4].copy()), labels=lm.labels)
    assert "apical_coverage_missing" in {f.code for f in coverage_flags(cut, 0)}


def test_basal_ring_rule_drops_atrial_blood_pool_only() -> None:
    from medai.cardiac.postprocess import apply_basal_ring_rule, myocardial_ring_fraction

    p = make_cine_sax_study(n_slices=6, n_phases=2, rows=64, cols=64)
    lab = p.labels.copy()
    assert all(myocardial_ring_fraction(lab[0, z], 3, 2) == 1.0 for z in range(6) if (lab[0, z] == 3).any())
    np.testing.assert_array_equal(apply_basal_ring_rule(lab, LABELS), lab)  # ringed everywhere: unchanged
    # slice 0 is the base (largest RV): make it "atrium" -- blood pool without myocardium around it
    lab[1, 0][lab[1, 0] == LABELS["myo"]] = 0
    out = apply_basal_ring_rule(lab, LABELS)
    assert not (out[1, 0] == LABELS["lv"]).any()
    np.testing.assert_array_equal(out[1, 1:], lab[1, 1:])  # the next slice passes: nothing else changes
    np.testing.assert_array_equal(out[0], lab[0])
    edited = lab.copy()
    assert apply_basal_ring_rule(edited, LABELS, inplace=True) is edited
    np.testing.assert_array_equal(edited, out)


def test_rv_ef_outside_plausible_range_is_flagged() -> None:
    """An RV missed at ES (RV EF 100%) must be flagged, not reported silently."""
    p = make_cine_sax_study(n_slices=6, n_phases=4, rows=64, cols=64)
    lm = phantom_labelmap(p)
    flags = {f.code for f in result_flags({"lv_edv": 120, "lv_ef": 60, "lv_mass": 110, "rv_edv": 150, "rv_ef": 100.0},
                                          lm, 0)}
    assert "rv_ef_implausible" in flags
    ok = {f.code for f in result_flags({"lv_edv": 120, "lv_ef": 60, "lv_mass": 110, "rv_edv": 150, "rv_ef": 55.0},
                                       lm, 0)}
    assert "rv_ef_implausible" not in ok
