"""medai's DICOMweb driven by ``dicomweb-client`` (a real third-party client) over HTTP against a live uvicorn:
QIDO-RS at the study, series and instance levels with attribute matching that must also return nothing,
``limit``/``offset``/``includefield``, unsupported keys refused, and WADO-RS metadata, frames and instances.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest

from serving.auth import Role, create_key
from tests.serving.conftest import make_settings

dicomweb_client = pytest.importorskip("dicomweb_client", reason="dicomweb-client is in the test extra")


def _two_patients() -> list[bytes]:
    """Two studies of two patients (different dates, one MR cine, one with a second series)."""
    import io

    from medai.dicom.phantoms import make_cine_sax_study

    a = make_cine_sax_study(rows=24, cols=24, n_slices=2, n_phases=2, seed=1).to_bytes()
    b = []
    for i, blob in enumerate(make_cine_sax_study(rows=24, cols=24, n_slices=2, n_phases=2, seed=2).to_bytes()):
        ds = pydicom.dcmread(io.BytesIO(blob))
        ds.PatientID, ds.PatientName, ds.StudyDate, ds.AccessionNumber = "OTHER42", "Other^Patient", "20250615", "ACC2"
        if i == 0:  # a second series in that study
            ds.SeriesInstanceUID, ds.SeriesNumber, ds.Modality = ds.SeriesInstanceUID + ".9", 99, "OT"
        out = io.BytesIO()
        ds.save_as(out, enforce_file_format=True)
        b.append(out.getvalue())
    return a + b


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    import uvicorn

    from serving.app import create_app
    from serving.models import ModelRegistry

    tmp = tmp_path_factory.mktemp("dw")
    app = create_app(make_settings(tmp, job_workers=0), models=ModelRegistry([]))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    key = create_key(app.state.engine, Role.HOSPITAL_SYSTEM)[1]
    blobs = _two_patients()
    client = dicomweb_client.DICOMwebClient(f"http://127.0.0.1:{port}/v1/dicomweb", headers={"X-API-Key": key})
    client.store_instances([pydicom.dcmread(__import__("io").BytesIO(b)) for b in blobs])
    try:
        yield {"client": client, "blobs": blobs, "base": f"http://127.0.0.1:{port}", "key": key}
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _uids(results: list[dict], tag: str = "0020000D") -> set[str]:
    return {r[tag]["Value"][0] for r in results}


def _headers(live: dict[str, Any]) -> list[pydicom.Dataset]:
    import io

    return [pydicom.dcmread(io.BytesIO(b), stop_before_pixels=True) for b in live["blobs"]]


def test_study_search_filters_and_return_attributes(live: dict[str, Any]) -> None:
    c, ds = live["client"], _headers(live)
    a, b = ds[0], ds[-1]
    everything = c.search_for_studies()
    assert _uids(everything) == {a.StudyInstanceUID, b.StudyInstanceUID}
    by_patient = c.search_for_studies(search_filters={"PatientID": "OTHER42"})
    assert _uids(by_patient) == {b.StudyInstanceUID}
    row = by_patient[0]
    assert row["00100020"]["Value"] == ["OTHER42"] and row["00100010"]["Value"][0]["Alphabetic"] == "Other^Patient"
    assert row["00080020"]["Value"] == ["20250615"] and set(row["00080061"]["Value"]) == {"MR", "OT"}
    assert row["00201206"]["Value"] == [2]
    assert c.search_for_studies(search_filters={"PatientID": "NOPE"}) == []
    assert _uids(c.search_for_studies(search_filters={"PatientName": "other*"})) == {b.StudyInstanceUID}
    assert _uids(c.search_for_studies(search_filters={"StudyDate": "20250101-20251231"})) == {b.StudyInstanceUID}
    assert c.search_for_studies(search_filters={"StudyDate": "19000101-19001231"}) == []
    assert _uids(c.search_for_studies(search_filters={"ModalitiesInStudy": "OT"})) == {b.StudyInstanceUID}
    assert c.search_for_studies(search_filters={"ModalitiesInStudy": "CT"}) == []
    uid_list = f"{a.StudyInstanceUID},1.2.3.4"
    assert _uids(c.search_for_studies(search_filters={"StudyInstanceUID": uid_list})) == {a.StudyInstanceUID}
    assert _uids(c.search_for_studies(search_filters={"00100020": "OTHER42"})) == {b.StudyInstanceUID}  # by tag
    page1 = c.search_for_studies(limit=1)
    page2 = c.search_for_studies(limit=1, offset=1)
    assert len(page1) == len(page2) == 1 and _uids(page1) | _uids(page2) == _uids(everything)
    assert c.search_for_studies(offset=5) == []


def test_series_and_instance_searches(live: dict[str, Any]) -> None:
    c, ds = live["client"], _headers(live)
    b = ds[-1]
    series = c.search_for_series(b.StudyInstanceUID)
    assert len(series) == 2
    ot = c.search_for_series(b.StudyInstanceUID, search_filters={"Modality": "OT"})
    assert len(ot) == 1 and ot[0]["00200011"]["Value"] == [99]
    assert c.search_for_series(b.StudyInstanceUID, search_filters={"Modality": "CT"}) == []
    top = c.search_for_series(search_filters={"PatientID": "OTHER42"})  # top-level, patient key
    assert len(top) == 2
    inst = c.search_for_instances(b.StudyInstanceUID)
    assert len(inst) == 4
    one = c.search_for_instances(b.StudyInstanceUID, search_filters={"SOPInstanceUID": b.SOPInstanceUID})
    assert _uids(one, "00080018") == {b.SOPInstanceUID}
    assert len(c.search_for_instances()) == 8
    assert c.search_for_instances(search_filters={"SOPInstanceUID": "1.2.3"}) == []
    numbered = c.search_for_instances(b.StudyInstanceUID, b.SeriesInstanceUID,
                                      search_filters={"InstanceNumber": str(b.InstanceNumber)})
    assert _uids(numbered, "00080018") == {b.SOPInstanceUID}


def test_includefield_and_unsupported_keys(live: dict[str, Any]) -> None:
    import httpx

    c = live["client"]
    rows = c.search_for_studies(fields=["StudyDescription"])
    assert all("00081030" in r for r in rows)
    assert all("00081030" not in r for r in c.search_for_studies())
    h = {"X-API-Key": live["key"]}
    bad = httpx.get(f"{live['base']}/v1/dicomweb/studies", params={"PatientWeight": "70"}, headers=h)
    assert bad.status_code == 400 and "not supported" in bad.json()["detail"]
    assert httpx.get(f"{live['base']}/v1/dicomweb/studies", params={"limit": "-1"}, headers=h).status_code == 400
    xml = httpx.get(f"{live['base']}/v1/dicomweb/studies", headers={**h, "Accept": "application/dicom+xml"})
    assert xml.status_code == 406


def test_wado_metadata_frames_and_instance(live: dict[str, Any], tmp_path: Path) -> None:
    c, ds = live["client"], _headers(live)
    a = ds[0]
    meta = c.retrieve_series_metadata(a.StudyInstanceUID, a.SeriesInstanceUID)
    assert a.SOPInstanceUID in {m["00080018"]["Value"][0] for m in meta}
    frames = c.retrieve_instance_frames(a.StudyInstanceUID, a.SeriesInstanceUID, a.SOPInstanceUID, frame_numbers=[1],
                                        media_types=("application/octet-stream",))
    import io

    full = pydicom.dcmread(io.BytesIO(live["blobs"][0]))
    assert np.array_equal(np.frombuffer(frames[0], dtype="<u2").reshape(full.Rows, full.Columns), full.pixel_array)
    inst = c.retrieve_instance(a.StudyInstanceUID, a.SeriesInstanceUID, a.SOPInstanceUID)
    assert inst.SOPInstanceUID == a.SOPInstanceUID and np.array_equal(inst.pixel_array, full.pixel_array)


def test_wado_retrieve_study_and_series_as_stored_with_accept_negotiation(live: dict[str, Any]) -> None:
    import httpx

    c, ds = live["client"], _headers(live)
    b = ds[-1]
    study = c.retrieve_study(b.StudyInstanceUID)
    sent = {d.SOPInstanceUID: blob for d, blob in zip(ds, live["blobs"], strict=True)
            if d.StudyInstanceUID == b.StudyInstanceUID}
    assert {d.SOPInstanceUID for d in study} == set(sent) and len(study) == 4
    for d in study:  # byte-exact pixels of what was stored
        import io

        assert np.array_equal(d.pixel_array, pydicom.dcmread(io.BytesIO(sent[d.SOPInstanceUID])).pixel_array)
    series = c.retrieve_series(b.StudyInstanceUID, b.SeriesInstanceUID)
    assert {d.SOPInstanceUID for d in series} == {d.SOPInstanceUID for d in ds
                                                    if d.SeriesInstanceUID == b.SeriesInstanceUID}
    h = {"X-API-Key": live["key"]}
    url = f"{live['base']}/v1/dicomweb/studies/{b.StudyInstanceUID}"
    explicit = httpx.get(url, headers={**h, "Accept": 'multipart/related; type="application/dicom"; '
                                                     "transfer-syntax=1.2.840.10008.1.2.1"})
    assert explicit.status_code == 200 and explicit.headers["content-type"].startswith("multipart/related")
    jpeg_ts = httpx.get(url, headers={**h, "Accept": 'multipart/related; type="application/dicom"; '
                                                    "transfer-syntax=1.2.840.10008.1.2.4.50"})
    assert jpeg_ts.status_code == 406 and "as stored" in jpeg_ts.json()["detail"]
    assert httpx.get(url, headers={**h, "Accept": "application/dicom+xml"}).status_code == 406
    assert httpx.get(f"{live['base']}/v1/dicomweb/studies/1.2.3.4", headers=h).status_code == 404
    assert httpx.get(f"{url}/series/1.2.3", headers=h).status_code == 404


def test_wado_rendered_png_and_jpeg(live: dict[str, Any]) -> None:
    import io

    import httpx
    from PIL import Image

    c, ds = live["client"], _headers(live)
    a = ds[0]
    png = c.retrieve_instance_rendered(a.StudyInstanceUID, a.SeriesInstanceUID, a.SOPInstanceUID,
                                       media_types=("image/png",))
    img = np.asarray(Image.open(io.BytesIO(png)))
    full = pydicom.dcmread(io.BytesIO(live["blobs"][0]))
    assert img.shape == (full.Rows, full.Columns) and img.dtype == np.uint8
    assert img.min() == 0 and img.max() == 255  # the full range, stretched
    # the ordering of pixel values is kept (a monotone window)
    px = full.pixel_array.ravel()
    order = np.argsort(px, kind="stable")
    assert np.all(np.diff(img.ravel()[order].astype(int)) >= 0)
    jpg = c.retrieve_instance_frames_rendered(a.StudyInstanceUID, a.SeriesInstanceUID, a.SOPInstanceUID,
                                              frame_numbers=[1], media_types=("image/jpeg",))
    assert Image.open(io.BytesIO(jpg)).format == "JPEG"
    h = {"X-API-Key": live["key"]}
    url = (f"{live['base']}/v1/dicomweb/studies/{a.StudyInstanceUID}/series/{a.SeriesInstanceUID}/instances/"
           f"{a.SOPInstanceUID}")
    narrow = httpx.get(f"{url}/rendered", params={"window": f"{int(px.mean())},2"}, headers=h)
    assert narrow.status_code == 200 and set(np.unique(np.asarray(Image.open(io.BytesIO(narrow.content))))) <= \
        set(range(256)) and narrow.headers["content-type"] == "image/png"
    assert httpx.get(f"{url}/rendered", headers={**h, "Accept": "image/gif"}).status_code == 406
    assert httpx.get(f"{url}/rendered", params={"window": "40,-1"}, headers=h).status_code == 400
    assert httpx.get(f"{url}/frames/9/rendered", headers=h).status_code == 404


def _multipart(parts: list[bytes], boundary: str = "b0undary") -> tuple[bytes, str]:
    body = b"".join(f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + p + b"\r\n" for p in parts)
    return body + f"--{boundary}--\r\n".encode(), f'multipart/related; type="application/dicom"; boundary={boundary}'


def _truncated(blob: bytes) -> bytes:
    import io

    ds = pydicom.dcmread(io.BytesIO(blob))
    ds.SOPInstanceUID = ds.SOPInstanceUID + ".7"
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.PixelData = ds.PixelData[: len(ds.PixelData) // 2]
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def test_stow_rs_responses(live: dict[str, Any]) -> None:
    """PS3.18 store responses: RetrieveURLs for what was stored, FailedSOPSequence with reasons and SOP UIDs,
    200/202/409, and 400 for a body that holds no part at all."""
    import io

    import httpx

    base, h = live["base"] + "/v1/dicomweb", {"X-API-Key": live["key"]}
    good = live["blobs"][0]
    good_ds = pydicom.dcmread(io.BytesIO(good), stop_before_pixels=True)
    bad = _truncated(live["blobs"][1])
    bad_sop = pydicom.dcmread(io.BytesIO(bad), stop_before_pixels=True).SOPInstanceUID
    # empty body, boundary mismatch: nothing stored -> 400 with the reason
    ctype = 'multipart/related; type="application/dicom"; boundary=b0undary'
    assert httpx.post(f"{base}/studies", content=b"", headers={**h, "Content-Type": ctype}).status_code == 400
    body, _ = _multipart([good], boundary="other")
    mismatch = httpx.post(f"{base}/studies", content=body, headers={**h, "Content-Type": ctype})
    assert mismatch.status_code == 400 and "boundary" in mismatch.json()["detail"]
    # a truncated pixel data part only: 409, its SOP UID and reason 0xA900, nothing stored
    body, ct = _multipart([bad])
    r = httpx.post(f"{base}/studies", content=body, headers={**h, "Content-Type": ct})
    assert r.status_code == 409, r.text
    failed = r.json()["00081198"]["Value"]
    assert failed[0]["00081155"]["Value"] == [bad_sop] and failed[0]["00081197"]["Value"] == [0xA900]
    assert live["client"].search_for_instances(search_filters={"SOPInstanceUID": bad_sop}) == []
    # good + bad: 202, the good one with a RetrieveURL that retrieves it
    body, ct = _multipart([good, bad, b"not dicom"])
    r = httpx.post(f"{base}/studies", content=body, headers={**h, "Content-Type": ct})
    assert r.status_code == 202, r.text
    ref = r.json()["00081199"]["Value"][0]
    assert ref["00081155"]["Value"] == [good_ds.SOPInstanceUID]
    url = ref["00081190"]["Value"][0]
    assert url.endswith(f"/studies/{good_ds.StudyInstanceUID}/series/{good_ds.SeriesInstanceUID}/instances/"
                        f"{good_ds.SOPInstanceUID}")
    assert httpx.get(url, headers=h).status_code == 200
    assert [f["00081197"]["Value"][0] for f in r.json()["00081198"]["Value"]] == [0xA900, 0xC000]
    # into a named study: an instance of another study fails with 0xC409
    body, ct = _multipart([good])
    r = httpx.post(f"{base}/studies/1.2.3.4.5", content=body, headers={**h, "Content-Type": ct})
    assert r.status_code == 409 and r.json()["00081198"]["Value"][0]["00081197"]["Value"] == [0xC409]
    r = httpx.post(f"{base}/studies/{good_ds.StudyInstanceUID}", content=body, headers={**h, "Content-Type": ct})
    assert r.status_code == 200 and r.json()["00081190"]["Value"][0].endswith(good_ds.StudyInstanceUID)
    # the multipart upload refuses a truncated file with the reason too
    up = httpx.post(live["base"] + "/v1/studies", files={"files": ("cut.dcm", bad)}, headers=h)
    assert up.status_code == 422 and "truncated" in up.text
