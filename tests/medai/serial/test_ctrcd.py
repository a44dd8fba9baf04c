"""CTRCD grades of the 2022 ESC cardio-oncology guideline, and what cannot be assessed from a CMR report."""

from __future__ import annotations

from datetime import date

import pytest

from medai.domain.prediction import Severity
from medai.serial import AnalysisInput, CtrcdGrade, build_timeline, classify_ctrcd
from medai.serial.ctrcd import gls_relative_fall
from tests.medai.serial.helpers import make_report


def test_severe_new_lvef_below_40() -> None:
    f = classify_ctrcd(55.0, 38.0)
    assert (f.code, f.grade, f.severity, f.lvef_fall) == ("ctrcd_severe", CtrcdGrade.SEVERE, Severity.ERROR, 17.0)
    assert "new LVEF < 40 %" in f.message


def test_moderate_fall_of_at_least_10_points_to_40_49() -> None:
    f = classify_ctrcd(60.0, 48.0)
    assert (f.code, f.grade, f.severity) == ("ctrcd_moderate", CtrcdGrade.MODERATE, Severity.WARNING)
    assert classify_ctrcd(55.0, 45.0).grade == CtrcdGrade.MODERATE  # exactly 10 points counts


def test_fall_below_10_points_to_40_49_needs_gls_or_biomarkers() -> None:
    f = classify_ctrcd(55.0, 47.0)
    assert (f.code, f.grade, f.assessable) == ("ctrcd_moderate_not_assessable", None, False)
    assert "cannot be assessed" in f.message and "GLS" in f.message and "biomarkers" in f.message
    assert classify_ctrcd(55.0, 47.0, biomarker_rise=True).grade == CtrcdGrade.MODERATE
    assert classify_ctrcd(55.0, 47.0, gls_relative_fall_pct=18.0).grade == CtrcdGrade.MODERATE
    # GLS known normal but biomarkers unknown: still open; both negative: not met
    assert classify_ctrcd(55.0, 47.0, gls_relative_fall_pct=8.0).code == "ctrcd_moderate_not_assessable"
    f = classify_ctrcd(55.0, 47.0, gls_relative_fall_pct=8.0, biomarker_rise=False)
    assert (f.code, f.grade, f.assessable) == ("ctrcd_not_met", None, True)


def test_mild_needs_gls_or_troponin_which_cmr_lacks() -> None:
    f = classify_ctrcd(62.0, 58.0)
    assert (f.code, f.grade, f.severity, f.assessable) == ("ctrcd_mild_not_assessable", None, Severity.INFO, False)
    assert "mild CTRCD cannot be assessed" in f.message
    f = classify_ctrcd(62.0, 58.0, biomarker_rise=True)
    assert (f.code, f.grade) == ("ctrcd_mild", CtrcdGrade.MILD)
    assert classify_ctrcd(62.0, 58.0, gls_relative_fall_pct=5.0, biomarker_rise=False).code == "ctrcd_not_met"


def test_baseline_below_40_and_missing_lvef_are_not_graded() -> None:
    f = classify_ctrcd(35.0, 30.0)
    assert (f.code, f.grade, f.assessable) == ("ctrcd_baseline_reduced", None, False)
    assert classify_ctrcd(None, 50.0).code == "ctrcd_no_lvef"
    assert classify_ctrcd(60.0, None).code == "ctrcd_no_lvef"
    assert classify_ctrcd(45.0, 46.0).code == "ctrcd_not_met"  # 40-49 already at baseline, no fall


def test_a_fall_within_variability_says_so() -> None:
    assert "within CMR scan-rescan variability" in classify_ctrcd(52.0, 48.0, lvef_mdc=4.9).message
    assert "within CMR" not in classify_ctrcd(60.0, 48.0, lvef_mdc=5.2).message


def test_gls_relative_fall_uses_magnitudes() -> None:
    assert gls_relative_fall(-20.0, -16.0) == pytest.approx(20.0)
    assert gls_relative_fall(-20.0, None) is None


def test_timeline_grades_each_follow_up_against_baseline_biomarkers_only_at_the_latest() -> None:
    reps = [make_report(study_date=date(2024, 1, 1), ef=54), make_report(study_date=date(2024, 4, 1), ef=52),
            make_report(study_date=date(2024, 7, 1), ef=47)]  # 7-point fall to 40-49: moderate only with biomarkers
    tl = build_timeline([AnalysisInput(report=r) for r in reps], biomarker_rise=True)
    assert [(f.baseline_index, f.index) for f in tl.ctrcd] == [(0, 1), (0, 2)]
    assert tl.ctrcd[0].code == "ctrcd_mild_not_assessable" and tl.ctrcd[0].biomarker_rise is None
    assert tl.ctrcd[1].grade == CtrcdGrade.MODERATE and "rise in cardiac biomarkers" in tl.ctrcd[1].message
    without = build_timeline([AnalysisInput(report=r) for r in reps])
    assert without.ctrcd[1].code == "ctrcd_moderate_not_assessable"
    assert "esc2022" in tl.sources


def test_gls_from_reports_that_carry_it() -> None:
    from medai.domain.codes import UCUM, Code
    from medai.domain.measurement import Measurement

    def gls(v: float) -> Measurement:
        return Measurement(code=Code(value="GLS", scheme="99MEDAI", meaning="LV global longitudinal strain"),
                           name="lv_gls", value=v, unit=UCUM.PERCENT)

    reps = [make_report(ef=60, extra=[gls(-21.0)]), make_report(study_date=date(2024, 5, 1), ef=57,
                                                                 extra=[gls(-16.0)])]
    (f,) = build_timeline([AnalysisInput(report=r) for r in reps]).ctrcd
    assert f.grade == CtrcdGrade.MILD and f.gls_relative_fall_pct == pytest.approx(23.81, abs=0.01)
