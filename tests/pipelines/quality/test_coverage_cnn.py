"""The end-slice coverage CNN: it learns a signal in the images, its out-of-fold logit joins the coverage
regression, and the quality predictor runs the shipped fold ensemble exactly as it was fitted."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from medai.inference.predictor import Predictor
from medai.quality.features import (
    COVERAGE_FEATURES,
    END_CHANNELS,
    END_INPUT_SIZE,
    Structures,
    coverage_features,
    end_slice_inputs,
)
from medai.quality.predictor import QualityPredictor, end_cnn_logits
from medai.registry import NETWORKS
from pipelines.quality import coverage_cnn
from pipelines.quality.fit_gate import END_CNN_WEIGHTS, MAX_FALSE_ALARMS, THRESHOLD_GRID, fit_coverage

PKG = Path(__file__).parents[3] / "models" / "packages" / "heart_mr_quality"


def _cohort(n_patients: int = 10, seed: int = 0) -> tuple[list[dict], dict[str, np.ndarray]]:
    """Rows as coverage_rows makes them: the images hold the answer (a heart on a dark background, with a bright
    ring in the end slice when slices are missing), the segmentation features only noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:END_INPUT_SIZE, :END_INPUT_SIZE]
    d = np.hypot(yy - 32, xx - 32)
    disc, ring = (d < 14).astype(np.float32), ((d > 8) & (d < 13)).astype(np.float32)
    rows, inputs = [], {"basal": [], "apical": []}
    for p in range(n_patients):
        for cut in range(4):
            row = {"patient": f"p{p}"}
            for end in ("basal", "apical"):
                missing = bool((cut + (end == "apical")) % 2)
                x = np.abs(rng.normal(0, 0.05, (len(END_CHANNELS), END_INPUT_SIZE, END_INPUT_SIZE)))
                x = (x + 0.5 * disc + 0.7 * ring * missing).astype(np.float32)
                row[end] = rng.normal(size=len(COVERAGE_FEATURES)).tolist()
                row[f"{end}_missing"] = missing
                inputs[end].append(x)
            rows.append(row)
    return rows, {k: np.stack(v) for k, v in inputs.items()}


def test_the_cnn_learns_the_image_signal_out_of_fold_and_the_regression_leans_on_it() -> None:
    torch.set_num_threads(1)
    rows, inputs = _cohort()
    model, states = fit_coverage(rows, inputs, cnn_epochs=10)
    assert states is not None and all(len(states[e]) == 5 for e in ("basal", "apical"))
    assert all(v.dtype == torch.float16 for v in states["basal"][0].values() if v.is_floating_point())
    assert model["end_cnn"]["weights"] == END_CNN_WEIGHTS and model["end_cnn"]["epochs"] == 10
    for end in ("basal", "apical"):
        with_img, seg = model[end], model["seg_only"][end]
        assert with_img["features"] == [*COVERAGE_FEATURES, "end_cnn_logit"] and seg["features"] == list(
            COVERAGE_FEATURES)
        # cross-validated on patients the CNN never saw: the images separate, the noise features do not
        assert with_img["cv_error_at_0.5"] < 0.1 < 0.3 < seg["cv_error_at_0.5"]
        coef = np.abs(with_img["coef"])
        assert coef[-1] == coef.max()
        # the review threshold: the grid's lowest with at most MAX_FALSE_ALARMS of complete ends flagged in CV
        assert with_img["threshold"] in THRESHOLD_GRID
        assert with_img["cv_false_alarms_at_threshold"] <= MAX_FALSE_ALARMS


def test_without_images_only_the_segmentation_regression_is_fitted() -> None:
    rows, _ = _cohort(n_patients=6)
    model, states = fit_coverage(rows)
    assert states is None and "end_cnn" not in model and "seg_only" not in model
    assert model["basal"]["features"] == list(COVERAGE_FEATURES)


def test_fitting_leaves_the_callers_lightning_log_level_as_it_was() -> None:
    import logging

    import lightning.pytorch  # noqa: F401 -- loaded first: its import sets its own level, as in any caller's process

    log = logging.getLogger("lightning.pytorch")
    log.setLevel(logging.DEBUG)
    rows, inputs = _cohort(n_patients=2)
    y = np.array([r["basal_missing"] for r in rows], int)
    net = coverage_cnn.fit_network(inputs["basal"], y, epochs=1)
    assert log.level == logging.DEBUG and not net.training
    log.setLevel(logging.NOTSET)


def test_one_class_training_set_is_refused() -> None:
    x = np.zeros((4, len(END_CHANNELS), END_INPUT_SIZE, END_INPUT_SIZE), np.float32)
    with pytest.raises(ValueError, match="both classes"):
        coverage_cnn.fit_network(x, np.zeros(4, int), epochs=1)


def _stack() -> tuple[np.ndarray, np.ndarray]:
    """A ventricle (labels 3 LV / 2 myocardium / 1 RV) on 8 slices, and an image of it with noise."""
    n, z = 96, 8
    yy, xx = np.mgrid[:n, :n]
    arr = np.zeros((z, n, n), np.uint8)
    for k in range(z):
        d = np.hypot(yy - 48, xx - 48)
        r = 16 * (1 - k / z) + 4
        arr[k][d < r + 5] = 2
        arr[k][d < r] = 3
        arr[k][(np.hypot(yy - 48, xx - 22) < 10) & (arr[k] == 0)] = 1
    img = np.choose(arr, [0.1, 0.5, 0.3, 0.9]).astype(np.float32)
    return arr, img + np.random.default_rng(1).normal(0, 0.02, img.shape).astype(np.float32)


def test_the_predictor_runs_the_fitted_ensemble_and_falls_back_without_images(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    rows, inputs = _cohort(n_patients=10)
    model, states = fit_coverage(rows, inputs, cnn_epochs=2)
    pkg = tmp_path / "pkg"
    shutil.copytree(PKG, pkg, ignore=shutil.ignore_patterns("evaluation", "seg_quality.skops", END_CNN_WEIGHTS))
    cfg = json.loads((pkg / "inference.json").read_text())
    cfg.update(seg_quality=None)
    (pkg / "inference.json").write_text(json.dumps(cfg))
    (pkg / "coverage.json").write_text(json.dumps(model))
    torch.save(states, pkg / END_CNN_WEIGHTS)
    qp = Predictor.from_package(pkg)
    # on torch: the copied ONNX exports are of the shipped weights, not these
    assert isinstance(qp, QualityPredictor) and qp.coverage_nets["apical"].n_members == 5
    s = Structures(lv=3, myo=2, rv=1)
    arr, img = _stack()
    spacing = (8.0, 1.4, 1.4)
    got = qp.coverage(arr, s, arr, spacing, images=(img, img))
    alone = qp.coverage(arr, s, arr, spacing)
    assert got is not None and alone is not None
    # by hand: the fold networks (float16 weights, float32 inference) over 4 rotations, then the regression
    feats, ins = coverage_features(arr, s, arr, spacing), end_slice_inputs(img, img, arr, s, spacing)
    for end in ("basal", "apical"):
        nets = []
        for st in states[end]:
            net = NETWORKS.get("coverage_cnn")(**coverage_cnn.NETWORK["params"])
            net.load_state_dict({k: v.float() for k, v in st.items()})
            nets.append(net.eval())
        xt = torch.from_numpy(ins[end][None])
        with torch.no_grad():
            logit = float(torch.stack([net(torch.rot90(xt, k, (2, 3))) for net in nets for k in range(4)]).mean())
        assert end_cnn_logits(nets, np.stack([ins[end], ins[end]])) == pytest.approx([logit, logit], rel=1e-5)
        for m, x, p in ((model[end], np.r_[feats[end], logit], got[end]),
                        (model["seg_only"][end], feats[end], alone[end])):
            z = (x - np.asarray(m["mean"])) / np.asarray(m["scale"])
            assert p == pytest.approx(1 / (1 + np.exp(-(z @ np.asarray(m["coef"]) + m["intercept"]))), rel=1e-5)
        assert qp.coverage_threshold(end) == model[end]["threshold"]
        assert qp.coverage_threshold(end, from_images=False) == model["seg_only"][end]["threshold"]
        assert qp.coverage_threshold(end, 0.42) == 0.42
    with pytest.raises(Exception, match="grid"):
        qp.coverage(arr, s, arr, spacing, images=(img[:, :50], img))
