"""Features of a short-axis segmentation for the coverage classifier and the segmentation-quality regressors.

Both work on one frame's ``(Z, Y, X)`` label map in source geometry (slices ordered along the stack, either way
round) and are shared by training (``pipelines/quality``) and :class:`medai.quality.predictor.QualityPredictor`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medai.percentiles import percentiles

#: angular bins of the myocardial ring test
RING_BINS = 24

COVERAGE_FEATURES = ("beyond_present", "beyond_slices", "end_heart_frac", "next_heart_frac", "end_lv_frac",
                     "end_ring", "end_rv_frac", "n_heart_slices", "length_to_diameter", "es_end_heart_ratio",
                     "es_end_lv_frac", "es_end_ring")
SEG_FEATURES = ("log_volume_ml", "slice_frac", "components", "largest_frac", "irregularity", "uncertainty",
                "soft_hard", "enclosure", "ring", "volume_to_lv", "worst_slice_uncertainty", "artefact_motion",
                "artefact_ghosting", "artefact_spike_noise", "artefact_low_contrast")
#: number of artefact features at the end of :data:`SEG_FEATURES` (the artefact model's classes, in its order)
N_ARTEFACT_FEATURES = 4


@dataclass(frozen=True)
class Structures:
    """Label values of the structures the features use (``rv`` may be absent, e.g. LGE)."""

    lv: int
    myo: int
    rv: int | None = None


def ring_completeness(lv: np.ndarray, myo: np.ndarray) -> float:
    """Share of :data:`RING_BINS` angular sectors around the LV centroid holding myocardium (0 when no LV)."""
    pts = np.argwhere(lv)
    if len(pts) == 0:
        return 0.0
    cy, cx = pts.mean(0)
    my = np.argwhere(myo)
    if len(my) == 0:
        return 0.0
    ang = np.arctan2(my[:, 0] - cy, my[:, 1] - cx)
    bins = np.floor((ang + np.pi) / (2 * np.pi) * RING_BINS).astype(int) % RING_BINS
    return float(len(np.unique(bins)) / RING_BINS)


def base_first(arr: np.ndarray, s: Structures) -> bool:
    """Whether slice 0 is the basal end: the end where the RV (or, without RV, the LV) is larger."""
    ref_val = s.rv if s.rv is not None and (arr == s.rv).any() else s.lv
    ref = (arr == ref_val).reshape(len(arr), -1).sum(1)
    half = max(1, len(arr) // 2)
    return bool(ref[:half].sum() >= ref[-half:].sum())


def coverage_features(arr: np.ndarray, s: Structures, es: np.ndarray | None = None,
                      spacing_zyx: tuple[float, float, float] | None = None) -> dict[str, np.ndarray]:
    """``{"basal": (F,), "apical": (F,)}`` float features (:data:`COVERAGE_FEATURES`) of the two stack ends.

    Args:
        arr: the ED ``(Z, Y, X)`` label map.
        s: label values.
        es: the ES label map on the same grid, when there is one. At ES the base descends towards the apex, so a
            stack that reaches the base shows little LV in its basal slice at ES; and the apical cavity closes.
            Without it the ES features repeat the ED ones.
        spacing_zyx: voxel size (mm), for the LV length-to-diameter feature (0 without it).
    """
    z = len(arr)

    def areas(a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        lv = (a == s.lv).reshape(z, -1).sum(1).astype(float)
        heart = lv + (a == s.myo).reshape(z, -1).sum(1)
        rv = (a == s.rv).reshape(z, -1).sum(1).astype(float) if s.rv is not None else np.zeros(z)
        return lv, heart, rv

    lv, heart, rv = areas(arr)
    lv_es, heart_es, _ = areas(es) if es is not None else (lv, heart, rv)
    order = np.arange(z) if base_first(arr, s) else np.arange(z)[::-1]
    n_heart = float((heart > 0).sum())
    length = 0.0
    if spacing_zyx is not None and heart.max() > 0:
        diameter = 2 * np.sqrt(heart.max() * spacing_zyx[1] * spacing_zyx[2] / np.pi)
        length = n_heart * spacing_zyx[0] / max(diameter, 1e-6)
    out = {}
    for name, idx in (("basal", order), ("apical", order[::-1])):
        present = np.flatnonzero(heart[idx] > 0)
        if len(present) == 0:
            out[name] = np.zeros(len(COVERAGE_FEATURES))
            continue
        first = int(present[0])
        e = idx[first]
        nxt = idx[min(first + 1, z - 1)]
        src = es if es is not None else arr
        out[name] = np.array([
            float(first > 0), float(min(first, 3)), heart[e] / heart.max(), heart[nxt] / heart.max(),
            lv[e] / max(lv.max(), 1.0), ring_completeness(arr[e] == s.lv, arr[e] == s.myo),
            rv[e] / max(rv.max(), 1.0), n_heart, length,
            heart_es[e] / max(heart[e], 1.0), lv_es[e] / max(lv_es.max(), 1.0),
            ring_completeness(src[e] == s.lv, src[e] == s.myo),
        ])
    return out


def _components_2d(mask: np.ndarray) -> float:
    from scipy.ndimage import label

    counts = [label(m)[1] for m in mask if m.any()]
    return float(np.mean(counts)) if counts else 0.0


def frame_context(arr: np.ndarray, s: Structures, spacing_zyx: tuple[float, float, float]) -> dict[str, float]:
    """The structure-independent features of one frame: myocardial ring, LV enclosure, LV volume (mL)."""
    from scipy.ndimage import binary_dilation

    lv = arr == s.lv
    myo = arr == s.myo
    enclosure = 0.0
    if lv.any():
        cross = np.zeros((3, 3, 3), bool)  # in-plane 4-neighbourhood: slices are dilated one by one
        cross[1] = [[0, 1, 0], [1, 1, 1], [0, 1, 0]]
        ring_out = binary_dilation(lv, structure=cross) & ~lv
        enclosure = float((ring_out & myo).sum() / max(ring_out.sum(), 1))
    rings = [ring_completeness(lv[k], myo[k]) for k in range(len(arr)) if lv[k].any()]
    return {"enclosure": enclosure, "ring": float(np.mean(rings)) if rings else 0.0,
            "vol_lv": float(lv.sum()) * float(np.prod(spacing_zyx)) / 1000.0}


def seg_features(arr: np.ndarray, value: int, spacing_zyx: tuple[float, float, float], stats: np.ndarray | None,
                 s: Structures, artefacts: np.ndarray | list[float] | None = None,
                 context: dict[str, float] | None = None) -> np.ndarray:
    """Features (:data:`SEG_FEATURES`) of structure ``value`` in one frame.

    Args:
        arr: ``(Z, Y, X)`` label map.
        value: the structure's label value.
        spacing_zyx: voxel size (mm).
        stats: ``(Z, C, 3)`` probability sums of that frame (:func:`medai.quality.uncertainty.slice_stats`), or
            None (then the two uncertainty features are neutral: 0 and 1).
        s: the label values of LV / myocardium / RV (for the enclosure, ring and LV-ratio features).
        artefacts: per artefact class, the highest probability over the series' slices (zeros when None).
        context: :func:`frame_context` of ``arr`` (computed when None; pass it to score several structures).
    """
    from scipy.ndimage import label

    art = np.zeros(N_ARTEFACT_FEATURES) if artefacts is None else np.asarray(artefacts, dtype=float)
    m = arr == value
    z = len(arr)
    vox_ml = float(np.prod(spacing_zyx)) / 1000.0
    vol = m.sum() * vox_ml
    per = m.reshape(z, -1).sum(1).astype(float)
    present = per > 0
    if not present.any():
        return np.array([0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, *art])
    lab, n = label(m)
    largest = np.bincount(lab.ravel())[1:].max() / m.sum() if n else 0.0
    span = per[np.flatnonzero(present)[0] : np.flatnonzero(present)[-1] + 1]
    irregular = float(np.abs(np.diff(span, 2)).sum() / span.sum()) if len(span) > 2 else 0.0
    if stats is not None and stats.shape[1] > value:
        hard = stats[:, value, 0].sum()
        unc = float(stats[:, value, 2].sum() / max(hard, 1.0))
        soft_hard = float(stats[:, value, 1].sum() / max(hard, 1.0))
        per_slice = stats[:, value, 2] / np.maximum(stats[:, value, 0], 1.0)
        big = stats[:, value, 0] >= 0.1 * max(stats[:, value, 0].max(), 1.0)
        worst = float(per_slice[big].max()) if big.any() else unc
    else:
        unc, soft_hard, worst = 0.0, 1.0, 0.0
    ctx = context if context is not None else frame_context(arr, s, spacing_zyx)
    return np.array([np.log1p(vol), present.mean(), _components_2d(m), largest, irregular, unc, soft_hard,
                     ctx["enclosure"], ctx["ring"], vol / max(ctx["vol_lv"], 1e-3), worst, *art])


#: the end-slice CNN's input: ``END_CHANNELS`` crops of ``END_INPUT_SIZE`` px over ``END_INPUT_FOV_MM`` mm
END_INPUT_SIZE = 64
END_INPUT_FOV_MM = 110.0
END_CHANNELS = ("ed_end", "es_end", "ed_next", "es_next")


def _unit_range(img: np.ndarray) -> np.ndarray:
    lo, hi = percentiles(img, [1.0, 99.5])
    return np.clip((img - lo) / max(float(hi - lo), 1e-6), 0.0, 1.5).astype(np.float32)


def _crop(sl: np.ndarray, cy: float, cx: float, spacing_yx: tuple[float, float]) -> np.ndarray:
    from scipy.ndimage import map_coordinates

    step = END_INPUT_FOV_MM / END_INPUT_SIZE
    grid = np.arange(END_INPUT_SIZE) - END_INPUT_SIZE / 2 + 0.5
    yy, xx = np.meshgrid(cy + grid * step / spacing_yx[0], cx + grid * step / spacing_yx[1], indexing="ij")
    return map_coordinates(sl, [yy, xx], order=1, mode="constant", cval=0.0).astype(np.float32)


def end_slice_inputs(ed_image: np.ndarray, es_image: np.ndarray | None, arr: np.ndarray, s: Structures,
                     spacing_zyx: tuple[float, float, float] | None = None) -> dict[str, np.ndarray | None]:
    """``{"basal": (4, S, S), "apical": (4, S, S)}`` image inputs of the end-slice CNN (None for an end without
    heart), the ends named as in :func:`coverage_features`.

    Channels (:data:`END_CHANNELS`): the ED and ES images of the outermost slice holding LV or myocardium in the
    ED segmentation ``arr``, then of the slice next to it towards the other end. Each is an
    :data:`END_INPUT_FOV_MM`-mm square around the heart's centroid (projected over the stack), resampled to
    :data:`END_INPUT_SIZE` px; intensities are scaled by the stack's 1st-99.5th percentiles.
    """
    z = len(arr)
    heart_mask = (arr == s.lv) | (arr == s.myo)
    heart = heart_mask.reshape(z, -1).any(1)
    if not heart.any():
        return {"basal": None, "apical": None}
    spacing_yx = (float(spacing_zyx[1]), float(spacing_zyx[2])) if spacing_zyx is not None else (1.0, 1.0)
    cy, cx = np.argwhere(heart_mask.any(0)).mean(0)
    ed = _unit_range(np.nan_to_num(np.asarray(ed_image, dtype=np.float32)))
    es = _unit_range(np.nan_to_num(np.asarray(es_image, dtype=np.float32))) if es_image is not None else ed
    order = np.arange(z) if base_first(arr, s) else np.arange(z)[::-1]
    out: dict[str, np.ndarray | None] = {}
    for name, idx in (("basal", order), ("apical", order[::-1])):
        pos = int(np.flatnonzero(heart[idx])[0])
        e, nxt = idx[pos], idx[min(pos + 1, z - 1)]
        out[name] = np.stack([_crop(ed[e], cy, cx, spacing_yx), _crop(es[e], cy, cx, spacing_yx),
                              _crop(ed[nxt], cy, cx, spacing_yx), _crop(es[nxt], cy, cx, spacing_yx)])
    return out
