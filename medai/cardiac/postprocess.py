"""3-D consistency of a cine segmentation (per frame).

Steps, in order, on each frame's ``(Z, Y, X)`` label map:

1. keep the largest 3-D connected component of each structure (26-connectivity; slices touch across the stack);
2. per slice, LV blood-pool holes are filled (papillary muscles belong to the blood pool by our convention);
3. per slice, anything enclosed by the myocardial ring (background or RV) becomes LV blood pool -- there is no
   RV inside the LV.

:func:`apply_basal_ring_rule` then applies the SCMR basal-slice convention (blood pool counts as LV only where it is
at least half surrounded by myocardium), so the label map shows exactly what is measured.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

_FULL = np.ones((3, 3, 3), dtype=bool)


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 26-connected component of a boolean ``(Z, Y, X)`` mask (empty stays empty)."""
    lab, n = ndimage.label(mask, structure=_FULL)
    if n <= 1:
        return mask.copy()
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    return lab == int(np.argmax(sizes))


def clean_frame(labels: np.ndarray, values: dict[str, int]) -> np.ndarray:
    """Consistency-clean one ``(Z, Y, X)`` uint8 label map.

    Args:
        labels: ``(Z, Y, X)`` uint8 label map.
        values: label name -> value (``lv``, ``myo``, ``rv``; missing names are skipped).

    Returns:
        A cleaned copy (same shape and dtype).
    """
    out = labels.copy()
    fg = np.argwhere(out.any(axis=0))
    if not len(fg):
        return out
    # work on the in-plane bounding box of the labels (+1 pixel so that fill_holes sees the outside)
    (y0, x0), (y1, x1) = np.maximum(fg.min(0) - 1, 0), fg.max(0) + 2
    out[:, y0:y1, x0:x1] = _clean_box(out[:, y0:y1, x0:x1], values)
    return out


def _clean_box(labels: np.ndarray, values: dict[str, int]) -> np.ndarray:
    out = labels.copy()
    for name in ("lv", "myo", "rv"):
        if name not in values:
            continue
        m = out == values[name]
        if m.any():
            keep = largest_component(m)
            out[m & ~keep] = 0
    lv = values.get("lv")
    myo = values.get("myo")
    if lv is None:
        return out
    for z in range(out.shape[0]):
        sl = out[z]
        cav = sl == lv
        if cav.any():
            sl[ndimage.binary_fill_holes(cav) & ~cav] = lv
        if myo is not None:
            ring = (sl == lv) | (sl == myo)
            if ring.any():
                enclosed = ndimage.binary_fill_holes(ring) & ~ring
                sl[enclosed] = lv
    return out


def clean_cine(labels: np.ndarray, values: dict[str, int], *, inplace: bool = False) -> np.ndarray:
    """:func:`clean_frame` on every frame of a ``(T, Z, Y, X)`` (or one ``(Z, Y, X)``) label map.

    ``inplace``: write each cleaned frame back into ``labels`` and return it (a cine's label map is a quarter of
    its float32 images; a cleaned copy beside it would add that much to the analysis' peak memory).
    """
    out = labels if inplace else np.empty_like(labels)
    if labels.ndim == 3:
        out[...] = clean_frame(labels, values)
        return out
    for t, f in enumerate(labels):
        out[t] = clean_frame(f, values)
    return out


#: SCMR rule: a basal slice's blood pool counts as LV only when >= 50 % of it is surrounded by myocardium.
BASAL_RING_FRACTION = 0.5
#: How many LV-bearing slices from the basal end the rule examines.
BASAL_SLICES_CHECKED = 2


def myocardial_ring_fraction(slice_labels: np.ndarray, lv: int, myo: int) -> float:
    """Fraction of the LV blood pool's outer border (``(Y, X)`` slice) that touches myocardium (0..1)."""
    cav = slice_labels == lv
    if not cav.any():
        return 0.0
    border = ndimage.binary_dilation(cav, structure=np.ones((3, 3), bool)) & ~cav
    return float((slice_labels[border] == myo).mean()) if border.any() else 0.0


def apply_basal_ring_rule(labels: np.ndarray, values: dict[str, int], *, inplace: bool = False) -> np.ndarray:
    """Drop LV blood pool from basal slices not surrounded by myocardium (left atrium, outflow tract).

    SCMR post-processing recommendation (Schulz-Menger et al., JCMR 2020;22:19): a basal slice is included in
    the LV volume when its blood pool is surrounded by at least 50 % ventricular myocardium. Applied per frame to
    the :data:`BASAL_SLICES_CHECKED` most basal slices holding LV, moving apically until one passes. The basal end
    is the end of the stack where the RV (or, without RV, the LV) cross-section is larger at that frame.

    Args:
        labels: ``(T, Z, Y, X)`` or ``(Z, Y, X)`` uint8 label map (already cleaned).
        values: label name -> value.
        inplace: edit ``labels`` itself and return it.

    Returns:
        A copy (``labels`` itself when ``inplace``) with LV voxels of excluded slices set to background.
    """
    out = labels if inplace else labels.copy()
    if "lv" not in values or "myo" not in values:
        return out
    frames = out if out.ndim == 4 else out[None]
    lv, myo = values["lv"], values["myo"]
    for f in frames:
        area_lv = (f == lv).reshape(f.shape[0], -1).sum(1)
        ref = (f == values["rv"]).reshape(f.shape[0], -1).sum(1) if "rv" in values else area_lv
        if ref.sum() == 0:
            ref = area_lv
        zs = [z for z in range(f.shape[0]) if area_lv[z] > 0]
        if len(zs) < 3:
            continue
        half = max(1, f.shape[0] // 2)
        if ref[:half].sum() < ref[-half:].sum():
            zs = zs[::-1]
        for z in zs[:BASAL_SLICES_CHECKED]:
            if myocardial_ring_fraction(f[z], lv, myo) >= BASAL_RING_FRACTION:
                break
            f[z][f[z] == lv] = 0
    return out
