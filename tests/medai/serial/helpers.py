"""Constructed reports with known values, for the serial comparison tests (CLI and API reuse them)."""

from __future__ import annotations

import uuid
from datetime import date
from pathlib import Path

from medai.domain.codes import UCUM, Code
from medai.domain.measurement import Measurement
from medai.domain.prediction import Report, Review
from medai.measurements.registry import measurement_def
from medai.reports.json_report import write_json

LGE_MODEL = Code(value="LGE-MODEL", scheme="99MEDAI", meaning="Scar by deep-learning segmentation")
LGE_NSD = Code(value="LGE-NSD", scheme="99MEDAI", meaning="Signal above remote myocardium mean + n SD")
INFARCT_PCT = Code(value="LGEINFP", scheme="99MEDAI", meaning="Infarct size as percentage of LV myocardium")


def cine(name: str, value: float, review: list[str] | None = None) -> Measurement:
    d = measurement_def(name)
    return Measurement(code=d.code, name=name, value=value, unit=d.unit, segment=d.segment, review=review or [])


def make_report(patient: str = "P1", study_date: date | None = date(2024, 1, 10), *, ef: float | None = 60.0,
                edv: float = 150.0, esv: float | None = None, mass: float = 110.0, infarct_pct: float | None = None,
                study_uid: str | None = None, review: list[str] | None = None, ef_review: list[str] | None = None,
                extra: list[Measurement] | None = None) -> Report:
    """A cine (+ optional LGE) report: ESV defaults to EDV * (1 - EF); infarct % by the model (and a 5-SD value
    that must not be followed)."""
    ms: list[Measurement] = [cine("lv_edv", edv), cine("lv_mass", mass)]
    if ef is not None:
        ms.append(cine("lv_ef", ef, ef_review))
        ms.append(cine("lv_esv", esv if esv is not None else edv * (1 - ef / 100)))
    if infarct_pct is not None:
        ms.append(Measurement(code=INFARCT_PCT, name="lge_infarct_pct", value=infarct_pct, unit=UCUM.PERCENT,
                              method_code=LGE_MODEL, segment="infarct"))
        ms.append(Measurement(code=INFARCT_PCT, name="lge_infarct_pct", value=infarct_pct + 7, unit=UCUM.PERCENT,
                              method_code=LGE_NSD, parameters={"n_sd": 5}, segment="infarct"))
        ms.append(Measurement(code=INFARCT_PCT, name="lge_infarct_pct", value=99.0, unit=UCUM.PERCENT,
                              method_code=LGE_MODEL, aha_segment=3, segment="infarct"))
    ms += extra or []
    return Report(report_id=str(uuid.uuid4()), study_instance_uid=study_uid or f"2.25.{uuid.uuid4().int}",
                  study_date=study_date, patient_id=patient, measurements=ms,
                  review=Review(required=bool(review), reasons=review or []))


def write_result(folder: Path, report: Report) -> Path:
    """A result folder holding ``report.json`` (what medai analyze writes, less the DICOM renderings)."""
    return write_json(report, path=folder / "report.json")
