"""Image models over ``POST /v1/models/{name}/predict``: raw JPEG/PNG/DICOM bodies, multipart with patient metadata,
the saliency overlay link, and clear 4xx answers for what is wrong."""

from __future__ import annotations

import io
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from medai.derm.image import DERMOSCOPIC_PHOTOGRAPHY
from serving.app import create_app
from serving.auth import Role, create_key
from tests.medai.derm.conftest import dicom_bytes, dicom_image, encode, lesion_like, make_meta_package
from tests.serving.conftest import RISK_MODEL, Api, make_settings

URL = "/v1/models/skin_derm_lesion_cls/predict"


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    tmp = tmp_path_factory.mktemp("imgapi")
    pkg = make_meta_package(tmp / "skin_derm_lesion_cls")
    app = create_app(make_settings(tmp, job_workers=0, models=[RISK_MODEL, str(pkg)]))
    with TestClient(app) as client:
        keys = {r: create_key(app.state.engine, r)[1] for r in Role}
        yield Api(client, keys)


def _probs(body: dict) -> list[float]:
    return [c["probability"] for c in body["classes"]]


def test_jpeg_body_gives_calibrated_classes_and_an_overlay_link(api: Api) -> None:
    img = lesion_like(90, 120, seed=3)
    r = api.client.post(URL, content=encode(img, "JPEG"), headers={**api.h(), "Content-Type": "image/jpeg"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [c["name"] for c in body["classes"]] == ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]
    assert sum(_probs(body)) == pytest.approx(1.0, abs=1e-6)
    top = max(body["classes"], key=lambda c: c["probability"])["name"]
    assert body["extras"]["predicted_class"] == top
    assert body["extras"]["metadata_used"] == []
    assert "metadata_absent" in [f["code"] for f in body["flags"]]
    link = body["extras"]["overlay_url"]
    assert link.startswith("/v1/models/skin_derm_lesion_cls/overlays/")
    png = api.client.get(link, headers=api.h())
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert "no-store" in png.headers["cache-control"]
    w, h = Image.open(io.BytesIO(png.content)).size
    assert (w, h) == (240, 90)  # the image beside its overlay
    assert api.client.get(link).status_code == 401  # the overlay is a patient image: authenticated only
    other = api.client.get(link, headers=api.h(Role.ADMIN))  # another caller, even an admin, cannot fetch it
    assert other.status_code == 404


def test_multipart_metadata_reaches_the_fused_model(api: Api) -> None:
    jpeg = encode(lesion_like(90, 120, seed=4), "JPEG")
    plain = api.client.post(URL, files={"image": ("x.jpg", jpeg, "image/jpeg")}, headers=api.h())
    fused = api.client.post(
        URL,
        files={"image": ("x.jpg", jpeg, "image/jpeg")},
        data={"age": "71", "sex": "male", "site": "back"},
        headers=api.h(),
        params={"overlay": "false"},
    )
    assert plain.status_code == 200 and fused.status_code == 200, fused.text
    assert fused.json()["extras"]["metadata_used"] == ["age", "sex", "site"]
    assert "overlay_url" not in fused.json()["extras"]
    assert max(abs(a - b) for a, b in zip(_probs(plain.json()), _probs(fused.json()), strict=True)) > 1e-4
    odd = api.client.post(URL, files={"image": ("x.jpg", jpeg, "image/jpeg")}, data={"site": "elbow pit"},
                          headers=api.h(), params={"overlay": "false"})
    assert odd.status_code == 200
    assert "metadata_unknown_value" in [f["code"] for f in odd.json()["flags"]]


def test_dicom_photograph_carries_its_own_age_and_sex(api: Api) -> None:
    ds = dicom_image(DERMOSCOPIC_PHOTOGRAPHY, lesion_like(64, 64, seed=5))
    ds.PatientAge, ds.PatientSex = "063Y", "F"
    r = api.client.post(URL, content=dicom_bytes(ds), params={"overlay": "false"},
                        headers={**api.h(), "Content-Type": "application/dicom"})
    assert r.status_code == 200, r.text
    assert r.json()["extras"]["metadata_used"] == ["age", "sex"]


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        ({"content": b"hello", "headers": {"Content-Type": "text/plain"}}, 415, "image-required"),
        ({"content": b"", "headers": {"Content-Type": "image/jpeg"}}, 400, "image-required"),
        ({"content": b"not a jpeg at all", "headers": {"Content-Type": "image/jpeg"}}, 422, None),
        ({"files": {"other": ("x.jpg", b"abc", "image/jpeg")}}, 422, "image-required"),
        ({"files": {"image": ("x.jpg", encode(lesion_like(64, 64), "JPEG"), "image/jpeg")}, "data": {"age": "old"}},
         422, None),
        ({"files": {"image": ("x.jpg", encode(lesion_like(64, 64), "JPEG"), "image/jpeg")}, "data": {"age": "300"}},
         422, None),
    ],
    ids=["wrong-type", "empty", "not-an-image", "no-image-part", "age-not-a-number", "age-out-of-range"],
)
def test_bad_image_requests_say_what_is_wrong(api: Api, kwargs: dict, status: int, code: str | None) -> None:
    headers = {**api.h(), **kwargs.pop("headers", {})}
    r = api.client.post(URL, headers=headers, **kwargs)
    assert r.status_code == status, r.text
    body = r.json()
    assert body["detail"]
    if code:
        assert body["type"].endswith(code)


def test_grayscale_image_is_refused_with_the_reason(api: Api) -> None:
    grey = encode(lesion_like(64, 64)[..., 0], "PNG", mode="L")
    r = api.client.post(URL, content=grey, headers={**api.h(), "Content-Type": "image/png"})
    assert r.status_code == 422 and "grayscale" in r.json()["detail"]


def test_factors_models_answer_bad_json_with_400(api: Api) -> None:
    url = f"/v1/models/{RISK_MODEL}/predict"
    bad = api.client.post(url, content=b"{age: 71", headers={**api.h(), "Content-Type": "application/json"})
    assert bad.status_code == 400 and "not valid JSON" in bad.json()["detail"]
    arr = api.client.post(url, json=[1, 2], headers=api.h())
    assert arr.status_code == 422 and "JSON list" in arr.json()["detail"]
    empty = api.client.post(url, headers=api.h())
    assert empty.status_code == 422 and "patient factors" in empty.json()["detail"]


def test_overlays_expire_and_unknown_ids_are_404(api: Api) -> None:
    png = {**api.h(), "Content-Type": "image/png"}
    r = api.client.post(URL, content=encode(lesion_like(64, 64), "PNG"), headers=png)
    link = r.json()["extras"]["overlay_url"]
    assert api.client.get(link.rsplit("/", 1)[0] + "/" + "0" * 32, headers=api.h()).status_code == 404
    assert api.client.get(link.rsplit("/", 1)[0] + "/../../etc", headers=api.h()).status_code == 404
    root: Path = api.app.state.settings.store() / "overlays"
    (old,) = root.glob("*/" + link.rsplit("/", 1)[1] + ".png")
    past = time.time() - 2 * 3600
    os.utime(old, (past, past))
    api.client.post(URL, content=encode(lesion_like(64, 64), "PNG"), headers=png)
    assert not old.exists()  # pruned by the next write
    assert api.client.get(link, headers=api.h()).status_code == 404
