"""PACS link over DICOMweb: pull a study from the configured PACS, push an analysis' SEG and SR back."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from serving import audit
from serving.auth import Principal
from serving.deps import clinical, get_jobs, get_settings, get_store
from serving.jobs import JobRunner
from serving.pacs import DicomWebClient
from serving.problems import ApiProblem, responses
from serving.settings import ApiSettings
from serving.storage import StudyStore

router = APIRouter(prefix="/v1/pacs", tags=["pacs"])


class PullRequest(BaseModel):
    """Which study to pull."""

    study_instance_uid: str = Field(min_length=1, max_length=64, pattern=r"^[0-9.]+$")


class PullOut(BaseModel):
    """What was pulled."""

    study_instance_uid: str
    stored: int
    refused: int


class PushOut(BaseModel):
    """What was pushed."""

    job_id: str
    pushed: list[str]
    sop_instance_uids: list[str]


def _client(settings: ApiSettings) -> DicomWebClient:
    if not settings.pacs_url:
        raise ApiProblem(409, "no-pacs", "no PACS configured; set MEDAI_API_PACS_URL to its DICOMweb root")
    return DicomWebClient(settings.pacs_url)


@router.post("/pull", response_model=PullOut, summary="Pull a study from the PACS (QIDO + WADO-RS)",
             responses=responses(409, 502))
async def pull(body: PullRequest, request: Request, who: Principal = Depends(clinical),
               store: StudyStore = Depends(get_store), settings: ApiSettings = Depends(get_settings)) -> PullOut:
    """Find the study's instances with QIDO-RS, retrieve each with WADO-RS and store them here."""
    client = _client(settings)
    uid = body.study_instance_uid

    def work() -> PullOut:
        parts = [(sop, client.retrieve(uid, se, sop)) for se, sop in client.instance_uids(uid)]
        out = store.store(parts, user=who.user)
        return PullOut(study_instance_uid=uid, stored=len(out.stored), refused=len(out.failed))

    res = await run_in_threadpool(work)
    audit.record(store.engine, who, request, "create", "study", uid)
    return res


@router.post("/push/{job_id}", response_model=PushOut, summary="Store an analysis' SEG and SR in the PACS (STOW-RS)",
             responses=responses(404, 409, 502))
async def push(job_id: str, request: Request, who: Principal = Depends(clinical), jobs: JobRunner = Depends(get_jobs),
               settings: ApiSettings = Depends(get_settings), store: StudyStore = Depends(get_store)) -> PushOut:
    """STOW-RS the job's ``seg`` and ``sr`` to the PACS, re-identified at the site boundary (they reference the
    original study and images)."""
    client = _client(settings)
    job = jobs.get(job_id)
    if job is None:
        raise ApiProblem(404, "job-not-found", f"no analysis job {job_id}")
    if job["status"] != "succeeded":
        raise ApiProblem(409, "job-not-finished", f"job {job_id} is {job['status']}")
    from serving.reid import for_pacs

    kinds = [k for k in ("seg", "sr") if k in job["files"]]
    data = await run_in_threadpool(for_pacs, store, job["study_uid"], settings.deidentify,
                                   [(jobs.result_dir(job_id) / job["files"][k]).read_bytes() for k in kinds])
    resp = await run_in_threadpool(client.stow, data)
    sops = [i["00081155"]["Value"][0] for i in resp.get("00081199", {}).get("Value", [])]
    audit.record(jobs.engine, who, request, "export", "report", job_id)
    return PushOut(job_id=job_id, pushed=kinds, sop_instance_uids=sops)
