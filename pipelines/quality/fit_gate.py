"""Fit the coverage classifier and the segmentation-quality regressors of ``heart_mr_quality`` on the ACDC
training patients (never on the held-out ``val`` split), and add them to the package.

    python -m pipelines.quality.fit_gate --package models/packages/heart_mr_quality \
        --data ../shared/data/cardiac/acdc [--cine heart_mr_cine_seg] [--variants 4]

The cine model segments every stack (and corrupted copies of it, see :mod:`pipelines.quality.gate_data`); with
``--seg-cv DIR`` (the fold packages of :mod:`pipelines.cmr.cv`) the coverage and segmentation-quality rows come
from the fold package that never trained on the patient, as the shipped model segments new patients (the shipped
model's own segmentations of its training patients are near-perfect, so a gate fitted on them expects too much).
Those fold models trained on the ``val`` patients too (the CV folds span the release), but no ``val`` row enters
the fit. The artefact CNN of the same package gives the artefact feature. The coverage model also trains the
end-slice CNN (:mod:`pipelines.quality.coverage_cnn`, 5 patient-grouped folds, about 5 min on 2 CPU threads) and
ships its fold networks as ``coverage_cnn.pt``. Sample tables go to ``<MEDAI_HOME>/quality_fit/`` for review.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from medai.quality.features import COVERAGE_FEATURES, END_CHANNELS, END_INPUT_FOV_MM, END_INPUT_SIZE

logger = logging.getLogger(__name__)

SEED = 11


#: the review threshold of each end is the lowest probability of :data:`THRESHOLD_GRID` whose patient-grouped
#: cross-validated false-alarm rate on the training rows (complete ends flagged) is at most this. (The threshold of
#: lowest CV error was tried for 1.2.0: it flagged a third of the complete held-out stacks and the clean phantom.)
MAX_FALSE_ALARMS = 0.10
#: that rule in words (coverage.json, the evaluation JSON and the card say it)
THRESHOLD_RULE = f"at most {100 * MAX_FALSE_ALARMS:.0f} % false alarms in grouped CV"
THRESHOLD_GRID = np.round(np.arange(0.5, 0.96, 0.01), 2)
#: the end-slice CNN's fold networks in the package
END_CNN_WEIGHTS = "coverage_cnn.pt"


def _fit_lr(x: np.ndarray, y: np.ndarray, groups: np.ndarray, features: list[str]) -> dict[str, Any]:
    """One standardised logistic regression (class-balanced, L2, C=1) and its review threshold.

    The threshold is chosen on the training rows only, by 5-fold cross-validation grouped by patient, as the
    lowest probability with at most :data:`MAX_FALSE_ALARMS` of complete ends flagged.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    mean, scale = x.mean(0), x.std(0)
    scale[scale < 1e-9] = 1.0
    lr = LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000).fit((x - mean) / scale, y)
    cv = cross_val_predict(make_pipeline(StandardScaler(), LogisticRegression(
        C=1.0, class_weight="balanced", max_iter=2000)), x, y, groups=groups, cv=GroupKFold(5),
        method="predict_proba")[:, 1]
    fpr = np.array([((cv >= t) & (y == 0)).sum() / max((y == 0).sum(), 1) for t in THRESHOLD_GRID])
    ok = fpr <= MAX_FALSE_ALARMS
    threshold = float(THRESHOLD_GRID[np.argmax(ok)]) if ok.any() else float(THRESHOLD_GRID[-1])
    return {"features": features, "mean": mean.tolist(), "scale": scale.tolist(), "coef": lr.coef_[0].tolist(),
            "intercept": float(lr.intercept_[0]), "n": int(len(y)), "n_missing": int(y.sum()),
            "threshold": threshold,
            "cv_error_at_threshold": float(((cv >= threshold) != y).mean()),
            "cv_error_at_0.5": float(((cv >= 0.5) != y).mean()),
            "cv_sensitivity_at_threshold": float((cv[y == 1] >= threshold).mean()),
            "cv_false_alarms_at_threshold": float((cv[y == 0] >= threshold).mean())}


def fit_coverage(rows: list[dict[str, Any]], inputs: dict[str, np.ndarray] | None = None,
                 cnn_epochs: int | None = None) -> tuple[dict[str, Any], dict[str, list[Any]] | None]:
    """The coverage model: per end, a logistic regression on the segmentation's end-slice features
    (:data:`COVERAGE_FEATURES`) and, with ``inputs`` (``{"basal": (N, 4, S, S), "apical": ...}``, one per row,
    zeros for an end without heart), on the end-slice CNN's out-of-fold logit as well.

    Returns:
        the ``coverage.json`` content (``<end>``: the regression with the CNN logit, or without it when no
        ``inputs``; ``seg_only.<end>``: the regression without it, used when a caller has no images) and the
        CNN fold networks' state dicts per end, in float16 (None without ``inputs``).
    """
    from pipelines.quality import coverage_cnn

    out: dict[str, Any] = {"features": list(COVERAGE_FEATURES), "max_false_alarms": MAX_FALSE_ALARMS,
                           "threshold_rule": THRESHOLD_RULE}
    groups = np.array([r["patient"] for r in rows])
    states: dict[str, list[Any]] | None = {} if inputs is not None else None
    if inputs is not None:
        out["end_cnn"] = {"weights": END_CNN_WEIGHTS, "network": coverage_cnn.NETWORK, "feature": "end_cnn_logit",
                          "epochs": cnn_epochs or coverage_cnn.EPOCHS,
                          "input": {"size": END_INPUT_SIZE, "fov_mm": END_INPUT_FOV_MM, "channels": list(END_CHANNELS)}}
        out["seg_only"] = {}
    for end in ("basal", "apical"):
        x = np.array([r[end] for r in rows], dtype=float)
        y = np.array([r[f"{end}_missing"] for r in rows], dtype=int)
        seg_only = _fit_lr(x, y, groups, list(COVERAGE_FEATURES))
        if inputs is None or states is None:
            out[end] = seg_only
            continue
        oof, nets = coverage_cnn.fit_end(groups, inputs[end], y, seed=SEED,
                                         epochs=cnn_epochs or coverage_cnn.EPOCHS)
        # float16 on disk (the package stays small; inference runs in float32)
        states[end] = [{k: v.half() if v.is_floating_point() else v.clone() for k, v in n.state_dict().items()}
                       for n in nets]
        out["seg_only"][end] = seg_only
        out[end] = _fit_lr(np.c_[x, oof], y, groups, [*COVERAGE_FEATURES, "end_cnn_logit"])
        logger.info("coverage %s: CV error %.3f with the end-slice CNN, %.3f without", end,
                    out[end]["cv_error_at_0.5"], seg_only["cv_error_at_0.5"])
    return out, states


def fit_seg_quality(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """One gradient-boosted regressor of the real Dice per structure."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    models = {}
    for name in sorted({r["structure"] for r in rows}):
        sub = [r for r in rows if r["structure"] == name]
        x = np.array([r["features"] for r in sub], dtype=float)
        y = np.array([r["dice"] for r in sub], dtype=float)
        models[name] = HistGradientBoostingRegressor(max_iter=400, learning_rate=0.03, max_leaf_nodes=8,
                                                     min_samples_leaf=15, l2_regularization=1.0,
                                                     loss="absolute_error", random_state=SEED).fit(x, y)
    return models


def main(argv: list[str] | None = None) -> int:
    import skops.io as sio
    import torch

    from medai.cardiac.predictor import load_default
    from medai.datasets.acdc import load_acdc_release
    from medai.inference.compiled import export_package
    from medai.inference.package import read_metadata, write_metadata
    from medai.quality.predictor import QualityPredictor
    from pipelines.quality.gate_data import coverage_rows, seg_quality_rows

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--package", type=Path, required=True)
    ap.add_argument("--data", type=Path, required=True, help="official ACDC release (splits.csv: train is used)")
    ap.add_argument("--cine", default="heart_mr_cine_seg")
    ap.add_argument("--variants", type=int, default=8, help="segmentations per stack: clean + corrupted copies")
    ap.add_argument("--only", choices=("coverage", "seg_quality"), default=None,
                    help="refit only this part (the other keeps its file)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--seg-cv", type=Path, default=None,
                    help="fold packages of the cine CV (python -m pipelines.cmr.cv --work DIR): the coverage and "
                    "segmentation-quality rows come from segmentations of patients the segmenting model never "
                    "trained on")
    ap.add_argument("--version", default=None, help="the package's new version (default: unchanged)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    t0 = time.perf_counter()
    cine = load_default(args.cine)
    quality = QualityPredictor.from_package(args.package)
    assert isinstance(quality, QualityPredictor)
    quality.seg_models = None  # the rows being made are the ones to fit: no predictions from an older fit
    cases = load_acdc_release(args.data, split="train")
    from medai.settings import get_settings

    fit_dir = get_settings().home / "quality_fit"  # sample tables for review (derived from ACDC: not shipped)
    fit_dir.mkdir(parents=True, exist_ok=True)
    cov: list[dict[str, Any]] = []
    seg: list[dict[str, Any]] = []
    by_patient = None
    if args.seg_cv is not None:
        from pipelines.cmr.cv import fold_packages

        fold_models = [(load_default(pkg), held) for pkg, held in fold_packages(args.seg_cv, args.data)]
        by_patient = {p: model for model, held in fold_models for p in held}
    if args.only in (None, "coverage"):
        logger.info("coverage samples from %d stacks", len(cases))
        cov = coverage_rows(cine, cases, with_inputs=True, cine_by_patient=by_patient)
        inputs = {end: np.stack([r.pop(f"input_{end}") for r in cov]) for end in ("basal", "apical")}
        (fit_dir / "coverage_rows.json").write_text(json.dumps(cov))
        np.savez_compressed(fit_dir / "coverage_inputs.npz", **inputs)
        model, states = fit_coverage(cov, inputs)
        torch.save(states, args.package / END_CNN_WEIGHTS)
        (args.package / "coverage.json").write_text(json.dumps(model, indent=1))
    if args.only in (None, "seg_quality"):
        logger.info("segmentation-quality samples: %d stacks x %d variants", len(cases), args.variants)
        seg = seg_quality_rows(cine, quality, cases, args.variants, SEED, by_patient)
        (fit_dir / "seg_quality_rows.json").write_text(json.dumps(seg))
        sio.dump(fit_seg_quality(seg), args.package / "seg_quality.skops")
    cfg_path = args.package / "inference.json"
    cfg = json.loads(cfg_path.read_text())
    cfg.update(coverage="coverage.json", seg_quality="seg_quality.skops")
    cfg_path.write_text(json.dumps(cfg, indent=2))
    meta = read_metadata(args.package)
    if args.version:
        meta.version = args.version
    meta.files = sorted({*meta.files, "coverage.json", "seg_quality.skops",
                         *([END_CNN_WEIGHTS] if (args.package / END_CNN_WEIGHTS).is_file() else [])})
    base = meta.training_data[0].description.split("; coverage")[0]
    meta.training_data[0].description = (
        f"{base}; coverage and segmentation quality fitted on the same 80 patients, segmented by "
        + (f"the out-of-fold packages of {cine.metadata.name}'s 5-fold CV (each patient by the fold model that "
           "never trained on it)" if args.seg_cv else f"{cine.metadata.name} {cine.metadata.version}"))
    extra = (f"python -m pipelines.quality.fit_gate --package {args.package} --data {args.data} "
             f"--cine {args.cine} --variants {args.variants}" + (f" --seg-cv {args.seg_cv}" if args.seg_cv else ""))
    if extra not in meta.reproduce:
        meta.reproduce = (meta.reproduce + "\n" + extra).strip()
    write_metadata(args.package, meta)
    export_package(args.package)  # the artefact CNN and the end-slice ensembles on ONNX (medai.inference.compiled)
    logger.info("done in %.1f min: %d coverage rows, %d seg-quality rows", (time.perf_counter() - t0) / 60,
                len(cov), len(seg))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
