"""Cross-validation of the cine segmentation recipe: the folds, the recipe's fold mode, and the CV driver."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from medai.datasets.acdc import acdc_folds
from medai.errors import ConfigError
from medai.inference.package import read_metadata
from medai.settings import REPO_ROOT
from tests.medai.datasets.helpers import write_acdc_release
from tests.pipelines.cmr.test_train_smoke import TINY

RECIPE = REPO_ROOT / "configs" / "experiment" / "cmr_seg_2d.yaml"
#: two patients in each of three groups (DCM 1-20, HCM 21-40, NOR 61-80)
PATIENTS = {p: "train" for p in ("patient001", "patient002", "patient021", "patient022", "patient061", "patient062")}


def test_acdc_folds_are_group_stratified_and_refuse_too_many_folds(tmp_path: Path) -> None:
    from medai.datasets.acdc import acdc_group

    root = write_acdc_release(tmp_path / "acdc", PATIENTS, shape=(2, 32, 32))
    folds = acdc_folds(root, n_folds=2)
    assert sorted(folds) == sorted(PATIENTS) and set(folds.values()) == {0, 1}
    for k in (0, 1):  # one patient of each group per fold
        assert sorted(acdc_group(p) for p, f in folds.items() if f == k) == ["DCM", "HCM", "NOR"]
    assert acdc_folds(root, n_folds=2) == folds  # fixed seed
    with pytest.raises(ConfigError, match="at least 3 patients per group"):
        acdc_folds(root, n_folds=3)
    with pytest.raises(ConfigError, match="no patientNNN/Info.cfg"):
        acdc_folds(tmp_path / "empty")


@pytest.mark.realdata
def test_real_acdc_folds_hold_four_patients_of_each_group(data_dir: Path) -> None:
    root = data_dir / "cardiac" / "acdc"
    if not (root / "training").is_dir():
        pytest.skip(f"ACDC official training set not found at {root}")
    folds = acdc_folds(root)
    assert len(folds) == 100
    for k in range(5):
        held = [p for p, f in folds.items() if f == k]
        assert len(held) == 20 and all(sum(1 for p in held if (int(p[-3:]) - 1) // 20 == g) == 4 for g in range(5))


def test_fold_mode_needs_the_release_and_an_existing_fold() -> None:
    from pipelines.cmr.config import load_recipe

    with pytest.raises(ConfigError, match="official ACDC release"):
        load_recipe(RECIPE, ["data.fold=0", "data.format=acdc-h5"])
    with pytest.raises(ConfigError, match="data.n_folds=5"):
        load_recipe(RECIPE, ["data.fold=5"])


def test_fold_mode_trains_on_the_other_folds_and_holds_its_own_out(tmp_path: Path) -> None:
    from pipelines.cmr.config import load_recipe
    from pipelines.cmr.data import load_cases

    root = write_acdc_release(tmp_path / "acdc", PATIENTS, shape=(2, 32, 32))
    folds = acdc_folds(root, n_folds=2)
    recipe = load_recipe(RECIPE, [f"data.root={root}", "data.fold=1", "data.n_folds=2", "data.num_workers=0"])
    val, train = load_cases(recipe.data, "val"), load_cases(recipe.data, "train")
    assert sorted(c.case_id for c in val) == sorted(f"{p}_{ph}" for p, f in folds.items() if f == 1
                                                    for ph in ("ED", "ES"))
    assert {c.patient_id for c in train} == {p for p, f in folds.items() if f == 0}


def test_cv_trains_each_fold_without_selection_and_scores_its_held_out_patients(tmp_path: Path) -> None:
    """Two folds of the shipped recipe (tiny network, one batch): every patient is scored once, by the fold package
    that never trained on it, through the Predictor; the document is complete and pools all held-out cases."""
    from pipelines.cmr.cv import run_cv

    torch.set_num_threads(1)
    root = write_acdc_release(tmp_path / "acdc", PATIENTS, shape=(2, 32, 32))
    folds = acdc_folds(root, n_folds=2)
    tiny = [o for o in TINY if not o.startswith("data.max_cases")] + ["data.n_folds=2"]
    out = tmp_path / "cv.json"
    run_cv(RECIPE, [0], root, out, tmp_path / "work", tiny, command="test")
    partial = json.loads(out.read_text())
    assert partial["folds_run"] == [0] and partial["complete"] is False
    from pipelines.cmr.ship import cv_section

    card = "\n".join(cv_section("acdc_cv2", partial))
    assert "PARTIAL: 1 of 2 folds run (0)" in card and "| 0 | 3 |" in card and "| LV |" in card
    doc = run_cv(RECIPE, [0, 1], root, out, tmp_path / "work", tiny, skip_existing=True, command="test")
    assert json.loads(out.read_text()) == json.loads(json.dumps(doc, default=float))
    assert doc["complete"] is True and doc["folds_run"] == [0, 1]
    assert sorted(p["patient"] for p in doc["patients"]) == sorted(PATIENTS)  # each patient scored exactly once
    for f in doc["folds"]:
        held = sorted(p for p, k in folds.items() if k == f["fold"])
        assert f["heldout_patients"] == held
        assert f["epochs"] is not None and f["train_time_s"] > 0
        assert {p["patient"] for p in doc["patients"] if p["fold"] == f["fold"]} == set(held)
        meta = read_metadata(Path(f["package"]))
        assert meta.version.endswith(f"-fold{f['fold']}") and meta.training_data[0].n_cases == 3
        assert f"every patient but fold {f['fold']} of 2" in meta.training_data[0].name
        assert "not used for selection" in meta.training_data[0].description
        card = (Path(f["package"]) / "MODEL_CARD.md").read_text()
        assert "nothing was chosen on these figures" in card and "last epoch kept" in card
        assert "optimistic" not in card and "selected on validation" not in card
        fold_eval = json.loads((Path(f["package"]) / "evaluation" / "acdc_heldout.json").read_text())
        assert fold_eval["patients_selected"] == held and fold_eval["mean"] == f["mean"]
    assert len(doc["cases"]) == 2 * len(PATIENTS)  # ED and ES of every patient
    card = "\n".join(cv_section("acdc_cv2", doc))
    assert "all 2 folds (6 held-out patients, 12 cases)" in card and "| 1 | 3 |" in card
    for key in ("dice.lv", "dice.myo", "dice.rv"):
        assert 0.0 <= doc["pooled"][key] <= 1.0 and key in doc["fold_mean"] and key in doc["fold_sd"]
    # the fold's package was trained, not selected: its checkpoints are the epochs', none is a "best"
    from medai.settings import get_settings

    run_id = read_metadata(Path(doc["folds"][0]["package"])).mlflow_run_id
    assert run_id
    ckpts = sorted(p.name for p in (get_settings().home / "runs" / "cmr_seg_2d" / run_id / "checkpoints").glob("*"))
    assert "last.ckpt" in ckpts and not any(n.startswith("best") for n in ckpts)
    # the diagnosis CV can take its features from these fold packages: each patient from the one that held it out
    import pandas as pd

    from medai.cardiac.predictor import load_default
    from pipelines.dx.cv import out_of_fold_features
    from pipelines.dx.data import feature_table

    table = out_of_fold_features(tmp_path / "work", root, 2)
    assert table["patient"].tolist() == sorted(PATIENTS)
    for p in ("patient001", "patient062"):
        own = feature_table(load_default(tmp_path / "work" / f"fold{folds[p]}"), root, patients=[p])
        pd.testing.assert_frame_equal(table[table["patient"] == p].reset_index(drop=True), own)
    # ... as can the diagnosis training (recipe data.seg_cv): its training split's rows of that table
    from pipelines.dx.config import load_recipe
    from pipelines.dx.train import train_table

    dx_recipe = REPO_ROOT / "configs" / "experiment" / "dx_acdc.yaml"
    dx = load_recipe(dx_recipe, [f"data.root={root}", f"data.seg_cv={tmp_path / 'work'}"])
    pd.testing.assert_frame_equal(train_table(dx), table)  # every patient here is in 'train'
    with pytest.raises(ConfigError, match="no cine CV fold packages"):
        train_table(load_recipe(dx_recipe, [f"data.root={root}", f"data.seg_cv={tmp_path / 'nowhere'}"]))
    # ... and so can the quality gate's segmentation-quality rows (clean variant: no random corruption)
    from medai.datasets.acdc import load_acdc
    from medai.inference.predictor import Predictor
    from pipelines.cmr.cv import fold_packages
    from pipelines.quality.gate_data import seg_quality_rows

    quality = Predictor.from_package("heart_mr_quality")
    models = {pkg.name: load_default(pkg) for pkg, _ in fold_packages(tmp_path / "work", root, 2)}
    by_patient = {p: models[f"fold{k}"] for p, k in folds.items()}
    cases = load_acdc(root)
    rows = seg_quality_rows(models["fold0"], quality, cases, 1, 0, by_patient)
    assert len({r["case"] for r in rows}) == len(cases)
    for case in cases:
        alone = seg_quality_rows(by_patient[case.patient_id], quality, [case], 1, 0)
        assert [(r["structure"], r["dice"]) for r in rows if r["case"] == case.case_id] == [
            (r["structure"], r["dice"]) for r in alone]
    ev = tmp_path / "work" / "fold0" / "evaluation" / "acdc_heldout.json"
    fold0 = json.loads(ev.read_text())
    ev.write_text(json.dumps({**fold0, "patients_selected": fold0["patients_selected"][:1]}))
    with pytest.raises(ConfigError, match="held out other patients"):
        out_of_fold_features(tmp_path / "work", root, 2)
    ev.write_text(json.dumps(fold0))
    (tmp_path / "work" / "fold1" / "evaluation" / "acdc_heldout.json").unlink()
    with pytest.raises(ConfigError, match="no scored fold 1 package"):
        out_of_fold_features(tmp_path / "work", root, 2)
