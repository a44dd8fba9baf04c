"""The shipped LGE package: complete, <= 20 MB, loadable through the registry, metadata figures = committed JSONs,
held-out fold never trained on, and it segments a real held-out case."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from medai.cardiac.lge_predictor import LgeSegPredictor
from medai.datasets.emidec import emidec_folds
from medai.inference.package import read_metadata
from medai.inference.predictor import Predictor
from medai.settings import REPO_ROOT
from pipelines.lge.ship import metadata_metrics

PKG = REPO_ROOT / "models" / "packages" / "heart_mr_lge_seg"

pytestmark = pytest.mark.skipif(not (PKG / "metadata.json").is_file(), reason="shipped package not built yet")


def _json(rel: str) -> dict:
    return json.loads((PKG / rel).read_text())


def test_package_is_complete_and_small() -> None:
    meta = read_metadata(PKG)
    assert meta.name == "heart_mr_lge_seg" and meta.predictor == "lge_sax_seg" and meta.task == "segmentation"
    assert meta.licence == "CC BY-NC-SA 4.0" and "Lalande" in meta.training_data[0].citation
    assert {lab["name"]: lab["value"] for lab in meta.labels} == {"lv": 1, "myo": 2, "infarct": 3, "mvo": 4}
    codes = {lab["name"]: lab["code"]["value"] for lab in meta.labels}
    assert codes["myo"] == "74281007" and codes["infarct"] == "22298006"
    for f in meta.files:
        assert (PKG / f).is_file(), f
    assert sum(p.stat().st_size for p in PKG.rglob("*") if p.is_file()) <= 20 * 1024 * 1024
    card = (PKG / "MODEL_CARD.md").read_text()
    assert "Reproduce" in card and "0.879" in card and "Lalande" in card and "CC BY-NC-SA 4.0" in card


def test_metadata_figures_come_from_the_committed_evaluation() -> None:
    meta = read_metadata(PKG)
    held = next(f for f in meta.files if f.startswith("evaluation/emidec_heldout_fold"))
    doc = _json(held)
    cv_file = next((f for f in meta.files if f.startswith("evaluation/emidec_cv")), None)
    cv = _json(cv_file) if cv_file else None
    assert meta.metrics == pytest.approx(metadata_metrics(doc, cv))
    assert doc["heldout"] and doc["command"].startswith("medai evaluate heart_mr_lge_seg")
    assert "segment_volume" in doc["code_path"]
    assert {"test/dice/myo", "test/dice/infarct", "test/dice/mvo", "test/scar_pct_abs_error"} <= set(meta.metrics)
    card = (PKG / "MODEL_CARD.md").read_text()
    assert f"{doc['mean']['dice.myo']:.3f}" in card and f"{doc['mean']['dice.infarct']:.3f}" in card


def test_heldout_fold_was_never_trained_on() -> None:
    split = _json("split.json")
    train, held = set(split["train_cases"]), set(split["heldout_cases"])
    assert not train & held and len(train) + len(held) == 80
    folds = emidec_folds(sorted(train | held), split["n_folds"], split["fold_seed"])
    assert held == {c for c, f in folds.items() if f == split["heldout_fold"]}
    meta = read_metadata(PKG)
    doc = _json(next(f for f in meta.files if f.startswith("evaluation/emidec_heldout_fold")))
    assert sorted(r["case"] for r in doc["cases"]) == sorted(held)


def test_shipped_weights_segment_a_held_out_infarct_case(data_dir: Path) -> None:
    from medai.datasets.emidec import read_emidec_case

    root = data_dir / "cardiac" / "emidec"
    if not root.is_dir():
        pytest.skip("EMIDEC not found under the data root")
    torch.set_num_threads(1)
    pred = Predictor.from_package(PKG)
    assert isinstance(pred, LgeSegPredictor)
    case_id = next(c for c in _json("split.json")["heldout_cases"] if c.startswith("Case_P"))
    case = read_emidec_case(root, case_id)
    lab = pred.segment_volume(case.to_volume()).volume.array
    assert lab.shape == case.image.shape and lab.dtype == np.uint8
    myo_p, myo_r = np.isin(lab, [2, 3, 4]), np.isin(case.label, [2, 3, 4])  # type: ignore[arg-type]
    dice = 2 * (myo_p & myo_r).sum() / (myo_p.sum() + myo_r.sum())
    assert dice > 0.6, dice
