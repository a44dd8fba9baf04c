"""Hot reload on promotion: when ``models:/<name>@<alias>`` resolves to a new version, the alias poll swaps it in."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from medai.inference.package import shipped_packages
from serving import models as served_models
from serving.models import ModelRegistry
from tests.serving.conftest import RISK_MODEL


def _copy(tmp: Path, version: str) -> Path:
    dst = tmp / f"v{version}"
    shutil.copytree(shipped_packages()[RISK_MODEL], dst)
    meta = json.loads((dst / "metadata.json").read_text())
    meta["version"] = version
    (dst / "metadata.json").write_text(json.dumps(meta))
    return dst


def test_alias_poll_swaps_in_the_promoted_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    current = {"path": _copy(tmp_path, "1")}
    monkeypatch.setattr(served_models, "resolve_package", lambda ref: current["path"])
    reg = ModelRegistry([f"models:/{RISK_MODEL}@production"])
    assert reg.names() == [RISK_MODEL]
    first = reg.get(RISK_MODEL)
    assert first.metadata.version == "1" and reg.poll_aliases() == []
    current["path"] = _copy(tmp_path, "2")  # the alias was moved to a new version
    assert reg.poll_aliases() == [RISK_MODEL]
    assert reg.get(RISK_MODEL).metadata.version == "2" and reg.get(RISK_MODEL) is not first
