"""Studies: multipart upload of DICOM files or zip archives, listing and details."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from pathlib import Path

from fastapi import APIRouter, Depends, File, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel

from medai.dicom.ingest import IngestLimits
from medai.errors import IngestError
from serving import audit
from serving.auth import Principal
from serving.deps import clinical, get_store
from serving.problems import ApiProblem, responses
from serving.storage import StudyStore, unpacked_uploads

router = APIRouter(prefix="/v1/studies", tags=["studies"])
#: what one uploaded file may unpack to: an instance (or archive member) up to 2 GiB, zips two levels deep
UPLOAD_LIMITS = IngestLimits(max_file_bytes=2 * 1024**3)
#: uploads unpacked at once per process: header parsing is Python under the GIL, so more threads than half the
#: cores only contend (4 at once on 2 cores were 2.3x slower than one after another); the event loop stays free
UNPACKING_SLOTS = max(1, (os.cpu_count() or 2) // 2)


def _unpacking(request: Request) -> asyncio.Semaphore:
    """The app's upload slots (made on first use, on the app's own event loop)."""
    sem = getattr(request.app.state, "unpacking", None)
    if sem is None:
        sem = request.app.state.unpacking = asyncio.Semaphore(UNPACKING_SLOTS)
    return sem


class SeriesOut(BaseModel):
    """A stored series."""

    series_instance_uid: str
    modality: str
    series_number: int | None
    n_instances: int


class StudyOut(BaseModel):
    """A stored study."""

    study_instance_uid: str
    n_instances: int
    series: list[SeriesOut]


class UploadOut(BaseModel):
    """What an upload stored and what it refused."""

    studies: list[StudyOut]
    stored: int
    refused: list[dict[str, str]]


def study_out(store: StudyStore, uid: str) -> StudyOut:
    rows = store.instances(uid)
    by: dict[str, list[dict]] = {}
    for r in rows:
        by.setdefault(r["series_uid"], []).append(r)
    return StudyOut(study_instance_uid=uid, n_instances=len(rows), series=[
        SeriesOut(series_instance_uid=s, modality=v[0]["modality"], series_number=v[0]["series_number"],
                  n_instances=len(v)) for s, v in by.items()])


@router.post("", status_code=201, response_model=UploadOut, summary="Upload DICOM files or zip archives",
             responses=responses(413))
async def upload(request: Request, files: list[UploadFile] = File(..., description="DICOM files and/or zip archives",
                                                                min_length=1),
                 who: Principal = Depends(clinical), store: StudyStore = Depends(get_store)) -> UploadOut:
    """Store the uploaded instances durably (content-addressed); 422 when nothing in the upload is DICOM. Zip
    archives are unpacked one member at a time to disk within the ingest limits (never whole in memory)."""
    skipped: list[tuple[str, str]] = []
    scratch = Path(tempfile.mkdtemp(prefix=".upload-", dir=store.root))  # the store's filesystem: moved, not copied
    try:
        parts = unpacked_uploads([(f.filename or "upload", f.file) for f in files], scratch, UPLOAD_LIMITS, skipped)
        async with _unpacking(request):
            out = await run_in_threadpool(store.store, parts, who.user)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    refused = [{"source": n, "reason": r} for n, r in skipped + out.failed]
    if not out.stored:
        raise IngestError("no DICOM instance in the upload; send DICOM files or a zip of them", details=refused)
    uids = sorted({s.study_uid for s in out.stored})
    for uid in uids:
        audit.record(store.engine, who, request, "create", "study", uid, 201)
    return UploadOut(studies=[study_out(store, u) for u in uids], stored=len(out.stored), refused=refused)


@router.get("", response_model=list[StudyOut], summary="List stored studies", responses=responses())
def list_studies(request: Request, who: Principal = Depends(clinical),
                 store: StudyStore = Depends(get_store)) -> list[StudyOut]:
    """Every stored study with its series."""
    audit.record(store.engine, who, request, "list", "study", "")
    return [study_out(store, s["study_uid"]) for s in store.studies()]


@router.get("/{study_uid}", response_model=StudyOut, summary="One stored study", responses=responses(404))
def get_study(study_uid: str, request: Request, who: Principal = Depends(clinical),
              store: StudyStore = Depends(get_store)) -> StudyOut:
    """The study's series and instance counts."""
    if not store.has_study(study_uid):
        raise ApiProblem(404, "study-not-found", f"no stored study {study_uid}; upload it first")
    audit.record(store.engine, who, request, "read", "study", study_uid)
    return study_out(store, study_uid)


