"""The diagnosis training flow on a synthetic feature table (package written, loaded through the Predictor,
selection by inner CV), the metrics, recipe validation, and the evaluation from images on two real ACDC patients
(skipped without the data)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medai.cardiac.dx_features import feature_names
from medai.cardiac.dx_predictor import load_dx
from medai.errors import ConfigError
from pipelines.dx.config import load_recipe
from pipelines.dx.train import classification_metrics, fit_package

RECIPE = Path(__file__).resolve().parents[3] / "configs" / "experiment" / "dx_acdc.yaml"
SMALL = ["baseline.n_estimators=20", "baseline.calibration_folds=2", "selection_folds=2"]


def synthetic_table(n_per_class: int = 12, seed: int = 0) -> pd.DataFrame:
    """Features whose LVEF / EDV / wall thickness / RV ratio separate the five groups, plus noise."""
    rng = np.random.default_rng(seed)
    rows = []
    centres = {"NOR": (60, 150, 9, 1.0), "DCM": (20, 300, 8, 0.6), "HCM": (70, 130, 18, 0.9),
               "MINF": (35, 200, 8, 0.8), "RV": (55, 150, 8, 1.8)}
    names = feature_names()
    for g, (ef, edv, wt, ratio) in centres.items():
        for i in range(n_per_class):
            f = dict(zip(names, rng.normal(1.0, 0.3, len(names)), strict=True))
            f.update(lv_ef=ef + rng.normal(0, 4), lv_edv=edv + rng.normal(0, 15), wt_ed_max=wt + rng.normal(0, 1),
                     rv_lv_edv_ratio=ratio + rng.normal(0, 0.08), height_cm=175.0, weight_kg=75.0)
            rows.append({"patient": f"p{g}{i}", "group": g, **f})
    return pd.DataFrame(rows)


def test_fit_package_writes_a_loadable_package_that_classifies(tmp_path: Path) -> None:
    recipe = load_recipe(RECIPE, SMALL)
    table = synthetic_table()
    pkg, info = fit_package(recipe, table, tmp_path / "pkg")
    assert set(info["selection"]) == {"baseline", "fusion", "ensemble"}
    assert info["primary"] == min(info["selection"], key=lambda k: info["selection"][k]["log_loss"])
    sel = json.loads((pkg / "training_selection.json").read_text())
    assert sel["primary"] == info["primary"] and len(sel["train_patients"]) == len(table)
    test = synthetic_table(4, seed=1)
    rows = [r[feature_names()].to_dict() for _, r in test.iterrows()]
    probs = {}
    for name in ("baseline", "fusion", "ensemble"):
        pred = load_dx(pkg, estimator=name)
        hits = [pred.predict({"features": r}).extras["predicted_class"] == g
                for r, g in zip(rows, test["group"], strict=True)]
        assert np.mean(hits) >= 0.8, (name, np.mean(hits))
        probs[name] = pred.probabilities(rows)
    # the ensemble is the mean of its members' calibrated probabilities, and reports the fusion model's weights
    np.testing.assert_allclose(probs["ensemble"], (probs["baseline"] + probs["fusion"]) / 2, atol=1e-12)
    ens = load_dx(pkg, estimator="ensemble").predict({"features": rows[0]})
    assert ens.extras["estimator"] == "ensemble" and set(ens.extras["modality_weights"]) <= set(recipe.modalities)
    with pytest.raises(ConfigError, match="no estimator 'bagging'"):
        load_dx(pkg, estimator="bagging")
    meta = json.loads((pkg / "metadata.json").read_text())
    assert meta["predictor"] == "cine_dx" and "selection_cv/baseline/accuracy" in meta["metrics"]


def test_metrics_on_known_probabilities() -> None:
    classes = ["A", "B", "C"]
    proba = np.array([[0.9, 0.05, 0.05], [0.1, 0.8, 0.1], [0.2, 0.7, 0.1], [0.1, 0.1, 0.8]])
    m = classification_metrics(["A", "B", "C", "C"], proba, classes)
    assert m["accuracy"] == 0.75 and m["per_class_recall"] == {"A": 1.0, "B": 1.0, "C": 0.5}
    assert m["balanced_accuracy"] == pytest.approx((1 + 1 + 0.5) / 3)
    assert m["confusion_matrix"]["rows_true_cols_pred"] == [[1, 0, 0], [0, 1, 0], [0, 1, 1]]
    assert m["log_loss"] == pytest.approx(-np.mean(np.log([0.9, 0.8, 0.1, 0.8])))


def test_a_recipe_with_an_unknown_feature_is_refused() -> None:
    with pytest.raises(ConfigError, match="unknown features"):
        load_recipe(RECIPE, ["modalities.clinical=[height_cm,shoe_size]"])
    with pytest.raises(ConfigError, match="missing_modality_sets"):
        load_recipe(RECIPE, ["missing_modality_sets.x=[echo]"])


def test_evaluation_from_images_on_two_real_patients(data_dir: Path, tmp_path: Path) -> None:
    from pipelines.dx.evaluate import evaluate_cli

    root = data_dir / "cardiac" / "acdc" / "training"
    if not (root / "patient001").is_dir():
        pytest.skip("ACDC official training set not found under cardiac/acdc/training")
    sub = tmp_path / "acdc"
    sub.mkdir()
    for p in ("patient001", "patient081"):
        (sub / p).symlink_to(root / p)
    res = evaluate_cli("heart_mr_cine_dx", sub, "acdc", tmp_path / "e.json")
    doc = json.loads((tmp_path / "e.json").read_text())
    assert doc["n_scored"] == 2
    assert {"accuracy", "balanced_accuracy", "per_class_recall", "confusion_matrix"} <= set(doc)
    assert set(doc["missing_modality"][res["primary"]]) >= {"cine_only", "measurements_only"}
    assert [r["group"] for r in doc["patients"]] == ["DCM", "RV"]
    assert (tmp_path / "e_confusion.png").stat().st_size > 1000


def test_feature_cache_follows_how_the_segmentation_runs(tmp_path: Path) -> None:
    """The cached feature table is keyed by the segmentation's inference settings too: the same weights run under
    another test-time augmentation give other masks, so their features must not come from the cache."""
    from medai.inference.predictor import Predictor
    from pipelines.dx.data import _cache_key
    from tests.medai.cardiac.helpers import make_tiny_package

    pkg = make_tiny_package(tmp_path / "seg")
    plain = _cache_key(Predictor.from_package(pkg), [tmp_path], "acdc")
    assert _cache_key(Predictor.from_package(pkg), [tmp_path], "acdc") == plain
    cfg = json.loads((pkg / "inference.json").read_text())
    (pkg / "inference.json").write_text(json.dumps({**cfg, "tta": "d8"}))
    assert _cache_key(Predictor.from_package(pkg), [tmp_path], "acdc") != plain
