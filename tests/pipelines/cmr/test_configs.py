"""Every cine recipe and every trainer preset builds (pydantic-validated); overrides and errors are clear."""

from __future__ import annotations

from pathlib import Path

import pytest

from medai.errors import ConfigError
from medai.settings import REPO_ROOT
from pipelines.cmr.config import TRAINER_PRESETS_DIR, build_recipe, load_recipe
from pipelines.cmr.module import build_network

RECIPES = sorted((REPO_ROOT / "configs" / "experiment").glob("cmr_seg_*.yaml"))
PRESETS = sorted(TRAINER_PRESETS_DIR.glob("*.yaml"))


def test_configs_exist() -> None:
    assert RECIPES and {p.stem for p in PRESETS} >= {"cpu", "gpu", "ddp", "ddp_cpu"}


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_recipe_builds(path: Path) -> None:
    recipe = load_recipe(path)
    assert recipe.task == "cmr_segmentation"
    net = build_network(recipe.model)
    assert sum(p.numel() for p in net.parameters()) > 0
    assert set(recipe.model.labels) == {"lv", "myo", "rv"}


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.stem)
def test_trainer_preset_builds(path: Path) -> None:
    recipe = build_recipe({"task": "cmr_segmentation", "trainer": {"preset": path.stem}})
    assert recipe.trainer.preset == path.stem
    assert recipe.trainer.accelerator in {"cpu", "gpu", "auto"}
    if "ddp" in path.stem:
        assert recipe.trainer.strategy.startswith("ddp")


def test_shipped_recipe_is_the_documented_one() -> None:
    r = load_recipe(REPO_ROOT / "configs" / "experiment" / "cmr_seg_2d.yaml")
    assert r.model.network.name == "unet2d"
    # the official ACDC layout, train/val from splits.csv, resampled to the model's spacing like the predictor
    assert r.data.format == "acdc" and r.data.root == "cardiac/acdc" and (r.data.train, r.data.val) == ("train", "val")
    assert r.data.resample and r.model.target_spacing_mm == 1.5
    assert r.package.name == "heart_mr_cine_seg" and r.package.alias == "candidate"


def test_hdf5_copy_still_configurable() -> None:
    """The documented override for users holding the HDF5 copy (``acdc-h5``: train/val are folders)."""
    r = load_recipe(REPO_ROOT / "configs" / "experiment" / "cmr_seg_2d.yaml",
                    ["data.format=acdc-h5", "data.train=/d/acdc/train", "data.val=/d/acdc/val"])
    assert r.data.format == "acdc-h5" and r.data.train == "/d/acdc/train"


def test_dotted_overrides() -> None:
    r = load_recipe(
        REPO_ROOT / "configs" / "experiment" / "cmr_seg_2d.yaml",
        ["trainer.max_epochs=3", "data.patch_size=[96,96]", "optim.lr=1e-3", "trainer.preset=ddp_cpu"],
    )
    assert r.trainer.max_epochs == 3 and r.data.patch_size == (96, 96) and r.optim.lr == 1e-3
    assert r.trainer.strategy == "ddp_spawn" and r.trainer.devices == 2


def test_bad_recipes_fail_clearly() -> None:
    with pytest.raises(ConfigError, match="unknown trainer preset"):
        build_recipe({"trainer": {"preset": "tpu_pod"}})
    with pytest.raises(ConfigError, match="invalid cine segmentation recipe"):
        build_recipe({"data": {"batch_size": "many"}})
    with pytest.raises(ConfigError, match="invalid cine segmentation recipe"):
        build_recipe({"data": {"unknown_key": 1}})
    with pytest.raises(ConfigError, match="spatial_dims"):  # 3-D networks exist, the cine pipeline is 2-D
        build_recipe({"model": {"spatial_dims": 3}})
    with pytest.raises(ConfigError, match="key.sub=value"):
        build_recipe({}, ["trainer.max_epochs"])
