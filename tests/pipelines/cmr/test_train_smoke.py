"""One-batch CPU training smoke tests: `medai train` -> MLflow run (params, metrics, plots) -> package -> registry.

Plus a 2-process CPU DDP (gloo, spawned) run proving the multi-device path.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from medai.cardiac.preprocess import CineSegInferenceConfig
from medai.inference.package import read_metadata, resolve_package
from medai.registry import NETWORKS
from medai.settings import REPO_ROOT
from tests.medai.datasets.helpers import write_acdc_release

SMOKE = REPO_ROOT / "configs" / "experiment" / "cmr_seg_2d_smoke.yaml"


def _run_data(run_id: str) -> tuple[dict, dict, list[str]]:
    from mlflow.tracking import MlflowClient

    from pipelines.mlflow_utils import setup_tracking

    setup_tracking()
    client = MlflowClient()
    run = client.get_run(run_id)
    arts = [a.path for a in client.list_artifacts(run_id)]
    arts += [a.path for d in ("plots", "package", "config") for a in client.list_artifacts(run_id, d)]
    return run.data.params, run.data.metrics, arts


def _check_package(pkg: Path, name: str) -> None:
    meta = read_metadata(pkg)
    assert meta.name == name and meta.predictor == "cine_sax_seg" and meta.task == "segmentation"
    assert {lab["name"] for lab in meta.labels} == {"lv", "myo", "rv"}
    assert all(lab["code"]["scheme"] == "SCT" for lab in meta.labels)
    assert "val/dice/lv" in meta.metrics and meta.reproduce.startswith("medai train")
    cfg = CineSegInferenceConfig.model_validate_json((pkg / "inference.json").read_text())
    net = NETWORKS.get(cfg.network.name)(**cfg.network.params)
    state = torch.load(pkg / cfg.weights, map_location="cpu")
    net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    assert "Reproduce" in (pkg / "MODEL_CARD.md").read_text()


def test_medai_train_cli_one_batch_synthetic(tmp_path: Path) -> None:
    from medai.cli import app

    torch.set_num_threads(1)
    out = tmp_path / "pkg"
    res = CliRunner().invoke(app, ["train", str(SMOKE), f"package.out_dir={out}"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    meta = read_metadata(out)
    _check_package(out, "heart_mr_cine_seg_smoke")
    params, metrics, arts = _run_data(meta.mlflow_run_id or "")
    assert params["model.network.name"] == "unet2d" and params["data.format"] == "synthetic"
    for key in ("train/loss", "val/dice/lv", "val/dice/myo", "val/dice/rv", "val/dice/mean", "val/dice_raw/lv",
                "best/val/hd95/lv", "best/val/dice_ed/lv", "best/val/dice_es/lv", "train/wall_time_s"):
        assert key in metrics, key
    assert 0.0 <= metrics["val/dice/lv"] <= 1.0
    assert {"plots/training_curves.png", "plots/val_overlay.png", "package/metadata.json",
            "package/weights.pt", "config/resolved.yaml"} <= set(arts)
    # registered with alias candidate, and resolvable through the one package resolver
    reg = resolve_package("models:/heart_mr_cine_seg_smoke@candidate")
    assert json.loads((reg / "metadata.json").read_text())["mlflow_run_id"] == meta.mlflow_run_id


#: One batch of the shipped recipe (configs/experiment/cmr_seg_2d.yaml) with a tiny network.
TINY = ["data.max_cases=2", "data.batch_size=2", "data.num_workers=0", "data.patch_size=[64,64]",
        "model.network.params.channels=[4,8,16]", "model.network.params.num_res_units=1", "model.size_divisor=16",
        "trainer.max_epochs=1", "trainer.limit_train_batches=1", "trainer.limit_val_batches=1",
        "trainer.check_val_every_n_epoch=1", "trainer.num_threads=1", "package.register_model=false"]


def _train_shipped_recipe_one_batch(root: Path, tmp_path: Path) -> dict:
    from pipelines.cmr.train import train_from_recipe

    torch.set_num_threads(1)
    res = train_from_recipe(REPO_ROOT / "configs" / "experiment" / "cmr_seg_2d.yaml",
                            [*TINY, f"data.root={root}", f"package.out_dir={tmp_path / 'pkg'}"])
    _check_package(res["package_dir"], "heart_mr_cine_seg")
    meta = read_metadata(res["package_dir"])
    assert meta.licence == "CC BY-NC-SA 4.0" and "Bernard" in meta.training_data[0].citation
    assert "splits.csv 'train'" in meta.training_data[0].name and "'val'" in meta.training_data[0].description
    assert "HD95 (mm)" in (res["package_dir"] / "MODEL_CARD.md").read_text()
    assert res["model_version"] is None
    assert 0.0 <= res["metrics"]["val/dice/mean"] <= 1.0
    return res


def test_datamodule_resamples_official_layout_to_model_spacing(tmp_path: Path) -> None:
    """format acdc: splits.csv selects the patients; cases at pixdim spacing are resampled in-plane to 1.5 mm."""
    from pipelines.cmr.config import load_recipe
    from pipelines.cmr.data import CineSegDataModule

    root = write_acdc_release(tmp_path / "acdc", pixel_spacing=1.8, shape=(4, 50, 40))
    recipe = load_recipe(REPO_ROOT / "configs" / "experiment" / "cmr_seg_2d.yaml",
                         [f"data.root={root}", "data.num_workers=0"])
    dm = CineSegDataModule(recipe.data, recipe.model.target_spacing_mm)
    dm.setup("fit")
    assert dm.train_ds is not None and dm.val_ds is not None
    assert [c.patient_id for c in dm.val_ds.cases] == ["patient061", "patient061"]
    item = dm.val_ds[0]
    assert tuple(item["image"].shape) == (4, 60, 48)  # 50 x 40 px at 1.8 mm -> 60 x 48 px at 1.5 mm
    assert item["label"].shape == item["image"].shape and set(item["label"].unique().tolist()) == {0, 1, 2, 3}
    assert item["spacing"] == pytest.approx((10.0, 1.5, 1.5))
    assert len(dm.train_ds.slices) == 4 * 4  # patient001 + patient090, ED + ES, 4 slices each
    # without resampling (or without a target spacing) the grid is kept
    raw = CineSegDataModule(recipe.data.model_copy(update={"resample": False}), 1.5)
    raw.setup("validate")
    assert raw.val_ds is not None and tuple(raw.val_ds[0]["image"].shape) == (4, 50, 40)


def test_train_one_batch_on_generated_official_layout(tmp_path: Path) -> None:
    """The shipped recipe on a tiny generated official-layout folder (no real data needed)."""
    _train_shipped_recipe_one_batch(write_acdc_release(tmp_path / "acdc"), tmp_path)


@pytest.mark.realdata
def test_train_one_batch_on_real_acdc(data_dir: Path, tmp_path: Path) -> None:
    """The shipped recipe as is (official ACDC layout, splits.csv), one patient per split, one batch."""
    root = data_dir / "cardiac" / "acdc"
    if not (root / "splits.csv").is_file() or not (root / "training").is_dir():
        pytest.skip(f"ACDC official training set (training/, splits.csv) not found at {root}")
    res = _train_shipped_recipe_one_batch(root, tmp_path)
    meta = read_metadata(res["package_dir"])
    td = meta.training_data[0]  # data.max_cases=2: one patient (ED + ES) of each split
    assert td.n_cases == 1 and "'train' (1 patient, data.max_cases=2)" in td.name
    assert "'val' (1 patient" in td.description


@pytest.mark.slow
def test_ddp_two_cpu_processes_gloo(tmp_path: Path) -> None:
    """Two spawned CPU processes (gloo backend) train one synthetic batch each and export one package."""
    from pipelines.cmr.train import train_from_recipe

    res = train_from_recipe(SMOKE, ["trainer.preset=ddp_cpu", "trainer.strategy=ddp_spawn", "trainer.devices=2",
                                    "data.max_cases=4", f"package.out_dir={tmp_path / 'pkg'}"])
    assert res["train_time_s"] > 0
    _, metrics, _ = _run_data(res["run_id"])
    assert "train/loss" in metrics and "val/dice/mean" in metrics
    _check_package(res["package_dir"], "heart_mr_cine_seg_smoke")
