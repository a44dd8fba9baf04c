"""``medai evaluate`` for cine models: metrics plumbing on synthetic ACDC HDF5 and on a generated official-layout
folder (split from splits.csv, true spacing), the JSON/PNG outputs, MLflow, and the Sunnybrook path on one real
patient (through the predictor's predict, as ``medai analyze``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from medai.cardiac.predictor import CineSegPredictor, load_default
from medai.domain.volume import LabelMap
from medai.errors import ConfigError
from pipelines.cmr.evaluate import detect_format, evaluate, evaluate_cli
from tests.medai.cardiac.helpers import make_tiny_package
from tests.medai.datasets.helpers import write_acdc_h5, write_acdc_release

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny_pkg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_package(tmp_path_factory.mktemp("pkg") / "tiny")


@pytest.fixture(scope="module")
def acdc_h5(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two synthetic patients in the ACDC HDF5 layout (image uint16 + scale attr, label uint8; ED=frame01)."""
    return write_acdc_h5(tmp_path_factory.mktemp("acdc_h5"), n_patients=2, first=101)


def test_detect_format(acdc_h5: Path, tmp_path: Path) -> None:
    assert detect_format(acdc_h5) == "acdc-h5"
    with pytest.raises(Exception, match="--format"):
        detect_format(tmp_path)


def test_perfect_segmentation_scores_one(tiny_pkg: Path, acdc_h5: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Metric plumbing: a predictor that returns the reference must score Dice 1, HD95 0 and zero EF error."""
    from medai.datasets.acdc import load_acdc_h5

    pred = load_default(tiny_pkg)
    refs = {c.image.tobytes(): c.label for c in load_acdc_h5(acdc_h5)}

    def oracle(self: CineSegPredictor, volume, **kwargs):  # type: ignore[no-untyped-def]
        return LabelMap(volume=volume.with_array(refs[volume.array.tobytes()]), labels=self.labels)

    monkeypatch.setattr(CineSegPredictor, "segment_volume", oracle)
    doc = evaluate(pred, acdc_h5, "acdc-h5")
    assert doc["n_cases"] == 4 and doc["n_patients"] == 2
    for k in ("dice.lv", "dice.myo", "dice.rv"):
        assert doc["mean"][k] == pytest.approx(1.0)
    assert doc["mean"]["hd95.lv"] == pytest.approx(0.0)
    assert doc["mean"]["ef_mae"] == pytest.approx(0.0) and "voxels" in doc["hd95_unit"]


def test_evaluate_cli_writes_json_png_and_logs_mlflow(tiny_pkg: Path, acdc_h5: Path, tmp_path: Path) -> None:
    import mlflow

    out = tmp_path / "eval" / "acdc.json"
    with mlflow.start_run() as run:
        evaluate_cli(model="heart_mr_cine_seg", data=acdc_h5, fmt="auto", out=out, package=tiny_pkg)
    doc = json.loads(out.read_text())
    assert doc["format"] == "acdc-h5" and len(doc["cases"]) == 4
    assert all(0.0 <= c["dice.lv"] <= 1.0 for c in doc["cases"])
    assert Path(doc["bland_altman_png"]).is_file()
    metrics = mlflow.get_run(run.info.run_id).data.metrics
    assert "eval/dice/lv" in metrics


def test_official_layout_val_split_in_mm(tiny_pkg: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Release root + ``split="val"``: only the val patients, resampled through the predictor, volumes in mL."""
    from medai.datasets.acdc import load_acdc

    root = write_acdc_release(tmp_path / "acdc", pixel_spacing=1.8, slice_step=10.0)
    assert detect_format(root) == "acdc" and detect_format(root / "training") == "acdc"
    pred = load_default(tiny_pkg)
    refs = {c.image.tobytes(): c.label for c in load_acdc(root)}
    seen: list[tuple[float, ...]] = []

    def oracle(self: CineSegPredictor, volume, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(volume.spacing)
        assert kwargs.get("resample") is True  # the data has a spacing: the predictor resamples to the model's
        return LabelMap(volume=volume.with_array(refs[volume.array.tobytes()]), labels=self.labels)

    monkeypatch.setattr(CineSegPredictor, "segment_volume", oracle)
    doc = evaluate(pred, root, "auto", split="val")
    assert doc["split"] == "val" and doc["n_cases"] == 2 and doc["n_patients"] == 1
    assert {c["patient"] for c in doc["cases"]} == {"patient061"} and doc["hd95_unit"] == "mm"
    assert seen and all(s == pytest.approx((10.0, 1.8, 1.8)) for s in seen)  # pixdim, not the 1 mm affine
    row = doc["patients"][0]
    ed = next(c for c in load_acdc(root, split="val") if c.phase.value == "ED")
    assert row["edv_ref_ml"] == pytest.approx((ed.label == 3).sum() * 10.0 * 1.8 * 1.8 / 1000, rel=1e-5)
    assert doc["mean"]["dice.lv"] == pytest.approx(1.0) and row["edv_error_ml"] == pytest.approx(0.0)


def test_split_needs_the_official_layout(tiny_pkg: Path, acdc_h5: Path) -> None:
    with pytest.raises(ConfigError, match="one split"):
        evaluate(load_default(tiny_pkg), acdc_h5, "auto", split="val")


@pytest.mark.slow
def test_sunnybrook_one_patient_via_predict(tiny_pkg: Path, data_dir: Path, tmp_path: Path) -> None:
    """The Sunnybrook path on real DICOM: contoured images are found in the predicted cine by SOPInstanceUID, the
    reference EF from the masks agrees with the published contour-derived value (26.2 %) within 1 point."""
    src = data_dir / "cardiac" / "sunnybrook"
    if not (src / "dicoms" / "SCD0000101").is_dir():
        pytest.skip("Sunnybrook SCD0000101 not present")
    root = tmp_path / "sb"
    (root / "dicoms").mkdir(parents=True)
    (root / "contourfiles").mkdir()
    (root / "dicoms" / "SCD0000101").symlink_to(src / "dicoms" / "SCD0000101")
    (root / "contourfiles" / "SC-HF-I-1").symlink_to(src / "contourfiles" / "SC-HF-I-1")
    (root / "link.csv").write_text("patient_id,original_id\nSCD0000101,SC-HF-I-1\n")
    doc = evaluate(load_default(tiny_pkg), root, "auto")
    assert doc["format"] == "sunnybrook" and doc["n_cases"] == 2
    ed = next(c for c in doc["cases"] if c["phase"] == "ED")
    assert ed["frame"] == 18 and ed["n_slices"] == 9  # phase 19 of 20, 9 contoured slices (derived_lv_volumes.csv)
    assert doc["patients"][0]["ef_ref"] == pytest.approx(26.2, abs=1.0)
