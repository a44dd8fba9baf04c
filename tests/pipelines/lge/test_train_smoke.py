"""One-batch CPU smoke tests: `medai train` (LGE) -> MLflow run -> package -> registry; a 2-fold CV through the
predictor on a generated EMIDEC folder; one batch on real EMIDEC."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from typer.testing import CliRunner

from medai.cardiac.lge_predictor import LgeSegInferenceConfig, load_default
from medai.inference.package import read_metadata, resolve_package
from medai.registry import NETWORKS
from medai.settings import REPO_ROOT
from tests.pipelines.lge.test_evaluate import write_emidec

SMOKE = REPO_ROOT / "configs" / "experiment" / "lge_seg_2d_smoke.yaml"
TINY = ["model.network.params.channels=[4,8,16]", "model.network.params.num_res_units=0", "trainer.max_epochs=1",
        "trainer.limit_train_batches=1", "trainer.check_val_every_n_epoch=1", "trainer.num_threads=1",
        "data.batch_size=2", "package.register_model=false"]


def _check_package(pkg: Path, name: str) -> None:
    meta = read_metadata(pkg)
    assert meta.name == name and meta.predictor == "lge_sax_seg" and meta.task == "segmentation"
    assert {lab["name"] for lab in meta.labels} == {"lv", "myo", "infarct", "mvo"}
    assert {lab["code"]["scheme"] for lab in meta.labels} <= {"SCT", "99MEDAI"}
    assert meta.reproduce.startswith("medai train") and "train/wall_time_s" in meta.metrics
    assert not any(k.startswith(("test/", "val/", "cv/")) for k in meta.metrics)  # held-out figures come from evaluate
    cfg = LgeSegInferenceConfig.model_validate_json((pkg / "inference.json").read_text())
    net = NETWORKS.get(cfg.network.name)(**cfg.network.params)
    net.load_state_dict(torch.load(pkg / cfg.weights, map_location="cpu"))  # type: ignore[attr-defined]
    split = json.loads((pkg / "split.json").read_text())
    assert not set(split["train_cases"]) & set(split["heldout_cases"])
    for f in meta.files:
        assert (pkg / f).is_file(), f


def test_medai_train_cli_one_batch_synthetic(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    from medai.cli import app
    from pipelines.mlflow_utils import setup_tracking

    torch.set_num_threads(1)
    out = tmp_path / "pkg"
    res = CliRunner().invoke(app, ["train", str(SMOKE), f"package.out_dir={out}"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    _check_package(out, "heart_mr_lge_seg_smoke")
    meta = read_metadata(out)
    setup_tracking()
    client = MlflowClient()
    run = client.get_run(meta.mlflow_run_id or "")
    assert run.data.params["data.format"] == "synthetic" and run.data.params["model.network.name"] == "unet2d"
    for key in ("train/loss", "val/dice/myo", "val/dice/infarct", "val/dice_raw/myo", "train/wall_time_s"):
        assert key in run.data.metrics, key
    arts = [a.path for d in ("plots", "package", "config") for a in client.list_artifacts(run.info.run_id, d)]
    assert {"plots/training_curves.png", "package/split.json", "config/resolved.yaml"} <= set(arts)
    reg = resolve_package("models:/heart_mr_lge_seg_smoke@candidate")
    assert json.loads((reg / "metadata.json").read_text())["mlflow_run_id"] == meta.mlflow_run_id
    load_default(out)  # the exported package loads through the predictor


def test_two_fold_cv_evaluates_each_fold_through_the_predictor(tmp_path: Path) -> None:
    from pipelines.lge.cv import run_cv

    torch.set_num_threads(1)
    data = write_emidec(tmp_path / "emidec", n=6, shape=(3, 64, 64))
    out = tmp_path / "cv.json"
    ov = [f"data.root={data}", "data.n_folds=2", "model.canonical_size=[64,64]", "model.crop_size=[32,32]",
          "model.size_divisor=8", *TINY]
    doc = run_cv(REPO_ROOT / "configs" / "experiment" / "lge_seg_2d.yaml", [0, 1], data, out, tmp_path / "work", ov)
    assert json.loads(out.read_text())["folds_run"] == [0, 1] and doc["complete"]
    held = [c for f in doc["folds"] for c in f["heldout_cases"]]
    assert sorted(held) == sorted(f"Case_{'P' if i % 2 else 'N'}{i:03d}" for i in range(6))  # each case once
    assert doc["pooled"]["n_cases"] == 6 and "dice.myo" in doc["fold_mean"]
    for k in (0, 1):
        fold_doc = json.loads((tmp_path / "work" / f"fold{k}" / "evaluation" / "emidec_heldout.json").read_text())
        assert fold_doc["heldout_fold"] == k and "segment_volume" in fold_doc["code_path"]
        _check_package(tmp_path / "work" / f"fold{k}", "heart_mr_lge_seg")


def test_train_one_batch_on_real_emidec(data_dir: Path, tmp_path: Path) -> None:
    from pipelines.lge.train import train_from_recipe

    if not (data_dir / "cardiac" / "emidec").is_dir():
        import pytest

        pytest.skip("EMIDEC not found under the data root")
    torch.set_num_threads(1)
    res = train_from_recipe(REPO_ROOT / "configs" / "experiment" / "lge_seg_2d.yaml",
                            ["data.max_cases=2", f"package.out_dir={tmp_path / 'pkg'}", "trainer.limit_val_batches=1",
                             *TINY])
    _check_package(res["package_dir"], "heart_mr_lge_seg")
    meta = read_metadata(res["package_dir"])
    assert meta.licence == "CC BY-NC-SA 4.0" and "Lalande" in meta.training_data[0].citation
    assert len(res["train_cases"]) == 2 and not set(res["train_cases"]) & set(res["heldout_cases"])


def test_ship_copies_evaluates_and_writes_figures_from_the_json(tmp_path: Path) -> None:
    from pipelines.lge.cv import run_cv
    from pipelines.lge.ship import metadata_metrics, ship

    torch.set_num_threads(1)
    data = write_emidec(tmp_path / "emidec", n=6, shape=(3, 64, 64))
    out = tmp_path / "shipped"
    cv_json = out / "evaluation" / "emidec_cv2.json"
    ov = [f"data.root={data}", "data.n_folds=2", "model.canonical_size=[64,64]", "model.crop_size=[32,32]",
          "model.size_divisor=8", *TINY]
    cv = run_cv(REPO_ROOT / "configs" / "experiment" / "lge_seg_2d.yaml", [0], data, cv_json, tmp_path / "work", ov)
    assert not cv["complete"]
    held = ship(tmp_path / "work" / "fold0", out, data, cv_json)
    meta = read_metadata(out)
    assert meta.name == "heart_mr_lge_seg" and meta.version == "1.0.0"
    assert meta.metrics == metadata_metrics(held, cv) and "test/dice/myo" in meta.metrics
    assert "evaluation/emidec_heldout_fold0.json" in meta.files and "evaluation/emidec_cv2.json" in meta.files
    card = (out / "MODEL_CARD.md").read_text()
    assert f"{held['mean']['dice.myo']:.3f}" in card and "Incomplete CV" in card and "0.879" in card
    for f in meta.files:
        assert (out / f).is_file(), f
