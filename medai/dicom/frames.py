"""Per-frame geometry and timing of a series, read from headers only (no pixel decoding).

A *frame* is one 2-D image: a single-frame instance, or one frame of a multi-frame instance (enhanced MR/CT with
per-frame functional groups, or ultrasound/legacy multi-frame with FrameTime). :func:`frame_records` turns any of
these into a flat list of :class:`FrameRecord`; :func:`analyze_layout` arranges them by slice position along the
normal and by time, which both the volume builders and the series summary use.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from medai.dicom.tags import first_item, functional_group_value, get_float, get_floats, get_int, get_str, get_value
from medai.domain.study import Instance, Series

logger = logging.getLogger(__name__)

#: Orientation tolerance: direction cosines within this (about 0.6 degrees) count as the same plane orientation.
ORIENTATION_TOL = 0.01
#: Positions along the normal closer than this (mm) are the same slice.
POSITION_TOL_MM = 0.05


@dataclass
class FrameRecord:
    """One 2-D frame and its geometry/timing.

    Attributes:
        instance: the instance holding the frame.
        frame_index: 0-based frame in a multi-frame instance (None for single-frame instances).
        ipp: ImagePositionPatient (mm, LPS) or None.
        iop: ImageOrientationPatient (6 direction cosines) or None.
        pixel_spacing: (row spacing, column spacing) mm or None.
        slice_thickness: mm or None.
        time_ms: trigger time / frame time (ms) or None.
        temporal_index: TemporalPositionIndex (enhanced) or None.
        stack_position: InStackPositionNumber (enhanced) or None.
        rescale: (slope, intercept).
        rows, columns: matrix size.
        acquisition: key telling repeated acquisitions apart (series UID, acquisition number).
        instance_number: InstanceNumber (0 when absent).
        series_number: SeriesNumber (0 when absent).
    """

    instance: Instance
    frame_index: int | None
    ipp: tuple[float, ...] | None
    iop: tuple[float, ...] | None
    pixel_spacing: tuple[float, ...] | None
    slice_thickness: float | None
    time_ms: float | None
    temporal_index: int | None
    stack_position: int | None
    rescale: tuple[float, float]
    rows: int
    columns: int
    acquisition: tuple[str, int]
    instance_number: int
    series_number: int
    acquisition_time: str = ""

    @property
    def sop_uid(self) -> str:
        return self.instance.SOPInstanceUID


def _rescale(ds: object) -> tuple[float, float]:
    slope = get_float(ds, "RescaleSlope")  # type: ignore[arg-type]
    intercept = get_float(ds, "RescaleIntercept")  # type: ignore[arg-type]
    return (slope if slope not in (None, 0.0) else 1.0, intercept if intercept is not None else 0.0)


def is_enhanced(inst: Instance) -> bool:
    """True for an instance with per-frame functional groups describing each of its frames."""
    ds = inst.dataset
    n = get_int(ds, "NumberOfFrames") or 1
    if n == 1 and "SharedFunctionalGroupsSequence" not in ds:
        return False  # e.g. Sunnybrook: classic single-frame MR with an empty per-frame sequence
    per_frame = get_value(ds, "PerFrameFunctionalGroupsSequence")
    try:
        return per_frame is not None and len(per_frame) == n and (n > 1 or "SharedFunctionalGroupsSequence" in ds)
    except Exception:
        return False


def _frame_time_vector(ds: object, n: int) -> list[float] | None:
    """Frame start times (ms) from FrameTimeVector (increments) or FrameTime; None when unknown."""
    vec = get_floats(ds, "FrameTimeVector")  # type: ignore[arg-type]
    if vec is not None and len(vec) == n:
        return [float(v) for v in np.cumsum(vec) - vec[0]]
    ft = get_float(ds, "FrameTime")  # type: ignore[arg-type]
    if ft is None:
        rate = get_float(ds, "CineRate") or get_float(ds, "RecommendedDisplayFrameRate")  # type: ignore[arg-type]
        ft = 1000.0 / rate if rate else None
    return [i * ft for i in range(n)] if ft else None


def _enhanced_records(inst: Instance, base: dict[str, object]) -> list[FrameRecord]:
    ds = inst.dataset
    shared = first_item(ds, "SharedFunctionalGroupsSequence")
    per_frame_seq = get_value(ds, "PerFrameFunctionalGroupsSequence") or []
    records = []
    for k, pf in enumerate(per_frame_seq):
        ipp = functional_group_value(shared, pf, "PlanePositionSequence", "ImagePositionPatient")
        iop = functional_group_value(shared, pf, "PlaneOrientationSequence", "ImageOrientationPatient")
        ps = functional_group_value(shared, pf, "PixelMeasuresSequence", "PixelSpacing")
        th = functional_group_value(shared, pf, "PixelMeasuresSequence", "SliceThickness")
        slope = functional_group_value(shared, pf, "PixelValueTransformationSequence", "RescaleSlope")
        intercept = functional_group_value(shared, pf, "PixelValueTransformationSequence", "RescaleIntercept")
        t = functional_group_value(shared, pf, "CardiacSynchronizationSequence", "NominalCardiacTriggerDelayTime")
        fc = first_item(pf, "FrameContentSequence")
        rec = FrameRecord(
            instance=inst,
            frame_index=k,
            ipp=_floats(ipp, 3),
            iop=_floats(iop, 6),
            pixel_spacing=_floats(ps, 2),
            slice_thickness=_float(th),
            time_ms=_float(t),
            temporal_index=get_int(fc, "TemporalPositionIndex"),
            stack_position=get_int(fc, "InStackPositionNumber"),
            rescale=(_float(slope) or 1.0, _float(intercept) or 0.0),
            **base,  # type: ignore[arg-type]
        )
        records.append(rec)
    return records


def _float(v: object) -> float | None:
    try:
        f = float(v)  # type: ignore[arg-type]
    except Exception:
        return None
    return f if np.isfinite(f) else None


def _floats(v: object, n: int) -> tuple[float, ...] | None:
    if v is None:
        return None
    try:
        out = tuple(float(x) for x in v)  # type: ignore[union-attr]
    except Exception:
        return None
    return out if len(out) == n and all(np.isfinite(out)) else None


def frame_records(series: Series | Iterable[Instance]) -> list[FrameRecord]:
    """Flat list of the frames of ``series`` (or of the given instances) with their geometry and timing.

    Computed once per instance and cached on it (headers are treated as immutable after ingest; call
    :func:`forget_frames` after editing a header in place).
    """
    instances = series.instances if isinstance(series, Series) else list(series)
    records: list[FrameRecord] = []
    for inst in instances:
        cached = inst.__dict__.get("_frame_records")
        if cached is not None:
            records.extend(cached)
            continue
        inst.__dict__["_frame_records"] = mine = _instance_records(inst)
        records.extend(mine)
    return records


def forget_frames(inst: Instance) -> None:
    """Drop the cached frame records of ``inst`` (after its header was edited in place)."""
    inst.__dict__.pop("_frame_records", None)


def _instance_records(inst: Instance) -> list[FrameRecord]:
    """The frames of one instance (computed once per instance; headers do not change after ingest)."""
    records: list[FrameRecord] = []
    ds = inst.dataset
    base = {
        "rows": get_int(ds, "Rows") or 0,
        "columns": get_int(ds, "Columns") or 0,
        "acquisition": (get_str(ds, "SeriesInstanceUID"), get_int(ds, "AcquisitionNumber") or 0),
        "instance_number": get_int(ds, "InstanceNumber") or 0,
        "series_number": get_int(ds, "SeriesNumber") or 0,
        "acquisition_time": get_str(ds, "AcquisitionTime") or get_str(ds, "ContentTime"),
    }
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        return records
    n = get_int(ds, "NumberOfFrames") or 1
    if is_enhanced(inst):
        return _enhanced_records(inst, base)
    ipp = get_floats(ds, "ImagePositionPatient", 3)
    iop = get_floats(ds, "ImageOrientationPatient", 6)
    ps = get_floats(ds, "PixelSpacing", 2)
    th = get_float(ds, "SliceThickness")
    if n == 1:
        t = get_float(ds, "TriggerTime")
        if t is None:
            t = get_float(ds, "NominalCardiacTriggerDelayTime")
        records.append(
            FrameRecord(inst, None, ipp, iop, ps, th, t, None, None, _rescale(ds), **base)  # type: ignore[arg-type]
        )
    else:
        times = _frame_time_vector(ds, n)
        for k in range(n):
            records.append(
                FrameRecord(inst, k, ipp, iop, ps, th, times[k] if times else None, k + 1, None, _rescale(ds), **base)  # type: ignore[arg-type]
            )
    return records


# ----------------------------------------------------------------------------------------------------------------
# layout: slices along the normal x phases in time


def orientation_label(iop: Sequence[float] | None) -> str:
    """Plane orientation relative to the body axes: ``axial``, ``coronal``, ``sagittal``, ``oblique`` or ``unknown``."""
    if iop is None:
        return "unknown"
    n = np.cross(np.asarray(iop[:3]), np.asarray(iop[3:6]))
    norm = float(np.linalg.norm(n))
    if norm < 1e-6:
        return "unknown"
    n = np.abs(n / norm)
    k = int(np.argmax(n))
    if n[k] < 0.92:
        return "oblique"
    return ("sagittal", "coronal", "axial")[k]


@dataclass
class Layout:
    """Frames arranged as slice positions (along the normal) x phases (in time).

    Attributes:
        grid: per slice position (ascending along the normal), the frames sorted by time.
        positions_mm: position of each slice along the normal (mm).
        row_cos, col_cos, normal: plane directions (LPS), or None without geometry.
        n_orientations: number of distinct plane orientations among the frames.
        n_phases: most common number of frames per position (the number of cardiac phases of a cine).
        slice_spacing_mm: median distance between neighbouring positions (None for one position).
        pixel_spacing: (row, column) spacing mm of the first frame.
        notes: things worth reporting (orientations, sizes, repeated acquisitions).
    """

    grid: list[list[FrameRecord]]
    positions_mm: list[float]
    row_cos: np.ndarray | None
    col_cos: np.ndarray | None
    normal: np.ndarray | None
    n_orientations: int
    n_phases: int
    slice_spacing_mm: float | None
    pixel_spacing: tuple[float, ...] | None
    notes: list[str] = field(default_factory=list)

    @property
    def n_slices(self) -> int:
        return len(self.grid)

    @property
    def orientation(self) -> str:
        if self.row_cos is None or self.col_cos is None:
            return "unknown"
        return orientation_label([*self.row_cos, *self.col_cos])


def _cluster(values: Sequence[float], tol: float) -> list[float]:
    """Representative values of 1-D clusters (sorted ascending) with gaps larger than ``tol``."""
    out: list[list[float]] = []
    for v in sorted(values):
        if out and v - out[-1][-1] <= tol:
            out[-1].append(v)
        else:
            out.append([v])
    return [float(np.mean(c)) for c in out]


def orientation_groups(records: Sequence[FrameRecord]) -> list[tuple[tuple[float, ...], list[FrameRecord]]]:
    """Frames grouped by plane orientation (within :data:`ORIENTATION_TOL`), largest group first."""
    groups: list[tuple[tuple[float, ...], list[FrameRecord]]] = []
    for r in records:
        if r.iop is None:
            continue
        for iop, members in groups:
            if max(abs(a - b) for a, b in zip(iop, r.iop, strict=True)) <= ORIENTATION_TOL:
                members.append(r)
                break
        else:
            groups.append((r.iop, [r]))
    return sorted(groups, key=lambda g: -len(g[1]))


def _time_key(r: FrameRecord) -> tuple[float, int, int]:
    t = r.time_ms if r.time_ms is not None else float(r.temporal_index or 0)
    return (t, r.instance_number, r.frame_index or 0)


def analyze_layout(records: Sequence[FrameRecord]) -> Layout:
    """Arrange frames by position along the slice normal and by time. Never raises; problems go to ``notes``.

    Frames without ImagePositionPatient/ImageOrientationPatient (ultrasound, legacy multi-frame) form a single
    "slice" whose frames are ordered in time.
    """
    notes: list[str] = []
    if not records:
        return Layout([], [], None, None, None, 0, 0, None, None, ["no image frames"])
    groups = orientation_groups(records)
    with_geometry = [r for r in records if r.iop is not None and r.ipp is not None]
    if not groups or len(with_geometry) < len(records):
        if with_geometry:
            notes.append(f"{len(records) - len(with_geometry)} frame(s) lack ImagePositionPatient/Orientation")
        grid = [sorted(records, key=_time_key)]
        return Layout(grid, [0.0], None, None, None, len(groups), len(records), None, records[0].pixel_spacing, notes)
    if len(groups) > 1:
        notes.append(
            f"{len(groups)} different slice orientations (largest group has {len(groups[0][1])} of {len(records)} "
            "frames)"
        )
    iop, members = groups[0]
    row, col = np.asarray(iop[:3]), np.asarray(iop[3:6])
    normal = np.cross(row, col)
    nn = float(np.linalg.norm(normal))
    normal = normal / nn if nn > 0 else np.array([0.0, 0.0, 1.0])
    dist = {id(r): float(np.dot(np.asarray(r.ipp), normal)) for r in members}  # type: ignore[arg-type]
    centers = _cluster(list(dist.values()), POSITION_TOL_MM)
    grid: list[list[FrameRecord]] = [[] for _ in centers]
    for r in members:
        k = int(np.argmin([abs(dist[id(r)] - c) for c in centers]))
        grid[k].append(r)
    for cell in grid:
        cell.sort(key=_time_key)
    counts = Counter(len(cell) for cell in grid)
    n_phases = max(counts.items(), key=lambda kv: (kv[1], kv[0]))[0]
    spacing = float(np.median(np.diff(centers))) if len(centers) > 1 else None
    return Layout(grid, centers, row, col, normal, len(groups), n_phases, spacing, members[0].pixel_spacing, notes)
