"""The documented deployment example (configs/deploy/compose.yaml) stays true: every MEDAI_API_* variable is a
setting medai reads, the database URL is the distributed backend's PostgreSQL, and every command is a medai
command whose options exist."""

from __future__ import annotations

import yaml
from typer.testing import CliRunner

from medai.cli import app as cli
from medai.settings import REPO_ROOT
from serving.distributed import require_postgres
from serving.settings import ApiSettings

COMPOSE = REPO_ROOT / "configs" / "deploy" / "compose.yaml"


def test_every_variable_is_a_setting_and_every_command_runs(monkeypatch) -> None:  # noqa: ANN001
    doc = yaml.safe_load(COMPOSE.read_text())
    fields = {f"MEDAI_API_{name.upper()}" for name in ApiSettings.model_fields}
    medai_services = {n: s for n, s in doc["services"].items() if s.get("command", [""])[0] == "medai"}
    assert set(medai_services) == {"api", "worker"}
    for name, svc in medai_services.items():
        env = svc["environment"]
        unknown = {k for k in env if k.startswith("MEDAI_API_") and k not in fields}
        assert not unknown, f"{name}: not settings of serving.settings.ApiSettings: {unknown}"
        assert env["MEDAI_API_JOB_BACKEND"] == "procrastinate"
        require_postgres(env["MEDAI_API_DATABASE_URL"].replace("${MEDAI_DB_PASSWORD}", "x"))
        assert env["MEDAI_API_STORAGE_ROOT"] in {v.split(":")[1] for v in svc["volumes"]}  # the shared store
        res = CliRunner().invoke(cli, [*svc["command"][1:2], "--help"])
        assert res.exit_code == 0, res.output
        for opt in (a for a in svc["command"] if a.startswith("--")):
            assert opt in res.output, f"{name}: `medai {svc['command'][1]}` has no option {opt}"
    for k, v in medai_services["api"]["environment"].items():  # read the way a container reads them
        if k.startswith("MEDAI_API_"):
            monkeypatch.setenv(k, v)
    settings = ApiSettings()
    assert settings.job_backend == "procrastinate" and settings.callback_allowed_hosts == ["ris.hospital.example"]
