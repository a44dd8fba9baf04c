"""Every LGE recipe builds (pydantic-validated) with its network and frozen inference config; errors are clear."""

from __future__ import annotations

from pathlib import Path

import pytest

from medai.errors import ConfigError
from medai.settings import REPO_ROOT
from pipelines import evaluate_function, train_function
from pipelines.cmr.module import build_network
from pipelines.lge.config import build_recipe, load_recipe

RECIPES = sorted((REPO_ROOT / "configs" / "experiment").glob("lge_seg_*.yaml"))


def test_recipes_exist_and_route() -> None:
    assert {p.stem for p in RECIPES} >= {"lge_seg_2d", "lge_seg_2d_smoke"}
    assert train_function("lge_segmentation").__module__ == "pipelines.lge.train"
    assert evaluate_function("heart_mr_lge_seg").__module__ == "pipelines.lge.evaluate"
    assert evaluate_function("heart_mr_cine_seg").__module__ == "pipelines.cmr.evaluate"


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_recipe_builds(path: Path) -> None:
    recipe = load_recipe(path)
    assert recipe.task == "lge_segmentation"
    net = build_network(recipe.model)  # type: ignore[arg-type]
    assert sum(p.numel() for p in net.parameters()) > 0
    icfg = recipe.model.inference_config()
    assert set(icfg.labels) == {"lv", "myo", "infarct", "mvo"} and icfg.in_channels == 1 + 2 * recipe.model.context


def test_shipped_recipe_is_the_documented_one() -> None:
    r = load_recipe(REPO_ROOT / "configs" / "experiment" / "lge_seg_2d.yaml")
    assert r.data.format == "emidec" and r.data.root.endswith("emidec") and r.data.fold == 0
    assert r.package.name == "heart_mr_lge_seg" and r.model.labels == {"lv": 1, "myo": 2, "infarct": 3, "mvo": 4}
    n = sum(p.numel() for p in build_network(r.model).parameters())  # type: ignore[arg-type]
    assert 0.5e6 < n < 3e6


def test_overrides_and_errors() -> None:
    path = REPO_ROOT / "configs" / "experiment" / "lge_seg_2d.yaml"
    r = load_recipe(path, ["data.fold=3", "trainer.max_epochs=2", "data.exclude_folds=[0]"])
    assert r.data.fold == 3 and r.trainer.max_epochs == 2 and r.data.exclude_folds == [0]
    with pytest.raises(ConfigError, match="n_folds"):
        load_recipe(path, ["data.fold=5"])
    with pytest.raises(ConfigError, match="excluded"):
        load_recipe(path, ["data.fold=0", "data.exclude_folds=[0]"])
    with pytest.raises(ConfigError, match="in_channels"):
        load_recipe(path, ["model.context=1"])
    with pytest.raises(ConfigError, match="out_channels"):
        build_recipe({"model": {"network": {"name": "unet2d", "params": {"in_channels": 1, "out_channels": 4}}}})
    with pytest.raises(ConfigError, match="invalid LGE"):
        build_recipe({"data": {"unknown_key": 1}})
