"""3-D consistency of a cine segmentation (per frame).

Steps, in order, on each frame's ``(Z, Y, X)`` label map:

1. keep the largest 3-D connected component of each structure (26-connectivity; slices touch across the stack);
2. per slice, LV blood-pool holes are filled (papillary muscles belong to the blood pool by our convention);
3. per slice, anything enclosed by the myocardial ring (background or RV) becomes LV blood pool -- there is no
   RV inside the LV.
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


def clean_cine(labels: np.ndarray, values: dict[str, int]) -> np.ndarray:
    """:func:`clean_frame` on every frame of a ``(T, Z, Y, X)`` (or one ``(Z, Y, X)``) label map."""
    if labels.ndim == 3:
        return clean_frame(labels, values)
    return np.stack([clean_frame(f, values) for f in labels])
