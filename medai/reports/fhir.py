"""FHIR R4 renderings of a :class:`~medai.domain.prediction.Report` and of risk predictions.

Built with ``fhir.resources`` (its ``R4B`` models, the R4-compatible release; construction validates every
resource): a ``DiagnosticReport`` whose results are ``Observation`` s (LOINC/SNOMED/DCM codes, UCUM
``valueQuantity``, ``referenceRange``, interpretation flag), ``RiskAssessment`` s for risk estimates, all in a
``collection`` ``Bundle`` with ``urn:uuid`` full URLs.
"""

from __future__ import annotations

import uuid
from typing import Any

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.riskassessment import RiskAssessment

from medai.domain.codes import Code
from medai.domain.measurement import Flag, Measurement
from medai.domain.prediction import Prediction, Report, RiskEstimate

SYSTEMS = {
    "LN": "http://loinc.org",
    "SCT": "http://snomed.info/sct",
    "DCM": "http://dicom.nema.org/resources/ontology/DCM",
    "UCUM": "http://unitsofmeasure.org",
}
UCUM_SYSTEM = "http://unitsofmeasure.org"
INTERPRETATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
_INTERP = {Flag.NORMAL: ("N", "Normal"), Flag.LOW: ("L", "Low"), Flag.HIGH: ("H", "High")}
#: LOINC panel for the cardiac MRI study report
CMR_REPORT_CODE = {"system": "http://loinc.org", "code": "18754-9", "display": "Heart MRI study"}


def coding(code: Code) -> dict[str, str]:
    """A FHIR Coding of a medai :class:`Code` (private schemes become ``urn:medai:<scheme>``)."""
    return {"system": SYSTEMS.get(code.scheme, f"urn:medai:{code.scheme.lower()}"), "code": code.value,
            "display": code.meaning}


def _quantity(value: float, unit_code: str, display: str) -> dict[str, Any]:
    return {"value": float(value), "unit": display or unit_code, "system": UCUM_SYSTEM, "code": unit_code}


def _subject(report: Report) -> dict[str, Any]:
    if report.patient_id:
        return {"identifier": {"system": "urn:medai:pseudonym", "value": report.patient_id}}
    return {"display": "anonymous"}


#: Local code system of the AHA 17-segment model's segment numbers (Cerqueira et al., Circulation 2002).
AHA_SEGMENT_SYSTEM = "urn:medai:aha-17-segment"


def observation(m: Measurement, report: Report | None = None) -> Observation:
    """One measurement as an Observation (``final``, UCUM ``valueQuantity``, reference range, interpretation)."""
    data: dict[str, Any] = {
        "resourceType": "Observation",
        "id": str(uuid.uuid4()),
        "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                  "code": "imaging", "display": "Imaging"}]}],
        "code": {"coding": [coding(m.code)], "text": m.name},
        "valueQuantity": _quantity(m.value, m.unit.code, m.unit.display),
    }
    if report is not None:
        data["subject"] = _subject(report)
        data["effectiveDateTime"] = report.created.isoformat()
    params = ", ".join(f"{k}={v}" for k, v in sorted(m.parameters.items()))
    if m.method_code is not None:
        data["method"] = {"coding": [coding(m.method_code)],
                          "text": f"{m.method_code.meaning} ({params})" if params else m.method_code.meaning}
    elif m.method:
        data["method"] = {"text": m.method}
    site = " ".join(x for x in (m.segment, m.frame) if x)
    if m.aha_segment is not None:
        data["bodySite"] = {"coding": [{"system": AHA_SEGMENT_SYSTEM, "code": str(m.aha_segment),
                                        "display": f"AHA 17-segment model, segment {m.aha_segment}"}],
                            "text": f"{site} AHA segment {m.aha_segment}".strip()}
    elif site:
        data["bodySite"] = {"text": site}
    rr = m.reference_range
    if rr is not None and (rr.low is not None or rr.high is not None):
        rng: dict[str, Any] = {"text": f"{rr.population}; {rr.source}".strip("; ")}
        if rr.low is not None:
            rng["low"] = _quantity(rr.low, m.unit.code, m.unit.display)
        if rr.high is not None:
            rng["high"] = _quantity(rr.high, m.unit.code, m.unit.display)
        data["referenceRange"] = [rng]
    if m.flag in _INTERP:
        code, disp = _INTERP[m.flag]
        data["interpretation"] = [{"coding": [{"system": INTERPRETATION_SYSTEM, "code": code, "display": disp}]}]
    if m.review:
        data["status"] = "preliminary"  # a quality finding asks for a reader's review before the value is used
        data["note"] = [{"text": f"review required: {', '.join(m.review)}"}]
    return Observation.model_validate(data)


def risk_assessment(r: RiskEstimate, subject: dict[str, Any] | None = None) -> RiskAssessment:
    """One risk estimate as a RiskAssessment: a prediction per horizon (probability, ``whenRange`` in the unit)."""
    preds = []
    for h, p in sorted(r.horizons.items(), key=lambda kv: _num(kv[0])):
        item: dict[str, Any] = {"outcome": {"text": r.outcome}, "probabilityDecimal": float(min(max(p, 0.0), 1.0))}
        t = _num(h)
        if t is not None:
            item["whenRange"] = {"high": {"value": t, "unit": r.time_unit, "system": UCUM_SYSTEM,
                                          "code": r.time_unit}}
        preds.append(item)
    if not preds:
        preds.append({"outcome": {"text": r.outcome}, "qualitativeRisk": {"text": r.risk_group or "see basis"}})
    if r.risk_group:
        for p in preds:
            p["qualitativeRisk"] = {"text": r.risk_group}
    note = [{"text": f"risk score {r.risk_score:.6g}"}]
    if r.contributions:
        top = ", ".join(f"{c.factor} {c.contribution:+.3g}" for c in r.contributions[:5])
        note.append({"text": f"top contributions: {top}"})
    return RiskAssessment.model_validate({
        "resourceType": "RiskAssessment", "id": str(uuid.uuid4()), "status": "final",
        "subject": subject or {"display": "patient factors supplied by the caller"},
        "method": {"text": f"{r.model.name} {r.model.version}"},
        "prediction": preds, "note": note,
    })


def _num(s: str) -> float | None:
    try:
        return float(str(s).rstrip("dmoyw"))
    except ValueError:
        return None


#: local code system of medai's image-quality observations
QUALITY_SYSTEM = "urn:medai:image-quality"


def quality_observation(section: Any, report: Report) -> Observation | None:
    """A section's quality-gate assessment as an Observation (verdict as value, artefacts / coverage / predicted
    Dice as components; ``interpretation`` A when review is required)."""
    q = getattr(section, "quality", None)
    if q is None:
        return None
    comps: list[dict[str, Any]] = []
    for g in q.series:
        for name, a in g.artefacts.items():
            comps.append({"code": {"coding": [{"system": QUALITY_SYSTEM, "code": f"artefact-{name}"}],
                                   "text": f"{name} artefact share of {g.series_type} slices"},
                          "valueQuantity": _quantity(a.share, "1", "1")})
    for end, p in (q.coverage or {}).items():
        comps.append({"code": {"coding": [{"system": QUALITY_SYSTEM, "code": f"missing-{end}"}],
                               "text": f"probability of missing {end} LV slices"},
                      "valueQuantity": _quantity(p, "1", "1")})
    for k, d in q.predicted_dice.items():
        comps.append({"code": {"coding": [{"system": QUALITY_SYSTEM, "code": f"predicted-dice-{k}"}],
                               "text": f"predicted Dice of the {k} segmentation"},
                      "valueQuantity": _quantity(d, "1", "1")})
    data: dict[str, Any] = {
        "resourceType": "Observation", "id": str(uuid.uuid4()), "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                  "code": "imaging", "display": "Imaging"}]}],
        "code": {"coding": [{"system": QUALITY_SYSTEM, "code": "image-quality", "display": "Image quality"}],
                 "text": f"{section.title or section.kind}: image quality"},
        "subject": _subject(report), "effectiveDateTime": report.created.isoformat(),
        "valueCodeableConcept": {"coding": [{"system": QUALITY_SYSTEM, "code": q.status.value}],
                                 "text": "; ".join(f.message for f in q.findings) or "acceptable"},
        **({"component": comps} if comps else {}),
    }
    if q.status.value != "pass":
        data["interpretation"] = [{"coding": [{"system": INTERPRETATION_SYSTEM, "code": "A",
                                               "display": "Abnormal"}], "text": "review required"}]
    if q.model is not None:
        data["device"] = {"display": f"{q.model.name} {q.model.version}"}
    return Observation.model_validate(data)


#: local code system of medai's decision-support (classification) observations
DX_SYSTEM = "urn:medai:decision-support"


def classification_observation(section: Any, report: Report) -> Observation | None:
    """A classification section (diagnosis) as an Observation: the most probable class as a coded value (SNOMED CT
    where the class has a concept), every class probability as a component; ``preliminary``, because it is a
    suggestion for the reader to confirm."""
    classes = list(getattr(section, "classes", None) or [])
    if not classes:
        return None

    def concept(c: Any) -> dict[str, Any]:
        code = c.code or {}
        system = {"SCT": "http://snomed.info/sct"}.get(code.get("scheme", ""), DX_SYSTEM)
        return {"coding": [{"system": system, "code": code.get("value", c.name),
                            "display": code.get("meaning", c.name)}], "text": c.name}

    top = max(classes, key=lambda c: c.probability)
    sm = getattr(section, "summary", {}) or {}
    note = (f"Modalities used: {', '.join(sm.get('modalities_used', []))}; contributions "
            + ", ".join(f"{k} {v:+.2f}" for k, v in (sm.get("modality_contributions") or {}).items()))
    data: dict[str, Any] = {
        "resourceType": "Observation", "id": str(uuid.uuid4()), "status": "preliminary",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                  "code": "imaging", "display": "Imaging"}]}],
        "code": {"coding": [{"system": DX_SYSTEM, "code": section.kind, "display": section.title or section.kind}],
                 "text": f"{section.title or section.kind} (AI suggestion, research use only)"},
        "subject": _subject(report), "effectiveDateTime": report.created.isoformat(),
        "valueCodeableConcept": concept(top),
        "component": [{"code": concept(c), "valueQuantity": _quantity(c.probability, "1", "probability")}
                      for c in classes],
        "note": [{"text": note}],
    }
    if section.models:
        data["device"] = {"display": f"{section.models[0].name} {section.models[0].version}"}
    return Observation.model_validate(data)


def _entry(res: Any) -> dict[str, Any]:
    return {"fullUrl": f"urn:uuid:{res.id}", "resource": res}


def report_bundle(report: Report) -> Bundle:
    """The report as a Bundle: DiagnosticReport + its Observations (+ RiskAssessments when it holds risks)."""
    obs = [observation(m, report) for m in report.measurements]
    obs += [o for o in (quality_observation(s, report) for s in report.sections) if o is not None]
    obs += [o for o in (classification_observation(s, report) for s in report.sections) if o is not None]
    risks = [risk_assessment(r, _subject(report)) for r in report.risks]
    conclusion = "; ".join(f"{f.severity}: {f.message}" for f in report.flags) or None
    if report.review.required:
        conclusion = "REVIEW REQUIRED. " + (conclusion or "")
    kinds = ", ".join(s.kind for s in report.sections) or "cine function"
    dr = DiagnosticReport.model_validate({
        "resourceType": "DiagnosticReport", "id": str(uuid.uuid4()), "status": "final",
        "identifier": [{"system": "urn:medai:report", "value": report.report_id}],
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "RAD",
                                  "display": "Radiology"}]}],
        "code": {"coding": [CMR_REPORT_CODE], "text": f"medai CMR analysis: {kinds} (research use only)"},
        "subject": _subject(report), "issued": report.created.isoformat(),
        "effectiveDateTime": report.created.isoformat(),
        "result": [{"reference": f"urn:uuid:{o.id}"} for o in obs],
        **({"conclusion": conclusion} if conclusion else {}),
    })
    return Bundle.model_validate({"resourceType": "Bundle", "type": "collection",
                                  "entry": [_entry(dr), *(_entry(o) for o in obs), *(_entry(r) for r in risks)]})


def prediction_bundle(pred: Prediction) -> Bundle:
    """A risk prediction as a Bundle of RiskAssessments."""
    return Bundle.model_validate({"resourceType": "Bundle", "type": "collection",
                                  "entry": [_entry(risk_assessment(r)) for r in pred.risks]})
