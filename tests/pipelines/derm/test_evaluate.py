"""``medai evaluate`` for the skin-lesion classifier: subsets, honesty flags, metrics JSON and pictures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medai.derm.cohort import ImageCohort
from medai.inference.package import shipped_packages
from pipelines import evaluate_function
from pipelines.derm.evaluate import evaluate_cli, select_subset
from tests.medai.derm.conftest import encode, lesion_like


def test_dispatch() -> None:
    assert evaluate_function("skin_derm_lesion_cls") is evaluate_cli


def test_csv_cohort_evaluation_writes_metrics_and_pictures(tiny_package: Path, tmp_path: Path) -> None:
    d = tmp_path / "ext"
    d.mkdir()
    names = ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]
    rows = []
    for i in range(14):
        (d / f"i{i}.png").write_bytes(encode(lesion_like(40, 50, seed=i)))
        rows.append({"image": f"i{i}.png", "label": names[i % 7], "group": f"g{i}"})
    pd.DataFrame(rows).to_csv(d / "labels.csv", index=False)
    out = tmp_path / "ev" / "eval.json"
    res = evaluate_cli("skin_derm_lesion_cls", d, "csv", out, tiny_package)
    doc = json.loads(out.read_text())
    assert doc["n"] == 14 and doc["is_test_result"] is True
    assert 0 <= doc["balanced_accuracy"] <= 1 and set(doc["per_class"]) == set(names)
    assert {"auc", "sensitivity", "specificity"} <= set(doc["per_class"]["mel"])
    assert np.asarray(doc["confusion_matrix"]["rows_true_cols_pred"]).sum() == 14
    assert 0 <= doc["ece"] <= 1
    assert Path(res["confusion_png"]).stat().st_size > 1000 and Path(res["reliability_png"]).stat().st_size > 1000


def test_subsets_never_call_training_images_a_test_result(data_dir: Path) -> None:
    pkgs = shipped_packages()
    if "skin_derm_lesion_cls" not in pkgs:
        pytest.fail("shipped skin_derm_lesion_cls package missing")
    split = json.loads((pkgs["skin_derm_lesion_cls"] / "split.json").read_text())
    cohort = ImageCohort.from_ham10000(data_dir / "derm" / "ham10000")
    idx, info = select_subset(cohort, split, "ham10000-test")
    assert info["is_test_result"] and info["images_from_train_or_val_lesions"] == 0
    assert set(np.asarray(cohort.groups)[idx]) <= set(split["groups"]["test"])
    assert len(idx) == split["n_images"]["test"]
    _, info_all = select_subset(cohort, split, "ham10000-all")
    assert info_all["is_test_result"] is False and info_all["images_from_train_or_val_lesions"] > 5000
    _, info_val = select_subset(cohort, split, "ham10000-val")
    assert info_val["is_test_result"] is False
