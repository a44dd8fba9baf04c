"""Patients: the serial comparison (timeline) of a patient's finished analyses.

The patient is named by the ``patient_id`` of the stored reports: with de-identification on (the default,
``MEDAI_API_DEIDENTIFY``) that is the keyed pseudonym the analysis wrote into ``report.json``, the PDF and FHIR
(``urn:medai:pseudonym``), never the hospital's Patient ID.
"""

from __future__ import annotations

import hashlib
import json
import logging

from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as PathParam
from sqlalchemy import select

from medai.errors import MedaiError
from medai.serial import AnalysisInput, Timeline, build_timeline, load_analysis
from serving import audit, db
from serving.auth import Principal
from serving.deps import clinical, get_jobs, get_settings
from serving.jobs import JobRunner, JobStatus
from serving.problems import ApiProblem, responses
from serving.settings import ApiSettings

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/patients", tags=["patients"])


def patient_analyses(jobs: JobRunner, patient_id: str) -> list[AnalysisInput]:
    """The succeeded jobs' reports of ``patient_id`` (oldest job first), each dated from its report or its SR.

    Every succeeded job's ``report.json`` is read (the jobs table does not hold the patient); a report that can
    no longer be read is skipped with a log line.
    """
    with jobs.engine.connect() as conn:
        rows = conn.execute(select(db.jobs.c.id, db.jobs.c.files).where(db.jobs.c.status == JobStatus.SUCCEEDED)
                            .order_by(db.jobs.c.created)).all()
    out: list[AnalysisInput] = []
    for job_id, files_text in rows:
        files = json.loads(files_text) if files_text else {}
        name = files.get("json")
        if not name:
            continue
        path = jobs.result_dir(job_id) / name
        try:
            if json.loads(path.read_text(encoding="utf-8")).get("patient_id") != patient_id:
                continue
            dicom = [files[k] for k in ("sr", "seg") if k in files]
            out.append(load_analysis(path, source=f"/v1/analyses/{job_id}/results/json", dicom_names=dicom))
        except (OSError, ValueError, AttributeError, MedaiError) as exc:
            logger.warning("job %s: report not readable for the timeline (%s)", job_id, exc)
    return out


def _audit_id(patient_id: str, settings: ApiSettings) -> str:
    """The patient as written to the audit log: the pseudonym, or a hash when reports hold real Patient IDs."""
    return patient_id if settings.deidentify else "sha256:" + hashlib.sha256(patient_id.encode()).hexdigest()[:32]


@router.get("/{patient_id}/timeline", response_model=Timeline, summary="A patient's serial comparison",
            responses=responses(404))
def timeline(
    request: Request,
    patient_id: str = PathParam(..., min_length=1, max_length=64, description="the reports' patient_id (the "
                                "keyed pseudonym when the API de-identifies)"),
    biomarker_rise: bool | None = Query(None, description="a new rise in cardiac biomarkers at the latest study "
                                        "(CTRCD grading); omit when unknown"),
    who: Principal = Depends(clinical),
    jobs: JobRunner = Depends(get_jobs),
    settings: ApiSettings = Depends(get_settings),
) -> Timeline:
    """EF, volumes, mass and scar of the patient's finished analyses in study-date order, each change set against
    published CMR scan-rescan variability, and CTRCD by the 2022 ESC cardio-oncology guideline. With one analysis
    the timeline has one point, no changes and a ``single_analysis`` flag; 404 when the patient has none."""
    found = patient_analyses(jobs, patient_id)
    if not found:
        audit.record(jobs.engine, who, request, "read", "patient_timeline", _audit_id(patient_id, settings), 404)
        raise ApiProblem(404, "patient-not-found", "no finished analysis of this patient. The id is the patient_id "
                         "of the reports (GET /v1/analyses/{id}/results/json): the keyed pseudonym when the API "
                         "de-identifies, not the hospital's Patient ID")
    tl = build_timeline(found, patient_id=patient_id, min_analyses=1, biomarker_rise=biomarker_rise)
    audit.record(jobs.engine, who, request, "read", "patient_timeline", _audit_id(patient_id, settings))
    return tl
