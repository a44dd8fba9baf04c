"""Skin-lesion training flow: one-batch CPU smoke run on a synthetic hospital cohort, recipe handling, augmentation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from medai.errors import ConfigError
from medai.inference.predictor import Predictor
from pipelines.derm.data import AugmentConfig, augment_batch
from pipelines.derm.recipe import apply_overrides, load_recipe
from pipelines.derm.train import class_weights_for, train_from_recipe
from tests.medai.derm.conftest import encode, lesion_like

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[3]
RECIPE = ROOT / "configs" / "experiment" / "derm_ham10000.yaml"


@pytest.fixture
def csv_cohort(tmp_path: Path) -> Path:
    """60 synthetic images of 3 'diseases' from 30 patients (2 images each): a hospital's own cohort."""
    d = tmp_path / "cohort"
    d.mkdir()
    rows = []
    tint = {"vitiligo": (60, 60, 60), "lupus": (-40, 0, 0), "bullous": (0, -30, 20)}
    for p in range(30):
        lab = list(tint)[p % 3]
        for k in range(2):
            arr = np.clip(lesion_like(48, 64, seed=p * 2 + k).astype(int) + tint[lab], 0, 255).astype(np.uint8)
            name = f"p{p}_{k}.png"
            (d / name).write_bytes(encode(arr))
            rows.append({"image": name, "label": lab, "group": f"patient{p}"})
    pd.DataFrame(rows).to_csv(d / "labels.csv", index=False)
    return d


def test_recipe_builds_and_overrides_apply() -> None:
    r = load_recipe(RECIPE, ["trainer.max_epochs=3", "data.image_size=64", "model.params.width=16"])
    assert r.task == "skin_lesion_classification" and r.trainer.max_epochs == 3
    assert r.data.image_size == 64 and r.model.params["width"] == 16
    assert r.data.split.seed == 20260
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides({}, ["trainer.max_epochs"])
    with pytest.raises(ConfigError, match="invalid recipe"):
        load_recipe(RECIPE, ["trainer.imbalance=oversample_everything"])


def test_class_weights_balance_the_classes() -> None:
    y = np.array([0] * 90 + [1] * 10)
    w = class_weights_for(y, 2, 1.0)
    assert w[1] / w[0] == pytest.approx(9.0)
    assert np.mean(np.asarray(w)[y]) == pytest.approx(1.0)


def test_augmentation_keeps_shape_range_and_changes_images() -> None:
    x = torch.rand(4, 3, 32, 32)
    g = torch.Generator().manual_seed(0)
    out = augment_batch(x, AugmentConfig(), generator=g)
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    assert not torch.allclose(out, x)
    ident = AugmentConfig(
        flip=False, rotate_deg=0, scale=(1, 1), aspect=0, brightness=0, contrast=0, saturation=0, hue=0
    )
    assert torch.allclose(augment_batch(x, ident), x, atol=1e-5)


def test_one_batch_smoke_training_on_a_csv_cohort(csv_cohort: Path, tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    res = train_from_recipe(
        RECIPE,
        [
            "data.format=csv",
            f"data.labels_csv={csv_cohort / 'labels.csv'}",
            f"data.image_dir={csv_cohort}",
            "data.image_size=32",
            "data.split.val_fraction=0.2",
            "data.split.test_fraction=0.2",
            "model.params.width=8",
            "trainer.max_epochs=1",
            "trainer.batch_size=8",
            "trainer.limit_train_batches=1",
            f"output.package_dir={pkg}",
            "output.experiment=derm_smoke",
        ],
    )
    assert res["package"] == pkg
    for f in ("weights.pt", "inference.json", "split.json", "metadata.json", "MODEL_CARD.md", "test_metrics.json"):
        assert (pkg / f).is_file(), f
    split = json.loads((pkg / "split.json").read_text())
    tr, te = set(split["groups"]["train"]), set(split["groups"]["test"])
    assert tr and te and not tr & te  # split by patient
    assert res["temperature"] > 0
    meta = json.loads((pkg / "metadata.json").read_text())
    assert meta["predictor"] == "skin_lesion" and "test/balanced_accuracy" in meta["metrics"]
    # the package works through the one predict path
    pred = Predictor.from_package(pkg).predict(encode(lesion_like(48, 64)))
    assert [c.name for c in pred.classes] == ["bullous", "lupus", "vitiligo"]
    # tracked and registered in MLflow
    import mlflow
    from mlflow.tracking import MlflowClient

    from medai.settings import get_settings

    mlflow.set_tracking_uri(get_settings().mlflow_tracking_uri)
    mv = MlflowClient().get_model_version_by_alias("skin_derm_lesion_cls", "candidate")
    assert mv.run_id == res["run_id"]
