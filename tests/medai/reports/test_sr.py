"""DICOM SR TID 1500: read back with highdicom; values, codes, units, normality and segment references equal the
Report's."""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import pydicom
import pytest
from pydicom.sr.codedict import codes

from medai.domain.measurement import Flag
from medai.reports.seg import segment_numbers
from medai.reports.sr import write_sr
from tests.medai.reports.conftest import Case

_NORMALITY = {Flag.NORMAL: codes.cid222.Normal, Flag.LOW: codes.cid222.AbnormallyLow,
              Flag.HIGH: codes.cid222.AbnormallyHigh}


def _code_key(concept: hd.sr.CodedConcept) -> tuple[str, str]:
    return str(concept.value), str(concept.scheme_designator)


def _all_measurements(sr: hd.sr.Comprehensive3DSR) -> dict[tuple[str, str], tuple[object, object]]:
    """(code value, scheme) -> (measurement item, its group)."""
    report = sr.content
    out = {}
    for group in [*report.get_volumetric_roi_measurement_groups(), *report.get_image_measurement_groups()]:
        for m in group.get_measurements():
            out[_code_key(m.name)] = (m, group)
    return out


def test_sr_values_codes_and_units_equal_the_report(case: Case, rendered: dict[str, Path]) -> None:
    sr = hd.sr.srread(rendered["sr"])
    assert isinstance(sr, hd.sr.Comprehensive3DSR)
    assert sr.VerificationFlag == "UNVERIFIED" and sr.Manufacturer == "medai"
    found = _all_measurements(sr)
    assert len(found) == len(case.report.measurements) > 20
    for m in case.report.measurements:
        item, _ = found[(m.code.value, m.code.scheme)]
        assert item.name.meaning == m.code.meaning
        assert item.value == pytest.approx(m.value, rel=1e-9, abs=1e-9)
        assert (item.unit.value, item.unit.scheme_designator) == (m.unit.code, "UCUM")


def test_sr_normality_and_normal_ranges(case: Case, rendered: dict[str, Path]) -> None:
    ds = pydicom.dcmread(rendered["sr"])

    def walk(items, parent=None):
        for it in items:
            yield it, parent
            yield from walk(it.get("ContentSequence", []), it)

    num_props: dict[str, dict[str, object]] = {}
    for item, _parent in walk(ds.ContentSequence):
        if item.ValueType == "NUM" and "ContentSequence" in item:
            code = item.ConceptNameCodeSequence[0]
            props = {}
            for child in item.ContentSequence:
                name = child.ConceptNameCodeSequence[0].CodeMeaning
                if child.ValueType == "CODE":
                    props[name] = child.ConceptCodeSequence[0].CodeValue
                elif child.ValueType == "NUM":
                    props[name] = float(child.MeasuredValueSequence[0].NumericValue)
            num_props[str(code.get("CodeValue") or code.get("LongCodeValue"))] = props
    checked = 0
    for m in case.report.measurements:
        props = num_props[m.code.value]
        if m.flag in _NORMALITY:
            assert props["Normality"] == _NORMALITY[m.flag].value
            checked += 1
        if m.reference_range is not None:
            assert props["Normal Range Lower Limit"] == pytest.approx(m.reference_range.low)
            assert props["Normal Range Upper Limit"] == pytest.approx(m.reference_range.high)
    assert checked >= 5 and any(m.flag in (Flag.LOW, Flag.HIGH) for m in case.report.measurements)


def test_sr_groups_reference_the_seg_segments(case: Case, rendered: dict[str, Path]) -> None:
    sr = hd.sr.srread(rendered["sr"])
    seg = pydicom.dcmread(rendered["seg"])
    numbers = segment_numbers(case.label_map)
    found = _all_measurements(sr)
    sops = case.label_map.volume.source_sop_uids
    phase_sops = {"ED": set(sops[case.prediction.extras["ed_frame"]]),
                  "ES": set(sops[case.prediction.extras["es_frame"]])}
    # the SEG is part of the SR's evidence
    evidence = {str(i.ReferencedSOPInstanceUID) for s in sr.CurrentRequestedProcedureEvidenceSequence
                for ser in s.ReferencedSeriesSequence for i in ser.ReferencedSOPSequence}
    assert str(seg.SOPInstanceUID) in evidence
    for m in case.report.measurements:
        _, group = found[(m.code.value, m.code.scheme)]
        if m.segment is None:
            assert not isinstance(group, hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations)
            continue
        ref = group.referenced_segment
        assert ref is not None, m.name
        assert ref.referenced_sop_instance_uid == seg.SOPInstanceUID
        assert ref.referenced_segment_numbers == [numbers[m.segment]]
        src = {str(s.referenced_sop_instance_uid) for s in ref.source_images_for_segmentation}
        if m.frame in phase_sops:  # ED/ES measurements point at that phase's images only
            assert src and src <= phase_sops[m.frame], m.name
        assert group.finding_type.value == case.label_map.label(m.segment).property_type.value


def test_sr_carries_quality_flags(case: Case, rendered: dict[str, Path]) -> None:
    assert case.report.flags  # the small phantom has no basal slice beyond the LV: flagged
    sr = hd.sr.srread(rendered["sr"])
    codes_found = {str(q.value.value) for g in sr.content.get_image_measurement_groups()
                   for q in g.get_qualitative_evaluations()}
    assert {f.code for f in case.report.flags} <= codes_found


def test_sr_without_seg_keeps_every_measurement(case: Case, tmp_path: Path) -> None:
    path = write_sr(case.report, case.prediction, case.study, tmp_path / "sr.dcm")  # no seg.dcm next to it
    sr = hd.sr.srread(path)
    assert not sr.content.get_volumetric_roi_measurement_groups()
    found = _all_measurements(sr)
    for m in case.report.measurements:
        assert found[(m.code.value, m.code.scheme)][0].value == pytest.approx(m.value, rel=1e-9, abs=1e-9)
