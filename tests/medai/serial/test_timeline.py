"""The serial timeline on constructed reports: ordering, changes against the scan-rescan MDC, dates from the
report / the DICOM next to it / the analysis time, patient checks, bad inputs, JSON and PNG."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from medai.errors import InputValidationError
from medai.serial import (
    AnalysisInput,
    ChangeVerdict,
    ComparisonKind,
    DateSource,
    Timeline,
    build_timeline,
    collect_report_paths,
    compare_paths,
    load_analysis,
    write_timeline,
)
from medai.serial.plot import timeline_png
from tests.medai.serial.helpers import cine, make_report, write_result


def _inputs(*reports) -> list[AnalysisInput]:  # noqa: ANN002
    return [AnalysisInput(report=r, source=f"r{i}") for i, r in enumerate(reports)]


def test_points_are_ordered_by_study_date_and_baseline_is_the_first() -> None:
    late = make_report(study_date=date(2024, 9, 1), ef=50)
    first = make_report(study_date=date(2024, 1, 1), ef=62)
    mid = make_report(study_date=date(2024, 4, 1), ef=58)
    tl = build_timeline(_inputs(late, first, mid))
    assert [p.report_id for p in tl.points] == [first.report_id, mid.report_id, late.report_id]
    assert [p.days_from_baseline for p in tl.points] == [0.0, 91.0, 244.0]
    assert tl.track("lv_ef").values == [62, 58, 50]
    assert all(p.date_source == DateSource.REPORT for p in tl.points)
    consecutive = tl.changes_of("lv_ef", ComparisonKind.CONSECUTIVE)
    assert [(c.from_index, c.to_index) for c in consecutive] == [(0, 1), (1, 2)]
    (whole,) = tl.changes_of("lv_ef", ComparisonKind.BASELINE_LATEST)
    assert (whole.from_index, whole.to_index, whole.delta, whole.days) == (0, 2, -12.0, 244.0)


def test_ef_change_within_and_beyond_the_minimal_detectable_change() -> None:
    # LVEF CV 4.9 % (SD of differences / mean): 60 -> 58, MDC = 1.96 * 0.049 * 59 = 5.666 points
    tl = build_timeline(_inputs(make_report(ef=60), make_report(study_date=date(2024, 6, 1), ef=58)))
    (c,) = tl.changes_of("lv_ef", ComparisonKind.CONSECUTIVE)
    assert c.delta == pytest.approx(-2.0) and c.mdc == pytest.approx(1.96 * 0.049 * 59, abs=1e-4)
    assert c.verdict == ChangeVerdict.WITHIN and c.relative_pct == pytest.approx(-3.33, abs=0.01)
    # 60 -> 48: MDC = 1.96 * 0.049 * 54 = 5.186 < 12
    tl = build_timeline(_inputs(make_report(ef=60), make_report(study_date=date(2024, 6, 1), ef=48)))
    (c,) = tl.changes_of("lv_ef", ComparisonKind.CONSECUTIVE)
    assert c.mdc == pytest.approx(5.1862, abs=1e-4) and c.verdict == ChangeVerdict.DECREASE


def test_volume_increase_and_scar_from_the_model_method_with_limits_of_agreement() -> None:
    a = make_report(edv=150, infarct_pct=20.0)
    b = make_report(study_date=date(2024, 3, 1), edv=170, infarct_pct=21.5)
    c = make_report(study_date=date(2024, 9, 1), edv=171, infarct_pct=15.0)
    tl = build_timeline(_inputs(a, b, c))
    edv = tl.changes_of("lv_edv", ComparisonKind.CONSECUTIVE)
    # EDV CV 3.9 %: 150 -> 170, MDC = 1.96 * 0.039 * 160 = 12.23 mL < 20; 170 -> 171 within
    assert edv[0].mdc == pytest.approx(12.2304, abs=1e-4) and edv[0].verdict == ChangeVerdict.INCREASE
    assert edv[1].verdict == ChangeVerdict.WITHIN
    # infarct %: the model's global value (not the 5-SD value, not a segment); MDC = limits of agreement 2.4
    assert tl.track("lge_infarct_pct").values == [20.0, 21.5, 15.0]
    scar = tl.changes_of("lge_infarct_pct", ComparisonKind.CONSECUTIVE)
    assert [s.mdc for s in scar] == [2.4, 2.4]
    assert [s.verdict for s in scar] == [ChangeVerdict.WITHIN, ChangeVerdict.DECREASE]
    assert "Thiele" in tl.track("lge_infarct_pct").source and "Grothues" in tl.track("lv_edv").source


def test_measurement_without_a_published_figure_is_tracked_as_no_reference() -> None:
    a = make_report(extra=[cine("lv_sv", 90.0)])
    b = make_report(study_date=date(2024, 5, 1), extra=[cine("lv_sv", 60.0)])
    tl = build_timeline(_inputs(a, b))
    (c,) = tl.changes_of("lv_sv", ComparisonKind.CONSECUTIVE)
    assert c.mdc is None and c.verdict == ChangeVerdict.NO_REFERENCE and c.delta == -30.0


def test_a_value_missing_in_the_middle_is_skipped_and_baseline_latest_spans_the_ends() -> None:
    a = make_report(infarct_pct=10.0)
    b = make_report(study_date=date(2024, 2, 1))  # cine only
    c = make_report(study_date=date(2024, 3, 1), infarct_pct=4.0)
    tl = build_timeline(_inputs(a, b, c))
    assert tl.track("lge_infarct_pct").values == [10.0, None, 4.0]
    assert tl.changes_of("lge_infarct_pct", ComparisonKind.CONSECUTIVE) == []
    (whole,) = tl.changes_of("lge_infarct_pct", ComparisonKind.BASELINE_LATEST)
    assert (whole.from_index, whole.to_index, whole.verdict) == (0, 2, ChangeVerdict.DECREASE)


def test_different_patients_are_refused_unless_one_is_chosen_or_mixing_is_allowed() -> None:
    ins = _inputs(make_report("A"), make_report("B", date(2024, 2, 1)), make_report("A", date(2024, 3, 1)))
    with pytest.raises(InputValidationError, match="2 different patient ids.*--patient"):
        build_timeline(ins)
    tl = build_timeline(ins, patient_id="A")
    assert tl.patient_id == "A" and len(tl.points) == 2
    assert [f.code for f in tl.flags] == ["other_patients_skipped"]
    mixed = build_timeline(ins, allow_mixed_patients=True)
    assert mixed.patient_id == "" and len(mixed.points) == 3 and "mixed_patients" in [f.code for f in mixed.flags]
    with pytest.raises(InputValidationError, match="none of the 3 reports is of patient 'C'"):
        build_timeline(ins, patient_id="C")


def test_fewer_than_two_analyses_are_refused_and_one_is_a_flagged_timeline_when_asked() -> None:
    with pytest.raises(InputValidationError, match="at least 2 analyses"):
        build_timeline(_inputs(make_report()))
    tl = build_timeline(_inputs(make_report()), min_analyses=1)
    assert len(tl.points) == 1 and tl.changes == [] and tl.ctrcd == []
    assert [f.code for f in tl.flags] == ["single_analysis"]


def test_review_and_repeated_study_are_flagged_and_carried_into_changes() -> None:
    a = make_report(study_uid="1.2.3", ef=60)
    b = make_report(study_uid="1.2.3", study_date=date(2024, 1, 10), ef=59, review=["Cine: motion artefacts"],
                    ef_review=["artefact_motion"])
    tl = build_timeline(_inputs(a, b))
    codes = [f.code for f in tl.flags]
    assert "review_required" in codes and "same_study_repeated" in codes
    (c,) = tl.changes_of("lv_ef", ComparisonKind.CONSECUTIVE)
    assert c.under_review and tl.points[1].review == {"lv_ef": ["artefact_motion"]}


def _sr(path: Path, study_date: str, study_time: str = "") -> None:
    ds = pydicom.Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.88.33"
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID, ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.StudyDate, ds.StudyTime, ds.Modality = generate_uid(), study_date, study_time, "SR"
    ds.save_as(path, enforce_file_format=True)


def test_dates_from_the_report_then_the_sr_next_to_it_then_the_analysis_time(tmp_path: Path) -> None:
    write_result(tmp_path / "a", make_report(study_date=date(2023, 5, 2), ef=61))
    write_result(tmp_path / "b", make_report(study_date=None, ef=55))
    _sr(tmp_path / "b" / "sr.dcm", "20231102", "143005.25")
    write_result(tmp_path / "c", make_report(study_date=None, ef=50))  # no DICOM: analysis time, flagged
    tl = compare_paths([tmp_path])  # a folder of result folders
    src = {p.values["lv_ef"]: (p.date_source, p.study_datetime) for p in tl.points}
    assert src[61] == (DateSource.REPORT, datetime(2023, 5, 2))
    assert src[55] == (DateSource.DICOM, datetime(2023, 11, 2, 14, 30, 5))
    assert src[50][0] == DateSource.ANALYSIS and src[50][1] > datetime(2024, 1, 1)
    assert [p.values["lv_ef"] for p in tl.points] == [61, 55, 50]
    assert [f.code for f in tl.flags] == ["study_date_unknown"]


def test_bad_inputs_are_clear_errors(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(InputValidationError, match="not a readable JSON report"):
        load_analysis(tmp_path / "bad.json")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(InputValidationError, match="not a report object"):
        load_analysis(tmp_path / "list.json")
    (tmp_path / "invalid.json").write_text(json.dumps({"schema_version": "1.3", "measurements": "x"}))
    with pytest.raises(InputValidationError, match="not a valid report"):
        load_analysis(tmp_path / "invalid.json")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputValidationError, match="neither a report.json nor a folder"):
        collect_report_paths([tmp_path / "empty"])
    with pytest.raises(InputValidationError, match="neither a report.json"):
        collect_report_paths([tmp_path / "missing"])


def test_timeline_json_round_trips_and_png_is_drawn(tmp_path: Path) -> None:
    tl = build_timeline(_inputs(make_report(ef=62, infarct_pct=8.0),
                                make_report(study_date=date(2024, 4, 1), ef=45, infarct_pct=8.5),
                                make_report(study_date=date(2024, 8, 1), ef=38, infarct_pct=9.0)))
    path = write_timeline(tl, tmp_path / "t.json")
    back = Timeline.model_validate_json(path.read_text())
    assert back == tl and back.ctrcd[-1].code == "ctrcd_severe"
    png = timeline_png(tl, tmp_path / "t.png")
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and (tmp_path / "t.png").read_bytes() == png
    from PIL import Image

    with Image.open(tmp_path / "t.png") as im:  # four panels: EF, volumes, mass, scar
        assert im.height > im.width
