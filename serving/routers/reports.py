"""Report versions of an analysis: the viewer's description, label maps, reader corrections (a new version measured
again), sign-off (locks the report; SR VERIFIED, PDF with the signer) and sending a signed report to the PACS.
"""

from __future__ import annotations

import gzip
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, Field

from serving import audit
from serving.auth import Principal, Role
from serving.deps import clinical, get_jobs, get_models, get_settings, get_store, require
from serving.jobs import JobRunner
from serving.models import ModelRegistry
from serving.problems import ApiProblem, responses
from serving.routers.analyses import MEDIA
from serving.settings import ApiSettings
from serving.storage import StudyStore
from serving.versions import Versions

router = APIRouter(prefix="/v1/analyses", tags=["reports"])
signer = require(Role.CLINICIAN)


def get_versions(jobs: JobRunner = Depends(get_jobs), store: StudyStore = Depends(get_store),
                 models: ModelRegistry = Depends(get_models),
                 settings: ApiSettings = Depends(get_settings)) -> Versions:
    """The report versions service."""
    return Versions(jobs, store, models, settings.deidentify)


class VersionOut(BaseModel):
    """One version of an analysis report."""

    job_id: str
    version: int
    parent: int | None
    created: float
    created_by: str
    signed: bool
    signed_by: str | None = None
    signed_at: float | None = None
    edits: dict[str, Any] | None = None
    results: dict[str, str] = Field(description="result kind -> URL")


def version_out(row: dict[str, Any]) -> VersionOut:
    base = f"/v1/analyses/{row['job_id']}/versions/{row['version']}/results"
    return VersionOut(job_id=row["job_id"], version=row["version"], parent=row["parent"], created=row["created"],
                      created_by=row["created_by"], signed=row["signed_at"] is not None,
                      signed_by=row["signed_name"], signed_at=row["signed_at"], edits=row["edits"],
                      results={k: f"{base}/{k}" for k in row["files"]})


@router.get("/{job_id}/versions", response_model=list[VersionOut], summary="Report versions",
            responses=responses(404, 409))
def list_versions(job_id: str, request: Request, who: Principal = Depends(clinical),
                  versions: Versions = Depends(get_versions)) -> list[VersionOut]:
    """Every version, oldest first: 1 is the analysis' own; each correction adds one; a signed one locks."""
    rows = versions.rows(job_id)
    audit.record(versions.engine, who, request, "read", "report", job_id)
    return [version_out(r) for r in rows]


@router.get("/{job_id}/versions/{version}/results/{kind}", summary="A result file of one version",
            response_class=FileResponse, responses={**responses(404, 409), 200: {"content": {
                m: {} for m in sorted(set(MEDIA.values()))}}})
def version_result(job_id: str, version: int, kind: str, request: Request, who: Principal = Depends(clinical),
                   versions: Versions = Depends(get_versions)) -> FileResponse:
    """``json``, ``seg``, ``sr``, ``pdf``, ``fhir``, ``labels`` (and ``*_draft`` once signed) of a version."""
    row = versions.row(job_id, version)
    path = versions.file(row, kind)
    audit.record(versions.engine, who, request, "read", "report", f"{job_id}/v{version}/{kind}")
    media = "application/fhir+json" if kind.startswith("fhir") else MEDIA.get(path.suffix, "application/octet-stream")
    return FileResponse(path, media_type=media, filename=f"v{version}-{path.name}")


class ViewerLayer(BaseModel):
    """A label map the viewer can overlay."""

    kind: str
    role: str
    shape: list[int]
    labels: list[dict[str, Any]] = Field(description="value, name, color [r, g, b] (the SEG's label table)")
    frames: list[list[str | None]] = Field(description="WADO-RS frame URL of the stored image under each plane, "
                                           "[t][z] (one row for 3-D maps)")
    url: str = Field(description="the label map: uint8, row-major planes, gzip content-encoded")
    ed_frame: int | None = None
    es_frame: int | None = None


class ViewerOut(BaseModel):
    """What the viewer needs for one report version."""

    job_id: str
    study_instance_uid: str
    version: VersionOut
    versions: list[VersionOut]
    layers: list[ViewerLayer]
    patient: dict[str, str] = Field(default_factory=dict, description="name, id, sex, study_date of the stored "
                                    "(original) study: the report itself carries only the pseudonym")
    report: dict[str, Any] = Field(description="the version's report.json")


@router.get("/{job_id}/viewer", response_model=ViewerOut, summary="Viewer description of a report version",
            responses=responses(404, 409))
def viewer(job_id: str, request: Request, version: int | None = Query(None, ge=1),
           who: Principal = Depends(clinical), versions: Versions = Depends(get_versions)) -> ViewerOut:
    """Layers (label maps over the stored images they were computed on), the report and the version list."""
    from medai.reports.labelmaps import read_meta, read_sops

    job = versions.job(job_id)
    rows = versions.rows(job_id)
    row = versions.row(job_id, version)
    layers: list[ViewerLayer] = []
    if "labels" in row["files"]:
        path = versions.file(row, "labels")
        meta = read_meta(path)
        orig = versions.source_map(job)
        series_of = {r["sop_uid"]: r["series_uid"] for r in versions.store.instances(job["study_uid"])}
        base = f"/v1/dicomweb/studies/{job['study_uid']}/series"

        def url(sop: str) -> str | None:
            o = orig.get(sop)
            return f"{base}/{series_of[o]}/instances/{o}/frames/1" if o in series_of else None

        for kind, info in meta["kinds"].items():
            for role, r in info["roles"].items():
                sops = read_sops(path, kind, role)
                grid = sops if sops.ndim == 2 else sops[None, :]
                layers.append(ViewerLayer(
                    kind=kind, role=role, shape=r["shape"],
                    labels=[{"value": lab["value"], "name": lab["name"], "color": lab["color"]} for lab in r["labels"]],
                    frames=[[url(str(s)) for s in row_] for row_ in grid],
                    url=f"/v1/analyses/{job_id}/versions/{row['version']}/labels/{kind}/{role}",
                    ed_frame=info["extras"].get("ed_frame"), es_frame=info["extras"].get("es_frame")))
    info = versions.store.study_infos().get(job["study_uid"], {})
    patient = {"name": str(info.get("patient_name", "")).replace("^", " ").strip(), "id": info.get("patient_id", ""),
               "sex": info.get("patient_sex", ""), "study_date": info.get("study_date", ""),
               "description": info.get("description", "")}
    audit.record(versions.engine, who, request, "read", "report", f"{job_id}/v{row['version']}")
    return ViewerOut(job_id=job_id, study_instance_uid=job["study_uid"], version=version_out(row),
                     versions=[version_out(r) for r in rows], layers=layers, patient=patient,
                     report=versions.report(row))


@router.get("/{job_id}/versions/{version}/labels/{kind}/{role}", summary="A label map (uint8 planes)",
            response_class=Response, responses={**responses(404, 409), 200: {
                "content": {"application/octet-stream": {}}}})
def labels(job_id: str, version: int, kind: str, role: str, request: Request, who: Principal = Depends(clinical),
           versions: Versions = Depends(get_versions)) -> Response:
    """The label values of every plane, row-major uint8 (shape in the viewer description), gzip-encoded."""
    from medai.errors import InputValidationError
    from medai.reports.labelmaps import read_array

    row = versions.row(job_id, version)
    try:
        arr = read_array(versions.file(row, "labels"), kind, role)
    except InputValidationError as exc:
        raise ApiProblem(404, "labels-not-found", exc.message) from None
    audit.record(versions.engine, who, request, "read", "report", f"{job_id}/v{version}/labels")
    return Response(gzip.compress(arr.tobytes(), compresslevel=1), media_type="application/octet-stream",
                    headers={"Content-Encoding": "gzip", "X-Label-Shape": ",".join(map(str, arr.shape)),
                             "Cache-Control": "private, max-age=3600"})


class Plane(BaseModel):
    """One corrected plane: its index and every label value of it."""

    index: list[int] = Field(min_length=1, max_length=2, description="[t, z] (cine) or [z]")
    data: str = Field(min_length=1, description="base64 of the plane's uint8 label values, row-major")


class Correction(BaseModel):
    """A reader's correction of a label map."""

    base_version: int = Field(ge=1, description="the version corrected (must be the latest)")
    kind: str = Field(min_length=1, max_length=32)
    role: str = Field(min_length=1, max_length=32)
    planes: list[Plane] = Field(min_length=1, max_length=4096)


@router.post("/{job_id}/versions", status_code=201, response_model=VersionOut, summary="Correct a label map",
             responses=responses(404, 409, 422))
async def correct(job_id: str, body: Correction, request: Request, who: Principal = Depends(clinical),
                  versions: Versions = Depends(get_versions)) -> VersionOut:
    """Replace whole planes of a label map; every measurement is computed again from the corrected map by the
    analysis' own code and a new version (JSON, SEG, SR, PDF, FHIR) is stored. The corrected version keeps the
    original; the audit log records who changed which planes."""
    row = await run_in_threadpool(versions.correct, job_id, body.base_version, body.kind, body.role,
                                  [p.model_dump() for p in body.planes], who)
    audit.record(versions.engine, who, request, "correct", "report",
                 f"{job_id}/v{row['version']}:" + ",".join("-".join(map(str, p.index)) for p in body.planes), 201)
    return version_out(row)


class SignBody(BaseModel):
    """Sign-off details."""

    organization: str = Field("", max_length=64, description="the signer's organisation (VerifyingOrganization)")


@router.post("/{job_id}/versions/{version}/sign", response_model=VersionOut, summary="Sign a report version",
             responses=responses(404, 409))
async def sign(job_id: str, version: int, request: Request, body: SignBody | None = None,
               who: Principal = Depends(signer), versions: Versions = Depends(get_versions)) -> VersionOut:
    """Sign (clinicians only): the SR becomes VERIFIED with the verifying observer and time, the PDF shows the
    signer, the FHIR report is final; the report is locked."""
    org = (body.organization if body else "") or "medai"
    row = await run_in_threadpool(versions.sign, job_id, version, who, org)
    audit.record(versions.engine, who, request, "sign", "report", f"{job_id}/v{version}")
    return version_out(row)


class SendOut(BaseModel):
    """What was sent to the PACS."""

    job_id: str
    version: int
    pushed: list[str]
    sop_instance_uids: list[str]


@router.post("/{job_id}/versions/{version}/send", response_model=SendOut, summary="Send a signed report to the PACS",
             responses=responses(404, 409, 502))
async def send(job_id: str, version: int, request: Request, who: Principal = Depends(clinical),
               versions: Versions = Depends(get_versions), settings: ApiSettings = Depends(get_settings)) -> SendOut:
    """STOW-RS the signed version's SEG(s) and verified SR to the configured DICOMweb peer, re-identified at the
    site boundary (they reference the original study and images, not the de-identified working copy)."""
    from serving.routers.pacs import _client

    client = _client(settings)
    row = versions.row(job_id, version)
    if not row["signed_at"]:
        raise ApiProblem(409, "report-not-signed", f"version {version} is not signed; sign it before sending it")
    from serving.reid import for_pacs

    kinds = [k for k in row["files"] if (k == "sr" or k.startswith("seg")) and not k.endswith("_draft")]
    job = versions.job(job_id)
    data = await run_in_threadpool(for_pacs, versions.store, job["study_uid"], settings.deidentify,
                                   [versions.file(row, k).read_bytes() for k in kinds])
    resp = await run_in_threadpool(client.stow, data)
    sops = [i["00081155"]["Value"][0] for i in resp.get("00081199", {}).get("Value", [])]
    audit.record(versions.engine, who, request, "export", "report", f"{job_id}/v{version}")
    return SendOut(job_id=job_id, version=version, pushed=kinds, sop_instance_uids=sops)
