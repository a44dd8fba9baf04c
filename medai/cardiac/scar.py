"""LGE scar quantification on a short-axis stack, reported by method.

Methods (each with its coded method concept and parameters, never written into a name):

* ``model``: the segmentation model's infarct (enhanced scar) and MVO labels;
* ``nsd``: n standard deviations above the mean of remote myocardium (n = 2, 3, 5 by default), inside the model's
  myocardium mask. The remote region is chosen automatically: in each slice, the darkest 60° sector of
  myocardium (AHA-style sectors around the LV centroid) that holds no model scar; its mask is returned and drawn;
* ``fwhm``: full width at half maximum: myocardium at or above half the maximum myocardial signal (the maximum is
  the 99.5th percentile of myocardial signal, robust to single hot pixels).

The threshold methods find enhanced tissue only; microvascular obstruction (dark core) is the model's for every
method and counts as infarct (infarct size includes MVO, SCMR 2020). For each method: infarct % of LV myocardium,
infarct volume (mL) and mass (g, 1.05 g/mL), MVO %, transmurality per AHA segment (mean over radial rays of the
scar fraction of the wall) with its bin (0, 1-25, 26-50, 51-75, 76-100 %), and the count of segments over 50 %
transmural (the viability call: such segments are unlikely to recover function after revascularisation; Kim et
al., NEJM 2000).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from medai.domain.codes import Code

_N_RAYS = 180
_STEP_PX = 0.25
#: Transmurality bins (percent), as (label, low, high) with inclusive bounds after rounding up to whole percent.
BINS: tuple[tuple[str, float, float], ...] = (("0", 0.0, 0.0), ("1-25", 0.0, 25.0), ("26-50", 25.0, 50.0),
                                               ("51-75", 50.0, 75.0), ("76-100", 75.0, 100.0))
MYOCARDIAL_DENSITY_G_PER_ML = 1.05

METHOD_CODES: dict[str, Code] = {
    "model": Code(value="LGE-MODEL", scheme="99MEDAI", meaning="Scar by deep-learning segmentation"),
    "nsd": Code(value="LGE-NSD", scheme="99MEDAI", meaning="Signal above remote myocardium mean + n SD"),
    "fwhm": Code(value="LGE-FWHM", scheme="99MEDAI", meaning="Full width at half maximum of scar signal"),
}


@dataclass(frozen=True)
class Method:
    """A scar quantification method: ``name`` (``model``, ``nsd``, ``fwhm``) and its parameters."""

    name: str
    parameters: dict[str, float | int | str] = field(default_factory=dict)

    @property
    def code(self) -> Code:
        """The coded method concept."""
        return METHOD_CODES[self.name]

    @property
    def key(self) -> str:
        """A stable key for tables (``nsd:n_sd=5``)."""
        p = ",".join(f"{k}={v}" for k, v in sorted(self.parameters.items()))
        return f"{self.name}:{p}" if p else self.name


@dataclass
class ScarResult:
    """One method's result.

    Attributes:
        method: the method.
        scar: ``(Z, Y, X)`` bool infarct mask (MVO included).
        infarct_pct: infarct (incl. MVO) as % of LV myocardium.
        mvo_pct: MVO as % of LV myocardium.
        infarct_ml / mvo_ml: volumes (mL) from the voxel size.
        transmurality_pct: AHA segment (1-16) -> mean transmural extent (%).
        threshold: the signal threshold used (threshold methods).
    """

    method: Method
    scar: np.ndarray
    infarct_pct: float
    mvo_pct: float
    infarct_ml: float
    mvo_ml: float
    transmurality_pct: dict[int, float]
    threshold: float | None = None

    @property
    def infarct_g(self) -> float:
        """Infarct mass (g)."""
        return self.infarct_ml * MYOCARDIAL_DENSITY_G_PER_ML

    @property
    def bins(self) -> dict[int, str]:
        """AHA segment -> transmurality bin label."""
        return {s: transmurality_bin(t) for s, t in self.transmurality_pct.items()}

    @property
    def segments_over_50(self) -> int:
        """Segments with more than 50 % transmural scar."""
        return sum(t > 50.0 for t in self.transmurality_pct.values())


def transmurality_bin(pct: float) -> str:
    """The bin label of a transmurality: ``0``, ``1-25``, ``26-50``, ``51-75`` or ``76-100``."""
    if pct <= 0.0:
        return "0"
    for label, lo, hi in BINS[1:]:
        if lo < pct <= hi:
            return label
    return BINS[-1][0]


def _slice_levels(myo: np.ndarray, lv: np.ndarray) -> tuple[list[int], dict[int, int]]:
    """Slices with myocardium and cavity, and each one's level (0 basal, 1 mid, 2 apical; base = larger cavity)."""
    slices = [z for z in range(myo.shape[0]) if myo[z].any() and lv[z].any()]
    if not slices:
        return [], {}
    area = np.array([lv[z].sum() for z in slices], dtype=float)
    half = max(1, len(slices) // 2)
    ordered = slices if area[:half].sum() >= area[-half:].sum() else slices[::-1]
    thirds = np.array_split(np.asarray(ordered), 3) if len(ordered) >= 3 else [np.asarray(ordered)] * 3
    level: dict[int, int] = {}
    for lev, zs in enumerate(thirds):
        for z in zs:
            level.setdefault(int(z), lev)
    return slices, level


def _in_plane_frame(affine: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Septal (u) and anterior-ish (v) in-plane directions (LPS) and the pixel basis; no RV: septum assumed to face
    the patient's right-anterior, as in :mod:`medai.measurements.wall_thickness`."""
    aff = np.asarray(affine, dtype=float)[:3, :3]
    col_y, col_x = aff[:, 1], aff[:, 2]
    normal = np.cross(col_x, col_y)
    normal /= np.linalg.norm(normal) or 1.0
    u = np.array([-1.0, -1.0, 0.0])
    u = u - normal * (u @ normal)
    if np.linalg.norm(u) < 1e-6:
        u = col_x / (np.linalg.norm(col_x) or 1.0)
    u /= np.linalg.norm(u) or 1.0
    v = np.cross(normal, u)
    if v @ np.array([0.0, -1.0, 0.0]) < 0:
        v = -v
    return u, v, np.stack([col_y, col_x], axis=1)


def _rays(sl_myo: np.ndarray, cy: float, cx: float, u: np.ndarray, v: np.ndarray, basis: np.ndarray,
          angles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sample coordinates ``(2, N_RAYS, N_SAMPLES)`` of rays from the centroid, and the ray angles (degrees)."""
    px = np.argwhere(sl_myo)
    max_r = float(np.hypot(px[:, 0] - cy, px[:, 1] - cx).max()) * 1.5 + 2.0
    r = np.arange(0.0, max_r, _STEP_PX)
    dirs = np.cos(angles)[:, None] * u + np.sin(angles)[:, None] * v
    dyx, *_ = np.linalg.lstsq(basis, dirs.T, rcond=None)
    dyx = dyx / np.linalg.norm(dyx, axis=0)
    ys = cy + dyx[0][:, None] * r[None, :]
    xs = cx + dyx[1][:, None] * r[None, :]
    return np.stack([ys, xs]), np.rad2deg(angles)


def _sectors(phi: np.ndarray, level: int) -> np.ndarray:
    from medai.measurements.wall_thickness import _sector_apical, _sector_basal_mid

    return _sector_apical(phi) if level == 2 else _sector_basal_mid(phi, 0 if level == 0 else 6)


def transmurality_by_segment(scar: np.ndarray, myo: np.ndarray, lv: np.ndarray, affine: np.ndarray) -> dict[int, float]:
    """Mean transmural extent (%) of ``scar`` per AHA segment 1-16.

    Along each of 180 rays from the LV cavity centroid of a slice, the transmurality is the scar share of the
    ray's myocardial samples; a segment's value is the mean over its rays (rays through no myocardium skipped).

    Args:
        scar, myo, lv: ``(Z, Y, X)`` bool masks (scar within myo; myo = all LV myocardium).
        affine: the volume's ``(z, y, x) -> LPS`` affine (4x4).
    """
    return transmurality_many([scar], myo, lv, affine)[0]


def transmurality_many(scars: list[np.ndarray], myo: np.ndarray, lv: np.ndarray,
                       affine: np.ndarray) -> list[dict[int, float]]:
    """:func:`transmurality_by_segment` of several scar masks on one myocardium (the rays are cast once)."""
    slices, level = _slice_levels(myo, lv)
    u, v, basis = _in_plane_frame(affine)
    angles = np.deg2rad(np.arange(_N_RAYS) * 360.0 / _N_RAYS)
    vals: list[dict[int, list[float]]] = [{} for _ in scars]
    for z in slices:
        cy, cx = ndimage.center_of_mass(lv[z])
        coords, phi = _rays(myo[z], cy, cx, u, v, basis, angles)
        flat = [coords[0].ravel(), coords[1].ravel()]
        m = ndimage.map_coordinates(myo[z].astype(np.uint8), flat, order=0).reshape(_N_RAYS, -1).sum(1)
        seg = _sectors(phi, level[z])
        hit = m > 0
        for i, scar in enumerate(scars):
            s = ndimage.map_coordinates((scar[z] & myo[z]).astype(np.uint8), flat, order=0).reshape(_N_RAYS, -1).sum(1)
            for sid, mm, ss in zip(seg[hit], m[hit], s[hit], strict=True):
                vals[i].setdefault(int(sid), []).append(100.0 * float(ss) / float(mm))
    return [{k: float(np.mean(x)) for k, x in sorted(d.items())} for d in vals]


def remote_region(image: np.ndarray, myo: np.ndarray, lv: np.ndarray, exclude: np.ndarray, affine: np.ndarray,
                  min_pixels: int = 10) -> np.ndarray:
    """The automatically chosen remote myocardium: per slice, the darkest 60° sector of myocardium with no voxel of
    ``exclude`` (the model's scar), of at least ``min_pixels`` voxels.

    Returns:
        ``(Z, Y, X)`` bool mask (empty when no slice has a clean sector).
    """
    out = np.zeros_like(myo, dtype=bool)
    u, v, basis = _in_plane_frame(affine)
    slices, _ = _slice_levels(myo, lv)
    for z in slices:
        cy, cx = ndimage.center_of_mass(lv[z])
        yy, xx = np.nonzero(myo[z])
        d = np.stack([yy - cy, xx - cx], axis=0)
        lps = basis @ d  # (3, N) in-plane LPS offsets
        phi = np.rad2deg(np.arctan2(v @ lps, u @ lps))
        sector = (np.floor(np.mod(phi, 360.0) / 60.0).astype(int)) % 6
        best, best_mean = None, np.inf
        for k in range(6):
            sel = sector == k
            if sel.sum() < min_pixels or exclude[z, yy[sel], xx[sel]].any():
                continue
            mean = float(image[z, yy[sel], xx[sel]].mean())
            if mean < best_mean:
                best, best_mean = sel, mean
        if best is not None:
            out[z, yy[best], xx[best]] = True
    return out


def quantify(image: np.ndarray, myo: np.ndarray, lv: np.ndarray, infarct: np.ndarray, mvo: np.ndarray,
             affine: np.ndarray, voxel_ml: float, methods: list[Method]) -> tuple[list[ScarResult], np.ndarray]:
    """Scar by every method in ``methods``.

    Args:
        image: ``(Z, Y, X)`` float LGE signal.
        myo: all LV myocardium (healthy + infarct + MVO), bool.
        lv: LV cavity, bool.
        infarct, mvo: the model's enhanced scar and MVO (within ``myo``), bool.
        affine: ``(z, y, x) -> LPS`` affine (4x4).
        voxel_ml: voxel volume (mL).
        methods: the methods to run.

    Returns:
        One :class:`ScarResult` per method, and the remote-region mask (threshold methods; empty if unused).
    """
    myo = myo.astype(bool)
    n_myo = int(myo.sum())
    model_scar = (infarct | mvo) & myo
    mvo = mvo & myo
    remote = np.zeros_like(myo)
    if any(m.name == "nsd" for m in methods):
        remote = remote_region(image, myo, lv, model_scar, affine)
    masks: list[tuple[Method, np.ndarray, float | None]] = []
    for m in methods:
        threshold = None
        if m.name == "model":
            scar = model_scar
        elif m.name == "nsd":
            ref = image[remote] if remote.any() else image[myo & ~model_scar]
            if ref.size == 0:
                ref = image[myo]
            threshold = float(ref.mean() + float(m.parameters.get("n_sd", 5)) * ref.std())
            scar = (myo & (image > threshold)) | mvo
        elif m.name == "fwhm":
            peak = float(np.percentile(image[myo], float(m.parameters.get("peak_percentile", 99.5)))) if n_myo else 0.0
            threshold = 0.5 * peak
            scar = (myo & (image >= threshold)) | mvo
        else:
            raise ValueError(f"unknown scar method {m.name!r}")
        masks.append((m, scar, threshold))
    trans = transmurality_many([s for _, s, _ in masks], myo, lv, affine)
    results = []
    for (m, scar, threshold), tr in zip(masks, trans, strict=True):
        n_scar = int(scar.sum())
        results.append(ScarResult(
            method=m, scar=scar,
            infarct_pct=100.0 * n_scar / n_myo if n_myo else 0.0,
            mvo_pct=100.0 * int(mvo.sum()) / n_myo if n_myo else 0.0,
            infarct_ml=n_scar * voxel_ml, mvo_ml=int(mvo.sum()) * voxel_ml,
            transmurality_pct=tr, threshold=threshold))
    return results, remote
