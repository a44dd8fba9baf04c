"""A machine-readable summary of an ingest result: what ``medai info --json`` prints.

Header-only (no pixel decoding): geometry comes from :mod:`medai.dicom.frames`.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

from medai.dicom.frames import analyze_layout, frame_records
from medai.dicom.tags import get_float, quiet_pydicom
from medai.domain.study import IngestResult, Series, Study


class SeriesSummary(BaseModel):
    """One series.

    Attributes:
        uid: SeriesInstanceUID.
        number: SeriesNumber.
        modality, description: Modality and SeriesDescription.
        series_type: classification (:class:`medai.domain.study.SeriesType` value).
        sop_class: SOP class name of the first instance.
        n_instances: instances (files) in the series.
        rows, columns: matrix size of the first frame.
        n_slices: distinct slice positions along the normal (1 for clips without geometry).
        n_phases: frames per slice position (cardiac phases of a cine; frames of an ultrasound clip).
        n_frames: all 2-D frames.
        pixel_spacing: (row, column) spacing in mm (ultrasound: from the region calibration), None when unknown.
        slice_spacing: median distance between slice positions (mm), None for a single slice.
        slice_thickness: SliceThickness (mm).
        orientation: axial, coronal, sagittal, oblique or unknown.
        problems: what is wrong or unusual with the series.
    """

    uid: str
    number: int | None
    modality: str
    description: str
    series_type: str
    sop_class: str
    n_instances: int
    rows: int | None
    columns: int | None
    n_slices: int
    n_phases: int
    n_frames: int
    pixel_spacing: list[float] | None
    slice_spacing: float | None
    slice_thickness: float | None
    orientation: str
    problems: list[str] = Field(default_factory=list)


class StudySummary(BaseModel):
    """One study and its series."""

    uid: str
    patient_id: str
    patient_sex: str
    patient_age: str
    patient_size_m: float | None
    patient_weight_kg: float | None
    study_date: str
    description: str
    problems: list[str] = Field(default_factory=list)
    series: list[SeriesSummary] = Field(default_factory=list)


class SkippedInput(BaseModel):
    """An input that was not ingested, and why."""

    source: str
    reason: str


class IngestSummary(BaseModel):
    """Everything ``medai info`` reports."""

    root: str | None
    n_studies: int
    n_series: int
    n_instances: int
    studies: list[StudySummary]
    skipped: list[SkippedInput] = Field(default_factory=list)


def _sop_class_name(uid: str) -> str:
    from pydicom.uid import UID

    try:
        name = UID(uid).name
    except Exception:
        return uid
    return name or uid


def summarize_series(series: Series) -> SeriesSummary:
    """Header-only summary of one series."""
    from medai.dicom.volumes import _us_spacing

    records = frame_records(series)
    layout = analyze_layout(records)
    problems = list(series.problems) + [n for n in layout.notes if n not in series.problems]
    first = series.instances[0].dataset if series.instances else None
    spacing = list(layout.pixel_spacing) if layout.pixel_spacing else None
    if spacing is None and first is not None:
        us = _us_spacing(first, [])
        spacing = [round(us[0], 6), round(us[1], 6)] if us else None
    thickness = records[0].slice_thickness if records else None
    return SeriesSummary(
        uid=series.SeriesInstanceUID,
        number=series.SeriesNumber,
        modality=series.Modality,
        description=series.SeriesDescription,
        series_type=series.series_type.value,
        sop_class=_sop_class_name(series.instances[0].SOPClassUID) if series.instances else "",
        n_instances=len(series.instances),
        rows=records[0].rows if records else None,
        columns=records[0].columns if records else None,
        n_slices=layout.n_slices,
        n_phases=layout.n_phases,
        n_frames=len(records),
        pixel_spacing=spacing,
        slice_spacing=round(layout.slice_spacing_mm, 4) if layout.slice_spacing_mm is not None else None,
        slice_thickness=thickness if thickness is not None else get_float(first, "SliceThickness"),
        orientation=layout.orientation,
        problems=problems,
    )


def summarize_study(study: Study) -> StudySummary:
    """Header-only summary of one study."""
    return StudySummary(
        uid=study.StudyInstanceUID,
        patient_id=study.PatientID,
        patient_sex=study.PatientSex,
        patient_age=study.PatientAge,
        patient_size_m=study.PatientSize,
        patient_weight_kg=study.PatientWeight,
        study_date=study.StudyDate,
        description=study.StudyDescription,
        problems=list(study.problems),
        series=[summarize_series(s) for s in study.series],
    )


def summarize(result: IngestResult) -> IngestSummary:
    """The summary of an ingest result (studies, series with geometry, skipped inputs with reasons)."""
    with quiet_pydicom():
        studies = [summarize_study(s) for s in result.studies]
    return IngestSummary(
        root=str(result.root) if result.root is not None else None,
        n_studies=len(studies),
        n_series=sum(len(s.series) for s in studies),
        n_instances=sum(x.n_instances for s in studies for x in s.series),
        studies=studies,
        skipped=[SkippedInput(source=p.source, reason=p.reason) for p in result.skipped],
    )


def render_overview(result: IngestResult, path: Path, *, max_series: int = 12) -> Path:
    """Write a PNG with one thumbnail per series (middle slice, first frame) titled with its type and geometry.

    A quick visual check that ingest grouped and classified what was sent. Series whose volume cannot be built
    show the reason instead of an image.

    Args:
        result: an ingest result.
        path: where to write the PNG.
        max_series: at most this many series are drawn.

    Returns:
        ``path``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from medai.dicom.volumes import build_cine, build_volume
    from medai.errors import MedaiError

    series = [(st, s) for st in result.studies for s in st.series if s.instances][:max_series]
    n = max(1, len(series))
    cols = min(4, n)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.4 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (_study, s) in zip(axes.ravel(), series, strict=False):
        summary = summarize_series(s)
        title = f"#{s.SeriesNumber} {s.series_type.value}\n{s.SeriesDescription[:28]}\n"
        title += f"{summary.n_slices} slices x {summary.n_phases} phases"
        try:
            temporal = summary.n_phases > 1
            vol = build_cine(s) if temporal else build_volume(s)
            arr = vol.array[0] if vol.is_temporal else vol.array
            img = arr[arr.shape[0] // 2]
            if img.ndim == 3:  # colour
                ax.imshow(np.clip(img / max(float(img.max()), 1.0), 0, 1))
            else:
                lo, hi = np.percentile(img, [1, 99])
                ax.imshow(img, cmap="gray", vmin=lo, vmax=hi if hi > lo else lo + 1)
        except MedaiError as exc:
            ax.text(0.5, 0.5, exc.message[:160], ha="center", va="center", wrap=True, fontsize=7)
        ax.set_title(title, fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


__all__ = ["IngestSummary", "SeriesSummary", "SkippedInput", "StudySummary", "render_overview", "summarize"]
