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
            "data.metadata=false",
            "data.split.val_fraction=0.2",
            "data.split.test_fraction=0.2",
            "model.network=derm_resnet_small",
            "model.params={width: 8}",
            "trainer.low_res_size=null",
            "trainer.tta=1",
            "trainer.max_epochs=1",
            "trainer.batch_size=8",
            "trainer.limit_train_batches=1",
            f"output.package_dir={pkg}",
            "output.experiment=derm_smoke",
        ],
    )
    assert res["package"] == pkg
    for f in ("weights.pt", "inference.json", "split.json", "metadata.json", "MODEL_CARD.md"):
        assert (pkg / f).is_file(), f
    # the test result is an evaluation through the predictor, and the card's figures are its figures
    ev = json.loads((pkg / "evaluation" / "labels_test.json").read_text())
    assert ev["subset"] == "csv-test" and ev["is_test_result"] and ev["n"] == res["test"]["n"]
    card = (pkg / "MODEL_CARD.md").read_text()
    assert "<!-- evaluation:labels_test -->" in card and f"{ev['balanced_accuracy']:.3f}" in card
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


def _disease_cohort(d: Path, n_patients: int, seed: int) -> Path:
    """A hospital's own cohort in the labels.csv layout: 3 diseases with a learnable colour signal, 2 images per
    patient, patient metadata (age, sex, site, Fitzpatrick skin type) in the labels file."""
    d.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    tint = {"vitiligo": (70, 70, 70), "lupus": (-50, -10, -10), "bullous": (-10, -40, 30)}
    rows = []
    for p in range(n_patients):
        lab = list(tint)[p % 3]
        for k in range(2):
            base = lesion_like(40, 48, seed=seed * 1000 + p * 2 + k).astype(int)
            arr = np.clip(base + np.asarray(tint[lab]) + rng.normal(0, 8, 3), 0, 255).astype(np.uint8)
            name = f"s{seed}p{p}_{k}.png"
            (d / name).write_bytes(encode(arr))
            rows.append(
                {
                    "image": name,
                    "label": lab,
                    "group": f"s{seed}patient{p}",
                    "age": int(rng.integers(20, 80)),
                    "sex": ["male", "female"][p % 2],
                    "site": ["face", "trunk", "hand"][int(rng.integers(0, 3))],
                    "skin_type": ["II", "IV", "VI"][p % 3],
                }
            )
    pd.DataFrame(rows).to_csv(d / "labels.csv", index=False)
    return d


def test_any_disease_cohort_trains_evaluates_and_holds_on_new_patients(tmp_path: Path) -> None:
    """The any-disease path: a labels.csv cohort -> medai train (patient-grouped split, balancing, calibration,
    metadata fusion) -> evaluation of its test patients and of a second cohort of new patients, per class and per
    skin type -> a generated model card stating the cohort and its class counts."""
    from pipelines.derm.evaluate import evaluate_cli

    cohort = _disease_cohort(tmp_path / "hospital", 45, seed=1)
    pkg = tmp_path / "pkg"
    res = train_from_recipe(
        RECIPE,
        [
            "name=skin_hospital_cls",
            "data.format=csv",
            f"data.labels_csv={cohort / 'labels.csv'}",
            "data.image_size=32",
            "data.split.val_fraction=0.2",
            "data.split.test_fraction=0.2",
            "model.network=meta_fusion",
            "model.params={backbone: 'derm_resnet_small:16', meta_hidden: 16, dropout: 0.1}",
            "trainer.low_res_size=null",
            "trainer.tta=2",
            "trainer.max_epochs=12",
            "trainer.max_time_min=null",
            "trainer.batch_size=16",
            "trainer.lr=0.003",
            "trainer.num_threads=2",
            f"output.package_dir={pkg}",
            "output.experiment=derm_any_disease",
            "output.register_model=false",
        ],
    )
    inf = json.loads((pkg / "inference.json").read_text())
    assert inf["metadata"]["fields"] == ["age", "sex", "site", "skin_type"]
    split = json.loads((pkg / "split.json").read_text())
    assert not set(split["groups"]["train"]) & set(split["groups"]["test"])
    test = res["test"]
    assert test["metadata_used"] == ["age", "sex", "site", "skin_type"]
    assert set(test["per_class"]) == {"bullous", "lupus", "vitiligo"}
    assert set(test["per_skin_type"]) == {"II", "IV", "VI"}
    assert test["balanced_accuracy"] >= 0.8, test["balanced_accuracy"]  # chance is 0.33
    # new patients from the same hospital, never seen: the external-cohort format
    new = _disease_cohort(tmp_path / "new_patients", 18, seed=2)
    ext = evaluate_cli("skin_hospital_cls", new, fmt="csv", out=tmp_path / "new.json", package=pkg, n_boot=200)
    assert ext["is_test_result"] and ext["n"] == 36
    assert ext["balanced_accuracy"] >= 0.8, ext["balanced_accuracy"]
    lo, hi = ext["bootstrap"]["intervals"]["balanced_accuracy"].values()
    assert lo <= ext["balanced_accuracy"] <= hi
    assert ext["image_only"]["balanced_accuracy"] >= 0.6  # the signal is in the image: image-only still works
    card = (pkg / "MODEL_CARD.md").read_text()
    assert "labels" in card and "| bullous |" in card and "Patient metadata fused: age, sex, site, skin_type" in card
    assert "per skin type" in card.lower() or "| skin type |" in card


def test_an_interrupted_run_resumes_from_its_last_checkpoint(
    csv_cohort: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pipelines.derm.train as train_mod

    overrides = [
        "data.format=csv",
        f"data.labels_csv={csv_cohort / 'labels.csv'}",
        "data.image_size=32",
        "data.metadata=false",
        "model.network=derm_resnet_small",
        "model.params={width: 8}",
        "trainer.low_res_size=null",
        "trainer.max_epochs=2",
        "trainer.max_time_min=null",
        "trainer.batch_size=8",
        "trainer.limit_train_batches=2",
        f"output.package_dir={tmp_path / 'pkg'}",
        "output.experiment=derm_resume",
        "output.register_model=false",
    ]
    work = train_mod.work_dir(load_recipe(RECIPE, overrides))

    def crash(*a: object, **k: object) -> None:
        raise RuntimeError("power cut")

    with monkeypatch.context() as m:
        m.setattr(train_mod, "write_package", crash)
        with pytest.raises(RuntimeError, match="power cut"):
            train_from_recipe(RECIPE, overrides)
    last = torch.load(work / "last.ckpt", map_location="cpu", weights_only=False)
    assert last["epoch"] == 1 and last["medai_elapsed_s"] > 0  # both epochs ran before the crash
    fits: list[object] = []
    real_fit = train_mod.L.Trainer.fit

    def spy(self, *a: object, **k: object) -> object:  # noqa: ANN001
        fits.append(k.get("ckpt_path"))
        return real_fit(self, *a, **k)

    monkeypatch.setattr(train_mod.L.Trainer, "fit", spy)
    res = train_from_recipe(RECIPE, overrides)
    assert fits == [work / "last.ckpt"]  # continued, not restarted
    assert (tmp_path / "pkg" / "weights.pt").is_file() and res["test"]["n"] > 0
    assert not work.exists()  # cleaned once the package is written


def test_rebuild_card_keeps_only_evaluation_figures(csv_cohort: Path, tmp_path: Path) -> None:
    from pipelines.derm.train import rebuild_card

    overrides = [
        "data.format=csv", f"data.labels_csv={csv_cohort / 'labels.csv'}", "data.image_size=32", "data.metadata=false",
        "model.network=derm_resnet_small", "model.params={width: 8}", "trainer.low_res_size=null",
        "trainer.max_epochs=1", "trainer.batch_size=8", "trainer.limit_train_batches=1",
        f"output.package_dir={tmp_path / 'pkg'}", "output.experiment=derm_card", "output.register_model=false",
    ]
    res = train_from_recipe(RECIPE, overrides)
    pkg = tmp_path / "pkg"
    (pkg / "MODEL_CARD.md").write_text("# an old card with a stale figure 0.999\n")
    (pkg / "test_metrics.json").write_text("{}")
    card = rebuild_card(pkg, RECIPE, overrides).read_text()
    assert "0.999" not in card and not (pkg / "test_metrics.json").exists()
    assert f"{res['test']['balanced_accuracy']:.3f}" in card and "<!-- evaluation:labels_test -->" in card
    meta = json.loads((pkg / "metadata.json").read_text())
    assert meta["metrics"]["test/balanced_accuracy"] == pytest.approx(res["test"]["balanced_accuracy"])
    assert meta["input_contract"]["image_type"] == "clinical"


def test_warm_start_copies_matching_weights_and_keeps_a_new_head(tmp_path: Path) -> None:
    from medai.registry import NETWORKS
    from pipelines.derm.train import warm_start
    from tests.medai.derm.conftest import make_meta_package

    pkg = make_meta_package(tmp_path / "src")
    params = {"backbone": "efficientnet-b0", "meta_dim": 11}
    net = NETWORKS.get("efficientnet_meta")(in_channels=3, num_classes=3, **params)  # new classes and metadata
    head_before = net.fc.weight.clone()
    counts = warm_start(net, str(pkg))
    src = torch.load(pkg / "weights.pt", weights_only=True)
    assert counts["loaded"] > 100 and counts["skipped"] >= 3
    assert torch.equal(net.backbone._conv_stem.weight, src["backbone._conv_stem.weight"])
    assert torch.equal(net.fc.weight, head_before)
    with pytest.raises(ConfigError, match="no weight"):
        warm_start(NETWORKS.get("derm_resnet_small")(in_channels=3, num_classes=3, width=8), str(pkg))
