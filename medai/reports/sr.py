"""DICOM SR rendering of a :class:`~medai.domain.prediction.Report`: a TID 1500 Measurement Report via highdicom.

Layout (Comprehensive 3D SR, ``Imaging Measurement Report`` of ``Magnetic resonance imaging of heart``):

* one **volumetric ROI measurement group** (TID 1411) per (segment, phase): e.g. ``lv ED`` holds LV EDV/EDVi,
  ``lv ES`` LV ESV/ESVi, ``lv ED+ES`` SV/EF/CO, ``myo ED`` mass and the AHA wall thicknesses. Each group references
  its segment in the DICOM SEG (``ReferencedSegment`` plus the source images of that phase: DICOM forbids frame
  numbers next to a segment number), names the segmented structure as finding type, and the model as algorithm;
* measurements without a segment (heart rate, BSA) go into a TID 1501 group;
* each analysis' quality-gate assessment is a TID 1501 group ``<kind> image quality``: qualitative evaluations of
  the verdict (acceptable / review required / unusable), of each artefact class (present / absent) and of each
  review reason, with the predicted Dice per structure and the missing-slice probabilities as measurements;
* quality flags are qualitative evaluations of a ``quality`` TID 1501 group (code = the flag's stable code,
  meaning = its message, truncated to the 64 characters DICOM allows);
* each measurement carries its code, value and UCUM unit from the :class:`~medai.domain.measurement.Measurement`,
  its normality (from the flag) and, when one applies, the normal range (TID 1420 lower/upper limits, the
  population as description and the citation as authority).

The SR is UNVERIFIED: no clinician has reviewed it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from medai.domain.measurement import Flag, Measurement
from medai.domain.prediction import ModelRef, Report, ReportSection, Severity
from medai.errors import InputValidationError
from medai.reports.seg import MANUFACTURER, coded_concept, device_serial_number, header_copy

if TYPE_CHECKING:
    import highdicom as hd
    from pydicom import Dataset

    from medai.domain.prediction import Prediction
    from medai.domain.study import Study

logger = logging.getLogger(__name__)

#: SeriesNumber of the SR series.
SR_SERIES_NUMBER = 9002
#: Local coding scheme of medai's private codes (declared in CodingSchemeIdentificationSequence when used).
LOCAL_SCHEME = "99MEDAI"
#: Phase label of measurements that span both ED and ES (SV, EF, CO).
BOTH_PHASES = "ED+ES"


def ucum(unit_code: str) -> Any:
    """A UCUM unit as a highdicom ``CodedConcept`` (``(mL, UCUM, mL)``)."""
    from highdicom.sr import CodedConcept

    return CodedConcept(value=unit_code, scheme_designator="UCUM", meaning=unit_code)


def _normality(flag: Flag) -> Any:
    from pydicom.sr.codedict import codes

    return {
        Flag.NORMAL: codes.cid222.Normal,
        Flag.LOW: codes.cid222.AbnormallyLow,
        Flag.HIGH: codes.cid222.AbnormallyHigh,
    }.get(flag)


def _properties(m: Measurement) -> Any:
    """TID 1419 measurement properties: normality and the published normal range (None when neither applies)."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    rr = m.reference_range
    normality = _normality(m.flag)
    if rr is None and normality is None:
        return None
    normal_range = None
    if rr is not None:
        values = []
        for concept, bound in ((codes.cid223.NormalRangeLowerLimit, rr.low),
                               (codes.cid223.NormalRangeUpperLimit, rr.high)):
            if bound is not None:
                values.append(hd.sr.NumContentItem(name=concept, value=float(bound), unit=ucum(m.unit.code),
                                                   relationship_type=hd.sr.RelationshipTypeValues.HAS_PROPERTIES))
        if values:
            normal_range = hd.sr.NormalRangeProperties(
                values=values, description=rr.population or None, authority=rr.source or None)
    return hd.sr.MeasurementProperties(normality=normality, normal_range_properties=normal_range)


def _measurement(m: Measurement, algorithm: Any) -> Any:
    import highdicom as hd

    method = coded_concept(m.method_code) if m.method_code is not None else None
    sites = None
    if m.aha_segment is not None:
        sites = [hd.sr.FindingSite(anatomic_location=hd.sr.CodedConcept(
            value=f"AHA{m.aha_segment}", scheme_designator=LOCAL_SCHEME,
            meaning=f"AHA 17-segment model, segment {m.aha_segment}"))]
    return hd.sr.Measurement(
        name=coded_concept(m.code),
        value=float(m.value),
        unit=ucum(m.unit.code),
        method=method,
        finding_sites=sites,
        algorithm_id=algorithm,
        properties=_properties(m),
    )


def _phase_of(m: Measurement) -> str:
    return m.frame if m.frame in ("ED", "ES") else BOTH_PHASES


def seg_sources_by_phase(seg: Dataset, phase_sops: dict[str, set[str]]) -> dict[tuple[int, str], list[tuple[str, str]]]:
    """Source images ``(SOPClassUID, SOPInstanceUID)`` of the SEG frames per (segment number, phase).

    Args:
        seg: the SEG dataset.
        phase_sops: phase name (``"ED"``, ``"ES"``) -> SOPInstanceUIDs of that phase's source images.

    Returns:
        For each segment and phase, the source images of the frames where the segment is present, in frame order.
    """
    out: dict[tuple[int, str], list[tuple[str, str]]] = {}
    for item in seg.PerFrameFunctionalGroupsSequence:
        number = int(item.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        for der in item.get("DerivationImageSequence", []):
            for src in der.get("SourceImageSequence", []):
                uid = str(src.ReferencedSOPInstanceUID)
                for phase, sops in phase_sops.items():
                    ref = (str(src.ReferencedSOPClassUID), uid)
                    if uid in sops and ref not in out.setdefault((number, phase), []):
                        out[(number, phase)].append(ref)
    return out


def _segments_of(seg: Dataset) -> dict[str, tuple[int, Any]]:
    """Segment name (TrackingID, else SegmentLabel) -> (SegmentNumber, segmented property type)."""
    import highdicom as hd

    out = {}
    for item in seg.SegmentSequence:
        name = str(item.get("TrackingID") or item.SegmentLabel)
        prop = hd.sr.CodedConcept.from_dataset(item.SegmentedPropertyTypeCodeSequence[0])
        out[name] = (int(item.SegmentNumber), prop)
    return out


_STATUS_MEANING = {"pass": "Image quality acceptable", "review": "Review required", "unusable": "Images unusable"}


def _local(value: str, meaning: str) -> Any:
    from highdicom.sr import CodedConcept

    return CodedConcept(value=value, scheme_designator=LOCAL_SCHEME, meaning=meaning[:64])  # > 16: LongCodeValue


def _quality_group(kind: str, section: ReportSection, algorithm: Any) -> Any | None:
    """The TID 1501 group of a section's quality assessment (None when it has none)."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    q = section.quality
    if q is None:
        return None
    qa = hd.sr.CodedConcept(value="IQA", scheme_designator=LOCAL_SCHEME, meaning="Image quality assessment")
    evaluations = [hd.sr.QualitativeEvaluation(name=qa, value=_local(f"IQ_{q.status.value.upper()}",
                                                                      _STATUS_MEANING[q.status.value]))]
    for g in q.series:
        for name, a in g.artefacts.items():
            evaluations.append(hd.sr.QualitativeEvaluation(
                name=_local(f"ART_{name.upper()}", f"{name.replace('_', ' ')} artefact on {g.series_type}"),
                value=codes.SCT.Present if a.share > 0 else codes.SCT.Absent))
    reason = hd.sr.CodedConcept(value="IQREASON", scheme_designator=LOCAL_SCHEME, meaning="Reason for review")
    for f in q.findings:
        evaluations.append(hd.sr.QualitativeEvaluation(name=reason, value=_local(f.code, f.message)))
    measurements = [hd.sr.Measurement(name=_local(f"PDICE_{k.upper()}", f"Predicted Dice coefficient, {k}"),
                                      value=float(v), unit=ucum("1"), algorithm_id=algorithm)
                    for k, v in q.predicted_dice.items()]
    for end, p in (q.coverage or {}).items():
        measurements.append(hd.sr.Measurement(name=_local(f"PMISS_{end.upper()}",
                                                          f"Probability of missing {end} LV slices"),
                                              value=float(p), unit=ucum("1"), algorithm_id=algorithm))
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=f"{kind} image quality"),
        algorithm_id=algorithm, qualitative_evaluations=evaluations, measurements=measurements or None)


def _findings_group(kind: str, section: ReportSection, algorithm: Any) -> Any | None:
    """The TID 1501 group of a classification section: the most probable class as a coded Finding (DCM 121071;
    SNOMED CT concept where the class has one) and each class probability as a measurement (None without classes)."""
    import highdicom as hd

    classes = list(section.classes)
    if not classes:
        return None

    def concept(c: Any) -> Any:
        code = c.code or {}
        if code.get("scheme") and code.get("value"):
            return hd.sr.CodedConcept(value=str(code["value"]), scheme_designator=str(code["scheme"]),
                                      meaning=str(code.get("meaning", c.name))[:64])
        return _local(f"DX_{c.name.upper()}", c.name)

    top = max(classes, key=lambda c: c.probability)
    finding = hd.sr.CodedConcept(value="121071", scheme_designator="DCM", meaning="Finding")
    evaluations = [hd.sr.QualitativeEvaluation(name=finding, value=concept(top))]
    measurements = [hd.sr.Measurement(name=_local(f"PROB_{c.name.upper()}", f"Probability of {c.name}"),
                                      value=float(c.probability), unit=ucum("1"), algorithm_id=algorithm)
                    for c in classes]
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=f"{kind} suggestion"),
        algorithm_id=algorithm, qualitative_evaluations=evaluations, measurements=measurements)


def _coding_schemes(report: Report) -> list[Any]:
    from pydicom import Dataset as _Dataset

    if (not any(m.code.scheme == LOCAL_SCHEME for m in report.measurements) and not report.flags
            and not any(s.quality is not None or s.classes for s in report.sections)):
        return []
    item = _Dataset()
    item.CodingSchemeDesignator = LOCAL_SCHEME
    item.CodingSchemeName = "medai local codes"
    item.CodingSchemeResponsibleOrganization = "medai project"
    return [item]


def _method_label(m: Measurement) -> str:
    if m.method_code is None:
        return ""
    params = ", ".join(f"{k}={v}" for k, v in sorted(m.parameters.items()))
    return f"{m.method_code.value}({params})" if params else m.method_code.value


def _groups(kind: str, measurements: list[Measurement], seg: Dataset | None, phase_sops: dict[str, set[str]] | None,
            algorithm: Any) -> list[Any]:
    """The TID 1500 measurement groups of one analysis: per (segment, phase, method)."""
    import highdicom as hd

    segments = _segments_of(seg) if seg is not None else {}
    sources = seg_sources_by_phase(seg, phase_sops) if (seg is not None and phase_sops) else {}
    groups: dict[tuple[str | None, str, str], list[Measurement]] = {}
    for m in measurements:
        in_seg = m.segment in segments
        phase = (_phase_of(m) if (phase_sops or seg is None or not kind) else "") if in_seg else ""
        key = (m.segment if in_seg else None, phase, _method_label(m))
        groups.setdefault(key, []).append(m)
    out: list[Any] = []
    for (segment, phase, method), ms in groups.items():
        measurements_sr = [_measurement(m, algorithm) for m in ms]
        label = " ".join(x for x in (f"{kind}:" if kind else "", segment or "study-level measurements", phase,
                                     method) if x)[:64]
        if segment is None:
            out.append(hd.sr.MeasurementsAndQualitativeEvaluations(
                tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=label),
                algorithm_id=algorithm, measurements=measurements_sr))
            continue
        number, prop_type = segments[segment]
        # DICOM forbids frame numbers next to a segment number: the phase is told by the source images
        if phase == BOTH_PHASES:
            refs = [r for (n, _ph), rs in sources.items() if n == number for r in rs]
        else:
            refs = sources.get((number, phase), [])
        if refs:
            ref = hd.sr.ReferencedSegment(
                sop_class_uid=str(seg.SOPClassUID), sop_instance_uid=str(seg.SOPInstanceUID), segment_number=number,
                source_images=[hd.sr.SourceImageForSegmentation(cls, uid) for cls, uid in dict.fromkeys(refs)])
        else:
            try:
                ref = hd.sr.ReferencedSegment.from_segmentation(seg, number)
            except ValueError:  # the segment is empty in the SEG (no frame): nothing to reference
                out.append(hd.sr.MeasurementsAndQualitativeEvaluations(
                    tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=label),
                    algorithm_id=algorithm, measurements=measurements_sr))
                continue
        out.append(hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=label),
            referenced_segment=ref, finding_type=prop_type, algorithm_id=algorithm, measurements=measurements_sr))
    return out


def build_sr(
    report: Report,
    source_datasets: Sequence[Dataset],
    *,
    seg: Dataset | None = None,
    phase_sops: dict[str, set[str]] | None = None,
    series_number: int = SR_SERIES_NUMBER,
    parts: Sequence[SrPart] | None = None,
) -> hd.sr.Comprehensive3DSR:
    """Build the TID 1500 measurement report of ``report``.

    Args:
        report: the report (measurements, flags, producing model).
        source_datasets: the source images the measurements derive from (evidence; headers suffice).
        seg: the DICOM SEG the measurements were made on; its segments are referenced by name (TrackingID).
            Without it, segment measurements go into image measurement groups referencing no segment.
        phase_sops: phase (``"ED"``/``"ES"``) -> SOPInstanceUIDs of that phase's source images, to reference only
            the SEG frames of the measurement's phase; without it, whole segments are referenced.
        series_number: SeriesNumber of the SR series.
        parts: a study report's analyses, each with its section, SEG and phases: the measurement groups are
            then made per analysis (tracking identifiers start with the analysis kind) and every SEG is evidence.
            ``seg`` and ``phase_sops`` are ignored then.

    Returns:
        The highdicom ``Comprehensive3DSR``.

    Raises:
        InputValidationError: no source images to attach the report to.
    """
    import highdicom as hd
    from pydicom.sr.codedict import codes
    from pydicom.uid import generate_uid

    if not source_datasets:
        raise InputValidationError("an SR needs its source images (evidence); none were given",
                                   details=[{"field": "source_datasets", "problem": "empty"}])
    model = report.models[0] if report.models else ModelRef(name="unknown", version="0")
    algorithm = hd.sr.AlgorithmIdentification(name=model.name[:64], version=model.version[:64])
    device = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=generate_uid(entropy_srcs=[MANUFACTURER, model.name, model.version]),
            name=model.name[:64], manufacturer_name=MANUFACTURER, model_name=model.name[:64],
            serial_number=device_serial_number(model)),
    )
    context = hd.sr.ObservationContext(observer_device_context=device)

    if parts is None:
        plan = [("", list(report.measurements), seg, phase_sops)]
    else:
        plan = [(p.section.kind, list(p.measurements if p.measurements is not None else p.section.measurements),
                 p.seg_dataset, p.phase_sops) for p in parts]
    imaging: list[Any] = []
    segs: list[Dataset] = []
    for kind, part_measurements, part_seg, part_phases in plan:
        if part_seg is not None and all(part_seg is not x for x in segs):
            segs.append(part_seg)
        imaging += _groups(kind, part_measurements, part_seg, part_phases, algorithm)
    for p in parts or []:
        for group in (_quality_group(p.section.kind, p.section, algorithm),
                      _findings_group(p.section.kind, p.section, algorithm)):
            if group is not None:
                imaging.append(group)
    if report.flags:
        evaluations = [
            hd.sr.QualitativeEvaluation(
                name=hd.sr.CodedConcept(value="QUALITY", scheme_designator=LOCAL_SCHEME,
                                        meaning=f"Quality flag ({f.severity.value})"),
                value=hd.sr.CodedConcept(value=f.code, scheme_designator=LOCAL_SCHEME, meaning=f.message[:64]))
            for f in report.flags
        ]
        imaging.append(hd.sr.MeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier="quality flags"),
            algorithm_id=algorithm, qualitative_evaluations=evaluations))
    content = hd.sr.MeasurementReport(
        observation_context=context,
        procedure_reported=codes.SCT.MagneticResonanceImagingOfHeart,
        imaging_measurements=imaging,
    )
    evidence = [*segs, *(header_copy(ds) for ds in source_datasets)]
    sr = hd.sr.Comprehensive3DSR(
        evidence=evidence,
        content=content[0],
        series_instance_uid=hd.UID(),
        series_number=series_number,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        is_complete=True,
        is_final=False,
        is_verified=False,
        series_description=f"medai measurements {model.name} {model.version}"[:64],
    )
    schemes = _coding_schemes(report)
    if schemes:
        from pydicom.sequence import Sequence as DicomSequence

        sr.CodingSchemeIdentificationSequence = DicomSequence(schemes)
    if any(f.severity == Severity.ERROR for f in report.flags):
        logger.warning("SR of report %s carries error-level quality flags", report.report_id)
    return sr


def write_sr(
    report: Report,
    prediction: Prediction | None = None,
    study: Study | None = None,
    path: Path | str = "sr.dcm",
    *,
    seg: Dataset | Path | str | None = None,
    source_datasets: Sequence[Dataset] | None = None,
    role: str = "cine_sax",
) -> Path:
    """Write ``sr.dcm``: the renderer called by the analysis job (``report, prediction, study, path``).

    Args:
        report: the report to render.
        prediction: gives the label map's source images per phase (ED/ES frames of ``label_maps[role]``).
        study: the study whose instances are the source images (when ``source_datasets`` is not given).
        path: output file.
        seg: the SEG dataset or file the measurements reference; default: ``seg.dcm`` next to ``path`` when it
            exists (the analysis job writes the SEG first).
        source_datasets: the source images (default: the study's instances named by the label map).
        role: which label map of the prediction the SEG renders.

    Returns:
        ``path``.
    """
    import pydicom

    path = Path(path)
    if seg is None and path.with_name("seg.dcm").is_file():
        seg = path.with_name("seg.dcm")
    seg_ds = pydicom.dcmread(seg) if isinstance(seg, str | Path) else seg
    phase_sops: dict[str, set[str]] = {}
    label_map = prediction.label_maps.get(role) if prediction is not None else None
    if label_map is not None and label_map.volume.source_sop_uids is not None:
        sops = label_map.volume.source_sop_uids
        if label_map.volume.is_temporal:
            for phase in ("ED", "ES"):
                t = prediction.extras.get(f"{phase.lower()}_frame") if prediction is not None else None
                if t is not None:
                    phase_sops[phase] = {str(u) for u in sops[int(t)]}
    if source_datasets is None:
        if study is None:
            raise InputValidationError("write_sr needs the source images: pass source_datasets or the study",
                                       details=[{"field": "source_datasets", "problem": "missing"}])
        wanted = set().union(*phase_sops.values()) if phase_sops else None
        source_datasets = [inst.dataset for s in study.series for inst in s.instances
                           if wanted is None or inst.SOPInstanceUID in wanted]
        if not source_datasets and report.series:
            uids = {str(s.get("series_instance_uid")) for s in report.series}
            source_datasets = [inst.dataset for s in study.series if s.SeriesInstanceUID in uids
                               for inst in s.instances]
    sr = build_sr(report, source_datasets, seg=seg_ds, phase_sops=phase_sops or None)
    path.parent.mkdir(parents=True, exist_ok=True)
    sr.save_as(path)
    logger.info("wrote DICOM SR %s (%d measurements)", path, len(report.measurements))
    return path


@dataclass
class SrPart:
    """One analysis of a study SR: its section, prediction, the SEG file it wrote (if any) and the label-map role."""

    section: ReportSection
    prediction: Prediction | None = None
    seg: Path | None = None
    role: str | None = None
    seg_dataset: Dataset | None = None
    phase_sops: dict[str, set[str]] | None = None
    measurements: list[Measurement] | None = None  # what goes into the SR (default: the section's)


def _phases_of(prediction: Prediction | None, role: str | None) -> dict[str, set[str]]:
    phase_sops: dict[str, set[str]] = {}
    label_map = prediction.label_maps.get(role) if (prediction is not None and role) else None
    if label_map is not None and label_map.volume.source_sop_uids is not None and label_map.volume.is_temporal:
        sops = label_map.volume.source_sop_uids
        for phase in ("ED", "ES"):
            t = prediction.extras.get(f"{phase.lower()}_frame") if prediction is not None else None
            if t is not None:
                phase_sops[phase] = {str(u) for u in sops[int(t)]}
    return phase_sops


def _label_map_sops(prediction: Prediction | None, role: str | None) -> set[str]:
    label_map = prediction.label_maps.get(role) if (prediction is not None and role) else None
    if label_map is None or label_map.volume.source_sop_uids is None:
        return set()
    return {str(u) for u in np.asarray(label_map.volume.source_sop_uids, dtype=object).ravel() if u}


def write_study_sr(report: Report, study: Study, path: Path | str, parts: Sequence[SrPart]) -> Path:
    """Write the ONE SR of a study report: measurement groups per analysis, every analysis' SEG as evidence.

    The evidence images are the ED/ES images of temporal label maps and every source image of the others (or,
    without label maps, the analysed series).
    """
    import pydicom

    path = Path(path)
    wanted: set[str] = set()
    for p in parts:
        if p.seg is not None and p.seg_dataset is None:
            p.seg_dataset = pydicom.dcmread(p.seg)
        p.phase_sops = _phases_of(p.prediction, p.role) or None
        wanted |= set().union(*p.phase_sops.values()) if p.phase_sops else _label_map_sops(p.prediction, p.role)
    if not wanted:
        uids = {str(s.get("series_instance_uid")) for s in report.series}
        sources = [inst.dataset for s in study.series if s.SeriesInstanceUID in uids for inst in s.instances]
    else:
        sources = [inst.dataset for s in study.series for inst in s.instances if inst.SOPInstanceUID in wanted]
    sr = build_sr(report, sources, parts=parts)
    path.parent.mkdir(parents=True, exist_ok=True)
    sr.save_as(path)
    logger.info("wrote DICOM SR %s (%d measurements, %d analyses)", path, len(report.measurements), len(parts))
    return path


__all__ = ["SR_SERIES_NUMBER", "SrPart", "build_sr", "write_study_sr", "seg_sources_by_phase", "ucum", "write_sr"]
