"""heart_mr_quality pipelines: the recipe, a one-batch training run on real slices, the metric arithmetic, and the
shipped package's figures against its committed evaluations."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from medai.inference.package import read_metadata
from medai.inference.predictor import Predictor
from medai.quality.predictor import QualityPredictor
from pipelines import evaluate_function, train_function
from pipelines.quality.evaluate import coverage_metrics, seg_quality_metrics

ROOT = Path(__file__).parents[3]
RECIPE = ROOT / "configs" / "experiment" / "quality_artefact.yaml"
PKG = ROOT / "models" / "packages" / "heart_mr_quality"


def test_recipe_routes_and_validates() -> None:
    from medai.errors import ConfigError
    from pipelines.cmr.config import read_recipe
    from pipelines.quality.train import QualityRecipe

    assert train_function("quality_artefact").__module__ == "pipelines.quality.train"
    assert evaluate_function("heart_mr_quality").__module__ == "pipelines.quality.evaluate"
    r = read_recipe(QualityRecipe, RECIPE, ["data.variants=2"], "quality recipe")
    assert r.data.variants == 2 and r.model.network.name == "quality_cnn"
    with pytest.raises(ConfigError, match="variants"):
        read_recipe(QualityRecipe, RECIPE, ["data.variants=0"], "quality recipe")
    with pytest.raises(ConfigError):
        read_recipe(QualityRecipe, RECIPE, ["data.nope=1"], "quality recipe")


def test_coverage_and_seg_quality_metric_arithmetic() -> None:
    rows = [{"case": "a", "basal_missing": True, "apical_missing": False, "p_basal": 0.9, "p_apical": 0.2},
            {"case": "a", "basal_missing": False, "apical_missing": False, "p_basal": 0.6, "p_apical": 0.1},
            {"case": "b", "basal_missing": False, "apical_missing": True, "p_basal": 0.1, "p_apical": 0.3}]
    m = coverage_metrics(rows, {"basal": 0.5, "apical": 0.5})
    assert m["basal"]["error_rate"] == pytest.approx(1 / 3) and m["apical"]["error_rate"] == pytest.approx(1 / 3)
    assert m["error_rate"] == pytest.approx(2 / 6) and m["basal"]["sensitivity"] == 1.0
    assert "sensitivity_by_slices_missing" not in m["basal"]  # rows without depths: no breakdown
    deep = [{**r, "basal_depth": int(r["basal_missing"]), "apical_depth": 0} for r in rows]
    deep += [{"case": "c", "basal_missing": True, "apical_missing": False, "p_basal": 0.4, "p_apical": 0.1,
              "basal_depth": 2, "apical_depth": 0}]
    by_depth = coverage_metrics(deep, {"basal": 0.5, "apical": 0.5})["basal"]["sensitivity_by_slices_missing"]
    assert by_depth == {"1": 1.0, "2": 0.0}
    seg = [{"structure": "lv", "artefact": None, "dice": 0.95, "predicted": 0.93},
           {"structure": "lv", "artefact": "motion", "dice": 0.70, "predicted": 0.80},
           {"structure": "rv", "artefact": "motion", "dice": 0.60, "predicted": 0.85},
           {"structure": "rv", "artefact": None, "dice": 0.90, "predicted": 0.90}]
    q = seg_quality_metrics(seg, {"lv": 0.85, "rv": 0.8})
    assert q["all"]["mae"] == pytest.approx((0.02 + 0.10 + 0.25 + 0.0) / 4)
    assert q["all"]["n_bad"] == 2 and q["all"]["catch_rate"] == 0.5 and q["all"]["false_alarm_rate"] == 0.0
    assert q["clean"]["n"] == 2 and q["per_structure"]["rv"]["n_bad"] == 1


def _digest(a: object) -> str:
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(a, dtype=np.float32).tobytes()).hexdigest()


class _Segmenter:
    """The shipped cine predictor, recording which stacks it segmented (a digest of their float32 voxels)."""

    def __init__(self, inner: object) -> None:
        self.inner, self.seen = inner, []
        self.config = inner.config  # type: ignore[attr-defined]

    def segment_volume(self, vol: object, **kw: object) -> object:
        self.seen.append(_digest(vol.array))  # type: ignore[attr-defined]
        return self.inner.segment_volume(vol, **kw)  # type: ignore[attr-defined]


def test_coverage_rows_segment_each_patient_with_its_own_model(tmp_path: Path) -> None:
    """With ``cine_by_patient`` (the cine CV's out-of-fold packages in ``fit_gate --seg-cv``), a patient's ED and
    ES stacks are segmented by its model alone, and its rows are the ones that model makes on its own."""
    from medai.cardiac.predictor import load_default
    from medai.datasets.acdc import load_acdc
    from pipelines.quality.gate_data import coverage_rows
    from tests.medai.datasets.helpers import write_acdc_release

    cases = load_acdc(write_acdc_release(tmp_path / "acdc", shape=(6, 64, 64)))
    cine = load_default("heart_mr_cine_seg")
    own, others = _Segmenter(cine), _Segmenter(cine)
    rows = coverage_rows(others, cases, cine_by_patient={"patient090": own})
    stacks: dict[str, list[str]] = {c.patient_id: [] for c in cases}
    for c in cases:
        stacks[c.patient_id].append(_digest(c.image))
    assert len({d for ds in stacks.values() for d in ds}) == len(cases) == 6  # ED + ES of three patients
    assert sorted(own.seen) == sorted(stacks["patient090"])
    assert sorted(others.seen) == sorted(stacks["patient001"] + stacks["patient061"])
    assert {r["patient"] for r in rows} == {"patient001", "patient061", "patient090"}
    alone = coverage_rows(cine, [c for c in cases if c.patient_id == "patient090"])
    assert [r for r in rows if r["patient"] == "patient090"] == alone and alone


@pytest.mark.realdata
def test_medai_train_one_batch_on_real_slices(data_dir: Path, tmp_path: Path) -> None:
    import torch

    from medai.cli import app

    torch.set_num_threads(1)
    out = tmp_path / "pkg"
    res = CliRunner().invoke(app, ["train", str(RECIPE), f"package.out_dir={out}", "data.variants=1",
                                   "data.sources=[emidec]", "trainer.fast_dev_run=true"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    meta = read_metadata(out)
    assert meta.predictor == "mr_quality" and meta.mlflow_run_id
    pred = Predictor.from_package(out)
    assert isinstance(pred, QualityPredictor)
    assert pred.score_slices([np.random.default_rng(0).random((50, 60))]).presence.shape == (1, 4)


def _json(name: str) -> dict:
    return json.loads((PKG / name).read_text())


def test_shipped_package_is_complete_and_its_figures_come_from_committed_evaluations() -> None:
    meta = read_metadata(PKG)
    assert meta.name == "heart_mr_quality" and meta.predictor == "mr_quality"
    for f in meta.files:
        assert (PKG / f).is_file(), f
    # 16 MiB: 10 before the ONNX exports (weights.onnx, coverage_cnn.{basal,apical}.onnx: 4.5 MB together)
    assert sum(p.stat().st_size for p in PKG.rglob("*") if p.is_file()) < 16 * 2**20
    evals = {f: _json(f) for f in meta.files if f.startswith("evaluation/")}
    stress = {f: evals.pop(f) for f in list(evals) if "format" not in evals[f]}  # the synthetic stress test
    assert any(d["format"] == "acdc" for d in evals.values())
    for key, value in meta.metrics.items():
        stage, fmt, *path = key.split("/")
        doc = next(d for d in evals.values() if d["format"] == fmt)
        node = doc
        for p in path:
            node = node[p]
        assert node == pytest.approx(value), key
    for d in evals.values():
        assert d["command"].startswith("medai evaluate heart_mr_quality") and d["seed"] == 2026
    card = (PKG / "MODEL_CARD.md").read_text()
    acdc = next(d for d in evals.values() if d["format"] == "acdc")
    assert f"{acdc['artefacts']['per_class']['motion']['auc']:.3f}" in card
    for name, d in stress.items():  # its table is in the card, row for row, with its command
        assert d["command"].startswith("python -m pipelines.quality.dx_safety") and name in card
        b = d["summary"]["all"]
        assert (f"| all | {b['runs']} | {b['refused']} | {b['gate_review']} | {b['correct']} | "
                f"{b['wrong_flagged_for_review']} | {b['silent_errors']} |") in card
