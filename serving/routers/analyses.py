"""Analyses: submit (202 + job), poll, and fetch results (JSON report, SEG, SR, PDF, overlays, FHIR)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, Field

from serving import audit
from serving.auth import Principal
from serving.deps import clinical, get_jobs, get_settings, get_store
from serving.jobs import JobRunner, callback_allowed, decode_kinds
from serving.problems import ApiProblem, responses
from serving.settings import ApiSettings
from serving.storage import StudyStore

router = APIRouter(prefix="/v1/analyses", tags=["analyses"])

MEDIA = {".json": "application/json", ".dcm": "application/dicom", ".pdf": "application/pdf", ".png": "image/png"}


class AnalysisRequest(BaseModel):
    """Ask for an analysis of a stored study."""

    study_instance_uid: str = Field(min_length=1, max_length=64)
    kinds: list[str] | None = Field(None, min_length=1, max_length=16, description="registered analysis kinds to "
                                    "run (GET /v1/analyses/kinds lists them); default: every applicable analysis")
    kind: str | None = Field(None, max_length=32, description="deprecated single-kind form of `kinds`")
    callback_url: str | None = Field(None, max_length=2000, description="POSTed {job_id, status} when done; "
                                     "its host must be in MEDAI_API_CALLBACK_ALLOWED_HOSTS")


class JobQuality(BaseModel):
    """The quality gate's verdict on a finished job's report."""

    review_required: bool = Field(description="true: a reader must review the report before its values are used")
    reasons: list[str] = Field(default_factory=list, description="one line per finding")
    analyses: dict[str, str] = Field(default_factory=dict,
                                     description="analysis kind -> pass | review | unusable (gated analyses only)")


class Job(BaseModel):
    """An analysis job."""

    id: str
    kind: str
    kinds: list[str] | None = Field(None, description="the requested analysis kinds; null: every applicable one")
    study_instance_uid: str
    status: str
    stage: str
    attempts: int
    created: float
    updated: float
    error: str | None = None
    error_code: str | None = None
    callback_status: str | None = None
    results: dict[str, str] = Field(default_factory=dict, description="result kind -> URL")
    quality: JobQuality | None = Field(None, description="the quality gate's verdict (succeeded jobs)")


def job_quality(jobs: JobRunner, job: dict[str, Any]) -> JobQuality | None:
    """The review verdict of a succeeded job, read from its ``report.json`` (None before or without one)."""
    import json

    name = job["files"].get("json") if job["status"] == "succeeded" else None
    if not name:
        return None
    try:
        doc = json.loads((jobs.result_dir(job["id"]) / name).read_text())
    except (OSError, ValueError):
        return None
    review = doc.get("review") or {}
    return JobQuality(review_required=bool(review.get("required")), reasons=list(review.get("reasons") or []),
                      analyses={s["kind"]: s["quality"]["status"] for s in doc.get("sections", [])
                                if s.get("quality")})


def job_out(job: dict[str, Any], quality: JobQuality | None = None) -> Job:
    res = {k: f"/v1/analyses/{job['id']}/results/{k}" for k in job["files"]}
    return Job(quality=quality, id=job["id"], kind=job["kind"], kinds=decode_kinds(job["kind"]),
               study_instance_uid=job["study_uid"], status=job["status"],
               stage=job["stage"], attempts=job["attempts"], created=job["created"], updated=job["updated"],
               error=job["error"], error_code=job["error_code"], callback_status=job["callback_status"], results=res)


class AnalysisKind(BaseModel):
    """A registered analysis."""

    kind: str
    title: str
    aliases: list[str] = Field(default_factory=list)
    series: list[str] = Field(description="series types it needs (all must be present)")
    models: dict[str, str] = Field(description="model package by role")


def _resolve_kinds(requested: list[str]) -> list[str]:
    from medai.analyses import get_analysis
    from medai.errors import ConfigError

    out: list[str] = []
    for k in requested:
        try:
            kind = get_analysis(k).kind
        except ConfigError as exc:
            raise ApiProblem(422, "unknown-analysis", exc.message) from None
        if kind not in out:
            out.append(kind)
    return out


@router.get("/kinds", response_model=list[AnalysisKind], summary="Registered analyses", responses=responses())
def kinds(who: Principal = Depends(clinical)) -> list[AnalysisKind]:
    """Every registered analysis kind, the series it needs and its models."""
    from medai.analyses import catalogue

    return [AnalysisKind(kind=a.kind, title=a.config.title, aliases=a.config.aliases,
                         series=[t.value for t in a.config.series], models=a.config.models)
            for a in catalogue().values()]


@router.post("", status_code=202, response_model=Job, summary="Start an analysis", responses=responses(404, 422))
def submit(body: AnalysisRequest, request: Request, who: Principal = Depends(clinical),
           jobs: JobRunner = Depends(get_jobs), store: StudyStore = Depends(get_store),
           settings: ApiSettings = Depends(get_settings)) -> JSONResponse:
    """Queue the analyses (``kinds``, default every applicable one) of a stored study into one study report; poll
    the returned job (its ``Location``) until it succeeded or failed."""
    if not store.has_study(body.study_instance_uid):
        raise ApiProblem(404, "study-not-found", f"no stored study {body.study_instance_uid}; upload it first")
    if body.callback_url and not callback_allowed(body.callback_url, settings.callback_allowed_hosts):
        raise ApiProblem(422, "callback-not-allowed", "the callback URL's host is not in "
                         "MEDAI_API_CALLBACK_ALLOWED_HOSTS; ask an admin to allow it")
    requested = list(body.kinds or []) + ([body.kind] if body.kind else [])
    kinds = _resolve_kinds(requested) if requested else None
    job = jobs.submit(kinds, body.study_instance_uid, who.user, body.callback_url)
    audit.record(store.engine, who, request, "create", "analysis", job["id"], 202)
    return JSONResponse(job_out(job).model_dump(), status_code=202, headers={"Location": f"/v1/analyses/{job['id']}"})


def _job(jobs: JobRunner, job_id: str) -> dict[str, Any]:
    job = jobs.get(job_id)
    if job is None:
        raise ApiProblem(404, "job-not-found", f"no analysis job {job_id}")
    return job


@router.get("/{job_id}", response_model=Job, summary="Job status", responses=responses(404))
def status(job_id: str, request: Request, who: Principal = Depends(clinical),
           jobs: JobRunner = Depends(get_jobs)) -> Job:
    """The job's state, stage, error and result links."""
    job = _job(jobs, job_id)
    audit.record(jobs.engine, who, request, "read", "analysis", job_id)
    return job_out(job, job_quality(jobs, job))


@router.delete("/{job_id}", response_model=Job, summary="Revoke a job", responses=responses(404, 409))
def revoke(job_id: str, request: Request, who: Principal = Depends(clinical),
           jobs: JobRunner = Depends(get_jobs)) -> Job:
    """Cancel a queued or running analysis: a running one stops at its next stage and publishes nothing (no
    report, no SEG/SR). A job that already ended cannot be revoked (409); submit a new one to re-run."""
    job = _job(jobs, job_id)
    if job["status"] not in ("queued", "running"):
        audit.record(jobs.engine, who, request, "revoke", "analysis", job_id, 409)
        raise ApiProblem(409, "job-ended", f"job {job_id} already {job['status']}; nothing to revoke")
    job = jobs.cancel(job_id) or job
    audit.record(jobs.engine, who, request, "revoke", "analysis", job_id)
    return job_out(job)


@router.get("/{job_id}/results/{kind}", summary="A result file", response_class=FileResponse,
            responses={**responses(404, 409), 200: {"content": {m: {} for m in sorted(set(MEDIA.values()))}}})
def result(job_id: str, kind: str, request: Request, who: Principal = Depends(clinical),
           jobs: JobRunner = Depends(get_jobs)) -> FileResponse:
    """``json`` (report), ``seg``, ``sr``, ``pdf``, ``fhir`` or an overlay, as listed in the job's ``results``."""
    job = _job(jobs, job_id)
    if job["status"] != "succeeded":
        raise ApiProblem(409, "job-not-finished", f"job {job_id} is {job['status']}; poll it until it succeeded")
    name = job["files"].get(kind)
    if name is None:
        raise ApiProblem(404, "result-not-found", f"job {job_id} has no {kind!r} result; it has: "
                         + ", ".join(sorted(job["files"])))
    path = jobs.result_dir(job_id) / name
    audit.record(jobs.engine, who, request, "read", "report", f"{job_id}/{kind}")
    media = "application/fhir+json" if kind == "fhir" else MEDIA.get(path.suffix, "application/octet-stream")
    return FileResponse(path, media_type=media, filename=name)
