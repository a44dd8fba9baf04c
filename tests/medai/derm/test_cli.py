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


def _exif_jpeg(arr, make: str, model: str) -> bytes:  # noqa: ANN001
    import io

    from PIL import Image

    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = make, model
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", exif=exif)
    return buf.getvalue()


def test_image_type_from_dicom_class_device_and_vignette() -> None:
    import numpy as np

    from medai.derm.image import DERMOSCOPIC_PHOTOGRAPHY, VL_PHOTOGRAPHIC, image_type
    from tests.medai.derm.conftest import dicom_bytes, dicom_image

    px = lesion_like(64, 64)
    assert image_type(load_skin_image(dicom_bytes(dicom_image(DERMOSCOPIC_PHOTOGRAPHY, px))))[0] == "dermoscopic"
    assert image_type(load_skin_image(dicom_bytes(dicom_image(VL_PHOTOGRAPHIC, px))))[0] == "clinical"
    kind, why = image_type(load_skin_image(_exif_jpeg(px, "3Gen", "DermLite DL4")))
    assert kind == "dermoscopic" and "DermLite" in why
    assert image_type(load_skin_image(_exif_jpeg(px, "Apple", "iPhone 15")))[0] == "unknown"
    yy, xx = np.mgrid[0:96, 0:96]
    lens = np.hypot(yy - 48, xx - 48) < 46
    vignetted = np.where(lens[..., None], px[:1].repeat(96, 0)[:, :1].repeat(96, 1), 5).astype(np.uint8)
    assert image_type(load_skin_image(encode(vignetted)))[0] == "dermoscopic"


def test_classify_skin_refuses_a_clinical_photo_without_a_clinical_model(tmp_path: Path) -> None:
    from medai.derm.image import VL_PHOTOGRAPHIC
    from tests.medai.derm.conftest import dicom_bytes, dicom_image

    f = tmp_path / "photo.dcm"
    f.write_bytes(dicom_bytes(dicom_image(VL_PHOTOGRAPHIC, lesion_like(64, 64))))
    res = runner.invoke(app, ["classify-skin", str(f), "--json"])
    assert res.exit_code != 0
    msg = res.output + str(res.exception)
    assert "clinical" in msg and "--model" in msg


def test_classify_skin_takes_metadata_and_reports_the_image_type(tmp_path: Path) -> None:
    from tests.medai.derm.conftest import make_meta_package

    pkg = make_meta_package(tmp_path / "pkg")
    img = tmp_path / "lesion.jpg"
    img.write_bytes(encode(lesion_like(), "JPEG"))
    res = runner.invoke(app, ["classify-skin", str(img), "--json", "--model", str(pkg), "--age", "64", "--sex",
                              "female", "--site", "back"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["metadata_used"] == ["age", "sex", "site"] and doc["image_type"] == "unknown"
    assert any(f["code"] == "image_type" and f["severity"] == "warning" for f in doc["flags"])
