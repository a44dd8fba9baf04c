"""Diagnosis features of a segmented cine short-axis study, grouped by modality.

:func:`cine_dx_features` turns a ``(T, Z, Y, X)`` cine label map (``lv``, ``myo``, ``rv``), its ED/ES frames and
the patient's height/weight into named scalar features in three modalities:

* ``cmr_volumes``: LV/RV end-diastolic and end-systolic volumes (mL) and their BSA-indexed values (mL/m²), stroke
  volumes, ejection fractions (%), LV mass (g, ED myocardium x 1.05 g/mL) and its index, the ES myocardial volume,
  RV/LV volume ratios and the mass-to-volume ratio (g/mL).
* ``cmr_wall``: wall thickness of the 16 AHA segments at ED and ES (:func:`wall_thickness_by_segment`, mm) reduced
  to max / mean / min / spread, systolic thickening ``(ES - ED) / ED`` per segment reduced the same way, the number
  of segments thickening less than 10 %, the septal/lateral ED thickness ratio (asymmetric hypertrophy) and
  the ED circumferential spread of the mid-ventricular segments.
* ``clinical``: height (cm), weight (kg), BSA (m², Mosteller).

Undefined values (no RV, no BSA, no ring for a segment) are NaN: the classifiers treat a modality whose features are
all NaN as absent. The same function serves the training pipeline (on ACDC ED/ES frames), the evaluation and the
``cine_diagnosis`` analysis (on the cine predictor's label map), so they measure alike.
"""

from __future__ import annotations

import math

import numpy as np

from medai.domain.volume import LabelMap
from medai.measurements.cardiac import MYOCARDIAL_DENSITY_G_PER_ML, PatientInfo
from medai.measurements.wall_thickness import wall_thickness_by_segment

#: Feature names per modality, in model-input order.
MODALITY_FEATURES: dict[str, tuple[str, ...]] = {
    "cmr_volumes": (
        "lv_edv", "lv_esv", "lv_sv", "lv_ef", "rv_edv", "rv_esv", "rv_sv", "rv_ef", "lv_mass", "myo_es_volume",
        "lv_edvi", "lv_esvi", "rv_edvi", "rv_esvi", "lv_massi", "rv_lv_edv_ratio", "rv_lv_esv_ratio",
        "mass_volume_ratio",
    ),
    "cmr_wall": (
        "wt_ed_max", "wt_ed_mean", "wt_ed_min", "wt_ed_std", "wt_es_max", "wt_es_mean", "thickening_mean",
        "thickening_min", "thickening_std", "segments_low_thickening", "septal_lateral_ratio", "wt_ed_mid_std",
    ),
    "clinical": ("height_cm", "weight_kg", "bsa"),
}
#: AHA segments of the septum (anteroseptal, inferoseptal; basal and mid) and of the lateral wall.
_SEPTAL = (2, 3, 8, 9)
_LATERAL = (5, 6, 11, 12)
_MID = tuple(range(7, 13))
#: Segments thickening less than this fraction count as hypokinetic.
LOW_THICKENING = 0.10


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 and math.isfinite(a) and math.isfinite(b) else math.nan


def _frame_volume(labelmap: LabelMap, name: str, t: int) -> float:
    if name not in {lab.name for lab in labelmap.labels}:
        return math.nan
    return labelmap.volume_ml(name, t) if labelmap.volume.is_temporal else labelmap.volume_ml(name)


def cine_dx_features(labelmap: LabelMap, ed: int, es: int, patient: PatientInfo | None = None) -> dict[str, float]:
    """Named diagnosis features of a segmented cine (see the module docstring for the list and units).

    Args:
        labelmap: ``(T, Z, Y, X)`` label map with segments ``lv``, ``myo`` and (optionally) ``rv``, in source
            geometry (spacing from its affine).
        ed / es: end-diastolic / end-systolic frame indices into ``T``.
        patient: height/weight for the indexed values and the clinical modality.

    Returns:
        feature name -> value (float, NaN when undefined); every name of :data:`MODALITY_FEATURES` is present.
    """
    p = patient or PatientInfo()
    f: dict[str, float] = {}
    lv_edv, lv_esv = _frame_volume(labelmap, "lv", ed), _frame_volume(labelmap, "lv", es)
    rv_edv, rv_esv = _frame_volume(labelmap, "rv", ed), _frame_volume(labelmap, "rv", es)
    myo_ed, myo_es = _frame_volume(labelmap, "myo", ed), _frame_volume(labelmap, "myo", es)
    if not rv_edv > 0:
        rv_edv = rv_esv = math.nan
    f.update(lv_edv=lv_edv, lv_esv=lv_esv, lv_sv=lv_edv - lv_esv, lv_ef=100.0 * _ratio(lv_edv - lv_esv, lv_edv),
             rv_edv=rv_edv, rv_esv=rv_esv, rv_sv=rv_edv - rv_esv, rv_ef=100.0 * _ratio(rv_edv - rv_esv, rv_edv),
             lv_mass=myo_ed * MYOCARDIAL_DENSITY_G_PER_ML, myo_es_volume=myo_es)
    bsa = p.bsa_m2 or math.nan
    for k in ("lv_edv", "lv_esv", "rv_edv", "rv_esv"):
        f[f"{k}i"] = _ratio(f[k], bsa)
    f["lv_massi"] = _ratio(f["lv_mass"], bsa)
    f["rv_lv_edv_ratio"] = _ratio(rv_edv, lv_edv)
    f["rv_lv_esv_ratio"] = _ratio(rv_esv, lv_esv)
    f["mass_volume_ratio"] = _ratio(f["lv_mass"], lv_edv)
    f.update(_wall_features(labelmap, ed, es))
    f["height_cm"] = 100.0 * p.height_m if p.height_m else math.nan
    f["weight_kg"] = float(p.weight_kg) if p.weight_kg else math.nan
    f["bsa"] = bsa
    return {name: float(f.get(name, math.nan)) for names in MODALITY_FEATURES.values() for name in names}


def _wall_features(labelmap: LabelMap, ed: int, es: int) -> dict[str, float]:
    names = {lab.name for lab in labelmap.labels}
    out = dict.fromkeys(MODALITY_FEATURES["cmr_wall"], math.nan)
    if not {"lv", "myo"} <= names:
        return out
    wt_ed = wall_thickness_by_segment(labelmap, ed)
    if not wt_ed:
        return out
    wt_es = wall_thickness_by_segment(labelmap, es)
    ed_v = np.array(list(wt_ed.values()), dtype=float)
    out.update(wt_ed_max=float(ed_v.max()), wt_ed_mean=float(ed_v.mean()), wt_ed_min=float(ed_v.min()),
               wt_ed_std=float(ed_v.std()))
    mid = [wt_ed[s] for s in _MID if s in wt_ed]
    if len(mid) >= 3:
        out["wt_ed_mid_std"] = float(np.std(mid))
    sep = [wt_ed[s] for s in _SEPTAL if s in wt_ed]
    lat = [wt_ed[s] for s in _LATERAL if s in wt_ed]
    if sep and lat:
        out["septal_lateral_ratio"] = _ratio(float(np.mean(sep)), float(np.mean(lat)))
    if wt_es:
        es_v = np.array(list(wt_es.values()), dtype=float)
        out.update(wt_es_max=float(es_v.max()), wt_es_mean=float(es_v.mean()))
        common = [s for s in wt_ed if s in wt_es and wt_ed[s] > 0]
        if common:
            th = np.array([(wt_es[s] - wt_ed[s]) / wt_ed[s] for s in common])
            out.update(thickening_mean=float(th.mean()), thickening_min=float(th.min()),
                       thickening_std=float(th.std()), segments_low_thickening=float((th < LOW_THICKENING).sum()))
    return out


def feature_names(modalities: dict[str, tuple[str, ...]] | None = None) -> list[str]:
    """Every feature name of ``modalities`` (default :data:`MODALITY_FEATURES`), in model-input order."""
    mods = MODALITY_FEATURES if modalities is None else modalities
    return [n for names in mods.values() for n in names]
