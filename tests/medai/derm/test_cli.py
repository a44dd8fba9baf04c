"""``medai classify-skin`` through typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from typer.testing import CliRunner

from medai.cli import app
from medai.derm.image import load_skin_image
from medai.errors import InputValidationError
from tests.medai.derm.conftest import encode, lesion_like

torch.set_num_threads(1)
runner = CliRunner()


def test_classify_skin_json_and_saliency(tiny_package: Path, tmp_path: Path) -> None:
    img = tmp_path / "lesion.png"
    img.write_bytes(encode(lesion_like(90, 120)))
    sal = tmp_path / "sal.png"
    res = runner.invoke(
        app, ["classify-skin", str(img), "--json", "--saliency", str(sal), "--model", str(tiny_package)]
    )
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert len(doc["classes"]) == 7 and 0 <= doc["malignant_probability"] <= 1
    assert doc["saliency_method"] == "grad-cam" and doc["model"]["version"] == "0.0.1-test"
    assert load_skin_image(sal).size == (90, 240)  # image and overlay side by side


def test_classify_skin_table(tiny_package: Path, tmp_path: Path) -> None:
    img = tmp_path / "lesion.jpg"
    img.write_bytes(encode(lesion_like(), "JPEG"))
    res = runner.invoke(app, ["classify-skin", str(img), "--model", str(tiny_package)])
    assert res.exit_code == 0, res.output
    assert "malignant (mel + bcc + akiec)" in res.output and "SCT 93655004" in res.output


def test_classify_skin_refuses_a_non_image(tiny_package: Path, tmp_path: Path) -> None:
    f = tmp_path / "report.pdf"
    f.write_bytes(b"%PDF-1.7\n" + b"0" * 400)
    res = runner.invoke(app, ["classify-skin", str(f), "--model", str(tiny_package)])
    assert res.exit_code != 0
    assert isinstance(res.exception, InputValidationError) and "not a readable image" in res.exception.message


def test_classify_skin_shipped_model_on_real_image(data_dir: Path) -> None:
    img = next((data_dir / "derm" / "ham10000" / "images").glob("*.jpg"))
    res = runner.invoke(app, ["classify-skin", str(img), "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["model"]["name"] == "skin_derm_lesion_cls"
    assert doc["predicted_class"] in {c["name"] for c in doc["classes"]}
