"""DICOMweb: STOW-RS (a PACS pushes), QIDO-RS (search) and WADO-RS (retrieve studies, series and instances as
stored, metadata, frames, rendered PNG/JPEG; ``Accept`` negotiated, 406 otherwise; results included)."""

from __future__ import annotations

import io
import re
import secrets
from collections.abc import Iterator
from typing import Any

import pydicom
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from serving import audit, qido
from serving.auth import Principal
from serving.deps import clinical, get_store
from serving.problems import ApiProblem, responses
from serving.storage import StudyStore

router = APIRouter(prefix="/v1/dicomweb", tags=["dicomweb"])
DICOM_JSON = "application/dicom+json"
#: QIDO-RS answers: DICOM JSON (PS3.18 F.2), an array of datasets
_QIDO_DOC = {200: {"description": "matching datasets", "content": {DICOM_JSON: {
    "schema": {"type": "array", "items": {"type": "object"}}}}}}


def _el(vr: str, *values: object) -> dict:
    vals = [v for v in values if v not in (None, "")]
    return {"vr": vr, "Value": vals} if vals else {"vr": vr}


def split_multipart_related(body: bytes, content_type: str) -> list[bytes]:
    """The parts of a ``multipart/related`` body (headers stripped)."""
    m = re.search(r'boundary="?([^";]+)"?', content_type)
    if not m:
        raise ApiProblem(415, "unsupported-media-type", "STOW-RS needs Content-Type multipart/related; "
                         'type="application/dicom"; boundary=...')
    boundary = b"--" + m.group(1).encode()
    parts = []
    for chunk in body.split(boundary)[1:]:
        if chunk.startswith(b"--"):
            break
        head, sep, payload = chunk.partition(b"\r\n\r\n")
        if not sep:
            continue
        if payload.endswith(b"\r\n"):
            payload = payload[:-2]
        parts.append(payload)
    return parts


#: PS3.4 failure reasons used in STOW-RS responses (FailureReason, 0008,1197)
PROCESSING_FAILURE, DOES_NOT_MATCH, STUDY_MISMATCH = 0xC000, 0xA900, 0xC409


def _failed_item(sop_class: str, sop: str, reason: int) -> dict:
    item = {"00081197": _el("US", reason)}
    if sop_class:
        item["00081150"] = _el("UI", sop_class)
    if sop:
        item["00081155"] = _el("UI", sop)
    return item


async def _stow(request: Request, who: Principal, store: StudyStore, study_uid: str | None) -> JSONResponse:
    ctype = request.headers.get("content-type", "")
    if not ctype.startswith("multipart/related"):
        raise ApiProblem(415, "unsupported-media-type", 'send multipart/related; type="application/dicom"')
    body = await request.body()
    if not body:
        raise ApiProblem(400, "empty-body", "the STOW-RS request has no body; send the instances as "
                         'multipart/related; type="application/dicom" parts')
    parts = split_multipart_related(body, ctype)
    if not parts:
        raise ApiProblem(400, "no-parts", "no multipart part was found: the body's delimiters do not match the "
                         "boundary in Content-Type, or the body is not multipart/related")
    accepted: list[tuple[str, bytes]] = []
    failed: list[tuple[int, dict]] = []  # (part index, item): reported in the order of the parts
    for i, data in enumerate(parts):
        try:
            ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
            sop_class, sop = str(getattr(ds, "SOPClassUID", "")), str(getattr(ds, "SOPInstanceUID", ""))
        except Exception:  # noqa: BLE001 -- any unreadable part is a processing failure of that part
            failed.append((i, _failed_item("", "", PROCESSING_FAILURE)))
            continue
        if study_uid is not None and str(getattr(ds, "StudyInstanceUID", "")) != study_uid:
            failed.append((i, _failed_item(sop_class, sop, STUDY_MISMATCH)))
            continue
        accepted.append((f"part{i}", data))
    out = store.store(accepted, user=who.user)
    stored_sops = {s.sop_uid for s in out.stored}
    for name, _why in out.failed:  # refused by the store (pixel data length, missing UIDs...)
        i = int(name.removeprefix("part"))
        try:
            ds = pydicom.dcmread(io.BytesIO(parts[i]), stop_before_pixels=True)
            failed.append((i, _failed_item(str(getattr(ds, "SOPClassUID", "")),
                                           str(getattr(ds, "SOPInstanceUID", "")), DOES_NOT_MATCH)))
        except Exception:  # noqa: BLE001
            failed.append((i, _failed_item("", "", PROCESSING_FAILURE)))
    for uid in sorted({s.study_uid for s in out.stored}):
        audit.record(store.engine, who, request, "create", "study", uid)
    base = str(request.base_url).rstrip("/") + "/v1/dicomweb/studies"
    resp: dict = {}
    if study_uid is not None or out.stored:
        target = study_uid or sorted({s.study_uid for s in out.stored})[0]
        resp["00081190"] = _el("UR", f"{base}/{target}")
    if out.stored:
        resp["00081199"] = {"vr": "SQ", "Value": [
            {"00081150": _el("UI", s.sop_class_uid), "00081155": _el("UI", s.sop_uid),
             "00081190": _el("UR", f"{base}/{s.study_uid}/series/{s.series_uid}/instances/{s.sop_uid}")}
            for s in out.stored if s.sop_uid in stored_sops]}
    if failed:
        resp["00081198"] = {"vr": "SQ", "Value": [item for _, item in sorted(failed, key=lambda f: f[0])]}
    status = 200 if not failed else (202 if out.stored else 409)
    return JSONResponse(resp, status_code=status, media_type=DICOM_JSON)


_STOW_BODY = {"requestBody": {"required": True, "content": {
    "multipart/related": {"schema": {"type": "string", "format": "binary"}}}}}


@router.post("/studies", summary="STOW-RS: store instances", response_class=JSONResponse,
             openapi_extra=_STOW_BODY, responses=responses(400, 409, 413, 415))
async def stow(request: Request, who: Principal = Depends(clinical),
               store: StudyStore = Depends(get_store)) -> JSONResponse:
    """Store the ``application/dicom`` parts; answers the PS3.18 store response: ReferencedSOPSequence with
    RetrieveURLs, FailedSOPSequence with PS3.4 failure reasons (0xC000 unreadable, 0xA900 pixel data or
    attributes do not match); 200 all stored, 202 some, 409 none; 400 for an empty or unparseable body."""
    return await _stow(request, who, store, None)


@router.post("/studies/{study_uid}", summary="STOW-RS: store instances into one study", response_class=JSONResponse,
             openapi_extra=_STOW_BODY, responses=responses(400, 409, 413, 415))
async def stow_study(study_uid: str, request: Request, who: Principal = Depends(clinical),
                     store: StudyStore = Depends(get_store)) -> JSONResponse:
    """As ``POST /studies``; an instance of another study fails with 0xC409 and is not stored."""
    return await _stow(request, who, store, study_uid)


STUDY_ATTRS = qido.attrs(
    ("StudyInstanceUID", "UI", "study_uid"), ("PatientName", "PN", "patient_name"), ("PatientID", "LO", "patient_id"),
    ("PatientBirthDate", "DA", "birth_date"), ("PatientSex", "CS", "patient_sex"), ("StudyDate", "DA", "study_date"),
    ("StudyTime", "TM", "study_time"), ("AccessionNumber", "SH", "accession"), ("StudyID", "SH", "study_id"),
    ("StudyDescription", "LO", "description"), ("ReferringPhysicianName", "PN", "referring"),
    ("ModalitiesInStudy", "CS", "modalities"), ("NumberOfStudyRelatedSeries", "IS", "n_series"),
    ("NumberOfStudyRelatedInstances", "IS", "n_instances"))
STUDY_RETURN = ("StudyInstanceUID", "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate",
                "StudyTime", "AccessionNumber", "StudyID", "ReferringPhysicianName", "ModalitiesInStudy",
                "NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances")
SERIES_ATTRS = {**qido.attrs(("SeriesInstanceUID", "UI", "series_uid"), ("Modality", "CS", "modality"),
                             ("SeriesNumber", "IS", "series_number"),
                             ("NumberOfSeriesRelatedInstances", "IS", "n_instances")),
                **{k: v for k, v in STUDY_ATTRS.items() if k in ("StudyInstanceUID", "PatientID", "PatientName",
                                                                 "StudyDate", "AccessionNumber")}}
SERIES_RETURN = ("StudyInstanceUID", "SeriesInstanceUID", "Modality", "SeriesNumber", "NumberOfSeriesRelatedInstances")
INSTANCE_ATTRS = {**qido.attrs(("SOPInstanceUID", "UI", "sop_uid"), ("SOPClassUID", "UI", "sop_class_uid"),
                               ("InstanceNumber", "IS", "instance_number")),
                  **{k: v for k, v in SERIES_ATTRS.items() if k in ("StudyInstanceUID", "SeriesInstanceUID",
                                                                    "Modality", "SeriesNumber", "PatientID")}}
INSTANCE_RETURN = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID", "InstanceNumber",
                   "Modality")


def _study_rows_all(store: StudyStore) -> dict[str, dict]:
    infos = store.study_infos()
    out: dict[str, dict] = {}
    for s in store.studies():
        out[s["study_uid"]] = {**infos.get(s["study_uid"], {}), "study_uid": s["study_uid"], "modalities": set(),
                               "series": set(), "n_instances": 0}
    for r in store.instances():
        st = out.get(r["study_uid"])
        if st is not None:
            st["modalities"].add(r["modality"])
            st["series"].add(r["series_uid"])
            st["n_instances"] += 1
    for st in out.values():
        st["modalities"], st["n_series"] = sorted(m for m in st["modalities"] if m), len(st["series"])
    return out


def _series_rows(store: StudyStore, study_uid: str | None) -> list[dict]:
    studies = _study_rows_all(store)
    by: dict[tuple[str, str], dict] = {}
    for r in store.instances(study_uid):
        key = (r["study_uid"], r["series_uid"])
        if key not in by:
            by[key] = {**studies.get(r["study_uid"], {}), "series_uid": r["series_uid"], "modality": r["modality"],
                       "series_number": r["series_number"], "n_instances": 0}
        by[key]["n_instances"] += 1
    return list(by.values())


def _instance_rows(store: StudyStore, study_uid: str | None, series_uid: str | None) -> list[dict]:
    studies = _study_rows_all(store)
    return [{**studies.get(r["study_uid"], {}), **r} for r in store.instances(study_uid, series_uid)]


def _qido(request: Request, rows: list[dict], table: dict, returned: tuple[str, ...]) -> JSONResponse:
    accept = request.headers.get("accept", "application/dicom+json")
    if not any(a in accept for a in ("application/dicom+json", "application/json", "*/*")):
        raise ApiProblem(406, "not-acceptable", "QIDO-RS answers application/dicom+json; ask for that")
    out = qido.search(rows, list(request.query_params.multi_items()), table, returned)
    return JSONResponse(out, media_type=DICOM_JSON)


@router.get("/studies", summary="QIDO-RS: search studies", responses={**responses(400, 406), **_QIDO_DOC})
def qido_studies(request: Request, who: Principal = Depends(clinical),
                 store: StudyStore = Depends(get_store)) -> JSONResponse:
    """Studies matching the query keys (PatientID, PatientName with wildcards, StudyDate ranges,
    ModalitiesInStudy, StudyInstanceUID lists...), ``limit``/``offset``, ``includefield``."""
    audit.record(store.engine, who, request, "search", "study", "")
    return _qido(request, list(_study_rows_all(store).values()), STUDY_ATTRS, STUDY_RETURN)


@router.get("/series", summary="QIDO-RS: search all series", responses={**responses(400, 406), **_QIDO_DOC})
def qido_all_series(request: Request, who: Principal = Depends(clinical),
                    store: StudyStore = Depends(get_store)) -> JSONResponse:
    """Series of every study matching the query keys (series keys and PatientID/StudyDate...)."""
    audit.record(store.engine, who, request, "search", "series", "")
    return _qido(request, _series_rows(store, None), SERIES_ATTRS, SERIES_RETURN)


@router.get("/studies/{study_uid}/series", summary="QIDO-RS: search a study's series",
            responses={**responses(400, 404), **_QIDO_DOC})
def qido_series(study_uid: str, request: Request, who: Principal = Depends(clinical),
                store: StudyStore = Depends(get_store)) -> JSONResponse:
    """Series of one study matching the query keys."""
    _study_rows(store, study_uid)
    audit.record(store.engine, who, request, "search", "series", study_uid)
    return _qido(request, _series_rows(store, study_uid), SERIES_ATTRS, SERIES_RETURN)


@router.get("/instances", summary="QIDO-RS: search all instances", responses={**responses(400, 406), **_QIDO_DOC})
def qido_all_instances(request: Request, who: Principal = Depends(clinical),
                       store: StudyStore = Depends(get_store)) -> JSONResponse:
    """Instances of every study matching the query keys."""
    audit.record(store.engine, who, request, "search", "instance", "")
    return _qido(request, _instance_rows(store, None, None), INSTANCE_ATTRS, INSTANCE_RETURN)


@router.get("/studies/{study_uid}/instances", summary="QIDO-RS: search a study's instances",
            responses={**responses(400, 404), **_QIDO_DOC})
def qido_study_instances(study_uid: str, request: Request, who: Principal = Depends(clinical),
                         store: StudyStore = Depends(get_store)) -> JSONResponse:
    """Instances of one study matching the query keys."""
    _study_rows(store, study_uid)
    audit.record(store.engine, who, request, "search", "instance", study_uid)
    return _qido(request, _instance_rows(store, study_uid, None), INSTANCE_ATTRS, INSTANCE_RETURN)


@router.get("/studies/{study_uid}/series/{series_uid}/instances", summary="QIDO-RS: search a series' instances",
            responses={**responses(400, 404), **_QIDO_DOC})
def qido_instances(study_uid: str, series_uid: str, request: Request, who: Principal = Depends(clinical),
                   store: StudyStore = Depends(get_store)) -> JSONResponse:
    """Instances of one series matching the query keys."""
    rows = _instance_rows(store, study_uid, series_uid)
    if not rows:
        raise ApiProblem(404, "series-not-found", f"study {study_uid} has no series {series_uid}")
    audit.record(store.engine, who, request, "search", "instance", series_uid)
    return _qido(request, rows, INSTANCE_ATTRS, INSTANCE_RETURN)


_DICOM_PARTS = 'multipart/related; type="application/dicom"'
_MULTIPART_DOC = {"content": {"multipart/related": {"schema": {"type": "string", "format": "binary"}}}}


def _accept(request: Request) -> list[tuple[str, dict[str, str], float]]:
    """The ``Accept`` header as (media type, parameters, q) in preference order (RFC 9110 12.5.1)."""
    out = []
    for i, item in enumerate(request.headers.get("accept", "*/*").split(",")):
        media, *params = [p.strip() for p in item.split(";")]
        kv = {}
        for p in params:
            k, _, v = p.partition("=")
            kv[k.strip().lower()] = v.strip().strip('"')
        q = kv.pop("q", "1")
        try:
            qv = float(q)
        except ValueError:
            qv = 0.0
        if media and qv > 0:
            out.append((media.lower(), kv, qv - i * 1e-6))
    return sorted(out, key=lambda t: -t[2])


def _negotiate_dicom(request: Request, syntaxes: set[str]) -> None:
    """Retrieve as stored (``multipart/related; type="application/dicom"``): 406 unless the client accepts that,
    with ``transfer-syntax`` absent, ``*`` or the stored one (medai does not transcode)."""
    for media, kv, _ in _accept(request):
        if media in ("*/*", "multipart/*") or (media == "multipart/related" and kv.get("type", "application/dicom")
                                                 in ("application/dicom", "*/*")):
            ts = kv.get("transfer-syntax", "*")
            if ts == "*" or syntaxes <= {ts}:
                return
    raise ApiProblem(406, "not-acceptable", "instances are retrieved as stored: ask for "
                     f'{_DICOM_PARTS} (transfer-syntax="*" or the stored one: {", ".join(sorted(syntaxes))}); '
                     "rendered images are at .../rendered (image/png or image/jpeg)")


def _syntax(path: Any) -> str:
    return str(pydicom.dcmread(path, stop_before_pixels=True, specific_tags=[]).file_meta.TransferSyntaxUID)


def _dicom_parts(store: StudyStore, rows: list[dict], request: Request) -> StreamingResponse:
    """The instances as ``multipart/related; type="application/dicom"``, streamed one file at a time (a study of
    thousands of images is never held in memory)."""
    paths = [store.blobs.path(r["sha256"]) for r in rows]
    _negotiate_dicom(request, {_syntax(p) for p in paths})
    boundary = "medai-" + secrets.token_hex(8)

    def parts() -> Iterator[bytes]:
        for p in paths:
            yield f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
            with open(p, "rb") as fh:
                while chunk := fh.read(1 << 20):
                    yield chunk
            yield b"\r\n"
        yield f"--{boundary}--\r\n".encode()

    return StreamingResponse(parts(), media_type=f"{_DICOM_PARTS}; boundary={boundary}",
                             headers={"Cache-Control": "private, no-store"})


@router.get("/studies/{study_uid}", summary="WADO-RS: retrieve a study", response_class=Response,
            responses={**responses(404, 406), 200: _MULTIPART_DOC})
def wado_study(study_uid: str, request: Request, who: Principal = Depends(clinical),
               store: StudyStore = Depends(get_store)) -> Response:
    """Every instance of the study (results included) as ``multipart/related; type="application/dicom"``."""
    rows = store.instances(study_uid)
    if not rows:
        raise ApiProblem(404, "study-not-found", f"no stored study {study_uid}")
    resp = _dicom_parts(store, rows, request)
    audit.record(store.engine, who, request, "read", "study", study_uid)
    return resp


@router.get("/studies/{study_uid}/series/{series_uid}", summary="WADO-RS: retrieve a series", response_class=Response,
            responses={**responses(404, 406), 200: _MULTIPART_DOC})
def wado_series(study_uid: str, series_uid: str, request: Request, who: Principal = Depends(clinical),
                store: StudyStore = Depends(get_store)) -> Response:
    """Every instance of the series as ``multipart/related; type="application/dicom"``."""
    rows = store.instances(study_uid, series_uid)
    if not rows:
        raise ApiProblem(404, "series-not-found", f"study {study_uid} has no series {series_uid}")
    resp = _dicom_parts(store, rows, request)
    audit.record(store.engine, who, request, "read", "series", series_uid)
    return resp


@router.get("/studies/{study_uid}/series/{series_uid}/instances/{sop_uid}", summary="WADO-RS: retrieve an instance",
            response_class=Response, responses={**responses(404, 406), 200: _MULTIPART_DOC})
def wado_instance(study_uid: str, series_uid: str, sop_uid: str, request: Request,
                  who: Principal = Depends(clinical), store: StudyStore = Depends(get_store)) -> Response:
    """The instance as ``multipart/related; type="application/dicom"``."""
    row = _instance_row(store, study_uid, series_uid, sop_uid)
    resp = _dicom_parts(store, [row], request)
    audit.record(store.engine, who, request, "read", "instance", sop_uid)
    return resp


_RENDERED = ("image/png", "image/jpeg")


def _negotiate_image(request: Request) -> str:
    for media, _kv, _ in _accept(request):
        if media in _RENDERED:
            return media
        if media in ("*/*", "image/*"):
            return "image/png"
    raise ApiProblem(406, "not-acceptable", "rendered images are image/png or image/jpeg; ask for one of them")


def _render(ds: pydicom.Dataset, frame: int, media: str, window: str | None, quality: int) -> bytes:
    """One frame (1-based) as an 8-bit PNG/JPEG: modality LUT, then the ``window`` (``center,width[,linear]``,
    PS3.18 8.3.5.1.3), else the instance's own VOI window, else its full range. Colour images pass unchanged."""
    import numpy as np
    from PIL import Image
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    arr = ds.pixel_array
    n = int(getattr(ds, "NumberOfFrames", 1) or 1)
    if n > 1:
        arr = arr[frame - 1]
    if int(getattr(ds, "SamplesPerPixel", 1) or 1) == 3:
        img = Image.fromarray(np.asarray(arr, dtype=np.uint8), "RGB")
    else:
        x = apply_modality_lut(arr, ds).astype(np.float64)
        if window:
            try:
                parts = window.split(",")
                center, width = float(parts[0]), float(parts[1])
                if width <= 0 or not np.isfinite([center, width]).all() or parts[2:] not in ([], ["linear"]):
                    raise ValueError
            except (ValueError, IndexError):
                raise ApiProblem(400, "bad-window", f"window={window!r}: give center,width[,linear] with "
                                 "width > 0") from None
            lo, hi = center - width / 2, center + width / 2
        elif "WindowCenter" in ds and "WindowWidth" in ds:
            x = apply_voi_lut(x, ds).astype(np.float64)
            lo, hi = float(x.min()), float(x.max())
        else:
            lo, hi = float(x.min()), float(x.max())
        y = np.clip((x - lo) / max(hi - lo, 1e-9), 0, 1) * 255.0
        if str(getattr(ds, "PhotometricInterpretation", "")) == "MONOCHROME1":
            y = 255.0 - y
        img = Image.fromarray(np.round(y).astype(np.uint8), "L")
    out = io.BytesIO()
    if media == "image/jpeg":
        img.save(out, "JPEG", quality=quality)
    else:
        img.save(out, "PNG")
    return out.getvalue()


def _rendered(study_uid: str, series_uid: str, sop_uid: str, frame: int, request: Request, who: Principal,
              store: StudyStore, window: str | None, quality: int) -> Response:
    media = _negotiate_image(request)
    row = _instance_row(store, study_uid, series_uid, sop_uid)
    ds = pydicom.dcmread(store.blobs.path(row["sha256"]))
    if "PixelData" not in ds:
        raise ApiProblem(404, "no-pixel-data", f"instance {sop_uid} has no pixel data (an SR or a SEG's "
                         "frames are not an image to render)")
    n = int(getattr(ds, "NumberOfFrames", 1) or 1)
    if not 1 <= frame <= n:
        raise ApiProblem(404, "frame-not-found", f"instance {sop_uid} has frames 1-{n}, not {frame}")
    data = _render(ds, frame, media, window, quality)
    audit.record(store.engine, who, request, "read", "rendered", sop_uid)
    return Response(data, media_type=media, headers={"Cache-Control": "private, max-age=3600"})


_IMAGE_DOC = {200: {"content": {m: {"schema": {"type": "string", "format": "binary"}} for m in _RENDERED}}}


@router.get("/studies/{study_uid}/series/{series_uid}/instances/{sop_uid}/rendered",
            summary="WADO-RS: an instance rendered (PNG/JPEG)", response_class=Response,
            responses={**responses(400, 404, 406), **_IMAGE_DOC})
def wado_rendered(study_uid: str, series_uid: str, sop_uid: str, request: Request,
                  window: str | None = Query(None, description="center,width[,linear] (default: the instance's)"),
                  quality: int = Query(90, ge=1, le=100, description="JPEG quality"),
                  who: Principal = Depends(clinical), store: StudyStore = Depends(get_store)) -> Response:
    """The instance's first frame as ``image/png`` (default) or ``image/jpeg`` (``Accept``), 8-bit, windowed."""
    return _rendered(study_uid, series_uid, sop_uid, 1, request, who, store, window, quality)


@router.get("/studies/{study_uid}/series/{series_uid}/instances/{sop_uid}/frames/{frame}/rendered",
            summary="WADO-RS: a frame rendered (PNG/JPEG)", response_class=Response,
            responses={**responses(400, 404, 406), **_IMAGE_DOC})
def wado_frame_rendered(study_uid: str, series_uid: str, sop_uid: str, frame: int, request: Request,
                        window: str | None = Query(None, description="center,width[,linear]"),
                        quality: int = Query(90, ge=1, le=100, description="JPEG quality"),
                        who: Principal = Depends(clinical), store: StudyStore = Depends(get_store)) -> Response:
    """One frame (1-based) as ``image/png`` or ``image/jpeg``."""
    return _rendered(study_uid, series_uid, sop_uid, frame, request, who, store, window, quality)


def _instance_row(store: StudyStore, study_uid: str, series_uid: str, sop_uid: str) -> dict:
    rows = [r for r in store.instances(study_uid, series_uid) if r["sop_uid"] == sop_uid]
    if not rows:
        raise ApiProblem(404, "instance-not-found", f"no instance {sop_uid} in series {series_uid} of {study_uid}")
    return rows[0]


def _metadata(ds: pydicom.Dataset, uri: str) -> dict:
    """DICOM JSON of a header read without pixels; bulk data (pixels too) as BulkDataURI (PS3.18 F.2)."""
    out = ds.to_json_dict(bulk_data_threshold=1024, bulk_data_element_handler=lambda _el: uri)
    if "Rows" in ds and "7FE00010" not in out:
        out["7FE00010"] = {"vr": "OW" if int(getattr(ds, "BitsAllocated", 16) or 16) > 8 else "OB", "BulkDataURI": uri}
    return out


@router.get("/studies/{study_uid}/series/{series_uid}/metadata", summary="WADO-RS: series metadata",
            responses={**responses(404), **_QIDO_DOC})
def wado_series_metadata(study_uid: str, series_uid: str, request: Request, who: Principal = Depends(clinical),
                         store: StudyStore = Depends(get_store)) -> JSONResponse:
    """Every instance header of the series as DICOM JSON (no pixel data)."""
    rows = store.instances(study_uid, series_uid)
    if not rows:
        raise ApiProblem(404, "series-not-found", f"study {study_uid} has no series {series_uid}")
    audit.record(store.engine, who, request, "read", "series", series_uid)
    base = f"/v1/dicomweb/studies/{study_uid}/series/{series_uid}/instances"
    out = [_metadata(pydicom.dcmread(store.blobs.path(r["sha256"]), stop_before_pixels=True),
                     f"{base}/{r['sop_uid']}") for r in rows]
    return JSONResponse(out, media_type=DICOM_JSON)


@router.get("/studies/{study_uid}/series/{series_uid}/instances/{sop_uid}/metadata",
            summary="WADO-RS: instance metadata", responses={**responses(404), **_QIDO_DOC})
def wado_instance_metadata(study_uid: str, series_uid: str, sop_uid: str, request: Request,
                           who: Principal = Depends(clinical), store: StudyStore = Depends(get_store)) -> JSONResponse:
    """The instance header as DICOM JSON (no pixel data)."""
    row = _instance_row(store, study_uid, series_uid, sop_uid)
    audit.record(store.engine, who, request, "read", "instance", sop_uid)
    ds = pydicom.dcmread(store.blobs.path(row["sha256"]), stop_before_pixels=True)
    uri = f"/v1/dicomweb/studies/{study_uid}/series/{series_uid}/instances/{sop_uid}"
    return JSONResponse([_metadata(ds, uri)], media_type=DICOM_JSON)


@router.get("/studies/{study_uid}/series/{series_uid}/instances/{sop_uid}/frames/{frames}",
            summary="WADO-RS: retrieve frames (uncompressed)", response_class=Response,
            responses={**responses(404, 406), 200: {"content": {"multipart/related": {
                "schema": {"type": "string", "format": "binary"}}}}})
def wado_frames(study_uid: str, series_uid: str, sop_uid: str, request: Request,
                frames: str = Path(pattern=r"^[0-9]+(,[0-9]+)*$", max_length=2000,
                                   description="1-based frame numbers, comma-separated"),
                who: Principal = Depends(clinical), store: StudyStore = Depends(get_store)) -> Response:
    """Frames (1-based, comma-separated) as ``multipart/related; type="application/octet-stream"``: the native
    little-endian pixel values of each frame (PS3.18 8.7.3.5; compressed instances are decoded here)."""
    import numpy as np

    accept = request.headers.get("accept", "*/*")
    if not any(a in accept for a in ("application/octet-stream", "multipart/related", "*/*")):
        raise ApiProblem(406, "not-acceptable", 'frames are served as multipart/related; '
                         'type="application/octet-stream"; ask for that')
    try:
        wanted = [int(f) for f in frames.split(",")]
    except ValueError:
        raise ApiProblem(400, "bad-frame-list", f"{frames!r} is not a comma-separated list of frame numbers") from None
    row = _instance_row(store, study_uid, series_uid, sop_uid)
    ds = pydicom.dcmread(store.blobs.path(row["sha256"]))
    if "PixelData" not in ds:
        raise ApiProblem(404, "no-pixel-data", f"instance {sop_uid} has no pixel data")
    n = int(getattr(ds, "NumberOfFrames", 1) or 1)
    bad = [f for f in wanted if not 1 <= f <= n]
    if bad:
        raise ApiProblem(404, "frame-not-found", f"instance {sop_uid} has frames 1-{n}, not {bad}")
    arr = ds.pixel_array
    if n == 1:
        arr = arr[None]
    audit.record(store.engine, who, request, "read", "frames", sop_uid)
    boundary = "medai-" + row["sha256"][:16]
    body = b""
    for f in wanted:
        data = np.ascontiguousarray(arr[f - 1]).astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
        body += (f"--{boundary}\r\nContent-Type: application/octet-stream; "
                 f"transfer-syntax=1.2.840.10008.1.2.1\r\n\r\n").encode() + data + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    return Response(body, media_type=f'multipart/related; type="application/octet-stream"; boundary={boundary}',
                    headers={"Cache-Control": "private, max-age=3600"})


def _study_rows(store: StudyStore, study_uid: str) -> list[dict]:
    rows = store.instances(study_uid)
    if not rows:
        raise ApiProblem(404, "study-not-found", f"no stored study {study_uid}")
    return rows
