"""Cine CMR function measurements from a label map in source geometry (summation of discs).

Volumes are voxel counts times the voxel volume (Simpson's summation of discs on the short-axis stack);
LV mass is the ED myocardial volume times 1.05 g/mL; EF = 100 (EDV - ESV) / EDV; cardiac output = SV x heart
rate; indexed values divide by the body surface area (Mosteller). Every value gets its registry code, UCUM unit,
reference range (:mod:`medai.measurements.reference`) and flag.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from medai.domain.measurement import Flag, Measurement
from medai.domain.study import Series, Study
from medai.domain.volume import LabelMap
from medai.measurements.reference import reference_range
from medai.measurements.registry import measurement_def

#: Myocardial tissue density (g/mL) used for LV mass (SCMR post-processing recommendations).
MYOCARDIAL_DENSITY_G_PER_ML = 1.05
SUMMATION = "summation of discs (voxel count x voxel volume) on the short-axis stack"


@dataclass(frozen=True)
class PatientInfo:
    """Patient attributes the measurements need (from the DICOM).

    Attributes:
        sex: ``"M"``, ``"F"`` or ``""``.
        height_m: PatientSize (m).
        weight_kg: PatientWeight (kg).
        heart_rate_bpm: heart rate during the acquisition (beats/min).
    """

    sex: str = ""
    height_m: float | None = None
    weight_kg: float | None = None
    heart_rate_bpm: float | None = None

    @property
    def bsa_m2(self) -> float | None:
        """Body surface area by Mosteller, ``sqrt(height_cm * weight_kg / 3600)`` (m²), when both are known."""
        if not self.height_m or not self.weight_kg or self.height_m <= 0 or self.weight_kg <= 0:
            return None
        return math.sqrt(self.height_m * 100.0 * self.weight_kg / 3600.0)


def _float(v: object) -> float | None:
    try:
        f = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) and f > 0 else None


def heart_rate_from_series(series: Series | list[Series]) -> float | None:
    """Heart rate (beats/min) from DICOM ``HeartRate``, else ``60000 / NominalInterval`` (RR interval, ms)."""
    items = [series] if isinstance(series, Series) else list(series)
    for s in items:
        for inst in s.instances[:5]:
            hr = _float(inst.get("HeartRate"))
            if hr:
                return hr
            rr = _float(inst.get("NominalInterval"))
            if rr:
                return 60000.0 / rr
    return None


def patient_info(study: Study, series: Series | list[Series] | None = None) -> PatientInfo:
    """:class:`PatientInfo` from the study's patient module and the cine series' cardiac timing."""
    return PatientInfo(
        sex=(study.PatientSex or "").upper()[:1],
        height_m=_float(study.PatientSize),
        weight_kg=_float(study.PatientWeight),
        heart_rate_bpm=heart_rate_from_series(series) if series is not None else None,
    )


def make_measurement(
    name: str, value: float, sex: str = "", *, method: str = "", frame: str | None = None
) -> Measurement:
    """A coded :class:`Measurement` for registry name ``name``, with its reference range and flag."""
    d = measurement_def(name)
    rr = reference_range(name, sex)
    return Measurement(
        code=d.code, name=name, value=float(value), unit=d.unit, method=method, segment=d.segment, frame=frame,
        reference_range=rr, flag=rr.flag(value) if rr is not None else Flag.UNKNOWN,
    )


def volume_curves(labelmap: LabelMap) -> dict[str, list[float]]:
    """Volume per frame (mL) of every segment of a ``(T, Z, Y, X)`` label map, plus ``times_ms``."""
    vol = labelmap.volume
    arr = vol.array if vol.is_temporal else vol.array[None]
    flat = arr.reshape(arr.shape[0], -1)
    out: dict[str, list[float]] = {
        "times_ms": list(vol.frame_times_ms) if vol.frame_times_ms else [float(t) for t in range(arr.shape[0])]
    }
    for lab in labelmap.labels:
        out[f"{lab.name}_ml"] = [float(v) for v in (flat == lab.value).sum(1) * vol.voxel_volume_ml]
    return out


def function_measurements(
    labelmap: LabelMap, ed: int, es: int, patient: PatientInfo | None = None
) -> list[Measurement]:
    """LV/RV volumes, SV, EF, LV mass, cardiac output and indexed values.

    Args:
        labelmap: ``(T, Z, Y, X)`` label map in source geometry with segments ``lv``, ``myo`` (and ``rv``).
        ed / es: end-diastolic / end-systolic frame indices.
        patient: sex (reference ranges), height/weight (indexing), heart rate (cardiac output).

    Returns:
        The measurements (RV ones only when an RV is segmented at ED; cardiac output only with a heart rate;
        indexed values only with a BSA).
    """
    p = patient or PatientInfo()
    sex = p.sex
    names = {lab.name for lab in labelmap.labels}
    out: list[Measurement] = []

    def vol(name: str, t: int) -> float:
        return labelmap.volume_ml(name, t) if labelmap.volume.is_temporal else labelmap.volume_ml(name)

    bsa = p.bsa_m2
    hr = p.heart_rate_bpm
    lv_edv, lv_esv = vol("lv", ed), vol("lv", es)
    lv_sv = lv_edv - lv_esv
    out += [
        make_measurement("lv_edv", lv_edv, sex, method=SUMMATION, frame="ED"),
        make_measurement("lv_esv", lv_esv, sex, method=SUMMATION, frame="ES"),
        make_measurement("lv_sv", lv_sv, sex, method="EDV - ESV"),
    ]
    if lv_edv > 0:
        out.append(make_measurement("lv_ef", 100.0 * lv_sv / lv_edv, sex, method="100 x (EDV - ESV) / EDV"))
    if "myo" in names:
        mass = vol("myo", ed) * MYOCARDIAL_DENSITY_G_PER_ML
        out.append(make_measurement("lv_mass", mass, sex, method="ED myocardial volume x 1.05 g/mL", frame="ED"))
    if hr:
        out.append(make_measurement("heart_rate", hr, sex, method="DICOM HeartRate or 60000 / NominalInterval"))
        out.append(make_measurement("lv_co", lv_sv * hr / 1000.0, sex, method="SV x heart rate"))
    if bsa:
        out.append(make_measurement("bsa", bsa, sex, method="Mosteller: sqrt(height[cm] x weight[kg] / 3600)"))
        out += [
            make_measurement("lv_edvi", lv_edv / bsa, sex, method="EDV / BSA", frame="ED"),
            make_measurement("lv_esvi", lv_esv / bsa, sex, method="ESV / BSA", frame="ES"),
            make_measurement("lv_svi", lv_sv / bsa, sex, method="SV / BSA"),
        ]
        if "myo" in names:
            out.append(make_measurement("lv_massi", vol("myo", ed) * MYOCARDIAL_DENSITY_G_PER_ML / bsa, sex,
                                        method="mass / BSA", frame="ED"))
        if hr:
            out.append(make_measurement("lv_ci", lv_sv * hr / 1000.0 / bsa, sex, method="CO / BSA"))
    if "rv" in names:
        rv_edv, rv_esv = vol("rv", ed), vol("rv", es)
        if rv_edv > 0:
            out += [
                make_measurement("rv_edv", rv_edv, sex, method=SUMMATION + "; at the LV's ED frame", frame="ED"),
                make_measurement("rv_esv", rv_esv, sex, method=SUMMATION + "; at the LV's ES frame", frame="ES"),
                make_measurement("rv_sv", rv_edv - rv_esv, sex, method="EDV - ESV"),
                make_measurement("rv_ef", 100.0 * (rv_edv - rv_esv) / rv_edv, sex, method="100 x (EDV - ESV) / EDV"),
            ]
            if bsa:
                out += [
                    make_measurement("rv_edvi", rv_edv / bsa, sex, method="EDV / BSA", frame="ED"),
                    make_measurement("rv_esvi", rv_esv / bsa, sex, method="ESV / BSA", frame="ES"),
                ]
    return out


def by_name(measurements: list[Measurement]) -> dict[str, Measurement]:
    """Measurements keyed by name."""
    return {m.name: m for m in measurements}


def ef_from_curve(lv_ml: list[float]) -> float:
    """EF (%) from an LV volume curve (max -> min); 0 when the curve is empty or zero."""
    v = np.asarray(lv_ml, dtype=float)
    return float(100.0 * (v.max() - v.min()) / v.max()) if v.size and v.max() > 0 else 0.0


__all__ = [
    "MYOCARDIAL_DENSITY_G_PER_ML",
    "PatientInfo",
    "by_name",
    "ef_from_curve",
    "function_measurements",
    "heart_rate_from_series",
    "make_measurement",
    "patient_info",
    "volume_curves",
]
