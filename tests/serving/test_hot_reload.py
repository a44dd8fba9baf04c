"""Reviewed promotion and hot reload against a real local MLflow registry (no stubs): train a small risk model
twice, register both, refuse promotion without an evaluation, promote with one, and watch a served
``models:/<name>@production`` swap versions without a restart and without re-downloading on every poll.

Both trainings use the same recipe, so both packages say ``metadata.version`` 1.0.0: the swap is driven by the
registry version behind the alias, which is what used to be missed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from medai.cli import app as cli
from medai.errors import ConfigError
from medai.inference import mlflow_registry
from serving.models import ModelRegistry

NAME = "cardio_hf299_death"
URI = f"models:/{NAME}@production"
RECIPE = Path(__file__).resolve().parents[2] / "configs" / "experiment" / "risk_hf299_death.yaml"
PATIENT = {"age": 60, "sex": 1, "ejection_fraction": 30, "serum_creatinine": 1.2}


def _train(seed: int) -> str:
    from pipelines.risk.train import train_from_recipe

    s = train_from_recipe(RECIPE, ["cv_folds=2", "bootstrap=5", "importance_repeats=1", "ship_dir=null",
                                   "models=[{name: coxph}]", "ship=coxph", f"seed={seed}"])
    return str(s["registered_version"])


def _evaluate(version: str, data_dir: Path, out: Path) -> Path:
    r = CliRunner().invoke(cli, ["evaluate", f"models:/{NAME}/{version}", "--data", str(data_dir), "--out", str(out)])
    assert r.exit_code == 0, r.output
    return out


@pytest.fixture
def two_versions(data_dir: Path) -> tuple[str, str]:
    return _train(1), _train(2)


def test_train_register_promote_and_hot_swap(two_versions: tuple[str, str], data_dir: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    v1, v2 = two_versions
    assert (v1, v2) == ("1", "2")
    runner = CliRunner()

    # 1. no evaluation attached: refused, alias untouched
    r = runner.invoke(cli, ["models", "promote", NAME, v1])
    assert r.exit_code != 0
    with pytest.raises(ConfigError, match="no evaluation JSON is attached"):
        mlflow_registry.promote(NAME, v1)
    with pytest.raises(Exception, match="production"):
        mlflow_registry.registry_version(URI)
    # an evaluation of another model is refused too
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"model": {"name": "stroke_ist_death_6m"}}))
    with pytest.raises(ConfigError, match="not an evaluation of cardio_hf299_death"):
        mlflow_registry.promote(NAME, v1, evaluation=other)

    # 2. evaluated through the Predictor, attached and promoted; who and when are recorded
    e1 = _evaluate(v1, data_dir, tmp_path / "e1.json")
    r = runner.invoke(cli, ["models", "promote", NAME, v1, "--evaluation", str(e1), "--by", "dr.reviewer"])
    assert r.exit_code == 0, r.output
    assert "is now 'production'" in r.output and "dr.reviewer" in r.output
    mv = mlflow_registry.client().get_model_version(NAME, v1)
    assert mv.tags["medai.promoted.production.by"] == "dr.reviewer"
    assert mv.tags["medai.promoted.production.at"].startswith("20")
    assert mv.tags["medai.promoted.production.evaluation"] == "evaluation/e1.json"

    # 3. served by alias: version 1; polls without a change download nothing
    downloads: list[str] = []
    real = mlflow_registry.download

    def counting(uri: str) -> Path:
        downloads.append(uri)
        return real(uri)

    monkeypatch.setattr(mlflow_registry, "download", counting)
    reg = ModelRegistry([URI])
    first = reg.get(NAME)
    assert reg.served(NAME).registry_version == "1" and downloads == [f"models:/{NAME}/1"]
    assert reg.poll_aliases() == [] and reg.poll_aliases() == [] and len(downloads) == 1
    risk1 = first.predict(PATIENT).risks[0].risk_score

    # 4. promote version 2 (same metadata.version): the next poll swaps it in, once
    e2 = _evaluate(v2, data_dir, tmp_path / "e2.json")
    assert mlflow_registry.promote(NAME, v2, evaluation=e2, by="dr.reviewer")["previous"] == "1"
    assert reg.poll_aliases() == [NAME]
    second = reg.get(NAME)
    assert second is not first and reg.served(NAME).registry_version == "2"
    assert second.metadata.version == first.metadata.version  # the recipe's version string did not change
    assert second.predict(PATIENT).risks[0].risk_score != risk1  # a different fit (another seed)
    assert reg.poll_aliases() == []

    # 5. the cache: a version already downloaded is reused, not fetched again
    n = len(downloads)
    again = ModelRegistry([URI])
    again.get(NAME)
    assert len(downloads) == n + 1 and (mlflow_registry.get_settings().home / "registry-cache" / NAME / "2" /
                                        mlflow_registry.COMPLETE).is_file()


def test_a_running_server_swaps_without_restart(two_versions: tuple[str, str], data_dir: Path,
                                                tmp_path: Path) -> None:
    """The app's alias poll thread picks a promotion up; GET /v1/models/<name> shows the registry version."""
    import time

    from serving.app import create_app
    from serving.auth import Role, create_key
    from tests.serving.conftest import make_settings

    v1, v2 = two_versions
    mlflow_registry.promote(NAME, v1, evaluation=_evaluate(v1, data_dir, tmp_path / "e1.json"))
    app = create_app(make_settings(tmp_path, models=[URI], reload_poll_seconds=0.2))
    with TestClient(app) as client:
        h = {"X-API-Key": create_key(app.state.engine, Role.CLINICIAN, "t")[1]}
        assert client.get(f"/v1/models/{NAME}", headers=h).json()["registry_version"] == "1"
        assert client.post(f"/v1/risk/{NAME}", json=PATIENT, headers=h).status_code == 200
        mlflow_registry.promote(NAME, v2, evaluation=_evaluate(v2, data_dir, tmp_path / "e2.json"))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if client.get(f"/v1/models/{NAME}", headers=h).json()["registry_version"] == "2":
                break
            time.sleep(0.2)
        assert client.get(f"/v1/models/{NAME}", headers=h).json()["registry_version"] == "2"
        assert client.post(f"/v1/risk/{NAME}", json=PATIENT, headers=h).status_code == 200


def test_bad_uris_are_clear_errors() -> None:
    from medai.errors import ModelNotFoundError

    with pytest.raises(ModelNotFoundError, match="names no alias or version"):
        mlflow_registry.parse_models_uri(f"models:/{NAME}")
    with pytest.raises(ModelNotFoundError, match="cannot resolve"):
        mlflow_registry.registry_version("models:/no_such_model@production")
    with pytest.raises(ModelNotFoundError, match="has no version 7"):
        mlflow_registry.evaluations("no_such_model", "7")
