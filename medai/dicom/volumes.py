"""Volume builders: 3-D volumes and native 4-D cine from DICOM series, in LPS.

* :func:`build_volume` -- a static ``(Z, Y, X)`` volume (CT, CTA, LGE, T1/T2 maps) with slices sorted along the
  normal of ImageOrientationPatient by ImagePositionPatient; rescale slope/intercept applied; float32.
* :func:`build_cine` -- a native ``(T, Z, Y, X)`` cine, whether the vendor stores one series per slice or one
  series per stack (Sunnybrook: 240 images, 20 phases per slice position, one FrameOfReferenceUID per image), or
  an enhanced multi-frame instance with per-frame functional groups, or an ultrasound / legacy multi-frame clip
  (``(T, 1, Y, X[, 3])`` with frame timing from FrameTime/FrameTimeVector and physical spacing from the ultrasound
  region calibration).

Tolerated with a warning in :attr:`Volume.warnings`: a missing phase (filled with the nearest phase in time of the
same slice), a repeated slice (the last acquisition is kept), differing FrameOfReferenceUIDs of a geometrically
consistent stack, non-uniform slice spacing, MONOCHROME1. Refused with :class:`~medai.errors.GeometryError`:
mixed orientations, matrix sizes or pixel spacings.
"""

from __future__ import annotations

import functools
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from medai.dicom.frames import FrameRecord, Layout, analyze_layout, frame_records, orientation_groups
from medai.dicom.ingest import _FilePixelLoader
from medai.dicom.tags import first_item, get_float, get_floats, get_int, get_str, get_value, quiet_pydicom
from medai.domain.study import Instance, Series
from medai.domain.volume import Volume, affine_from_dicom
from medai.errors import DicomError, GeometryError

logger = logging.getLogger(__name__)

_NATIVE_LE = {"", "1.2.840.10008.1.2", "1.2.840.10008.1.2.1"}
#: relative tolerance on pixel spacing equality between slices
_SPACING_RTOL = 1e-3


# ----------------------------------------------------------------------------------------------------------------
# pixel decoding


def _fast_native(inst: Instance) -> np.ndarray | None:
    """Decode native little-endian monochrome pixel data with NumPy directly; None when the case is not simple."""
    ds = inst.dataset
    ts = get_str(getattr(ds, "file_meta", None), "TransferSyntaxUID")
    if ts not in _NATIVE_LE or (get_int(ds, "SamplesPerPixel") or 1) != 1:
        return None
    if get_str(ds, "PhotometricInterpretation") not in ("MONOCHROME1", "MONOCHROME2"):
        return None  # palette colour and others go through pydicom
    bits, stored = get_int(ds, "BitsAllocated"), get_int(ds, "BitsStored")
    signed = get_int(ds, "PixelRepresentation") == 1
    if bits not in (8, 16, 32) or (signed and stored != bits):
        return None
    rows, cols, frames = get_int(ds, "Rows") or 0, get_int(ds, "Columns") or 0, get_int(ds, "NumberOfFrames") or 1
    if isinstance(inst.loader, _FilePixelLoader):
        if inst.loader.ref.vr not in ("OW", "OB"):
            return None
        data = inst.loader.read_pixel_bytes()
    else:
        if inst.loader is not None:
            return None
        elem = ds.get_item(0x7FE00010)
        data = getattr(elem, "value", None)
        if not isinstance(data, bytes):
            return None
    dtype = np.dtype(f"{'<i' if signed else '<u'}{bits // 8}")
    n = rows * cols * frames
    if len(data) < n * dtype.itemsize:
        raise DicomError(f"{inst.source}: pixel data holds {len(data)} bytes, {n * dtype.itemsize} needed")
    return np.frombuffer(data, dtype=dtype, count=n).reshape(frames, rows, cols)


def decode_instance(inst: Instance) -> np.ndarray:
    """Stored pixel values of an instance (no rescale), decoded on demand.

    Returns:
        ``(F, Y, X)`` for monochrome or ``(F, Y, X, 3)`` for colour (YBR converted to RGB, palette applied).

    Raises:
        DicomError: the pixel data cannot be decoded (damaged, truncated, no codec); the message names the file.
    """
    try:
        with quiet_pydicom():
            arr = _fast_native(inst)
            if arr is None:
                from pydicom.pixels import apply_color_lut, get_decoder

                pds = inst.pixel_dataset()
                ts = get_str(getattr(pds, "file_meta", None), "TransferSyntaxUID") or "1.2.840.10008.1.2"
                arr, _meta = get_decoder(ts).as_array(pds, as_rgb=True)
                if get_str(pds, "PhotometricInterpretation") == "PALETTE COLOR":
                    arr = apply_color_lut(arr, pds)
                colour = (
                    (get_int(pds, "SamplesPerPixel") or 1) > 1
                    or arr.ndim >= 3
                    and arr.shape[-1] == 3
                    and (get_str(pds, "PhotometricInterpretation") == "PALETTE COLOR")
                )
                if arr.ndim == (3 if colour else 2):
                    arr = arr[None]
    except DicomError:
        raise
    except Exception as exc:
        raise DicomError(
            f"cannot decode the pixel data of {inst.source or inst.SOPInstanceUID}: {type(exc).__name__}: {exc}. "
            "The file may be damaged or use a transfer syntax without an installed codec."
        ) from exc
    return arr


class _Decoder:
    """Decodes each instance once while a volume is filled (multi-frame instances are indexed by frame)."""

    def __init__(self) -> None:
        self.cache: dict[str, np.ndarray] = {}

    def frame(self, rec: FrameRecord) -> np.ndarray:
        uid = rec.sop_uid
        arr = self.cache.get(uid)
        if arr is None:
            arr = decode_instance(rec.instance)
            if arr.shape[0] > 1:  # keep multi-frame instances for their other frames
                self.cache[uid] = arr
        k = rec.frame_index or 0
        if k >= arr.shape[0]:
            raise DicomError(f"{rec.instance.source}: frame {k + 1} requested, pixel data has {arr.shape[0]} frames")
        return arr[k]


def _checked(frame: np.ndarray, shape: tuple[int, ...], rec: FrameRecord) -> np.ndarray:
    """``frame`` when it has the expected shape; a GeometryError (not a silent broadcast) otherwise."""
    if frame.shape != tuple(shape):
        raise GeometryError(
            f"{rec.instance.source or rec.sop_uid}: decoded frame has shape {frame.shape}, the volume expects "
            f"{tuple(shape)} (mixed colour/greyscale or matrix sizes in one series)"
        )
    return frame


def _to_float(pixels: np.ndarray, rec: FrameRecord, monochrome1: bool, bits_stored: int | None) -> np.ndarray:
    out = pixels.astype(np.float32)
    if monochrome1:
        out = float(2 ** (bits_stored or 16) - 1) - out if out.min() >= 0 else -out
    slope, intercept = rec.rescale
    if slope != 1.0 or intercept != 0.0:
        out = out * np.float32(slope) + np.float32(intercept)
    return out


# ----------------------------------------------------------------------------------------------------------------
# geometry checks


def _describe(records: Sequence[FrameRecord]) -> str:
    uids = sorted({r.acquisition[0] for r in records})
    return f"{len(records)} frames of {len(uids)} series"


def _check_consistent(records: Sequence[FrameRecord], layout: Layout) -> None:
    """Raise GeometryError for mixed orientations, matrix sizes or pixel spacings."""
    groups = orientation_groups(records)
    if len(groups) > 1:
        desc = "; ".join(
            f"{len(members)} frames with orientation {tuple(round(v, 3) for v in iop)} "
            f"(series {sorted({m.acquisition[0][-12:] for m in members})})"
            for iop, members in groups[:4]
        )
        raise GeometryError(
            f"Cannot build one volume from {_describe(records)}: the slices have {len(groups)} different "
            f"orientations ({desc}). Select the series of one stack (e.g. only the short-axis cine)."
        )
    sizes = Counter((r.rows, r.columns) for r in records)
    if len(sizes) > 1:
        raise GeometryError(
            f"Cannot build one volume from {_describe(records)}: matrix sizes differ "
            f"({', '.join(f'{n} frames of {r}x{c}' for (r, c), n in sizes.most_common())}). Select one stack."
        )
    spacings = {r.pixel_spacing for r in records if r.pixel_spacing is not None}
    if len(spacings) > 1:
        ref = next(iter(spacings))
        if any(abs(a - b) > _SPACING_RTOL * max(abs(b), 1e-6) for s in spacings for a, b in zip(s, ref, strict=True)):
            raise GeometryError(
                f"Cannot build one volume from {_describe(records)}: pixel spacings differ ({sorted(spacings)[:4]})."
            )


def _stack_geometry(layout: Layout, warnings: list[str]) -> tuple[np.ndarray, float]:
    """Affine of a sorted stack and its slice spacing; warns on non-uniform spacing or in-plane shifts."""
    first = layout.grid[0][0]
    ps = first.pixel_spacing
    if ps is None:
        ps = (1.0, 1.0)
        warnings.append("PixelSpacing missing: 1 mm assumed")
    positions = np.asarray(layout.positions_mm)
    if len(positions) > 1:
        diffs = np.diff(positions)
        spacing = float(np.median(diffs))
        if np.max(np.abs(diffs - spacing)) > max(0.01 * spacing, 0.05):
            gaps = [
                f"{positions[i]:.1f}->{positions[i + 1]:.1f}"
                for i in np.flatnonzero(np.abs(diffs - spacing) > 0.01 * spacing)
            ]
            warnings.append(
                f"non-uniform slice spacing (median {spacing:.2f} mm; irregular between {', '.join(gaps[:5])} mm): "
                "missing or overlapping slices; the affine uses the median spacing"
            )
        # in-plane alignment of the stack: the IPP of every slice should lie on the normal through the first
        ipps = np.asarray([cell[0].ipp for cell in layout.grid])
        inplane = (ipps - ipps[0]) - np.outer(positions - positions[0], layout.normal)
        shift = float(np.max(np.linalg.norm(inplane, axis=1)))
        if shift > 0.5 * min(ps):
            warnings.append(
                f"slices are shifted in-plane by up to {shift:.1f} mm (not a straight stack); the affine follows "
                "the first slice"
            )
    else:
        spacing = first.slice_thickness or get_float(first.instance.dataset, "SpacingBetweenSlices") or 1.0
    assert layout.normal is not None and layout.row_cos is not None and layout.col_cos is not None
    affine = affine_from_dicom(first.ipp, [*layout.row_cos, *layout.col_cos], ps, layout.normal * spacing)  # type: ignore[arg-type]
    return affine, spacing


def _frame_of_reference(records: Sequence[FrameRecord], warnings: list[str]) -> str:
    uids = Counter(get_str(r.instance.dataset, "FrameOfReferenceUID") for r in records[:: max(1, len(records) // 400)])
    uids.pop("", None)
    if not uids:
        return ""
    if len(uids) > 1:
        warnings.append(
            f"the images carry {len(uids)} different FrameOfReferenceUIDs although their geometry forms one "
            "consistent stack; the most common one is used"
        )
    return uids.most_common(1)[0][0]


def _last_acquisition_key(rec: FrameRecord) -> tuple[int, str, int]:
    return (rec.series_number, rec.acquisition_time, rec.instance_number)


def _resolve_repeats(cell: list[FrameRecord], z: int, pos: float, warnings: list[str]) -> list[FrameRecord]:
    """Keep one acquisition per slice position: the last one, when a slice was acquired more than once."""
    acqs: dict[tuple[str, int], list[FrameRecord]] = {}
    for r in cell:
        acqs.setdefault(r.acquisition, []).append(r)
    if len(acqs) > 1:
        ordered = sorted(acqs.values(), key=lambda rs: max(_last_acquisition_key(r) for r in rs))
        kept = ordered[-1]
        warnings.append(
            f"slice {z} (at {pos:.1f} mm along the normal) was acquired {len(acqs)} times "
            f"(series numbers {[rs[0].series_number for rs in ordered]}); "
            f"kept the last (series #{kept[0].series_number})"
        )
        cell = kept
    return cell


def _dedupe_times(cell: list[FrameRecord], z: int, pos: float, tol_ms: float, warnings: list[str]) -> list[FrameRecord]:
    """Within one acquisition, images at the same trigger time are repeats: keep the later instance."""
    if len(cell) < 2 or any(r.time_ms is None for r in cell):
        return cell
    out: list[FrameRecord] = []
    dropped = 0
    for r in sorted(cell, key=lambda r: (r.time_ms, r.instance_number)):
        if out and abs(r.time_ms - out[-1].time_ms) <= tol_ms:  # type: ignore[operator]
            out[-1] = r if _last_acquisition_key(r) >= _last_acquisition_key(out[-1]) else out[-1]
            dropped += 1
        else:
            out.append(r)
    if dropped:
        warnings.append(
            f"slice {z} (at {pos:.1f} mm) has {dropped} repeated image(s) at the same trigger time; kept the last"
        )
    return out


# ----------------------------------------------------------------------------------------------------------------
# builders


def _collect(series: Series | Sequence[Series] | Sequence[Instance]) -> tuple[list[FrameRecord], str]:
    if isinstance(series, Series):
        items = [series]
    else:
        items = list(series)
    instances: list[Instance] = []
    uids: list[str] = []
    for s in items:
        if isinstance(s, Series):
            instances.extend(s.instances)
            uids.append(s.SeriesInstanceUID)
        else:
            instances.append(s)
    with quiet_pydicom():
        records = frame_records(instances)
    if not records:
        raise GeometryError(f"no image frames in {len(instances)} instance(s) ({', '.join(uids) or 'no series'})")
    return records, "\\".join(dict.fromkeys(uids))


def _photometric(records: Sequence[FrameRecord]) -> tuple[bool, int | None, bool]:
    ds = records[0].instance.dataset
    pi = get_str(ds, "PhotometricInterpretation")
    colour = (get_int(ds, "SamplesPerPixel") or 1) > 1 or pi == "PALETTE COLOR"
    return pi == "MONOCHROME1", get_int(ds, "BitsStored"), colour


def _quiet(fn: Callable[..., Volume]) -> Callable[..., Volume]:
    """Run a builder inside one :func:`quiet_pydicom` block (instead of one per decoded instance)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Volume:
        with quiet_pydicom():
            return fn(*args, **kwargs)

    return wrapper


@_quiet
def build_volume(series: Series | Sequence[Series]) -> Volume:
    """A static 3-D volume sorted along the slice normal.

    Args:
        series: one series (or several holding one stack, e.g. split by the scanner).

    Returns:
        :class:`Volume` with array ``(Z, Y, X)`` float32 (rescale applied; ``(Z, Y, X, 3)`` for colour), affine
        ``(z, y, x, 1)`` -> LPS mm, ``source_sop_uids`` of shape ``(1, Z)``.

    Raises:
        GeometryError: inconsistent orientation/sizes/spacing, a temporal series (use :func:`build_cine`), or a
            multi-frame clip without patient geometry.
        DicomError: pixel data cannot be decoded.
    """
    records, series_uid = _collect(series)
    layout = analyze_layout(records)
    warnings: list[str] = []
    if layout.normal is None:
        if len(records) > 1:
            raise GeometryError(
                f"{_describe(records)} without patient geometry (ImagePositionPatient/ImageOrientationPatient) form "
                "a clip, not a volume; use build_cine for ultrasound or multi-frame clips"
            )
        return _planar_volume(records, series_uid, temporal=False)
    _check_consistent(records, layout)
    cells = []
    for z, cell in enumerate(layout.grid):
        cell = _resolve_repeats(cell, z, layout.positions_mm[z], warnings)
        times = {round(r.time_ms, 1) for r in cell if r.time_ms is not None}
        if len(cell) > 1 and len(times) > 1:
            raise GeometryError(
                f"{_describe(records)}: slice {z} has {len(cell)} images at {len(times)} different trigger times: "
                "this is a temporal (cine) series; use build_cine"
            )
        if len(cell) > 1:
            warnings.append(f"slice {z} has {len(cell)} images at the same position; kept the last")
            cell = [max(cell, key=_last_acquisition_key)]
        cells.append(cell[0])
    affine, _ = _stack_geometry(layout, warnings)
    mono1, bits_stored, colour = _photometric(records)
    if mono1:
        warnings.append("MONOCHROME1 pixel data inverted to MONOCHROME2")
    rows, cols = records[0].rows, records[0].columns
    shape = (len(cells), rows, cols, 3) if colour else (len(cells), rows, cols)
    array = np.empty(shape, dtype=np.float32)
    dec = _Decoder()
    for z, rec in enumerate(cells):
        array[z] = _checked(_to_float(dec.frame(rec), rec, mono1, bits_stored), array.shape[1:], rec)
    for_uid = _frame_of_reference(cells, warnings)
    return Volume(
        array=array,
        affine=affine,
        frame_of_reference_uid=for_uid,
        source_series_uid=series_uid,
        source_sop_uids=(tuple(r.sop_uid for r in cells),),
        warnings=tuple(warnings),
    )


def _us_spacing(ds: object, warnings: list[str]) -> tuple[float, float] | None:
    """(row, column) spacing in mm from the largest calibrated 2-D ultrasound region (units cm)."""
    regions = get_value(ds, "SequenceOfUltrasoundRegions")  # type: ignore[arg-type]
    if not regions:
        return None
    best: tuple[float, float, float] | None = None
    deltas = set()
    for reg in regions:
        if get_int(reg, "RegionSpatialFormat") != 1:  # 1 = 2-D tissue/flow image
            continue
        if get_int(reg, "PhysicalUnitsXDirection") != 3 or get_int(reg, "PhysicalUnitsYDirection") != 3:  # 3 = cm
            continue
        dx, dy = get_float(reg, "PhysicalDeltaX"), get_float(reg, "PhysicalDeltaY")
        if not dx or not dy:
            continue
        x0, x1 = get_int(reg, "RegionLocationMinX0") or 0, get_int(reg, "RegionLocationMaxX1") or 0
        y0, y1 = get_int(reg, "RegionLocationMinY0") or 0, get_int(reg, "RegionLocationMaxY1") or 0
        area = float((x1 - x0 + 1) * (y1 - y0 + 1))
        deltas.add((round(abs(dy), 6), round(abs(dx), 6)))
        if best is None or area > best[0]:
            best = (area, abs(dy) * 10.0, abs(dx) * 10.0)
    if best is None:
        return None
    if len(deltas) > 1:
        warnings.append(f"{len(deltas)} ultrasound regions with different calibrations; used the largest region's")
    return best[1], best[2]


def _planar_volume(records: list[FrameRecord], series_uid: str, temporal: bool) -> Volume:
    """Frames without patient geometry (ultrasound, photos, legacy multi-frame): ``(T, 1, Y, X[, 3])`` or
    ``(1, Y, X[, 3])`` with an in-plane affine (not patient coordinates)."""
    warnings: list[str] = ["no patient geometry (ImagePositionPatient/Orientation): the affine is in the image plane"]
    ds = records[0].instance.dataset
    spacing = _us_spacing(ds, warnings)
    if spacing is not None:
        warnings[0] += "; spacing from the ultrasound region calibration"
    else:
        ps = get_floats(ds, "PixelSpacing", 2) or get_floats(ds, "ImagerPixelSpacing", 2)
        if ps is None:
            item = first_item(first_item(ds, "SharedFunctionalGroupsSequence"), "PixelMeasuresSequence")
            ps = get_floats(item, "PixelSpacing", 2)
        spacing = (ps[0], ps[1]) if ps is not None else None
        if spacing is None:
            spacing = (1.0, 1.0)
            warnings.append("no physical spacing (no ultrasound calibration or PixelSpacing): 1 mm per pixel assumed")
    thickness = get_float(ds, "SliceThickness") or 1.0
    affine = affine_from_dicom([0.0, 0.0, 0.0], [1, 0, 0, 0, 1, 0], spacing, [0.0, 0.0, thickness])
    records = sorted(records, key=lambda r: (r.frame_index or 0, r.instance_number))
    mono1, bits_stored, colour = _photometric(records)
    dec = _Decoder()
    shape0 = dec.frame(records[0]).shape
    frames = [_checked(_to_float(dec.frame(r), r, mono1, bits_stored), shape0, r) for r in records]
    array = np.stack(frames)[:, None]  # (T, 1, Y, X[, 3])
    if not temporal:
        return Volume(
            array=array[0],
            affine=affine,
            source_series_uid=series_uid,
            source_sop_uids=(tuple(r.sop_uid for r in records[:1]),),
            warnings=tuple(warnings),
        )
    times = [r.time_ms for r in records]
    if any(t is None for t in times):
        warnings.append("no frame timing (FrameTime/FrameTimeVector): frame times are frame indices")
        times = [float(i) for i in range(len(records))]
    return Volume(
        array=array,
        affine=affine,
        frame_times_ms=tuple(float(t) for t in times),  # type: ignore[arg-type]
        source_series_uid=series_uid,
        source_sop_uids=tuple((r.sop_uid,) for r in records),
        warnings=tuple(warnings),
    )


@_quiet
def build_cine(series: Series | Sequence[Series]) -> Volume:
    """A native 4-D cine ``(T, Z, Y, X)`` ordered by slice position along the normal and by trigger time.

    Args:
        series: the cine series: one stack series, the per-slice series of a stack, an enhanced multi-frame
            series, or an ultrasound / multi-frame clip.

    Returns:
        :class:`Volume` with array ``(T, Z, Y, X)`` float32 (``(..., 3)`` for colour), ``frame_times_ms`` (mean
        trigger time of each phase over slices, ms), ``source_sop_uids[t][z]`` and ``warnings`` (missing phases
        filled, repeated slices resolved, differing frames of reference...).

    Raises:
        GeometryError: inconsistent orientation, matrix size or pixel spacing; the message says what differs.
        DicomError: pixel data cannot be decoded.
    """
    records, series_uid = _collect(series)
    layout = analyze_layout(records)
    if layout.normal is None:
        return _planar_volume(records, series_uid, temporal=True)
    _check_consistent(records, layout)
    warnings: list[str] = []

    # one acquisition per slice position, one image per trigger time
    steps = []
    for cell in layout.grid:
        ts = sorted(r.time_ms for r in cell if r.time_ms is not None)
        steps += [b - a for a, b in zip(ts, ts[1:], strict=False) if b - a > 0.5]
    tol_ms = 0.25 * float(np.median(steps)) if steps else 0.5
    cells: list[list[FrameRecord]] = []
    for z, cell in enumerate(layout.grid):
        cell = _resolve_repeats(cell, z, layout.positions_mm[z], warnings)
        cells.append(_dedupe_times(cell, z, layout.positions_mm[z], tol_ms, warnings))
    counts = Counter(len(c) for c in cells)
    n_t = max(counts.items(), key=lambda kv: (kv[1], kv[0]))[0]

    # reference phase times from the complete slices
    has_times = all(r.time_ms is not None for c in cells for r in c)
    complete = [c for c in cells if len(c) == n_t]
    if has_times:
        ref = np.median(np.asarray([[r.time_ms for r in c] for c in complete], dtype=float), axis=0)
    else:
        warnings.append("no trigger times: phases ordered by instance number; frame times are phase indices")
        ref = np.arange(n_t, dtype=float)

    grid: list[list[FrameRecord]] = []
    for z, cell in enumerate(cells):
        if len(cell) == n_t:
            grid.append(list(cell))
            continue
        slots: list[FrameRecord | None] = [None] * n_t
        # match frames to reference phase times, closest pairs first
        t_of = [r.time_ms if has_times else float(i) for i, r in enumerate(cell)]
        pairs = sorted((abs(ref[k] - t_r), i, k) for i, t_r in enumerate(t_of) for k in range(n_t))
        used: set[int] = set()
        for _, i, k in pairs:
            if i not in used and slots[k] is None:
                slots[k] = cell[i]
                used.add(i)
        missing = [k for k, s in enumerate(slots) if s is None]
        extra = len(cell) - (n_t - len(missing))
        if missing:
            available = [(k, s) for k, s in enumerate(slots) if s is not None]
            for k in missing:
                slots[k] = min(available, key=lambda ks: abs(ref[ks[0]] - ref[k]))[1]
            warnings.append(
                f"slice {z} (at {layout.positions_mm[z]:.1f} mm) misses phase(s) {missing} of {n_t}; filled with "
                "the nearest phase in time of the same slice"
            )
        if extra > 0:
            warnings.append(f"slice {z} has {extra} more image(s) than the {n_t} phases; dropped the farthest in time")
        grid.append(slots)  # type: ignore[arg-type]

    layout_sorted = Layout(
        grid,
        layout.positions_mm,
        layout.row_cos,
        layout.col_cos,
        layout.normal,
        1,
        n_t,
        layout.slice_spacing_mm,
        layout.pixel_spacing,
    )
    affine, _ = _stack_geometry(layout_sorted, warnings)
    mono1, bits_stored, colour = _photometric(records)
    if mono1:
        warnings.append("MONOCHROME1 pixel data inverted to MONOCHROME2")
    n_z, rows, cols = len(grid), records[0].rows, records[0].columns
    shape = (n_t, n_z, rows, cols, 3) if colour else (n_t, n_z, rows, cols)
    array = np.empty(shape, dtype=np.float32)
    dec = _Decoder()
    for z, cell in enumerate(grid):
        for t, rec in enumerate(cell):
            array[t, z] = _checked(_to_float(dec.frame(rec), rec, mono1, bits_stored), array.shape[2:], rec)
    used = [r for c in grid for r in c]
    for_uid = _frame_of_reference(used, warnings)
    frame_times = tuple(float(v) for v in ref)
    return Volume(
        array=array,
        affine=affine,
        frame_of_reference_uid=for_uid,
        frame_times_ms=frame_times,
        source_series_uid=series_uid,
        source_sop_uids=tuple(tuple(grid[z][t].sop_uid for z in range(n_z)) for t in range(n_t)),
        warnings=tuple(warnings),
    )
