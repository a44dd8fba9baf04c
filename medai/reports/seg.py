"""DICOM Segmentation (SEG) rendering of a label map, via highdicom.

The label map is already in the source geometry (see ``ARCHITECTURE``: predictions are mapped back before anything
is written as DICOM), so each frame of the SEG is one source image: for a 4-D cine label map the SEG holds the
end-diastolic and end-systolic phases, one frame per (phase, slice, segment), each referencing the source MR image
of that phase and slice (``DerivationImageSequence`` / ``SourceImageSequence``). Segments are BINARY, coded from
the label map's :class:`~medai.domain.volume.SegmentLabel` (SNOMED property category and type, recommended display
colour), and carry the producing model as their algorithm identification.

Before writing, every referenced source image is checked against the label map's affine (position, orientation,
matrix size, pixel spacing), so a SEG can never silently point at images it does not overlay.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from medai.domain.codes import Code
from medai.domain.prediction import ModelRef
from medai.domain.volume import LabelMap, SegmentLabel
from medai.errors import GeometryError, InputValidationError

if TYPE_CHECKING:
    import highdicom as hd
    from pydicom import Dataset

    from medai.domain.prediction import Prediction, Report
    from medai.domain.study import Study

logger = logging.getLogger(__name__)

#: SeriesNumber given to the SEG series (derived series sort after acquired ones in most viewers).
SEG_SERIES_NUMBER = 9001
#: Manufacturer written into the SEG/SR equipment module.
MANUFACTURER = "medai"
#: Largest allowed difference (mm) between a source image's geometry and the label map's affine.
GEOMETRY_TOLERANCE_MM = 0.05


def coded_concept(code: Code) -> Any:
    """A :class:`~medai.domain.codes.Code` as a highdicom ``CodedConcept``."""
    from highdicom.sr import CodedConcept

    return CodedConcept(value=code.value, scheme_designator=code.scheme, meaning=code.meaning[:64])


def device_serial_number(model: ModelRef) -> str:
    """The DeviceSerialNumber of the software "device": model name and version (LO, at most 64 characters)."""
    return f"{model.name}-{model.version}"[:64]


def software_versions() -> str:
    """SoftwareVersions: the medai version (the model's version is in the algorithm identification)."""
    import medai

    return str(medai.__version__)


#: Date/time attributes highdicom copies from the source images; invalid values (``00000000`` from some
#: de-identification tools) are blanked in the copies it sees.
_DATE_KEYWORDS = ("PatientBirthDate", "StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate")
_TIME_KEYWORDS = ("StudyTime", "SeriesTime", "AcquisitionTime", "ContentTime")


def header_copy(ds: Dataset, *, frame_of_reference_uid: str | None = None, series_uid: str | None = None) -> Dataset:
    """A pixel-less copy of a source image header that highdicom accepts.

    Invalid DA/TM values are blanked, an unknown PatientSex becomes empty, and the FrameOfReferenceUID /
    SeriesInstanceUID are replaced when given (see :func:`build_seg`). The copy shares the unchanged data elements
    with ``ds`` (cheap for headers with large private blocks); changed ones are new elements, so ``ds`` itself is
    never modified.
    """
    from pydicom import Dataset as _Dataset
    from pydicom.valuerep import DA, TM

    out = _Dataset()
    for elem in ds:
        if elem.tag.group == 0x7FE0 or elem.keyword in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"):
            continue
        out.add(elem)
    if hasattr(ds, "file_meta"):
        out.file_meta = ds.file_meta

    def replace(keyword: str, value: str) -> None:
        if keyword in out:
            del out[keyword]  # a new element: never write through to the shared one
        setattr(out, keyword, value)

    for keywords, vr_type in ((_DATE_KEYWORDS, DA), (_TIME_KEYWORDS, TM)):
        for kw in keywords:
            value = out.get(kw)
            if value in (None, ""):
                continue
            try:
                vr_type(str(value))
            except ValueError:
                logger.info("source image %s: invalid %s %r blanked in the SEG/SR copy",
                            out.get("SOPInstanceUID"), kw, str(value))
                replace(kw, "")
    if str(out.get("PatientSex", "")) not in ("M", "F", "O", ""):
        replace("PatientSex", "")
    if frame_of_reference_uid and out.get("FrameOfReferenceUID") != frame_of_reference_uid:
        replace("FrameOfReferenceUID", frame_of_reference_uid)
    if series_uid and out.get("SeriesInstanceUID") != series_uid:
        replace("SeriesInstanceUID", series_uid)
    return out


def _frame_indices(label_map: LabelMap, frames: Mapping[str, int] | Sequence[int] | None) -> dict[str, int]:
    """Phase name -> time index of the label map (a static map has the single phase ``"static"``)."""
    vol = label_map.volume
    if not vol.is_temporal:
        return {"static": 0}
    if frames is None:
        raise InputValidationError(
            "a 4-D cine label map needs the frames to write (e.g. frames={'ED': 0, 'ES': 9})",
            details=[{"field": "frames", "problem": "missing"}])
    named = dict(frames) if isinstance(frames, Mapping) else {f"frame{int(t)}": int(t) for t in frames}
    out: dict[str, int] = {}
    for name, t in named.items():
        if not 0 <= int(t) < vol.n_frames:
            raise InputValidationError(
                f"frame {name}={t} is outside the label map's {vol.n_frames} frames",
                details=[{"field": "frames", "problem": "out of range", "value": int(t)}])
        if int(t) not in out.values():  # ED == ES (a degenerate curve): write the phase once
            out[str(name)] = int(t)
    return out


def _check_geometry(ds: Dataset, label_map: LabelMap, z: int) -> None:
    """Raise GeometryError when source image ``ds`` is not slice ``z`` of the label map's grid."""
    aff = label_map.volume.affine
    _, ny, nx = label_map.volume.spatial_shape
    uid = getattr(ds, "SOPInstanceUID", "?")
    if int(ds.Rows) != ny or int(ds.Columns) != nx:
        raise GeometryError(
            f"source image {uid} is {ds.Rows}x{ds.Columns} but the label map slice is {ny}x{nx}: the label map is "
            "not in the source geometry; resample it back before writing a SEG")
    expected_pos = aff[:3, 3] + aff[:3, 0] * z
    pos = np.asarray([float(v) for v in ds.ImagePositionPatient])
    iop = np.asarray([float(v) for v in ds.ImageOrientationPatient])
    dr, dc = (float(v) for v in ds.PixelSpacing)
    # affine columns: y (rows) -> col_cos * row spacing, x (columns) -> row_cos * column spacing
    expected_y = iop[3:] * dr
    expected_x = iop[:3] * dc
    worst = max(
        float(np.abs(pos - expected_pos).max()),
        float(np.abs(expected_y - aff[:3, 1]).max()) * max(ny, 1),
        float(np.abs(expected_x - aff[:3, 2]).max()) * max(nx, 1),
    )
    if worst > GEOMETRY_TOLERANCE_MM:
        raise GeometryError(
            f"source image {uid} does not match slice {z} of the label map (off by up to {worst:.3f} mm across the "
            f"image): position {pos.round(3).tolist()} vs {expected_pos.round(3).tolist()}. The SEG would not overlay "
            "its source; check that the label map was mapped back to the source geometry")


def _segment_description(number: int, lab: SegmentLabel, model: ModelRef) -> Any:
    import highdicom as hd
    from pydicom.sr.codedict import codes

    algo = hd.AlgorithmIdentificationSequence(
        name=model.name[:64], family=codes.cid7162.ArtificialIntelligence, version=model.version[:64],
        source=MANUFACTURER)
    return hd.seg.SegmentDescription(
        segment_number=number,
        segment_label=lab.property_type.meaning[:64] or lab.name,
        segmented_property_category=coded_concept(lab.property_category),
        segmented_property_type=coded_concept(lab.property_type),
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=algo,
        tracking_uid=hd.UID(),
        tracking_id=lab.name,
        display_color=hd.color.CIELabColor.from_rgb(*(int(c) for c in lab.color)),
    )


def segment_numbers(label_map: LabelMap) -> dict[str, int]:
    """Segment name -> DICOM SegmentNumber (1, 2, ... in order of label value, as written by :func:`build_seg`)."""
    return {lab.name: i + 1 for i, lab in enumerate(sorted(label_map.labels, key=lambda lab: lab.value))}


def build_seg(
    label_map: LabelMap,
    source_datasets: Sequence[Dataset],
    *,
    frames: Mapping[str, int] | Sequence[int] | None = None,
    model: ModelRef | None = None,
    series_number: int = SEG_SERIES_NUMBER,
) -> hd.seg.Segmentation:
    """Build the DICOM SEG of ``label_map``.

    Args:
        label_map: ``(T, Z, Y, X)`` or ``(Z, Y, X)`` uint8 label map in the source geometry, with
            ``volume.source_sop_uids[t][z]`` naming the source image of each slice.
        source_datasets: the source images (headers suffice; pixel data is not read). Must include every image of
            the written frames.
        frames: for a cine label map, phase name -> time index to write (``{"ED": 0, "ES": 9}``) or a sequence of
            indices; ignored for a static map.
        model: the producing model (algorithm identification, device serial number, model name).
        series_number: SeriesNumber of the new SEG series.

    Returns:
        The highdicom ``Segmentation`` (BINARY, one segment per label, frames per (phase, slice) with a mask).

    Raises:
        InputValidationError: frames missing/out of range, no source SOP UIDs, or a source image not supplied.
        GeometryError: a source image is not the label map slice it is supposed to be.
    """
    import highdicom as hd

    model = model or ModelRef(name="unknown", version="0")
    vol = label_map.volume
    if vol.source_sop_uids is None:
        raise InputValidationError(
            "the label map does not name its source images (volume.source_sop_uids is None); a SEG must reference "
            "the images it segments: build the label map from a DICOM volume",
            details=[{"field": "label_map.volume.source_sop_uids", "problem": "missing"}])
    if not label_map.labels:
        raise InputValidationError("the label map has no segments to write",
                                   details=[{"field": "label_map.labels", "problem": "empty"}])
    by_uid = {str(ds.SOPInstanceUID): ds for ds in source_datasets}
    phases = _frame_indices(label_map, frames)
    # highdicom wants one series and one frame of reference: cine stacks stored one series per slice (Siemens) or
    # with a FrameOfReferenceUID per image (some de-identified releases) get unified copies, and the SEG's
    # ReferencedSeriesSequence is rebuilt with the true series afterwards.
    true_series: dict[str, str] = {}
    first = next(iter(by_uid.values()), None)
    unified_series = str(first.SeriesInstanceUID) if first is not None else None
    for_uid = vol.frame_of_reference_uid or (str(first.get("FrameOfReferenceUID", "")) if first is not None else "")
    arr = vol.array if vol.is_temporal else vol.array[None]
    n_z = vol.spatial_shape[0]
    labels = sorted(label_map.labels, key=lambda lab: lab.value)
    descriptions = [_segment_description(i + 1, lab, model) for i, lab in enumerate(labels)]
    phase_text = ", ".join(f"{k} (frame {v})" for k, v in phases.items())
    series_uid, sop_uid = hd.UID(), hd.UID()
    parts = []
    for t in phases.values():
        sops = vol.source_sop_uids[t] if vol.is_temporal else vol.source_sop_uids[0]
        if len(sops) != n_z:
            raise InputValidationError(
                f"source_sop_uids of frame {t} names {len(sops)} images for {n_z} slices",
                details=[{"field": "label_map.volume.source_sop_uids", "problem": "length", "value": len(sops)}])
        images: list[Dataset] = []
        for z, uid in enumerate(sops):
            ds = by_uid.get(str(uid))
            if ds is None:
                raise InputValidationError(
                    f"source image {uid} (frame {t}, slice {z}) is not among the {len(by_uid)} source datasets "
                    "given; pass the cine series' instances",
                    details=[{"field": "source_datasets", "problem": "missing", "value": str(uid)}])
            _check_geometry(ds, label_map, z)
            true_series[str(uid)] = str(ds.SeriesInstanceUID)
            images.append(header_copy(ds, frame_of_reference_uid=for_uid or None, series_uid=unified_series))
        masks = np.stack([arr[t] == lab.value for lab in labels], axis=-1)  # (Z, Y, X, S) bool
        parts.append(hd.seg.Segmentation(
            source_images=images,
            pixel_array=masks,
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=descriptions,
            series_instance_uid=series_uid,
            series_number=series_number,
            sop_instance_uid=sop_uid,
            instance_number=1,
            manufacturer=MANUFACTURER,
            manufacturer_model_name=model.name[:64],
            software_versions=software_versions(),
            device_serial_number=device_serial_number(model),
            content_description=f"{model.name} {model.version}: {phase_text}. Research use only."[:64],
            content_label="MEDAI_SEG",
            content_creator_name="medai^automatic",
            series_description=f"medai segmentation {model.name} {model.version}"[:64],
        ))
    seg = parts[0] if len(parts) == 1 else _merge_phases(parts)
    if len(set(true_series.values())) > 1:
        _restore_referenced_series(seg, true_series)
    return seg


def _restore_referenced_series(seg: Dataset, series_of: dict[str, str]) -> None:
    """Rebuild ReferencedSeriesSequence so each referenced instance sits under its own series."""
    from pydicom import Dataset as _Dataset
    from pydicom.sequence import Sequence as DicomSequence

    refs = [r for s in seg.ReferencedSeriesSequence for r in s.ReferencedInstanceSequence]
    grouped: dict[str, list[Dataset]] = {}
    for r in refs:
        grouped.setdefault(series_of.get(str(r.ReferencedSOPInstanceUID), ""), []).append(r)
    items = []
    for series_uid, instances in grouped.items():
        item = _Dataset()
        item.SeriesInstanceUID = series_uid
        item.ReferencedInstanceSequence = DicomSequence(instances)
        items.append(item)
    seg.ReferencedSeriesSequence = DicomSequence(items)


def _merge_phases(parts: list[hd.seg.Segmentation]) -> hd.seg.Segmentation:
    """Join per-phase SEGs (same UIDs, same segments) into one multi-phase SEG instance.

    highdicom builds one instance from planes at distinct positions only; the phases of a cine share their slice
    positions, so each phase is built on its own and the frames are concatenated here, with a third dimension,
    TemporalPositionIndex (1 = first phase written, ...), in every frame's FrameContentSequence.
    """
    import highdicom as hd
    from pydicom import Dataset as _Dataset
    from pydicom.pixels import pack_bits, unpack_bits
    from pydicom.sequence import Sequence as DicomSequence
    from pydicom.tag import Tag

    base = parts[0]
    n_px = int(base.Rows) * int(base.Columns)
    frames_bits = []
    per_frame: list[_Dataset] = []
    for index, part in enumerate(parts, start=1):
        n = int(part.NumberOfFrames)
        frames_bits.append(np.asarray(unpack_bits(part.PixelData))[: n * n_px])
        for item in part.PerFrameFunctionalGroupsSequence:
            content = item.FrameContentSequence[0]
            content.TemporalPositionIndex = index
            values = list(content.DimensionIndexValues)
            content.DimensionIndexValues = [values[0], index, *values[1:]]
            per_frame.append(item)
    dim = _Dataset()
    dim.DimensionOrganizationUID = base.DimensionIndexSequence[0].DimensionOrganizationUID
    dim.DimensionIndexPointer = Tag("TemporalPositionIndex")
    dim.FunctionalGroupPointer = Tag("FrameContentSequence")
    dim.DimensionDescriptionLabel = "Temporal Position Index"
    items = list(base.DimensionIndexSequence)
    base.DimensionIndexSequence = DicomSequence([items[0], dim, *items[1:]])
    if "DimensionOrganizationType" in base:
        del base.DimensionOrganizationType  # the frames no longer form one 3-D volume
    base.PerFrameFunctionalGroupsSequence = DicomSequence(per_frame)
    base.NumberOfFrames = len(per_frame)
    base.PixelData = pack_bits(np.concatenate(frames_bits).astype(np.uint8))
    # the union of the referenced source images
    seen = {str(r.ReferencedSOPInstanceUID) for r in base.get("SourceImageSequence", [])}
    refs = {str(r.ReferencedSOPInstanceUID)
            for s in base.ReferencedSeriesSequence for r in s.ReferencedInstanceSequence}
    for part in parts[1:]:
        for r in part.get("SourceImageSequence", []):
            if str(r.ReferencedSOPInstanceUID) not in seen:
                base.SourceImageSequence.append(r)
                seen.add(str(r.ReferencedSOPInstanceUID))
        for s in part.ReferencedSeriesSequence:
            target = next((b for b in base.ReferencedSeriesSequence if b.SeriesInstanceUID == s.SeriesInstanceUID),
                          None)
            if target is None:
                base.ReferencedSeriesSequence.append(s)
                continue
            for r in s.ReferencedInstanceSequence:
                if str(r.ReferencedSOPInstanceUID) not in refs:
                    target.ReferencedInstanceSequence.append(r)
                    refs.add(str(r.ReferencedSOPInstanceUID))
    return hd.seg.Segmentation.from_dataset(base, copy=False)


def write_seg(
    report: Report | None = None,
    prediction: Prediction | None = None,
    study: Study | None = None,
    path: Path | str = "seg.dcm",
    *,
    label_map: LabelMap | None = None,
    source_datasets: Sequence[Dataset] | None = None,
    frames: Mapping[str, int] | Sequence[int] | None = None,
    role: str = "cine_sax",
) -> Path:
    """Write ``seg.dcm``: the renderer called by the analysis job (``report, prediction, study, path``).

    With a prediction, the label map is ``prediction.label_maps[role]``, the frames are ``{"ED": extras["ed_frame"],
    "ES": extras["es_frame"]}`` and the source images are the study's instances named by the label map; each may
    be overridden with ``label_map`` / ``frames`` / ``source_datasets``.

    Returns:
        ``path``.
    """
    path = Path(path)
    model = prediction.model if prediction is not None else (report.models[0] if report and report.models else None)
    if label_map is None:
        if prediction is None or role not in prediction.label_maps:
            raise InputValidationError(
                f"no {role!r} label map to write as DICOM SEG",
                details=[{"field": "prediction.label_maps", "problem": "missing", "value": role}])
        label_map = prediction.label_maps[role]
    if frames is None and prediction is not None and label_map.volume.is_temporal:
        ex = prediction.extras
        if ex.get("ed_frame") is not None and ex.get("es_frame") is not None:
            frames = {"ED": int(ex["ed_frame"]), "ES": int(ex["es_frame"])}
    if source_datasets is None:
        if study is None:
            raise InputValidationError("write_seg needs the source images: pass source_datasets or the study",
                                       details=[{"field": "source_datasets", "problem": "missing"}])
        source_datasets = source_datasets_for(study, label_map, frames)
    seg = build_seg(label_map, source_datasets, frames=frames, model=model)
    path.parent.mkdir(parents=True, exist_ok=True)
    seg.save_as(path)
    logger.info("wrote DICOM SEG %s (%d frames, %d segments)", path, int(seg.NumberOfFrames), len(label_map.labels))
    return path


def source_datasets_for(
    study: Study, label_map: LabelMap, frames: Mapping[str, int] | Sequence[int] | None = None
) -> list[Dataset]:
    """The headers of the study's instances that the label map's written frames were derived from."""
    vol = label_map.volume
    wanted: set[str] = set()
    if vol.source_sop_uids is not None:
        idx = _frame_indices(label_map, frames).values() if vol.is_temporal else [0]
        for t in idx:
            wanted.update(str(u) for u in vol.source_sop_uids[t])
    out = []
    for series in study.series:
        for inst in series.instances:
            if not wanted or inst.SOPInstanceUID in wanted:
                out.append(inst.dataset)
    return out


__all__ = [
    "MANUFACTURER",
    "SEG_SERIES_NUMBER",
    "build_seg",
    "coded_concept",
    "device_serial_number",
    "header_copy",
    "segment_numbers",
    "software_versions",
    "source_datasets_for",
    "write_seg",
]
