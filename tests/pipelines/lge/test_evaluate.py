"""``medai evaluate heart_mr_lge_*``: metric plumbing on a generated EMIDEC folder (oracle predictor), held-out case
selection from the package's split.json, the CLI route, and the shipped package on real held-out cases."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from medai.cardiac.lge_predictor import LgeSegPredictor, load_default
from medai.datasets.emidec import load_emidec
from medai.domain.volume import LabelMap
from medai.errors import ConfigError
from medai.settings import REPO_ROOT
from pipelines.lge.data import synthetic_lge_cases
from pipelines.lge.evaluate import case_metrics, evaluate, summarize
from tests.medai.cardiac.test_lge_predictor import make_tiny_lge_package

torch.set_num_threads(1)
SHIPPED = REPO_ROOT / "models" / "packages" / "heart_mr_lge_seg"
V = {"lv": 1, "myo": 2, "infarct": 3, "mvo": 4}


def write_emidec(root: Path, n: int = 6, shape: tuple[int, int, int] = (4, 64, 64)) -> Path:
    """Synthetic cases written in the EMIDEC PNG layout."""
    from PIL import Image

    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "labels").mkdir(parents=True, exist_ok=True)
    for c in synthetic_lge_cases(n, shape):
        assert c.label is not None
        for k in range(len(c.image)):
            name = f"{c.case_id}_slice{k:03d}.png"
            Image.fromarray(c.image[k].astype(np.uint8)).save(root / "images" / name)
            Image.fromarray(c.label[k]).save(root / "labels" / name)
    return root


@pytest.fixture(scope="module")
def emidec_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_emidec(tmp_path_factory.mktemp("emidec") / "emidec")


@pytest.fixture()
def pkg(tmp_path: Path) -> Path:
    p = make_tiny_lge_package(tmp_path / "pkg")
    (p / "split.json").write_text(json.dumps({"heldout_fold": 0, "n_folds": 5, "fold_seed": 1,
                                              "train_cases": ["Case_N000", "Case_P001"],
                                              "heldout_cases": ["Case_N002", "Case_P003", "Case_N004", "Case_P005"]}))
    return p


def test_case_metrics_conventions() -> None:
    ref = np.zeros((2, 10, 10), np.uint8)
    ref[:, 2:8, 2:8] = 2
    ref[:, 4:6, 4:6] = 1
    ref[0, 2:4, 2:8] = 3
    ref[0, 2, 4] = 4
    pred = ref.copy()
    pred[pred == 4] = 3  # MVO missed but counted as infarct
    m = case_metrics(pred, pred, ref, V, V)
    assert m["dice.myo"] == 1.0 and m["dice.infarct"] == 1.0 and m["dice.mvo"] == 0.0
    assert m["infarct_pct_ref"] == pytest.approx(100 * 12 / 64) and m["infarct_pct_abs_error"] == 0.0
    normal = np.where(np.isin(ref, [3, 4]), 2, ref).astype(np.uint8)
    m2 = case_metrics(normal, normal, normal, V, V)
    assert "dice.infarct" not in m2 and "dice.mvo" not in m2 and not m2["predicted_infarct"]
    s = summarize([{**m, "group": "P"}, {**m2, "group": "N"}])
    assert s["case_accuracy"] == 1.0 and s["fp_scar_pct_normal"] == 0.0 and s["n_infarct_cases"] == 1


def test_oracle_scores_perfectly_on_held_out_cases(
    pkg: Path, emidec_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    refs = {c.image.tobytes(): c.label for c in load_emidec(emidec_dir)}

    def oracle(self: LgeSegPredictor, volume, **kwargs):  # type: ignore[no-untyped-def]
        return LabelMap(volume=volume.with_array(refs[volume.array.tobytes()]), labels=self.labels)

    monkeypatch.setattr(LgeSegPredictor, "segment_volume", oracle)
    doc = evaluate(load_default(pkg), emidec_dir, "emidec")
    assert [c["case"] for c in doc["cases"]] == ["Case_N002", "Case_N004", "Case_P003", "Case_P005"]
    assert doc["heldout"] and "not in the package's training set" in doc["case_selection"]
    m = doc["mean"]
    assert m["dice.myo"] == pytest.approx(1) and m["dice.infarct"] == pytest.approx(1) and m["dice.mvo"] == 1
    assert m["scar_pct_abs_error"] == 0 and m["case_accuracy"] == 1 and m["fp_scar_pct_normal"] == 0
    assert m["n_cases"] == 4 and m["n_infarct_cases"] == 2
    assert "3+4" in doc["conventions"]["dice.infarct"]
    every = evaluate(load_default(pkg), emidec_dir, "emidec-all")
    assert every["n_cases"] == 6 and not every["heldout"] and "NOT a held-out" in every["case_selection"]
    assert sum(c["in_training_set"] for c in every["cases"]) == 2


def test_case_lists_and_errors(pkg: Path, emidec_dir: Path, tmp_path: Path) -> None:
    pred = load_default(pkg)
    doc = evaluate(pred, emidec_dir, "emidec", cases=["Case_P003"])
    assert doc["n_cases"] == 1 and 0 <= doc["cases"][0]["dice.myo"] <= 1
    with pytest.raises(ConfigError, match="used to train"):
        evaluate(pred, emidec_dir, "emidec", cases=["Case_N000"])
    with pytest.raises(ConfigError, match="--format"):
        evaluate(pred, emidec_dir, "acdc")
    (pkg / "split.json").unlink()
    with pytest.raises(ConfigError, match="split.json"):
        evaluate(load_default(pkg), emidec_dir, "emidec")


def test_medai_evaluate_cli_routes_lge(pkg: Path, emidec_dir: Path, tmp_path: Path) -> None:
    from medai.cli import app

    out = tmp_path / "eval" / "lge.json"
    res = CliRunner().invoke(app, ["evaluate", "heart_mr_lge_seg", "--data", str(emidec_dir), "--format", "emidec",
                                   "--out", str(out), "--model", str(pkg)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    doc = json.loads(out.read_text())
    assert doc["command"].startswith("medai evaluate heart_mr_lge_seg") and doc["n_cases"] == 4
    assert "LgeSegPredictor.segment_volume" in doc["code_path"]


def test_shipped_model_on_two_real_held_out_cases(data_dir: Path) -> None:
    """Sanity on real data through the predictor: two cases of the shipped model's held-out fold."""
    root = data_dir / "cardiac" / "emidec"
    if not root.is_dir() or not (SHIPPED / "metadata.json").is_file():
        pytest.skip("EMIDEC data or the shipped heart_mr_lge_seg package is absent")
    split = json.loads((SHIPPED / "split.json").read_text())
    held = split["heldout_cases"]
    pick = [next(c for c in held if c.startswith("Case_N")), next(c for c in held if c.startswith("Case_P"))]
    doc = evaluate(load_default(SHIPPED), root, "emidec", cases=pick)
    rows = {r["case"]: r for r in doc["cases"]}
    assert all(r["dice.myo"] > 0.6 and r["dice.lv"] > 0.7 for r in rows.values()), rows
    assert rows[pick[0]]["infarct_pct_pred"] < 10


def test_recipe_history_lists_every_cv_with_the_shipped_one_last(tmp_path: Path) -> None:
    from pipelines.lge.ship import recipe_history_section

    ev = tmp_path / "evaluation"
    ev.mkdir()
    assert recipe_history_section(ev, None) == ""
    for name, ov, ep, myo in (("emidec_cv5_e40_v1.0.json", [], 40, 0.70), ("emidec_cv5.json", ["a=1"], 200, 0.81)):
        (ev / name).write_text(json.dumps({"overrides": ov, "pooled": {"dice.myo": myo, "dice.infarct": 0.5},
                                           "folds": [{"epochs": ep}, {"epochs": ep}]}))
    text = recipe_history_section(ev, "emidec_cv5.json")
    rows = [r for r in text.splitlines() if r.startswith("| `")]
    assert len(rows) == 2
    assert rows[0].startswith("| `emidec_cv5_e40_v1.0.json` | none | 40 | 0.700 | 0.500 | n/a |")
    assert rows[1].startswith("| `emidec_cv5.json` (shipped) | a=1 | 200 | 0.810 |")
