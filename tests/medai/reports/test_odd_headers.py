"""SEG/SR from cine stacks with headers met in the field: one series per slice (Siemens), an invalid birth date
and one FrameOfReferenceUID per image (de-identified releases such as Sunnybrook), and the real SCD0000101."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest

from medai.reports import render_all
from medai.reports.seg import segment_numbers
from tests.medai.reports.conftest import make_case


def _equal_at_phases(seg_path: Path, case) -> None:  # noqa: ANN001
    seg = hd.seg.segread(seg_path)
    lm = case.label_map
    numbers = segment_numbers(lm)
    for t in (case.prediction.extras["ed_frame"], case.prediction.extras["es_frame"]):
        px = seg.get_pixels_by_source_instance(list(lm.volume.source_sop_uids[t]), combine_segments=True,
                                               relabel=False)
        back = np.zeros_like(px, dtype=np.uint8)
        for name, n in numbers.items():
            back[px == n] = lm.label(name).value
        np.testing.assert_array_equal(back, lm.volume.array[t])


def test_one_series_per_slice(tmp_path: Path) -> None:
    case = make_case(n_slices=4, n_phases=6, rows=48, cols=40, one_series_per_slice=True, seed=5)
    assert len(case.study.series) == 4
    files = render_all(case.report, case.prediction, case.study, tmp_path, kinds=("seg", "sr"))
    _equal_at_phases(files["seg"], case)
    seg = pydicom.dcmread(files["seg"])
    series_of = {str(ds.SOPInstanceUID): str(ds.SeriesInstanceUID) for ds in case.datasets}
    listed = {(str(s.SeriesInstanceUID), str(r.ReferencedSOPInstanceUID))
              for s in seg.ReferencedSeriesSequence for r in s.ReferencedInstanceSequence}
    assert len({s for s, _ in listed}) == 4
    assert all(series_of[uid] == series for series, uid in listed)  # each instance under its own series
    assert hd.sr.srread(files["sr"]).content.get_volumetric_roi_measurement_groups()


def test_invalid_birth_date_and_one_frame_of_reference_per_image(tmp_path: Path) -> None:
    case = make_case(n_slices=4, n_phases=6, rows=48, cols=40, seed=6)
    for i, ds in enumerate(case.datasets):  # headers as de-identified releases ship them
        ds.PatientBirthDate = "00000000"
        ds.FrameOfReferenceUID = f"1.2.826.0.1.3680043.8.498.777.{i + 1}"
    files = render_all(case.report, case.prediction, case.study, tmp_path, kinds=("seg", "sr"))
    _equal_at_phases(files["seg"], case)
    seg = pydicom.dcmread(files["seg"])
    assert seg.PatientBirthDate == ""
    # the SEG lives in the frame of reference the volume builder chose for the label map
    assert seg.FrameOfReferenceUID == case.label_map.volume.frame_of_reference_uid
    assert all(ds.PatientBirthDate == "00000000" for ds in case.datasets)  # the study's headers are untouched
    assert hd.sr.srread(files["sr"]).content.get_volumetric_roi_measurement_groups()


@pytest.mark.slow
@pytest.mark.realdata
def test_real_sunnybrook_study_seg_and_sr(data_dir: Path, tmp_path: Path) -> None:
    """SCD0000101 (GE, 240 images, 12 slices x 20 phases) through the analysis job with a tiny random network:
    the point is the real headers, not the segmentation. The SEG holds the prediction's label map at ED/ES; the
    only dciodvfy errors allowed are the source's own UIDs with leading zeros, which SEG and SR must reference
    verbatim."""
    import torch

    from medai.cardiac.analysis import run_cine_analysis
    from medai.dicom.ingest import ingest
    from medai.inference.predictor import Predictor
    from tests.medai.cardiac.helpers import make_tiny_package

    src = data_dir / "cardiac" / "sunnybrook" / "dicoms" / "SCD0000101"
    if not src.is_dir():
        pytest.skip(f"{src} not found")
    torch.set_num_threads(1)
    study = ingest(src).studies[0]
    out = run_cine_analysis(study, tmp_path / "out", Predictor.from_package(make_tiny_package(tmp_path / "pkg")))
    assert out.render_errors == {}
    lm = out.prediction.label_maps["cine_sax"]
    seg = hd.seg.segread(out.files["seg"])
    numbers = segment_numbers(lm)
    for t in {out.prediction.extras["ed_frame"], out.prediction.extras["es_frame"]}:
        px = seg.get_pixels_by_source_instance(list(lm.volume.source_sop_uids[t]), combine_segments=True,
                                               relabel=False)
        back = np.zeros_like(px, dtype=np.uint8)
        for name, n in numbers.items():
            back[px == n] = lm.label(name).value
        np.testing.assert_array_equal(back, lm.volume.array[t])
    assert hd.sr.srread(out.files["sr"]).StudyInstanceUID == study.StudyInstanceUID
    if shutil.which("dciodvfy") is None:
        return
    source_uids: set[str] = set()  # every UID value anywhere in the source headers (incl. nested sequences)
    for inst in (i for s in study.series for i in s.instances):
        inst.dataset.walk(lambda _ds, el: source_uids.update(
            str(v) for v in (el.value if el.VM > 1 else [el.value]) if v) if el.VR == "UI" else None)
    summary = "Error - Dicom dataset contains invalid data values for Value Representations"
    for kind in ("seg", "sr"):
        res = subprocess.run(["dciodvfy", str(out.files[kind])], capture_output=True, text=True, timeout=60,
                             check=False)
        errors = [ln for ln in (res.stdout + res.stderr).splitlines() if ln.startswith("Error")]
        ours = [ln for ln in errors if ln != summary
                and not ("Leading zeroes" in ln and ln.split("<")[-1].split(">")[0] in source_uids)]
        assert not ours, ours


def test_nothing_found_still_renders_everything(tmp_path: Path) -> None:
    """A failed segmentation (empty label map, ED == ES, no measurements, error flag) is rendered, not dropped."""
    from dataclasses import replace as dc_replace

    from medai.domain.prediction import QualityFlag, Severity
    from medai.domain.volume import LabelMap

    case = make_case(n_slices=3, n_phases=4, rows=40, cols=40, seed=7)
    lm = case.label_map
    empty = LabelMap(lm.volume.with_array(np.zeros_like(lm.volume.array)), lm.labels)
    extras = {**case.prediction.extras, "ed_frame": 0, "es_frame": 0, "wall_thickness_mm": {}}
    prediction = dc_replace(case.prediction, label_maps={"cine_sax": empty}, measurements=[], extras=extras,
                            flags=[QualityFlag(code="no_lv_found", severity=Severity.ERROR, message="No LV found.")])
    report = case.report.model_copy(update={"measurements": [], "flags": prediction.flags,
                                            "summary": {**case.report.summary, "ed_frame": 0, "es_frame": 0,
                                                        "wall_thickness_mm": {}}})
    files = render_all(report, prediction, case.study, tmp_path)
    seg = hd.seg.segread(files["seg"])
    px = seg.get_pixels_by_source_instance(list(empty.volume.source_sop_uids[0]), combine_segments=True)
    assert not px.any()
    sr = hd.sr.srread(files["sr"])
    assert {str(q.value.value) for g in sr.content.get_image_measurement_groups()
            for q in g.get_qualitative_evaluations()} == {"no_lv_found"}
    assert files["pdf"].stat().st_size > 0 and not (tmp_path / "figures" / "bullseye.png").exists()
