"""LV end-diastolic wall thickness per AHA segment (16-segment model, Cerqueira et al., Circulation 2002).

Method (on the ED frame, in source geometry):

* slices with myocardium are split into basal / mid / apical thirds (the base is the end where the RV is largest,
  or where the LV cavity is largest when no RV is segmented);
* in each slice, 360 rays leave the LV cavity centroid; wall thickness along a ray is the length (mm, from the
  affine) of its myocardial samples;
* angles are measured from the septum: the direction from the LV centroid to the RV centroid (between the two
  RV insertion points); positive angles turn towards the patient's anterior side (LPS -P).
  Basal and mid: 60° sectors 2 (anteroseptal, 0..60°), 1 (anterior), 6 (anterolateral), 5 (inferolateral),
  4 (inferior), 3 (inferoseptal, -60..0°); apical: 90° sectors 14 (septal, -45..45°), 13 (anterior),
  16 (lateral), 15 (inferior).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from medai.domain.measurement import Measurement
from medai.domain.volume import LabelMap
from medai.measurements.cardiac import make_measurement

_N_RAYS = 360
_STEP_PX = 0.25


def _sector_basal_mid(phi_deg: np.ndarray, offset: int) -> np.ndarray:
    # 0..60 -> 2, 60..120 -> 1, 120..180 -> 6, -180..-120 -> 5, -120..-60 -> 4, -60..0 -> 3
    order = np.array([2, 1, 6, 5, 4, 3])
    k = (np.floor(np.mod(phi_deg, 360.0) / 60.0).astype(int)) % 6
    return order[k] + offset


def _sector_apical(phi_deg: np.ndarray) -> np.ndarray:
    order = np.array([14, 13, 16, 15])  # septal, anterior, lateral, inferior
    k = (np.floor(np.mod(phi_deg + 45.0, 360.0) / 90.0).astype(int)) % 4
    return order[k]


def wall_thickness_by_segment(labelmap: LabelMap, ed: int) -> dict[int, float]:
    """Mean ED wall thickness (mm) per AHA segment 1..16 (segments without myocardium are left out).

    Args:
        labelmap: ``(T, Z, Y, X)`` (or ``(Z, Y, X)``) label map with ``lv`` and ``myo`` (``rv`` for orientation).
        ed: end-diastolic frame.
    """
    vol = labelmap.volume
    arr = vol.array[ed] if vol.is_temporal else vol.array
    lv_v, myo_v = labelmap.label("lv").value, labelmap.label("myo").value
    rv_v = next((lab.value for lab in labelmap.labels if lab.name == "rv"), None)
    aff = vol.affine[:3, :3]
    col_y, col_x = aff[:, 1], aff[:, 2]  # LPS mm per pixel step along y (rows) and x (columns)
    slices = [z for z in range(arr.shape[0]) if (arr[z] == myo_v).any() and (arr[z] == lv_v).any()]
    if not slices:
        return {}
    # which end is the base: the RV (or LV cavity) is larger there
    ref_v = rv_v if rv_v is not None and (arr == rv_v).any() else lv_v
    area = np.array([(arr[z] == ref_v).sum() for z in slices], dtype=float)
    half = max(1, len(slices) // 2)
    if area[:half].sum() < area[-half:].sum():
        slices = slices[::-1]  # slices now run base -> apex
    thirds = np.array_split(np.asarray(slices), 3) if len(slices) >= 3 else [np.asarray(slices)] * 3
    level_of = {}
    for level, zs in enumerate(thirds):
        for z in zs:
            level_of.setdefault(int(z), level)
    # septal direction: LV centroid -> RV centroid (whole ED stack), in LPS
    lv_c = np.array(ndimage.center_of_mass(arr == lv_v))
    anterior = np.array([0.0, -1.0, 0.0])
    if rv_v is not None and (arr == rv_v).any():
        rv_c = np.array(ndimage.center_of_mass(arr == rv_v))
        d = rv_c[1:] - lv_c[1:]
        u = col_y * d[0] + col_x * d[1]
    else:  # no RV: assume the septum faces the patient's right-anterior (+L is left, so -L)
        u = np.array([-1.0, -1.0, 0.0])
    normal = np.cross(col_x, col_y)
    normal /= np.linalg.norm(normal) or 1.0
    u = u - normal * (u @ normal)
    u /= np.linalg.norm(u) or 1.0
    v = np.cross(normal, u)
    if v @ anterior < 0:
        v = -v

    angles = np.deg2rad(np.arange(_N_RAYS) * 360.0 / _N_RAYS)
    sums: dict[int, list[float]] = {}
    for z in slices:
        sl = arr[z]
        myo = sl == myo_v
        cy, cx = ndimage.center_of_mass(sl == lv_v)
        myo_px = np.argwhere(myo)
        max_r = float(np.hypot(myo_px[:, 0] - cy, myo_px[:, 1] - cx).max()) * 1.5 + 2.0
        r = np.arange(0.0, max_r, _STEP_PX)
        # ray directions in pixel space from in-plane LPS directions: solve [col_y col_x] (dy, dx) = dir
        basis = np.stack([col_y, col_x], axis=1)
        dirs_lps = np.cos(angles)[:, None] * u + np.sin(angles)[:, None] * v
        dyx, *_ = np.linalg.lstsq(basis, dirs_lps.T, rcond=None)  # (2, N) pixel steps per mm
        norms = np.linalg.norm(dyx, axis=0)
        dyx = dyx / norms  # unit pixel-step directions
        mm_per_step = _STEP_PX / norms  # mm travelled per sample step along each ray
        ys = cy + dyx[0][:, None] * r[None, :]
        xs = cx + dyx[1][:, None] * r[None, :]
        samples = ndimage.map_coordinates(myo.astype(np.uint8), [ys.ravel(), xs.ravel()], order=0, mode="constant")
        counts = samples.reshape(_N_RAYS, -1).sum(1)
        thick = counts * mm_per_step
        phi = np.rad2deg(angles)
        level = level_of[z]
        seg = _sector_apical(phi) if level == 2 else _sector_basal_mid(phi, 0 if level == 0 else 6)
        for s_id, t in zip(seg, thick, strict=True):
            if t > 0:
                sums.setdefault(int(s_id), []).append(float(t))
    return {s: float(np.mean(vals)) for s, vals in sorted(sums.items())}


def wall_thickness_measurements(labelmap: LabelMap, ed: int, sex: str = "") -> list[Measurement]:
    """Coded ED wall-thickness measurements per AHA segment (``lv_wall_thickness_aha<N>``, mm)."""
    method = "radial ray casting from the LV centroid at ED, mean over the segment's rays and slices"
    return [
        make_measurement(f"lv_wall_thickness_aha{s}", t, sex, method=method, frame="ED")
        for s, t in wall_thickness_by_segment(labelmap, ed).items()
    ]
