"""Schemathesis against the live OpenAPI document (in-process ASGI): no server error on generated requests.

Bounded: a few examples per operation, admin key (every route reachable), so it finishes well under 2 minutes.
Each operation runs as its own hypothesis test; failures are collected and reported together.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings

from serving.app import create_app
from serving.auth import Role, create_key
from tests.serving.conftest import make_settings

EXAMPLES = 5


@schemathesis.serializer("multipart/related")
def _multipart_related(ctx, value) -> bytes:  # noqa: ANN001
    """Generated STOW bodies: the generated value as raw bytes (mostly not DICOM: must give 4xx, never 5xx)."""
    return value if isinstance(value, bytes) else str(value).encode()


@pytest.mark.slow
def test_no_server_error_on_any_operation(tmp_path: Path) -> None:
    from schemathesis.checks import not_a_server_error

    app = create_app(make_settings(tmp_path, job_workers=0, max_upload_bytes=1_000_000))
    failures: list[str] = []
    n_ops = 0
    with TestClient(app):  # runs the lifespan: database, store, models
        key = create_key(app.state.engine, Role.ADMIN)[1]
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        for result in schema.get_all_operations():
            op = result.ok()
            n_ops += 1

            @given(case=op.as_strategy())
            @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck),
                      derandomize=True, database=None)
            def run(case) -> None:  # noqa: ANN001
                case.call_and_validate(headers={"X-API-Key": key}, checks=[not_a_server_error])

            try:
                run()
            except Exception as exc:  # noqa: BLE001 -- collect every operation's failure
                failures.append(f"{op.method.upper()} {op.path}: {str(exc)[:600]}")
    assert n_ops >= 20
    assert not failures, "\n".join(failures)
