"""POST /v1/analyses over the analysis registry: a cine + LGE study gives one report with both sections; ``kinds``
restricts and is recorded on the job; unknown kinds and missing series are clear errors."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from fastapi.testclient import TestClient

from medai.inference.predictor import Predictor
from serving.app import create_app
from serving.auth import Role, create_key
from serving.models import ModelRegistry
from tests.medai.analyses.conftest import cine_and_lge_study, make_tiny_lge_package
from tests.serving.conftest import RISK_MODEL, Api, make_settings
from tests.serving.test_api import wait_job


@pytest.fixture(scope="module")
def tiny_lge(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_lge_package(tmp_path_factory.mktemp("pkg") / "heart_mr_lge_seg")


@pytest.fixture
def api2(tmp_path: Path, tiny_cine: Path, tiny_lge: Path) -> Iterator[Api]:
    registry = ModelRegistry([RISK_MODEL])
    registry.put("heart_mr_cine_seg", Predictor.from_package(tiny_cine), ref=str(tiny_cine))
    registry.put("heart_mr_lge_seg", Predictor.from_package(tiny_lge), ref=str(tiny_lge))
    app = create_app(make_settings(tmp_path), models=registry)
    with TestClient(app) as client:
        keys = {r: create_key(app.state.engine, r, f"test-{r.value}")[1] for r in Role}
        yield Api(client, keys)


def _upload(api: Api, parts: list[bytes]) -> str:
    files = [("files", (f"{i}.dcm", b, "application/dicom")) for i, b in enumerate(parts)]
    r = api.client.post("/v1/studies", headers=api.h(), files=files)
    assert r.status_code in (200, 201), r.text
    return r.json()["studies"][0]["study_instance_uid"]


def test_cine_and_lge_study_gives_one_report_with_both_sections(api2: Api) -> None:
    kinds = api2.client.get("/v1/analyses/kinds", headers=api2.h()).json()
    assert {k["kind"] for k in kinds} >= {"cine_function", "lge_scar"}
    uid = _upload(api2, cine_and_lge_study(seed=21))
    r = api2.client.post("/v1/analyses", headers=api2.h(), json={"study_instance_uid": uid})
    assert r.status_code == 202 and r.json()["kinds"] is None
    job = wait_job(api2, r.json()["id"])
    assert job["status"] == "succeeded", job
    assert {"json", "seg", "seg_lge", "sr", "pdf", "fhir"} <= set(job["results"])
    rep = api2.client.get(job["results"]["json"], headers=api2.h()).json()
    assert [s["kind"] for s in rep["sections"]] == ["cine_function", "lge_scar"]
    sr = api2.client.get(job["results"]["sr"], headers=api2.h())
    assert sr.status_code == 200 and pydicom.dcmread(io.BytesIO(sr.content)).Modality == "SR"


def test_kinds_restrict_and_are_recorded(api2: Api) -> None:
    uid = _upload(api2, cine_and_lge_study(seed=22))
    r = api2.client.post("/v1/analyses", headers=api2.h(), json={"study_instance_uid": uid, "kinds": ["lge_scar"]})
    assert r.status_code == 202 and r.json()["kinds"] == ["lge_scar"]
    job = wait_job(api2, r.json()["id"])
    assert job["status"] == "succeeded" and job["kinds"] == ["lge_scar"], job
    rep = api2.client.get(job["results"]["json"], headers=api2.h()).json()
    assert [s["kind"] for s in rep["sections"]] == ["lge_scar"] and "seg" not in job["results"]
    # the wave-1 single kind is an alias
    r = api2.client.post("/v1/analyses", headers=api2.h(), json={"study_instance_uid": uid, "kind": "cine_cmr"})
    assert r.status_code == 202 and r.json()["kinds"] == ["cine_function"]


def test_unknown_kind_is_422_and_missing_series_fails_the_job_clearly(api2: Api, phantom_bytes: list[bytes]) -> None:
    uid = _upload(api2, phantom_bytes)  # cine only
    r = api2.client.post("/v1/analyses", headers=api2.h(), json={"study_instance_uid": uid, "kinds": ["nope"]})
    assert r.status_code == 422 and r.json()["type"].endswith("unknown-analysis") and "lge_scar" in r.json()["detail"]
    r = api2.client.post("/v1/analyses", headers=api2.h(), json={"study_instance_uid": uid, "kinds": ["lge_scar"]})
    job = wait_job(api2, r.json()["id"])
    assert job["status"] == "failed" and job["error_code"] == "series-selection-error"
    assert "lge" in job["error"] and "cine_sax" in job["error"]
    assert not job["results"]
