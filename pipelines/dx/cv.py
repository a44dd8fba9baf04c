"""5-fold cross-validation of the diagnosis recipe on every ACDC training patient (100), through the Predictor.

    python -m pipelines.dx.cv --recipe configs/experiment/dx_acdc.yaml \
        --out models/packages/heart_mr_cine_dx/evaluation/acdc_cv5.json

The recipe's segmentation package segments all patients once (features cached). Five group-stratified folds
(:func:`medai.datasets.acdc.acdc_folds`, seed 2017, fixed before any result was seen; the cine segmentation's CV,
:mod:`pipelines.cmr.cv`, holds out the same folds); for each, :func:`pipelines.dx.train.fit_package` fits both
estimators on the other four folds (their mean is the third, ``ensemble``) and picks the primary by its own inner
CV (nested: no fold scores its own choice), writes a fold package, and
``Predictor.from_package(fold package, estimator=...).predict(...)`` classifies the held-out fold, with every
modality subset of the recipe. Hyper-parameters are the recipe's; nothing is tuned
on the folds.

With ``--seg-cv DIR`` (the fold packages of :mod:`pipelines.cmr.cv`, same folds) every patient is segmented by the
cine fold package that never trained on it, and the caveat below goes away. Without it, the caveat written into the
JSON: the shipped cine segmentation was trained on the 80 ``train`` patients, so their
features come from a segmentation that has seen them (closer to reference masks than on new patients); the 20
``val`` patients' features do not, and the JSON also reports the folds' scores on those 20 alone.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from medai.datasets.acdc import FOLD_SEED
from medai.errors import ConfigError

logger = logging.getLogger(__name__)

SEED = FOLD_SEED


def out_of_fold_features(seg_cv: Path, root: Path, folds: int, cache_dir: Path | None = None) -> Any:
    """The feature table of every patient, each segmented by the cine fold package that held it out.

    ``seg_cv`` is the folder of :mod:`pipelines.cmr.cv`'s fold packages (``fold0`` .. ``fold<folds-1>``); each
    package's ``evaluation/acdc_heldout.json`` must name exactly the patients this CV holds out in that fold.

    Raises:
        ConfigError: a fold package is missing, or it held out other patients.
    """
    import pandas as pd

    from medai.cardiac.predictor import load_default
    from pipelines.cmr.cv import fold_packages
    from pipelines.dx.data import feature_table

    parts = [feature_table(load_default(pkg), root, patients=held, cache_dir=cache_dir, progress=logger.info)
             for pkg, held in fold_packages(seg_cv, root, folds)]
    return pd.concat(parts).sort_values("patient").reset_index(drop=True)


def run_cv(recipe_path: Path, out: Path, folds: int = 5, overrides: list[str] | None = None,
           seg_cv: Path | None = None) -> dict[str, Any]:
    """Run the CV and write ``out`` (JSON) plus a confusion-matrix PNG beside it.

    ``seg_cv``: a folder of the cine segmentation's CV fold packages (:mod:`pipelines.cmr.cv`): every patient's
    features then come from the fold package that never trained on it, instead of the shipped segmentation."""
    from medai.cardiac.dx_predictor import load_dx
    from medai.cardiac.predictor import load_default
    from medai.datasets.acdc import acdc_folds, acdc_split_patients
    from medai.settings import get_settings
    from pipelines.cmr.data import resolve_data_path
    from pipelines.dx.config import load_recipe
    from pipelines.dx.data import feature_table
    from pipelines.dx.evaluate import confusion_png
    from pipelines.dx.train import ENSEMBLES, classification_metrics, fit_package

    recipe = load_recipe(recipe_path, overrides)
    recipe.package.register_model = False
    seg = load_default(recipe.data.seg_model)
    root = resolve_data_path(recipe.data.root)
    t0 = time.perf_counter()
    cache = get_settings().home / "cache"
    if seg_cv is None:
        table = feature_table(seg, root, cache_dir=cache, progress=logger.info)
    else:
        table = out_of_fold_features(seg_cv, root, folds, cache)
    table = table[table["group"].notna()].reset_index(drop=True)
    if len(table) < 2 * folds:
        raise ConfigError(f"{len(table)} labelled patients: too few for {folds}-fold CV")
    try:
        val_ids = set(acdc_split_patients(root, "val"))
    except ConfigError:
        val_ids = set()
    classes = [c.name for c in recipe.classes]
    sets = {"all": list(recipe.modalities), **recipe.missing_modality_sets}
    y = table["group"].astype(str).to_numpy()
    names = ("baseline", "fusion", *ENSEMBLES)
    probs = {f"{e}/{s}": np.zeros((len(y), len(classes))) for e in [*names, "primary"] for s in sets}
    fold_info = []
    fold_of = table["patient"].map(acdc_folds(root, folds, SEED)).to_numpy()
    with tempfile.TemporaryDirectory(prefix="dx_cv_") as tmp:
        for k in range(folds):
            tr, te = np.flatnonzero(fold_of != k), np.flatnonzero(fold_of == k)
            pkg, info = fit_package(recipe, table.iloc[tr], Path(tmp) / f"fold{k}")
            fold_info.append({"fold": k, "n_train": len(tr), "n_test": len(te), "primary": info["primary"],
                              "test_patients": table["patient"].iloc[te].tolist()})
            for name in names:
                pred = load_dx(pkg, estimator=name, seg_predictor=seg)
                for i in te:
                    feats = table.iloc[i][recipe.features].to_dict()
                    for s, subset in sets.items():
                        p = pred.predict({"features": feats, "modalities": subset})
                        v = np.array([c.probability for c in p.classes])
                        probs[f"{name}/{s}"][i] = v
                        if name == info["primary"]:
                            probs[f"primary/{s}"][i] = v
            logger.info("fold %d/%d done (primary %s, %.0f s)", k + 1, folds, info["primary"], time.perf_counter() - t0)
    res: dict[str, Any] = {
        "recipe": str(recipe_path), "folds": folds, "seed": SEED, "n_patients": len(y), "classes": classes,
        "segmentation": ({"name": seg.metadata.name, "version": seg.metadata.version} if seg_cv is None else
                         {"cross_validated": str(seg_cv), "folds": folds}),
        "caveat": ("features of the 80 'train' patients come from a segmentation model trained on them; "
                   "'val_patients_only' scores the 20 whose segmentation never saw them" if seg_cv is None else
                   "none from the segmentation: every patient's features come from the cine fold package that "
                   "held it out (out-of-fold segmentation, the same folds)"),
        "code_path": "fit_package per fold -> Predictor.from_package(fold package, estimator=...).predict(features)",
        "command": f"python -m pipelines.dx.cv --recipe {recipe_path} --out {out}"
        + (f" --seg-cv {seg_cv}" if seg_cv is not None else ""),
        "estimators": {}, "missing_modality": {}, "fold_info": fold_info,
    }
    val_idx = np.array([p in val_ids for p in table["patient"]])
    for name in [*names, "primary"]:
        res["estimators"][name] = classification_metrics(list(y), probs[f"{name}/all"], classes)
        if val_idx.any():
            m = classification_metrics(list(y[val_idx]), probs[f"{name}/all"][val_idx], classes)
            res["estimators"][name]["val_patients_only"] = {k: m[k] for k in ("n", "accuracy", "balanced_accuracy")}
        res["missing_modality"][name] = {}
        for s, subset in sets.items():
            m = classification_metrics(list(y), probs[f"{name}/{s}"], classes)
            res["missing_modality"][name][s] = {"modalities": subset, "accuracy": m["accuracy"],
                                                "balanced_accuracy": m["balanced_accuracy"], "log_loss": m["log_loss"]}
    res.update({k: res["estimators"]["primary"][k] for k in ("accuracy", "balanced_accuracy", "per_class_recall",
                                                               "confusion_matrix")})
    res["wall_time_s"] = time.perf_counter() - t0
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1, default=float))
    confusion_png(res, out.with_name(out.stem + "_confusion.png"))
    return res


def main(argv: list[str] | None = None) -> None:
    """Command line of :func:`run_cv`."""
    import torch

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--recipe", type=Path, default=Path("configs/experiment/dx_acdc.yaml"))
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seg-cv", type=Path, default=None,
                    help="fold packages of the cine CV (python -m pipelines.cmr.cv --work DIR): out-of-fold features")
    ap.add_argument("overrides", nargs="*", help="dotted recipe overrides")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    torch.set_num_threads(1)
    res = run_cv(args.recipe, args.out, args.folds, args.overrides, args.seg_cv)
    for name, m in res["estimators"].items():
        logger.info("%s: accuracy %.3f, balanced %.3f, log loss %.3f", name, m["accuracy"], m["balanced_accuracy"],
                    m["log_loss"])


if __name__ == "__main__":
    main()
