"""Quality flags of a cine analysis: implausible results are flagged in the report, never silently passed on."""

from __future__ import annotations

import numpy as np

from medai.domain.prediction import QualityFlag, Severity
from medai.domain.volume import LabelMap

#: EF outside this range (%) is physiologically implausible for a segmentation result.
EF_PLAUSIBLE = (5.0, 90.0)
#: Adult LV EDV (mL) outside this range is implausible (far outside any published range, even in DCM).
LV_EDV_PLAUSIBLE = (20.0, 600.0)
RV_EDV_PLAUSIBLE = (20.0, 600.0)
MASS_PLAUSIBLE = (20.0, 500.0)
#: An end slice whose LV cross-section exceeds this fraction of the largest one suggests a truncated stack.
BASAL_FRACTION = 0.6
APICAL_FRACTION = 0.3


def coverage_flags(labelmap: LabelMap, ed: int) -> list[QualityFlag]:
    """Basal/apical coverage: at ED, the LV should taper to nothing at the apex and the base should be covered.

    The base is taken as the end of the stack where the RV (or, without RV, the LV) is larger.
    """
    vol = labelmap.volume
    arr = vol.array[ed] if vol.is_temporal else vol.array
    lv = arr == labelmap.label("lv").value
    area = lv.reshape(lv.shape[0], -1).sum(1).astype(float)
    if area.max() <= 0 or len(area) < 2:
        return []
    rv_names = [lab for lab in labelmap.labels if lab.name == "rv"]
    ref = (arr == rv_names[0].value).reshape(arr.shape[0], -1).sum(1) if rv_names else area
    half = max(1, len(area) // 2)
    base_first = ref[:half].sum() >= ref[-half:].sum()
    base_i, apex_i = (0, len(area) - 1) if base_first else (len(area) - 1, 0)
    flags = []
    fb, fa = area[base_i] / area.max(), area[apex_i] / area.max()
    if fb > BASAL_FRACTION:
        flags.append(QualityFlag(
            code="basal_coverage_missing", severity=Severity.WARNING,
            message=f"The most basal slice still shows {100 * fb:.0f}% of the largest LV cross-section at ED: the "
            "stack may not reach the mitral valve plane, so volumes may be underestimated. Check basal coverage."))
    if fa > APICAL_FRACTION:
        flags.append(QualityFlag(
            code="apical_coverage_missing", severity=Severity.WARNING,
            message=f"The most apical slice still shows {100 * fa:.0f}% of the largest LV cross-section at ED: the "
            "stack may not reach the apex. Check apical coverage."))
    return flags


def result_flags(values: dict[str, float], labelmap: LabelMap, ed: int) -> list[QualityFlag]:
    """Flags on the measured values and the label map.

    Args:
        values: measurement name -> value (``lv_edv``, ``lv_ef``, ``lv_mass``, ``rv_edv`` ...).
        labelmap: the cine label map (source geometry).
        ed: ED frame.
    """
    flags: list[QualityFlag] = []
    edv = values.get("lv_edv", 0.0)
    if edv <= 0:
        return [QualityFlag(
            code="no_lv_found", severity=Severity.ERROR,
            message="No LV blood pool was segmented. Check that the series is a cine short-axis stack of the "
            "heart; no LV measurement is reported.")]
    ef = values.get("lv_ef")
    if ef is not None and not (EF_PLAUSIBLE[0] <= ef <= EF_PLAUSIBLE[1]):
        flags.append(QualityFlag(
            code="ef_implausible", severity=Severity.WARNING,
            message=f"LV EF {ef:.1f}% is outside {EF_PLAUSIBLE[0]:g}-{EF_PLAUSIBLE[1]:g}%: likely a segmentation "
            "or phase-selection failure. Review the contours before using the value."))
    if not (LV_EDV_PLAUSIBLE[0] <= edv <= LV_EDV_PLAUSIBLE[1]):
        flags.append(QualityFlag(
            code="lv_volume_implausible", severity=Severity.WARNING,
            message=f"LV EDV {edv:.0f} mL is outside the plausible {LV_EDV_PLAUSIBLE[0]:g}-"
            f"{LV_EDV_PLAUSIBLE[1]:g} mL for an adult heart. Review the segmentation and the pixel spacing."))
    mass = values.get("lv_mass")
    if mass is not None and not (MASS_PLAUSIBLE[0] <= mass <= MASS_PLAUSIBLE[1]):
        flags.append(QualityFlag(
            code="lv_mass_implausible", severity=Severity.WARNING,
            message=f"LV mass {mass:.0f} g is outside the plausible {MASS_PLAUSIBLE[0]:g}-{MASS_PLAUSIBLE[1]:g} g."))
    rv = values.get("rv_edv")
    if rv is None:
        flags.append(QualityFlag(
            code="no_rv_found", severity=Severity.WARNING,
            message="No RV blood pool was segmented at ED; RV measurements are not reported."))
    elif not (RV_EDV_PLAUSIBLE[0] <= rv <= RV_EDV_PLAUSIBLE[1]):
        flags.append(QualityFlag(
            code="rv_volume_implausible", severity=Severity.WARNING,
            message=f"RV EDV {rv:.0f} mL is outside the plausible {RV_EDV_PLAUSIBLE[0]:g}-{RV_EDV_PLAUSIBLE[1]:g} mL."))
    rv_ef = values.get("rv_ef")
    if rv is not None and rv_ef is not None and not (EF_PLAUSIBLE[0] <= rv_ef <= EF_PLAUSIBLE[1]):
        flags.append(QualityFlag(
            code="rv_ef_implausible", severity=Severity.WARNING,
            message=f"RV EF {rv_ef:.1f}% is outside {EF_PLAUSIBLE[0]:g}-{EF_PLAUSIBLE[1]:g}%: the RV was likely missed "
            "at one phase. Review the RV contours at ED and ES before using RV values."))
    flags += coverage_flags(labelmap, ed)
    return flags


def curve_flags(lv_ml: list[float]) -> list[QualityFlag]:
    """Flags on the LV volume-time curve (a flat curve means no contraction was captured)."""
    v = np.asarray(lv_ml, dtype=float)
    if len(v) < 2:
        return [QualityFlag(code="single_phase", severity=Severity.WARNING,
                            message="The cine has a single phase: ED and ES cannot be told apart; EF is not valid.")]
    return []


def input_flags(warnings: tuple[str, ...] | list[str]) -> list[QualityFlag]:
    """Problems met while building the cine volume (missing phases, repeated slices ...), as INFO flags."""
    return [QualityFlag(code="input_warning", severity=Severity.INFO, message=w) for w in warnings]
