"""SkinLesionPredictor: the one predict path on synthetic and real images, shipped package included."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from medai.derm.image import DERMOSCOPIC_PHOTOGRAPHY, load_skin_image
from medai.derm.predictor import SkinLesionPredictor, saliency_overlay, write_saliency_png
from medai.domain.prediction import Prediction
from medai.errors import InputValidationError
from medai.inference.package import shipped_packages
from medai.inference.predictor import Predictor
from medai.registry import NETWORKS, PREDICTORS
from tests.medai.derm.conftest import dicom_image, encode, lesion_like

torch.set_num_threads(1)


def _check(pred: Prediction, shape: tuple[int, int]) -> None:
    names = [c.name for c in pred.classes]
    assert names == ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]
    probs = np.array([c.probability for c in pred.classes])
    assert np.all(probs >= 0) and probs.sum() == pytest.approx(1.0, abs=1e-6)
    by = dict(zip(names, probs, strict=True))
    assert pred.extras["malignant_probability"] == pytest.approx(by["mel"] + by["bcc"] + by["akiec"])
    assert pred.extras["predicted_class"] == names[int(probs.argmax())]
    assert {c.name: c.code["scheme"] for c in pred.classes}["mel"] == "SCT"
    sal = pred.extras["saliency"]
    assert sal.shape == shape and sal.dtype == np.float32
    assert 0.0 <= sal.min() and sal.max() <= 1.0
    assert pred.extras["model_version"] == pred.model.version


def test_registered() -> None:
    assert PREDICTORS.get("skin_lesion") is SkinLesionPredictor
    assert SkinLesionPredictor.input_kind == "image"
    assert {"derm_resnet_small", "efficientnet_b0"} <= set(NETWORKS.names())


def test_predict_png_bytes_path_and_dicom(tiny_package: Path, tmp_path: Path) -> None:
    p = Predictor.from_package(tiny_package)
    assert isinstance(p, SkinLesionPredictor)
    arr = lesion_like(120, 160)
    _check(p.predict(encode(arr, "PNG")), (120, 160))
    f = tmp_path / "x.jpg"
    f.write_bytes(encode(arr, "JPEG"))
    _check(p.predict(f), (120, 160))
    _check(p.predict(dicom_image(DERMOSCOPIC_PHOTOGRAPHY, arr)), (120, 160))
    # the same pixels give the same probabilities whichever way they arrive
    a = [c.probability for c in p.predict(encode(arr, "PNG")).classes]
    b = [c.probability for c in p.predict(dicom_image(DERMOSCOPIC_PHOTOGRAPHY, arr)).classes]
    assert a == pytest.approx(b, abs=1e-6)
    assert p.predict_proba(arr) == pytest.approx(a, abs=1e-6)


def test_temperature_is_applied(tiny_package: Path) -> None:
    p = Predictor.from_package(tiny_package, saliency=False)
    arr = lesion_like(64, 64)
    p1 = p.predict_proba(arr)
    p.config.temperature = 1.0
    p2 = p.predict_proba(arr)
    assert p1.max() < p2.max() + 1e-9  # T = 1.5 flattens the distribution
    assert "saliency" not in p.predict(encode(arr)).extras


def test_bad_inputs_raise_input_validation_error(tiny_package: Path) -> None:
    p = Predictor.from_package(tiny_package)
    with pytest.raises(InputValidationError):
        p.predict(b"not an image" * 30)
    with pytest.raises(InputValidationError, match="grayscale"):
        p.predict(encode(lesion_like().mean(2).astype(np.uint8)))


def test_saliency_overlay_png(tiny_package: Path, tmp_path: Path) -> None:
    arr = lesion_like(80, 100)
    pred = Predictor.from_package(tiny_package).predict(encode(arr))
    over = saliency_overlay(arr, pred.extras["saliency"])
    assert over.shape == arr.shape and over.dtype == np.uint8
    out = write_saliency_png(arr, pred.extras["saliency"], tmp_path / "s.png")
    assert load_skin_image(out).size == (80, 200)


def test_shipped_package_on_a_real_image(data_dir: Path) -> None:
    if "skin_derm_lesion_cls" not in shipped_packages():
        pytest.fail("shipped package models/packages/skin_derm_lesion_cls is missing")
    p = Predictor.from_package("skin_derm_lesion_cls")
    assert p.metadata.licence.startswith("CC BY-NC-SA 4.0")
    assert p.metadata.metrics["test/balanced_accuracy"] > 0.4  # far above chance (1/7) on held-out lesions
    img = next((data_dir / "derm" / "ham10000" / "images").glob("*.jpg"))
    pred = p.predict(img)
    _check(pred, (150, 200))
    assert pred.extras["saliency_method"] == "grad-cam"
