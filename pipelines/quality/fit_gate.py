"""Fit the coverage classifier and the segmentation-quality regressors of ``heart_mr_quality`` on the ACDC
training patients (never on the held-out ``val`` split), and add them to the package.

    python -m pipelines.quality.fit_gate --package models/packages/heart_mr_quality \
        --data ../shared/data/cardiac/acdc [--cine heart_mr_cine_seg] [--variants 4]

The cine model segments every stack (and corrupted copies of it, see :mod:`pipelines.quality.gate_data`); the
artefact CNN of the same package gives the artefact feature. Sample tables go to
``<MEDAI_HOME>/quality_fit/`` for review.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from medai.quality.features import COVERAGE_FEATURES

logger = logging.getLogger(__name__)

SEED = 11


#: the review threshold of each end is the lowest probability whose patient-grouped cross-validated false-alarm
#: rate on the training rows (complete ends flagged) is at most this
MAX_FALSE_ALARMS = 0.10


def fit_coverage(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """One standardised logistic regression per end (class-balanced, L2, C=1) and its review threshold.

    The threshold is chosen on the training rows only, by 5-fold cross-validation grouped by patient, as the
    lowest probability with at most :data:`MAX_FALSE_ALARMS` of complete ends flagged.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    out: dict[str, Any] = {"features": list(COVERAGE_FEATURES), "max_false_alarms": MAX_FALSE_ALARMS}
    groups = np.array([r["patient"] for r in rows])
    for end in ("basal", "apical"):
        x = np.array([r[end] for r in rows], dtype=float)
        y = np.array([r[f"{end}_missing"] for r in rows], dtype=int)
        mean, scale = x.mean(0), x.std(0)
        scale[scale < 1e-9] = 1.0
        lr = LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000).fit((x - mean) / scale, y)
        cv = cross_val_predict(make_pipeline(StandardScaler(), LogisticRegression(
            C=1.0, class_weight="balanced", max_iter=2000)), x, y, groups=groups, cv=GroupKFold(5),
            method="predict_proba")[:, 1]
        grid = np.round(np.arange(0.5, 0.96, 0.01), 2)
        fpr = np.array([((cv >= t) & (y == 0)).sum() / max((y == 0).sum(), 1) for t in grid])
        threshold = float(grid[np.argmax(fpr <= MAX_FALSE_ALARMS)]) if (fpr <= MAX_FALSE_ALARMS).any() else 0.95
        out[end] = {"mean": mean.tolist(), "scale": scale.tolist(), "coef": lr.coef_[0].tolist(),
                    "intercept": float(lr.intercept_[0]), "n": int(len(y)), "n_missing": int(y.sum()),
                    "threshold": threshold,
                    "cv_error_at_threshold": float(((cv >= threshold) != y).mean()),
                    "cv_sensitivity_at_threshold": float((cv[y == 1] >= threshold).mean())}
    return out


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

    from medai.cardiac.predictor import load_default
    from medai.datasets.acdc import load_acdc_release
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
    args = ap.parse_args(argv)
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
    if args.only in (None, "coverage"):
        logger.info("coverage samples from %d stacks", len(cases))
        cov = coverage_rows(cine, cases)
        (fit_dir / "coverage_rows.json").write_text(json.dumps(cov))
        (args.package / "coverage.json").write_text(json.dumps(fit_coverage(cov), indent=1))
    if args.only in (None, "seg_quality"):
        logger.info("segmentation-quality samples: %d stacks x %d variants", len(cases), args.variants)
        seg = seg_quality_rows(cine, quality, cases, args.variants, SEED)
        (fit_dir / "seg_quality_rows.json").write_text(json.dumps(seg))
        sio.dump(fit_seg_quality(seg), args.package / "seg_quality.skops")
    cfg_path = args.package / "inference.json"
    cfg = json.loads(cfg_path.read_text())
    cfg.update(coverage="coverage.json", seg_quality="seg_quality.skops")
    cfg_path.write_text(json.dumps(cfg, indent=2))
    meta = read_metadata(args.package)
    meta.files = sorted({*meta.files, "coverage.json", "seg_quality.skops"})
    base = meta.training_data[0].description.split("; coverage")[0]
    meta.training_data[0].description = (
        f"{base}; coverage and segmentation quality fitted on the same 80 patients, segmented by "
        f"{cine.metadata.name} {cine.metadata.version}")
    extra = (f"python -m pipelines.quality.fit_gate --package {args.package} --data {args.data} "
             f"--cine {args.cine} --variants {args.variants}")
    if extra not in meta.reproduce:
        meta.reproduce = (meta.reproduce + "\n" + extra).strip()
    write_metadata(args.package, meta)
    logger.info("done in %.1f min: %d coverage rows, %d seg-quality rows", (time.perf_counter() - t0) / 60,
                len(cov), len(seg))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
