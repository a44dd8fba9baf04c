"""The worklist: every stored study with patient (as the role allows), date, modalities, series, the latest
analysis' status and quality flags, and whether its report is signed. Data scientists see pseudonyms only.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from sqlalchemy import func, select

from serving import audit, db
from serving.auth import Principal, Role
from serving.deps import everyone, get_jobs, get_store
from serving.jobs import JobRunner, decode_kinds
from serving.problems import responses
from serving.storage import StudyStore

router = APIRouter(prefix="/v1/worklist", tags=["worklist"])


class WorklistAnalysis(BaseModel):
    """The latest analysis job of a study."""

    job_id: str
    status: str
    stage: str
    kinds: list[str] | None
    updated: float
    review_required: bool | None = None
    reasons: list[str] = Field(default_factory=list)
    error: str | None = None
    versions: int = 0
    signed_by: str | None = None


class WorklistRow(BaseModel):
    """One study."""

    study_instance_uid: str = Field(description="the stored UID (a keyed pseudonym UID for data scientists)")
    patient: str = Field(description="patient name, or a pseudonym for roles that may not see identities")
    patient_id: str
    patient_sex: str
    study_date: str
    description: str
    modalities: list[str]
    n_series: int
    n_instances: int
    received: float
    analysis: WorklistAnalysis | None = None


@lru_cache(maxsize=4096)
def _review(path: str, mtime: float) -> tuple[bool, tuple[str, ...]]:
    doc = json.loads(Path(path).read_text())
    review = doc.get("review") or {}
    return bool(review.get("required")), tuple(review.get("reasons") or [])


def _analysis(jobs: JobRunner, job: dict[str, Any], versions: dict[str, tuple[int, str | None]]) -> WorklistAnalysis:
    out = WorklistAnalysis(job_id=job["id"], status=job["status"], stage=job["stage"], kinds=decode_kinds(job["kind"]),
                           updated=job["updated"], error=job["error"])
    n, signer = versions.get(job["id"], (1 if job["status"] == "succeeded" else 0, None))
    out.versions, out.signed_by = n, signer
    name = job["files"].get("json") if job["status"] == "succeeded" else None
    if name:
        path = jobs.result_dir(job["id"]) / name
        try:
            out.review_required, reasons = _review(str(path), path.stat().st_mtime)
            out.reasons = list(reasons)
        except (OSError, ValueError):
            pass
    return out


@router.get("", response_model=list[WorklistRow], summary="The worklist", responses=responses())
def worklist(request: Request, who: Principal = Depends(everyone), store: StudyStore = Depends(get_store),
             jobs: JobRunner = Depends(get_jobs)) -> list[WorklistRow]:
    """Every stored study (newest first) with its latest analysis; results stored under a de-identified study
    UID are not listed as studies of their own."""
    identified = who.role != Role.DATA_SCIENTIST
    deid = None
    if not identified:
        from medai.dicom.deid import Deidentifier, load_site_secret

        deid = Deidentifier(load_site_secret())
    infos = store.study_infos()
    i, t = db.instances.c, db.report_versions.c
    with store.engine.connect() as conn:
        counts = {r[0]: (r[1], r[2]) for r in conn.execute(
            select(i.study_uid, func.count(func.distinct(i.series_uid)), func.count())
            .where(i.derived == 0).group_by(i.study_uid))}
        mods: dict[str, set[str]] = {}
        for uid, mod in conn.execute(select(i.study_uid, i.modality).where(i.derived == 0).distinct()):
            mods.setdefault(uid, set()).add(mod)
        versions: dict[str, tuple[int, str | None]] = {}
        for job_id, version, signer in conn.execute(select(t.job_id, t.version, t.signed_name).order_by(t.version)):
            prev = versions.get(job_id, (0, None))
            versions[job_id] = (version, signer or prev[1])
        latest: dict[str, dict[str, Any]] = {}
        for row in conn.execute(select(db.jobs).order_by(db.jobs.c.created)).mappings():
            latest[row["study_uid"]] = dict(row)
    for job in latest.values():
        job["files"] = json.loads(job["files"]) if job.get("files") else {}
    out = []
    for s in sorted(store.studies(), key=lambda r: -r["created"]):
        uid = s["study_uid"]
        info = infos.get(uid, {})
        n_series, n_inst = counts.get(uid, (0, 0))
        if not n_inst:  # only derived results (the SEG/SR of a de-identified working copy): not a study to read
            continue
        pid = info.get("patient_id", "")
        if deid is not None:
            patient = pid_shown = deid.pseudonym(pid) if pid else ""
            shown_uid = deid.remap_uid(uid)
        else:
            patient, pid_shown, shown_uid = str(info.get("patient_name", "")).replace("^", " ").strip(), pid, uid
        job = latest.get(uid)
        out.append(WorklistRow(
            study_instance_uid=shown_uid, patient=patient, patient_id=pid_shown,
            patient_sex=info.get("patient_sex", ""), study_date=info.get("study_date", "") if identified else "",
            description=info.get("description", ""), modalities=sorted(mods.get(uid, set())), n_series=n_series,
            n_instances=n_inst, received=s["created"],
            analysis=_analysis(jobs, job, versions) if job is not None and identified else None))
    audit.record(store.engine, who, request, "list", "worklist", "")
    return out
