"""Cancer-therapy-related cardiac dysfunction (CTRCD) by the 2022 ESC cardio-oncology guideline.

Lyon AR, Lopez-Fernandez T, Couch LS, et al. 2022 ESC Guidelines on cardio-oncology. Eur Heart J
2022;43:4229-4361 (doi:10.1093/eurheartj/ehac244), definitions of asymptomatic CTRCD, each relative to the
baseline (pre-treatment) assessment:

* **severe**: new LVEF reduction to < 40 %;
* **moderate**: new LVEF reduction by >= 10 percentage points to an LVEF of 40-49 %, or a new reduction by
  < 10 points to 40-49 % *with* a new relative decline in global longitudinal strain (GLS) by > 15 % or a new
  rise in cardiac biomarkers (troponin, natriuretic peptides);
* **mild**: LVEF >= 50 % *with* a new relative GLS decline by > 15 % and/or a new rise in cardiac biomarkers.

A CMR volumetric report carries LVEF but neither GLS nor biomarkers. Where a grade depends on them and they were
not given, the finding says that it **cannot be assessed** (code ``*_not_assessable``) instead of guessing.
Symptomatic CTRCD (heart failure) is graded clinically and is out of scope here.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel

from medai.domain.prediction import Severity

GUIDELINE = "2022 ESC Guidelines on cardio-oncology (Lyon et al., Eur Heart J 2022;43:4229-4361)"
#: LVEF thresholds (percent) and the fall (percentage points) of the definitions.
SEVERE_BELOW = 40.0
REDUCED_BELOW = 50.0
MODERATE_FALL = 10.0
#: Relative GLS decline (percent of the baseline magnitude) that counts.
GLS_RELATIVE_FALL = 15.0
#: Name of a GLS measurement, should a report carry one (percent, negative by convention).
GLS_MEASUREMENT = "lv_gls"


class CtrcdGrade(StrEnum):
    """Asymptomatic CTRCD grades of the 2022 ESC guideline."""

    SEVERE = "severe"
    MODERATE = "moderate"
    MILD = "mild"


class CtrcdFinding(BaseModel):
    """The CTRCD verdict on one follow-up analysis against the baseline (a coded, QualityFlag-like finding).

    Attributes:
        code: ``ctrcd_severe``, ``ctrcd_moderate``, ``ctrcd_mild``, ``ctrcd_moderate_not_assessable``,
            ``ctrcd_mild_not_assessable``, ``ctrcd_not_met``, ``ctrcd_baseline_reduced`` or ``ctrcd_no_lvef``.
        severity: error (severe), warning (moderate, mild, moderate not assessable), info (the others).
        message: what was found, by which criterion, and what is missing to decide.
        grade: the grade when one is met, else None.
        assessable: False when the grade depends on GLS/biomarkers that were not given (or LVEF is missing).
        baseline_index / index: timeline points compared.
        baseline_lvef / lvef: LVEF (%) at baseline and follow-up; lvef_fall: baseline - follow-up (points).
        criterion: the guideline criterion met or left open.
    """

    code: str
    severity: Severity
    message: str
    grade: CtrcdGrade | None = None
    assessable: bool = True
    baseline_index: int = 0
    index: int = 0
    baseline_lvef: float | None = None
    lvef: float | None = None
    lvef_fall: float | None = None
    gls_relative_fall_pct: float | None = None
    biomarker_rise: bool | None = None
    criterion: str = ""
    guideline: str = GUIDELINE


def gls_relative_fall(baseline_gls: float | None, gls: float | None) -> float | None:
    """Relative decline of GLS magnitude in percent of baseline (``(|b| - |f|) / |b| * 100``); None if unknown."""
    if baseline_gls is None or gls is None or baseline_gls == 0:
        return None
    return (abs(baseline_gls) - abs(gls)) / abs(baseline_gls) * 100.0


def classify_ctrcd(
    baseline_lvef: float | None,
    lvef: float | None,
    *,
    gls_relative_fall_pct: float | None = None,
    biomarker_rise: bool | None = None,
    lvef_mdc: float | None = None,
    baseline_index: int = 0,
    index: int = 1,
) -> CtrcdFinding:
    """Grade asymptomatic CTRCD of one follow-up against baseline (2022 ESC definitions, module docstring).

    Args:
        baseline_lvef / lvef: LVEF (%) at baseline and at the follow-up.
        gls_relative_fall_pct: relative decline of GLS magnitude from baseline (%), None when not measured.
        biomarker_rise: a new rise in cardiac biomarkers at the follow-up; None when not known.
        lvef_mdc: minimal detectable LVEF change (points) of the modality, to say when a fall is within it.
        baseline_index / index: the timeline points, recorded on the finding.

    Returns:
        One finding; ``grade`` is None when no grade is met or it cannot be assessed.
    """
    base = dict(baseline_index=baseline_index, index=index, baseline_lvef=baseline_lvef, lvef=lvef,
                gls_relative_fall_pct=gls_relative_fall_pct, biomarker_rise=biomarker_rise)
    if baseline_lvef is None or lvef is None:
        which = "baseline" if baseline_lvef is None else "follow-up"
        return CtrcdFinding(code="ctrcd_no_lvef", severity=Severity.INFO, assessable=False, **base,
                            message=f"CTRCD not assessed: the {which} analysis has no LVEF (cine function).")
    fall = baseline_lvef - lvef
    base["lvef_fall"] = round(fall, 2)
    change = f"LVEF {baseline_lvef:.1f} % -> {lvef:.1f} % ({-fall:+.1f} points)"
    noise = ""
    if lvef_mdc is not None and 0 < fall <= lvef_mdc:
        noise = (f" The fall is within CMR scan-rescan variability (minimal detectable change {lvef_mdc:.1f} points);"
                 " confirm on a repeat study.")
    if baseline_lvef < SEVERE_BELOW:
        return CtrcdFinding(code="ctrcd_baseline_reduced", severity=Severity.INFO, assessable=False, **base,
                            criterion="a new reduction from a baseline LVEF >= 40 %",
                            message=f"{change}: baseline LVEF is already below 40 %, so the ESC 2022 grades of a "
                                    "new LVEF reduction do not apply; judge the change against the variability.")
    gls_met = gls_relative_fall_pct is not None and gls_relative_fall_pct > GLS_RELATIVE_FALL
    gls_known_neg = gls_relative_fall_pct is not None and not gls_met
    extra_met = gls_met or biomarker_rise is True
    extra_all_negative = gls_known_neg and biomarker_rise is False
    met, missing_parts = [], []
    if gls_met:
        met.append(f"GLS relative fall {gls_relative_fall_pct:.1f} %")
    if biomarker_rise is True:
        met.append("a new rise in cardiac biomarkers")
    if gls_relative_fall_pct is None:
        missing_parts.append("GLS (relative fall > 15 %)")
    if biomarker_rise is None:
        missing_parts.append("cardiac biomarkers (troponin, natriuretic peptides)")
    extra_txt, missing = " and ".join(met), " and ".join(missing_parts)
    if lvef < SEVERE_BELOW:
        return CtrcdFinding(code="ctrcd_severe", severity=Severity.ERROR, grade=CtrcdGrade.SEVERE, **base,
                            criterion="new LVEF reduction to < 40 %",
                            message=f"Severe asymptomatic CTRCD (ESC 2022): {change}, new LVEF < 40 %.{noise}")
    if lvef < REDUCED_BELOW:
        if fall >= MODERATE_FALL:
            return CtrcdFinding(code="ctrcd_moderate", severity=Severity.WARNING, grade=CtrcdGrade.MODERATE,
                                **base, criterion="new LVEF reduction by >= 10 points to 40-49 %",
                                message=f"Moderate asymptomatic CTRCD (ESC 2022): {change}, a fall of >= 10 "
                                        "points to an LVEF of 40-49 %.")
        if fall > 0:
            crit = "new LVEF reduction by < 10 points to 40-49 % with GLS relative fall > 15 % or biomarker rise"
            if extra_met:
                return CtrcdFinding(code="ctrcd_moderate", severity=Severity.WARNING, grade=CtrcdGrade.MODERATE,
                                    **base, criterion=crit,
                                    message=f"Moderate asymptomatic CTRCD (ESC 2022): {change} to 40-49 % with "
                                            f"{extra_txt}.{noise}")
            if extra_all_negative:
                return CtrcdFinding(code="ctrcd_not_met", severity=Severity.INFO, **base, criterion=crit,
                                    message=f"No CTRCD grade met (ESC 2022): {change} to 40-49 % (< 10 points) "
                                            f"without a GLS fall > 15 % or a biomarker rise.{noise}")
            return CtrcdFinding(code="ctrcd_moderate_not_assessable", severity=Severity.WARNING, assessable=False,
                                **base, criterion=crit,
                                message=f"{change}: a fall of < 10 points to 40-49 % is moderate CTRCD (ESC 2022) "
                                        f"only with a new relative GLS decline > 15 % or a new rise in cardiac "
                                        f"biomarkers; {missing} not given (a CMR volumetric report carries "
                                        f"neither), so this cannot be assessed here. Measure them.{noise}")
        return CtrcdFinding(code="ctrcd_not_met", severity=Severity.INFO, **base,
                            criterion="a new LVEF reduction from baseline",
                            message=f"No new LVEF reduction (ESC 2022 CTRCD not met by LVEF): {change}; LVEF "
                                    "40-49 % as at baseline.")
    crit = "LVEF >= 50 % with GLS relative fall > 15 % and/or biomarker rise"
    if extra_met:
        return CtrcdFinding(code="ctrcd_mild", severity=Severity.WARNING, grade=CtrcdGrade.MILD, **base,
                            criterion=crit,
                            message=f"Mild asymptomatic CTRCD (ESC 2022): {change}, LVEF >= 50 % with {extra_txt}.")
    if extra_all_negative:
        return CtrcdFinding(code="ctrcd_not_met", severity=Severity.INFO, **base, criterion=crit,
                            message=f"No CTRCD (ESC 2022): {change}, LVEF >= 50 %, no GLS fall > 15 %, no "
                                    "biomarker rise.")
    return CtrcdFinding(code="ctrcd_mild_not_assessable", severity=Severity.INFO, assessable=False, **base,
                        criterion=crit,
                        message=f"{change}: LVEF >= 50 %, so no moderate or severe CTRCD by LVEF. Mild CTRCD (ESC "
                                f"2022) is defined by a new relative GLS decline > 15 % and/or a new rise in cardiac "
                                f"biomarkers; {missing} not given (a CMR volumetric report carries neither), so mild "
                                f"CTRCD cannot be assessed here.{noise}")


__all__ = ["GUIDELINE", "CtrcdFinding", "CtrcdGrade", "classify_ctrcd", "gls_relative_fall"]
