"""Serial comparison of one patient's analyses: a timeline of EF, volumes, mass and scar, each change set against
published scan-rescan variability (:mod:`medai.serial.variability`), and CTRCD by the 2022 ESC cardio-oncology
guideline (:mod:`medai.serial.ctrcd`).

Inputs are :class:`~medai.domain.prediction.Report` documents (``report.json``). Each analysis is placed at its
study date: ``Report.study_date`` (schema >= 1.3), else the StudyDate/StudyTime of the DICOM SR or SEG written next
to the report (the analysed, possibly de-identified study's header), else -- flagged -- the time of the analysis.
The first analysis in time is the baseline.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, Field

from medai.domain.codes import Unit
from medai.domain.measurement import Measurement
from medai.domain.prediction import QualityFlag, Report, Severity
from medai.errors import InputValidationError
from medai.serial.ctrcd import GLS_MEASUREMENT, CtrcdFinding, classify_ctrcd, gls_relative_fall
from medai.serial.variability import VariabilityTable, default_variability

logger = logging.getLogger(__name__)

TIMELINE_SCHEMA_VERSION = "1.0"
MDC_METHOD = ("minimal detectable change MDC95 = z * SD_diff = z * sqrt(2) * Sw (z = 1.96; Sw within-subject SD, "
              "SD_diff SD of scan-rescan differences = CV * mean of the two values, or limits of agreement / z); a "
              "change is significant when |after - before| > MDC95")


class DateSource(StrEnum):
    """Where an analysis' date came from."""

    REPORT = "report"  # Report.study_date
    DICOM = "dicom"  # StudyDate/StudyTime of the SR/SEG next to report.json
    ANALYSIS = "analysis_time"  # Report.created: the study date is unknown


class ChangeVerdict(StrEnum):
    """A change against the scan-rescan variability."""

    WITHIN = "within_variability"
    INCREASE = "significant_increase"
    DECREASE = "significant_decrease"
    NO_REFERENCE = "no_reference"  # no published variability tabulated for this measurement


class ComparisonKind(StrEnum):
    """Which two analyses a change compares."""

    CONSECUTIVE = "consecutive"
    BASELINE_LATEST = "baseline_latest"


@dataclass(frozen=True)
class AnalysisInput:
    """One analysis to place on the timeline.

    Attributes:
        report: the validated report.
        source: where it came from (a path, or an API URL), shown in the output.
        study_datetime: the study date/time found outside the report (DICOM next to it), when any.
    """

    report: Report
    source: str = ""
    study_datetime: datetime | None = None


class TimelinePoint(BaseModel):
    """One analysis on the timeline.

    Attributes:
        index: position in time (0 = baseline).
        study_datetime: the study's date (and time, when known; naive, as in DICOM).
        date_source: where ``study_datetime`` came from.
        days_from_baseline: days since the baseline study.
        analysed: when the analysis ran (``Report.created``).
        values: tracked measurement name -> value (in the track's unit).
        review: measurement name -> quality findings that put it under review.
        review_required: the report asks for a reader's review before its values are used.
    """

    index: int
    report_id: str
    study_instance_uid: str
    study_datetime: datetime
    date_source: DateSource
    days_from_baseline: float
    analysed: datetime
    source: str = ""
    values: dict[str, float] = Field(default_factory=dict)
    review: dict[str, list[str]] = Field(default_factory=dict)
    review_required: bool = False


class MeasurementTrack(BaseModel):
    """One measurement over time: values per point (None where that analysis lacks it) and its variability.

    Attributes:
        cv_pct / limits_of_agreement: the published figure used (see :mod:`medai.serial.variability`).
        published / source: the figure in words and its citation.
    """

    name: str
    label: str
    meaning: str = ""
    unit: Unit
    values: list[float | None]
    cv_pct: float | None = None
    limits_of_agreement: float | None = None
    published: str = ""
    source: str = ""


class Change(BaseModel):
    """A change of one measurement between two analyses, judged against scan-rescan variability.

    Attributes:
        delta: ``after - before`` in the track's unit (percentage points for EF and infarct %).
        relative_pct: ``delta / before`` in percent (None when ``before`` is 0).
        mdc: minimal detectable change at these values (unit of the track), None without a figure.
        under_review: either value is under the quality gate's review.
    """

    measurement: str
    label: str
    unit: str
    kind: ComparisonKind
    from_index: int
    to_index: int
    days: float
    before: float
    after: float
    delta: float
    relative_pct: float | None
    mdc: float | None
    verdict: ChangeVerdict
    under_review: bool = False


class Timeline(BaseModel):
    """The serial comparison of one patient's analyses (``timeline.json``; ``GET /v1/patients/{id}/timeline``).

    Attributes:
        patient_id: the reports' patient id (the keyed pseudonym when de-identified).
        points: analyses in time order; ``points[0]`` is the baseline.
        tracks: the tracked measurements, values aligned with ``points``.
        changes: consecutive and baseline-vs-latest changes of every tracked measurement present at both ends.
        ctrcd: one CTRCD finding per follow-up analysis against the baseline (2022 ESC).
        flags: coded notes on the inputs (date unknown, review required, same study twice, single analysis...).
        method: the MDC formula; sources: citations of the variability figures and the guideline.
    """

    schema_version: str = TIMELINE_SCHEMA_VERSION
    created: datetime = Field(default_factory=lambda: datetime.now(UTC))
    patient_id: str
    points: list[TimelinePoint]
    tracks: list[MeasurementTrack]
    changes: list[Change] = Field(default_factory=list)
    ctrcd: list[CtrcdFinding] = Field(default_factory=list)
    flags: list[QualityFlag] = Field(default_factory=list)
    method: str = MDC_METHOD
    sources: dict[str, str] = Field(default_factory=dict)

    def track(self, name: str) -> MeasurementTrack | None:
        """The track of measurement ``name``, or None when no analysis has it."""
        return next((t for t in self.tracks if t.name == name), None)

    def changes_of(self, name: str, kind: ComparisonKind | None = None) -> list[Change]:
        """The changes of measurement ``name`` (of one ``kind``, when given)."""
        return [c for c in self.changes if c.measurement == name and (kind is None or c.kind == kind)]


# -- reading ------------------------------------------------------------------------------------------------------
def parse_dicom_datetime(da: str, tm: str = "") -> datetime | None:
    """A naive datetime from DICOM DA (``YYYYMMDD``) and TM (``HHMMSS.ffffff``, parts optional); None if invalid."""
    da = (da or "").strip()
    try:
        day = date(int(da[:4]), int(da[4:6]), int(da[6:8])) if len(da) == 8 and da.isdigit() else None
    except ValueError:
        day = None
    if day is None:
        return None
    tm = (tm or "").strip().split(".")[0]
    try:
        hh, mm, ss = int(tm[0:2] or 0), int(tm[2:4] or 0), int(tm[4:6] or 0)
        return datetime.combine(day, time(hh, mm, min(ss, 59)))
    except ValueError:
        return datetime.combine(day, time())


def study_datetime_from_dicom(folder: Path, names: Iterable[str] = ()) -> datetime | None:
    """StudyDate/StudyTime of the first readable DICOM among ``names`` (else ``sr.dcm``, then ``*.dcm``) in ``folder``.

    The SR and SEG medai writes copy the analysed study's header, so their date is the study's (shifted when the
    analysis ran on a de-identified copy).
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    candidates = [folder / n for n in names] + [folder / "sr.dcm"] + sorted(folder.glob("*.dcm"))
    seen: set[Path] = set()
    for path in candidates:
        if path in seen or not path.is_file():
            continue
        seen.add(path)
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["StudyDate", "StudyTime"])
        except (InvalidDicomError, OSError, ValueError, EOFError):
            continue
        found = parse_dicom_datetime(str(ds.get("StudyDate", "") or ""), str(ds.get("StudyTime", "") or ""))
        if found is not None:
            return found
    return None


def load_analysis(path: Path | str, *, source: str | None = None, dicom_names: Iterable[str] = ()) -> AnalysisInput:
    """Read one ``report.json`` (or a result folder holding one) and find its study date.

    Raises:
        InputValidationError: no report there, not JSON, another major schema version, or an invalid report.
    """
    from medai.reports.json_report import read_json

    path = Path(path)
    if path.is_dir():
        path = path / "report.json"
    if not path.is_file():
        raise InputValidationError(f"{path} does not exist; pass a report.json or a result folder of medai analyze",
                                   details=[{"field": "file", "problem": "missing", "value": str(path)}])
    report = read_json(path)
    when = None if report.study_date is not None else study_datetime_from_dicom(path.parent, dicom_names)
    return AnalysisInput(report=report, source=source if source is not None else str(path), study_datetime=when)


def collect_report_paths(items: Sequence[Path | str]) -> list[Path]:
    """The ``report.json`` files named by ``items``: files as given; a folder's own ``report.json``, else those of
    its immediate sub-folders (a folder of result folders).

    Raises:
        InputValidationError: an item that does not exist or holds no report.
    """
    out: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_file():
            found = [p]
        elif p.is_dir():
            found = [p / "report.json"] if (p / "report.json").is_file() else sorted(p.glob("*/report.json"))
        else:
            found = []
        if not found:
            raise InputValidationError(
                f"{p} is neither a report.json nor a folder holding one (or sub-folders holding one); pass the "
                "report.json files or the result folders that medai analyze wrote",
                details=[{"field": "path", "problem": "no report", "value": str(p)}])
        out += [f for f in found if f not in out]
    return out


# -- building -----------------------------------------------------------------------------------------------------
def _pick(report: Report, name: str, method_code: str | None) -> Measurement | None:
    """The report's global (not per-segment) value of ``name`` by ``method_code`` (or without a method code)."""
    cands = [m for m in report.measurements if m.name == name and m.aha_segment is None]
    if method_code is not None:
        coded = [m for m in cands if m.method_code is not None and m.method_code.value == method_code]
        cands = coded or [m for m in cands if m.method_code is None]
    else:
        cands = [m for m in cands if m.method_code is None] or cands
    return cands[0] if cands else None


def _when(a: AnalysisInput) -> tuple[datetime, DateSource]:
    r = a.report
    if r.study_date is not None:
        return datetime.combine(r.study_date, time()), DateSource.REPORT
    if a.study_datetime is not None:
        return a.study_datetime.replace(tzinfo=None), DateSource.DICOM
    created = r.created.astimezone(UTC).replace(tzinfo=None) if r.created.tzinfo else r.created
    return created, DateSource.ANALYSIS


def _select_patient(inputs: Sequence[AnalysisInput], patient_id: str | None, allow_mixed: bool,
                    flags: list[QualityFlag]) -> tuple[list[AnalysisInput], str]:
    if patient_id is not None:
        chosen = [a for a in inputs if a.report.patient_id == patient_id]
        if not chosen:
            have = sorted({a.report.patient_id or "(none)" for a in inputs})
            raise InputValidationError(
                f"none of the {len(inputs)} reports is of patient {patient_id!r}; their patient ids: "
                + ", ".join(have), details=[{"field": "patient_id", "problem": "no report", "value": patient_id}])
        if len(chosen) < len(inputs):
            flags.append(QualityFlag(code="other_patients_skipped", severity=Severity.INFO,
                                     message=f"{len(inputs) - len(chosen)} report(s) of other patients were left out"))
        return chosen, patient_id
    ids: dict[str, list[str]] = {}
    for a in inputs:
        ids.setdefault(a.report.patient_id, []).append(a.source or a.report.report_id)
    if len(ids) > 1 and not allow_mixed:
        listing = "; ".join(f"{k or '(no patient id)'}: {len(v)} report(s), e.g. {v[0]}" for k, v in ids.items())
        raise InputValidationError(
            f"the reports belong to {len(ids)} different patient ids ({listing}). Compare one patient at a time: "
            "choose one with --patient ID (API: the patient in the URL), or allow it explicitly "
            "(--allow-mixed-patients) when they are one person under different identifiers",
            details=[{"field": "patient_id", "problem": "different patients", "value": k} for k in ids])
    if len(ids) > 1:
        flags.append(QualityFlag(code="mixed_patients", severity=Severity.WARNING,
                                 message="the reports carry different patient ids (" + ", ".join(
                                     sorted(k or "(none)" for k in ids)) + "); compared as one patient as asked"))
        return list(inputs), ""
    return list(inputs), next(iter(ids))


def _verdict(delta: float, mdc: float | None) -> ChangeVerdict:
    if mdc is None:
        return ChangeVerdict.NO_REFERENCE
    if abs(delta) <= mdc:
        return ChangeVerdict.WITHIN
    return ChangeVerdict.INCREASE if delta > 0 else ChangeVerdict.DECREASE


def build_timeline(
    inputs: Sequence[AnalysisInput],
    *,
    patient_id: str | None = None,
    allow_mixed_patients: bool = False,
    min_analyses: int = 2,
    biomarker_rise: bool | None = None,
    table: VariabilityTable | None = None,
) -> Timeline:
    """The timeline of one patient's analyses.

    Args:
        inputs: the analyses (any order).
        patient_id: keep only this patient's reports (others are left out, with a flag); None: all inputs must be
            of one patient.
        allow_mixed_patients: compare reports of different patient ids anyway (flagged).
        min_analyses: refuse fewer analyses than this (the API passes 1 and gets a ``single_analysis`` flag).
        biomarker_rise: a new rise in cardiac biomarkers at the latest analysis (None: not known); used by CTRCD.
        table: the variability table (default ``configs/serial/variability.yaml``).

    Raises:
        InputValidationError: fewer than ``min_analyses`` analyses, or different patients (see above).
    """
    table = table or default_variability()
    flags: list[QualityFlag] = []
    chosen, pid = _select_patient(inputs, patient_id, allow_mixed_patients, flags)
    if len(chosen) < max(1, min_analyses):
        raise InputValidationError(
            f"a serial comparison needs at least {max(1, min_analyses)} analyses of one patient; got {len(chosen)}. "
            "Pass two or more report.json files (or result folders) of the same patient",
            details=[{"field": "analyses", "problem": "too few", "value": len(chosen)}])
    placed = sorted(((*_when(a), a) for a in chosen), key=lambda t: (t[0], t[2].report.created))
    base_when = placed[0][0]
    points: list[TimelinePoint] = []
    tracks: dict[str, MeasurementTrack] = {}
    picked: list[dict[str, Measurement]] = []
    for i, (when, src, a) in enumerate(placed):
        r = a.report
        values: dict[str, Measurement] = {}
        for name, spec in table.measurements.items():
            m = _pick(r, name, spec.method_code)
            if m is not None:
                values[name] = m
                if name not in tracks:
                    tracks[name] = MeasurementTrack(
                        name=name, label=spec.label, meaning=m.code.meaning, unit=m.unit, values=[],
                        cv_pct=spec.cv_pct, limits_of_agreement=spec.limits_of_agreement,
                        published=spec.published, source=table.citation(name))
        gls = _pick(r, GLS_MEASUREMENT, None)
        picked.append({**values, **({GLS_MEASUREMENT: gls} if gls is not None else {})})
        points.append(TimelinePoint(
            index=i, report_id=r.report_id, study_instance_uid=r.study_instance_uid, study_datetime=when,
            date_source=src, days_from_baseline=round((when - base_when).total_seconds() / 86400.0, 3),
            analysed=r.created, source=a.source, values={k: m.value for k, m in values.items()},
            review={k: list(m.review) for k, m in values.items() if m.review}, review_required=r.review.required))
        label = f"analysis {i} ({when.date().isoformat()}, {a.source or r.report_id})"
        if src == DateSource.ANALYSIS:
            flags.append(QualityFlag(code="study_date_unknown", severity=Severity.WARNING,
                                     message=f"{label}: the report records no study date and no DICOM SR/SEG was "
                                             "found next to it; placed at the time of the analysis, which may not "
                                             "be the order of the studies"))
        if r.review.required:
            flags.append(QualityFlag(code="review_required", severity=Severity.WARNING,
                                     message=f"{label} must be reviewed before its values are used: "
                                             + " | ".join(r.review.reasons)))
    ordered_tracks = [tracks[n] for n in table.measurements if n in tracks]
    for t in ordered_tracks:
        t.values = [p.values.get(t.name) for p in points]
    by_study: dict[str, list[int]] = {}
    for p in points:
        if p.study_instance_uid:
            by_study.setdefault(p.study_instance_uid, []).append(p.index)
    for uid, idx in by_study.items():
        if len(idx) > 1:
            flags.append(QualityFlag(code="same_study_repeated", severity=Severity.WARNING,
                                     message=f"analyses {idx} are of the same study {uid}: their differences are "
                                             "re-analysis, not change over time"))
    if len(points) == 1:
        flags.append(QualityFlag(code="single_analysis", severity=Severity.INFO,
                                 message=f"only one analysis of this patient ({points[0].study_datetime.date()}): "
                                         "nothing to compare yet; analyse a follow-up study"))
    if not ordered_tracks:
        flags.append(QualityFlag(code="no_tracked_measurements", severity=Severity.WARNING,
                                 message="no analysis has any of the tracked measurements ("
                                         + ", ".join(table.measurements) + ")"))
    changes = _changes(points, ordered_tracks, table)
    ctrcd = _ctrcd(points, picked, table, biomarker_rise)
    sources = {**table.sources}
    if ctrcd:
        from medai.serial.ctrcd import GUIDELINE

        sources["esc2022"] = GUIDELINE
    return Timeline(patient_id=pid, points=points, tracks=ordered_tracks, changes=changes, ctrcd=ctrcd, flags=flags,
                    sources=sources)


def _changes(points: Sequence[TimelinePoint], tracks: Sequence[MeasurementTrack],
             table: VariabilityTable) -> list[Change]:
    out: list[Change] = []
    n = len(points)
    pairs = [(ComparisonKind.CONSECUTIVE, i, i + 1) for i in range(n - 1)]
    if n >= 2:
        pairs.append((ComparisonKind.BASELINE_LATEST, 0, n - 1))
    for t in tracks:
        spec = table.measurements[t.name]
        for kind, i, j in pairs:
            if kind == ComparisonKind.BASELINE_LATEST:  # from the first to the last analysis that has the value
                have = [k for k in range(n) if t.values[k] is not None]
                if len(have) < 2:
                    continue
                i, j = have[0], have[-1]
            a, b = t.values[i], t.values[j]
            if a is None or b is None:
                continue
            delta = b - a
            mdc = spec.mdc(a, b, table.z)
            out.append(Change(
                measurement=t.name, label=t.label, unit=t.unit.code, kind=kind, from_index=i, to_index=j,
                days=round(points[j].days_from_baseline - points[i].days_from_baseline, 3), before=a, after=b,
                delta=round(delta, 4), relative_pct=round(delta / a * 100.0, 2) if a else None,
                mdc=None if mdc is None else round(mdc, 4), verdict=_verdict(delta, mdc),
                under_review=bool(points[i].review.get(t.name) or points[j].review.get(t.name))))
    return out


def _ctrcd(points: Sequence[TimelinePoint], picked: Sequence[Mapping[str, Measurement]], table: VariabilityTable,
           biomarker_rise: bool | None) -> list[CtrcdFinding]:
    if len(points) < 2 or not any("lv_ef" in p.values for p in points):
        return []
    spec = table.measurements.get("lv_ef")
    base = points[0].values.get("lv_ef")
    base_gls = picked[0].get(GLS_MEASUREMENT)
    out = []
    for k in range(1, len(points)):
        ef = points[k].values.get("lv_ef")
        gls = picked[k].get(GLS_MEASUREMENT)
        mdc = spec.mdc(base, ef, table.z) if spec is not None and base is not None and ef is not None else None
        out.append(classify_ctrcd(
            base, ef, gls_relative_fall_pct=gls_relative_fall(base_gls.value if base_gls else None,
                                                              gls.value if gls else None),
            biomarker_rise=biomarker_rise if k == len(points) - 1 else None, lvef_mdc=mdc, baseline_index=0,
            index=k))
    return out


def compare_paths(
    items: Sequence[Path | str],
    *,
    patient_id: str | None = None,
    allow_mixed_patients: bool = False,
    biomarker_rise: bool | None = None,
    table: VariabilityTable | None = None,
) -> Timeline:
    """``medai compare``: read the reports named by ``items`` (files or result folders) and build the timeline.

    Raises:
        InputValidationError: a missing/unreadable/invalid report, fewer than two analyses, different patients.
    """
    inputs = [load_analysis(p) for p in collect_report_paths(items)]
    return build_timeline(inputs, patient_id=patient_id, allow_mixed_patients=allow_mixed_patients,
                          biomarker_rise=biomarker_rise, table=table)


def write_timeline(timeline: Timeline, path: Path | str) -> Path:
    """Write ``timeline.json`` atomically; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(timeline.model_dump_json(indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    logger.info("wrote %s (%d analyses, %d changes)", path, len(timeline.points), len(timeline.changes))
    return path


__all__ = [
    "MDC_METHOD", "AnalysisInput", "Change", "ChangeVerdict", "ComparisonKind", "DateSource", "MeasurementTrack",
    "Timeline", "TimelinePoint", "build_timeline", "collect_report_paths", "compare_paths", "load_analysis",
    "parse_dicom_datetime", "study_datetime_from_dicom", "write_timeline",
]
