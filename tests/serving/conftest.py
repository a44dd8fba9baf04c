"""API fixtures: an app on a temporary database/store, one key per role, phantom cine studies, a tiny cine package.

The cine analysis runs the real library path (ingest, de-identification, ``run_cine_analysis``, renderings, FHIR)
with a tiny random-weight package (``tests.medai.cardiac.helpers.make_tiny_package``): the plumbing is real, the
numbers are not meaningful. Risk routes use the shipped risk packages.
"""

from __future__ import annotations

import io
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from fastapi.testclient import TestClient

from medai.dicom.phantoms import make_cine_sax_study
from medai.inference.predictor import Predictor
from serving.app import create_app
from serving.auth import Role, create_key
from serving.models import ModelRegistry
from serving.settings import ApiSettings

torch.set_num_threads(1)

RISK_MODEL = "stroke_ist_death_6m"
ORTHANC_SH = Path(__file__).resolve().parents[2] / ".ci" / "orthanc.sh"


@pytest.fixture(scope="session")
def tiny_cine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.medai.cardiac.helpers import make_tiny_package

    return make_tiny_package(tmp_path_factory.mktemp("pkg") / "heart_mr_cine_seg")


@pytest.fixture(scope="session")
def phantom_bytes() -> list[bytes]:
    """A small cine SAX phantom study, one DICOM file per instance."""
    return make_cine_sax_study(n_slices=4, n_phases=5, rows=40, cols=40, pixel_spacing=1.8).to_bytes()


@pytest.fixture(scope="session")
def phantom_zip(phantom_bytes: list[bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i, b in enumerate(phantom_bytes):
            zf.writestr(f"study/IM{i:04d}.dcm", b)
    return buf.getvalue()


def make_settings(tmp: Path, **kw: Any) -> ApiSettings:
    base: dict[str, Any] = dict(database_url=f"sqlite:///{tmp / 'api.db'}", storage_root=tmp / "store",
                                job_workers=1, lease_seconds=3.0, callback_allowed_hosts=["127.0.0.1"],
                                models=[RISK_MODEL])
    base.update(kw)
    return ApiSettings(**base)


class Api:
    """A running test app with a key per role."""

    def __init__(self, client: TestClient, keys: dict[Role, str]) -> None:
        self.client, self.keys = client, keys

    @property
    def app(self):  # noqa: ANN201
        return self.client.app

    def h(self, role: Role = Role.CLINICIAN) -> dict[str, str]:
        return {"X-API-Key": self.keys[role]}


POSTGRES_SH = Path(__file__).resolve().parents[2] / ".ci" / "postgres.sh"


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real PostgreSQL server for the session (``.ci/postgres.sh``): its superuser URL. Skips when absent."""
    state = tmp_path_factory.mktemp("postgres")
    r = subprocess.run(["bash", str(POSTGRES_SH), "start", str(state)], capture_output=True, text=True, timeout=120)
    if r.returncode == 3:
        pytest.skip(f"PostgreSQL not available: {r.stderr.strip()}")
    assert r.returncode == 0, r.stderr
    try:
        yield r.stdout.split()[1]
    finally:
        subprocess.run(["bash", str(POSTGRES_SH), "stop", str(state)], timeout=60)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Modules that set ``BACKENDS`` run every test that uses the database on each of them."""
    backends = getattr(metafunc.module, "BACKENDS", None)
    if backends and "database_url" in metafunc.fixturenames:
        metafunc.parametrize("database_url", backends, indirect=True)


@pytest.fixture
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The test's database: SQLite in ``tmp_path`` (default), or a fresh database on :func:`pg_server`."""
    backend = getattr(request, "param", "sqlite")
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'api.db'}"
        return
    import uuid

    from sqlalchemy import create_engine

    base = request.getfixturevalue("pg_server")
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    try:
        yield base.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.dispose()


@pytest.fixture
def api(tmp_path: Path, tiny_cine: Path, database_url: str) -> Iterator[Api]:
    registry = ModelRegistry([RISK_MODEL])
    registry.put("heart_mr_cine_seg", Predictor.from_package(tiny_cine), ref=str(tiny_cine))
    app = create_app(make_settings(tmp_path, database_url=database_url), models=registry)
    with TestClient(app) as client:
        keys = {r: create_key(app.state.engine, r, f"test-{r.value}")[1] for r in Role}
        yield Api(client, keys)


@pytest.fixture
def orthanc(tmp_path: Path) -> Iterator[str]:
    """A real PACS: Orthanc + its DICOMweb plugin on loopback (``.ci/orthanc.sh``); its base URL. Skips when absent."""
    state = tmp_path / "orthanc"
    r = subprocess.run(["bash", str(ORTHANC_SH), "start", str(state)], capture_output=True, text=True, timeout=60)
    if r.returncode == 3:
        pytest.skip(f"Orthanc not available: {r.stderr.strip()}")
    assert r.returncode == 0, r.stderr
    http_port = r.stdout.split()[0]
    try:
        yield f"http://127.0.0.1:{http_port}"
    finally:
        subprocess.run(["bash", str(ORTHANC_SH), "stop", str(state)], timeout=30)
