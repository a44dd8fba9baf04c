"""DICOM SEG: read back with highdicom, geometry equals the source images, masks equal the label map at ED/ES."""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest

import medai
from medai.domain.volume import LabelMap
from medai.errors import GeometryError, InputValidationError
from medai.reports.seg import build_seg, segment_numbers, write_seg
from tests.medai.reports.conftest import Case


def _phases(case: Case) -> dict[str, int]:
    return {"ED": case.prediction.extras["ed_frame"], "ES": case.prediction.extras["es_frame"]}


def _readback_labels(seg: hd.seg.Segmentation, sops: tuple[str, ...], label_map: LabelMap) -> np.ndarray:
    """``(Z, Y, X)`` label values of the source images ``sops`` as stored in the SEG."""
    px = seg.get_pixels_by_source_instance(list(sops), combine_segments=True, relabel=False)
    to_value = {n: label_map.label(name).value for name, n in segment_numbers(label_map).items()}
    out = np.zeros(px.shape, dtype=np.uint8)
    for number, value in to_value.items():
        out[px == number] = value
    return out


def test_seg_masks_equal_label_map_at_ed_and_es(case: Case, rendered: dict[str, Path]) -> None:
    seg = hd.seg.segread(rendered["seg"])
    lm = case.label_map
    phases = _phases(case)
    assert phases["ED"] != phases["ES"]
    for t in phases.values():
        back = _readback_labels(seg, lm.volume.source_sop_uids[t], lm)
        np.testing.assert_array_equal(back, lm.volume.array[t])
        assert (back > 0).sum() > 100  # the phantom heart is really there
    # one frame per (phase, slice, segment) present; the two phases are a temporal dimension
    temporal = {int(f.FrameContentSequence[0].TemporalPositionIndex) for f in seg.PerFrameFunctionalGroupsSequence}
    assert temporal == {1, 2}


def test_seg_geometry_matches_source_images(case: Case, rendered: dict[str, Path]) -> None:
    seg = pydicom.dcmread(rendered["seg"])
    sources = {str(ds.SOPInstanceUID): ds for ds in case.datasets}
    phase_sops = {t: set(case.label_map.volume.source_sop_uids[t]) for t in _phases(case).values()}
    shared = seg.SharedFunctionalGroupsSequence[0]
    any_src = next(iter(sources.values()))
    np.testing.assert_allclose([float(v) for v in shared.PlaneOrientationSequence[0].ImageOrientationPatient],
                               [float(v) for v in any_src.ImageOrientationPatient], atol=1e-6)
    np.testing.assert_allclose([float(v) for v in shared.PixelMeasuresSequence[0].PixelSpacing],
                               [float(v) for v in any_src.PixelSpacing])
    assert (seg.Rows, seg.Columns) == (any_src.Rows, any_src.Columns)
    assert seg.FrameOfReferenceUID == any_src.FrameOfReferenceUID
    assert seg.StudyInstanceUID == case.study.StudyInstanceUID and seg.PatientID == any_src.PatientID
    referenced = set()
    for i, frame in enumerate(seg.PerFrameFunctionalGroupsSequence):
        src_uid = str(frame.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID)
        referenced.add(src_uid)
        src = sources[src_uid]
        np.testing.assert_allclose([float(v) for v in frame.PlanePositionSequence[0].ImagePositionPatient],
                                   [float(v) for v in src.ImagePositionPatient], atol=1e-4, err_msg=f"frame {i + 1}")
        # the frame's temporal index says which phase its source image belongs to
        t_index = int(frame.FrameContentSequence[0].TemporalPositionIndex)
        assert src_uid in phase_sops[list(_phases(case).values())[t_index - 1]]
    assert referenced <= set().union(*phase_sops.values())


def test_seg_segments_are_coded_from_the_label_table(case: Case, rendered: dict[str, Path]) -> None:
    seg = hd.seg.segread(rendered["seg"])
    numbers = segment_numbers(case.label_map)
    assert seg.SegmentationType == "BINARY"
    assert seg.Manufacturer == "medai" and seg.SoftwareVersions == medai.__version__
    assert seg.ManufacturerModelName == case.prediction.model.name
    assert case.prediction.model.version in seg.DeviceSerialNumber
    for lab in case.label_map.labels:
        desc = seg.get_segment_description(numbers[lab.name])
        assert desc.tracking_id == lab.name
        assert (desc.segmented_property_type.value, desc.segmented_property_type.scheme_designator) == (
            lab.property_type.value, lab.property_type.scheme)
        assert desc.segmented_property_category.value == lab.property_category.value
        assert desc.algorithm_type == hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC
        algo = desc.algorithm_identification[0]
        assert (algo.AlgorithmName, algo.AlgorithmVersion) == (case.prediction.model.name,
                                                              case.prediction.model.version)
        lab_value = [int(v) for v in desc.RecommendedDisplayCIELabValue]
        rgb = np.asarray(hd.color.CIELabColor.from_dicom_value(lab_value).to_rgb(), dtype=float)
        assert np.abs(rgb - np.asarray(lab.color)).max() <= 2  # CIELab round trip of the display colour


def test_static_label_map_single_phase(case: Case, tmp_path: Path) -> None:
    ed = case.prediction.extras["ed_frame"]
    static = LabelMap(case.label_map.volume.frame(ed), case.label_map.labels)
    path = write_seg(label_map=static, source_datasets=case.datasets, path=tmp_path / "seg.dcm")
    seg = hd.seg.segread(path)
    np.testing.assert_array_equal(_readback_labels(seg, static.volume.source_sop_uids[0], static), static.volume.array)
    assert "TemporalPositionIndex" not in seg.PerFrameFunctionalGroupsSequence[0].FrameContentSequence[0]


def test_seg_refuses_a_source_image_off_the_label_grid(case: Case) -> None:
    datasets = [ds.copy() for ds in case.datasets]
    target = case.label_map.volume.source_sop_uids[case.prediction.extras["es_frame"]][2]
    for ds in datasets:
        if ds.SOPInstanceUID == target:
            ds.ImagePositionPatient = [float(v) + 3.0 for v in ds.ImagePositionPatient]
    with pytest.raises(GeometryError, match="does not match slice 2"):
        build_seg(case.label_map, datasets, frames=_phases(case))


def test_seg_needs_every_source_image_and_the_frames(case: Case) -> None:
    missing = case.label_map.volume.source_sop_uids[case.prediction.extras["ed_frame"]][0]
    with pytest.raises(InputValidationError, match="not among"):
        build_seg(case.label_map, [ds for ds in case.datasets if ds.SOPInstanceUID != missing],
                  frames=_phases(case))
    with pytest.raises(InputValidationError, match="needs the frames"):
        build_seg(case.label_map, case.datasets, frames=None)
    with pytest.raises(InputValidationError, match="outside"):
        build_seg(case.label_map, case.datasets, frames={"ED": 99})
