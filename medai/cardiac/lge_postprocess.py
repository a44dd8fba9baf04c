"""Anatomical consistency of an LGE scar segmentation (pure numpy/scipy).

Label names (values come from the package's ``inference.json``): ``lv`` LV cavity, ``myo`` healthy (remote)
myocardium, ``infarct`` enhanced scar, ``mvo`` microvascular obstruction (no-reflow). The *myocardium* is
``myo`` + ``infarct`` + ``mvo``; the *infarct extent* is ``infarct`` + ``mvo`` (MVO is infarcted tissue).

:func:`clean_lge` applies, in order, on a ``(Z, Y, X)`` label map:

1. **one myocardium**: keep the largest 3-D connected component (26-connectivity; neighbouring slices touch) of
   the myocardium; every myocardium voxel outside it -- healthy, infarct or MVO -- becomes background. So infarct
   and MVO exist only inside the kept myocardium.
2. **MVO inside infarct**: per slice, an MVO component (8-connectivity) that touches no infarct pixel (1-pixel
   dilation) is relabelled *infarct*. Rationale: MVO is by definition the core of an infarct, and a network that
   sees the dark core but misses its rim has still found infarcted tissue; relabelling keeps the infarct extent
   (infarct + MVO) unchanged and only withdraws the MVO claim. (``mvo_policy="myo"`` relabels to healthy
   myocardium instead.)
3. **one LV cavity, enclosed**: keep the largest 3-D component of the cavity; per slice, fill holes in the cavity;
   where the myocardial ring is closed, background enclosed by it becomes cavity and cavity outside it becomes
   background (open rings -- basal slices -- are left as they are).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from medai.cardiac.postprocess import largest_component

_RING8 = np.ones((3, 3), dtype=bool)

#: How an MVO component that touches no infarct is relabelled: ``"infarct"`` (default) or ``"myo"``.
MVO_POLICIES = ("infarct", "myo")


def myocardium_mask(labels: np.ndarray, values: dict[str, int]) -> np.ndarray:
    """Boolean myocardium (``myo`` + ``infarct`` + ``mvo``) of a label array of any shape."""
    return np.isin(labels, [values[n] for n in ("myo", "infarct", "mvo") if n in values])


def infarct_mask(labels: np.ndarray, values: dict[str, int]) -> np.ndarray:
    """Boolean infarct extent (``infarct`` + ``mvo``) of a label array of any shape."""
    return np.isin(labels, [values[n] for n in ("infarct", "mvo") if n in values])


def keep_one_myocardium(labels: np.ndarray, values: dict[str, int]) -> np.ndarray:
    """Step 1: the largest 3-D myocardium component survives; other myocardium/infarct/MVO voxels -> 0."""
    out = labels.copy()
    myo = myocardium_mask(out, values)
    if myo.any():
        out[myo & ~largest_component(myo)] = 0
    return out


def mvo_within_infarct(labels: np.ndarray, values: dict[str, int], policy: str = "infarct") -> np.ndarray:
    """Step 2: per slice, MVO components touching no infarct pixel are relabelled (``policy``: infarct | myo)."""
    if policy not in MVO_POLICIES:
        raise ValueError(f"mvo_policy must be one of {MVO_POLICIES}, got {policy!r}")
    if "mvo" not in values or "infarct" not in values:
        return labels.copy()
    out = labels.copy()
    mvo_v, inf_v = values["mvo"], values["infarct"]
    new_v = inf_v if policy == "infarct" else values["myo"]
    for z in range(out.shape[0]):
        sl = out[z]
        mvo = sl == mvo_v
        if not mvo.any():
            continue
        comp, n = ndimage.label(mvo, structure=_RING8)
        inf = sl == inf_v
        for i in range(1, n + 1):
            c = comp == i
            if not (ndimage.binary_dilation(c, structure=_RING8) & inf).any():
                sl[c] = new_v
    return out


def enclose_cavity(labels: np.ndarray, values: dict[str, int]) -> np.ndarray:
    """Step 3: one LV cavity (largest 3-D component), hole-free, and inside closed myocardial rings."""
    if "lv" not in values:
        return labels.copy()
    out = labels.copy()
    lv = values["lv"]
    cav = out == lv
    if cav.any():
        out[cav & ~largest_component(cav)] = 0
    for z in range(out.shape[0]):
        sl = out[z]
        cav = sl == lv
        if cav.any():
            sl[ndimage.binary_fill_holes(cav) & ~cav & (sl == 0)] = lv
        ring = myocardium_mask(sl, values)
        if not ring.any():
            continue
        inside = ndimage.binary_fill_holes(ring) & ~ring
        if inside.any():  # a closed ring: the cavity is what it encloses
            sl[inside & (sl == 0)] = lv
            sl[(sl == lv) & ~inside] = 0
    return out


def clean_lge(labels: np.ndarray, values: dict[str, int], mvo_policy: str = "infarct") -> np.ndarray:
    """Steps 1-3 of the module docstring on a ``(Z, Y, X)`` uint8 label map (a cleaned copy is returned).

    Args:
        labels: ``(Z, Y, X)`` uint8 label map.
        values: label name -> value (``lv``, ``myo``, ``infarct``, ``mvo``; missing names are skipped).
        mvo_policy: relabelling of MVO components touching no infarct (``"infarct"`` or ``"myo"``).

    Returns:
        The cleaned ``(Z, Y, X)`` label map (same dtype).
    """
    if labels.ndim != 3:
        raise ValueError(f"expected a (Z, Y, X) label map, got shape {labels.shape}")
    out = labels.copy()
    fg = np.argwhere(out.any(axis=0))
    if not len(fg):
        return out
    # work on the in-plane bounding box of the labels (+1 pixel so that fill_holes sees the outside)
    (y0, x0), (y1, x1) = np.maximum(fg.min(0) - 1, 0), fg.max(0) + 2
    box = out[:, y0:y1, x0:x1]
    box = keep_one_myocardium(box, values)
    box = mvo_within_infarct(box, values, mvo_policy)
    out[:, y0:y1, x0:x1] = enclose_cavity(box, values)
    return out
