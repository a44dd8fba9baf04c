"""``medai keys create/list/revoke`` against the configured database; the printed key authenticates."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from medai.cli import app
from serving.auth import authenticate
from serving.db import make_engine


def test_keys_create_list_revoke(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    url = f"sqlite:///{tmp_path / 'api.db'}"
    monkeypatch.setenv("MEDAI_API_DATABASE_URL", url)
    run = CliRunner().invoke
    r = run(app, ["keys", "create", "--role", "clinician", "--name", "ward 3"])
    assert r.exit_code == 0, r.output
    key_id = r.output.split()[1]
    key = [ln for ln in r.output.splitlines() if ln.startswith("medai_")][0]
    who = authenticate(make_engine(url), key)
    assert who is not None and who.role.value == "clinician" and who.user == key_id
    listed = run(app, ["keys", "list"]).output
    assert key_id in listed and key not in listed
    assert run(app, ["keys", "revoke", key_id]).exit_code == 0
    assert authenticate(make_engine(url), key) is None
    assert run(app, ["keys", "create", "--role", "boss"]).exit_code != 0
