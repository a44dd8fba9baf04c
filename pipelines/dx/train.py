"""``medai train configs/experiment/dx_acdc.yaml``: fit and ship the ACDC diagnosis package ``heart_mr_cine_dx``.

Flow: the recipe -> the segmentation package it names segments every patient of the ``train`` split
(:func:`pipelines.dx.data.feature_table`, cached under ``MEDAI_HOME/cache``) -> two estimators on the same features:

* ``baseline``: median imputation + random forest (or gradient boosting), Platt-calibrated by cross-fitting;
* ``fusion``: :class:`models.fusion.FusionClassifier`, one encoder per modality and attention over the modalities
  present, trained with modality dropout and temperature-calibrated;
* ``ensemble``: the mean of the two's calibrated probabilities (:data:`ENSEMBLES`; no file of its own);

-> the primary estimator is the one with the lowest log loss in a stratified k-fold CV *inside* ``train``
(``selection_folds``; the held-out ``val`` split is never read) -> the package (``inference.json``,
``baseline.skops``, ``fusion/``, ``metadata.json``, the training table's medians for the attributions) -> MLflow
run (params, CV metrics, package) -> registered model ``heart_mr_cine_dx`` (alias ``candidate``).
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medai.cardiac.dx_predictor import CineDxInferenceConfig
from medai.errors import ConfigError
from medai.inference.package import ModelMetadata, TrainingData, write_metadata
from medai.settings import get_settings
from pipelines.dx.config import DxRecipe, load_recipe

logger = logging.getLogger(__name__)

ESTIMATOR_FILES = {"baseline": "baseline.skops", "fusion": "fusion"}
#: Ensembles of the fitted estimators (probabilities averaged), candidates for the primary like them.
ENSEMBLES = {"ensemble": ["baseline", "fusion"]}


def build_baseline(recipe: DxRecipe) -> Any:
    """The feature baseline as an unfitted scikit-learn pipeline."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline

    b = recipe.baseline
    if b.kind == "random_forest":
        clf: Any = RandomForestClassifier(n_estimators=b.n_estimators, min_samples_leaf=b.min_samples_leaf,
                                          class_weight="balanced", random_state=recipe.seed, n_jobs=1)
    else:
        clf = HistGradientBoostingClassifier(max_iter=b.n_estimators, min_samples_leaf=max(b.min_samples_leaf, 5),
                                             learning_rate=0.05, random_state=recipe.seed)
    if b.calibration != "none":
        clf = CalibratedClassifierCV(clf, method=b.calibration, cv=b.calibration_folds, ensemble=False)
    return Pipeline([("impute", SimpleImputer(strategy="median", keep_empty_features=True)), ("model", clf)])


def build_fusion(recipe: DxRecipe) -> Any:
    """The fusion classifier (registered estimator ``fusion_classifier``), unfitted."""
    from medai.registry import ESTIMATORS

    return ESTIMATORS.get("fusion_classifier")(modalities={k: list(v) for k, v in recipe.modalities.items()},
                                               **recipe.fusion.model_dump())


def build_estimators(recipe: DxRecipe) -> dict[str, Any]:
    """Both estimators of a recipe, unfitted."""
    return {"baseline": build_baseline(recipe), "fusion": build_fusion(recipe)}


def classification_metrics(y: list[str], proba: np.ndarray, classes: list[str]) -> dict[str, Any]:
    """Accuracy, balanced accuracy, per-class recall, confusion matrix, log loss, Brier score and top-label ECE.

    Args:
        y: true labels ``(N,)``.
        proba: ``(N, K)`` probabilities in ``classes`` order.
    """
    from sklearn.metrics import balanced_accuracy_score, confusion_matrix

    y_arr = np.asarray(y)
    pred = np.asarray(classes)[proba.argmax(1)]
    onehot = (y_arr[:, None] == np.asarray(classes)[None, :]).astype(float)
    cm = confusion_matrix(y_arr, pred, labels=classes)
    recall = {c: (float(cm[i, i] / cm[i].sum()) if cm[i].sum() else None) for i, c in enumerate(classes)}
    conf = proba.max(1)
    correct = (pred == y_arr).astype(float)
    bins = np.linspace(0, 1, 6)
    ece = 0.0
    for lo, hi in zip(bins[:-1], bins[1:], strict=True):
        m = (conf > lo) & (conf <= hi)
        if m.any():
            ece += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return {
        "n": len(y_arr),
        "accuracy": float(correct.mean()),
        "balanced_accuracy": float(balanced_accuracy_score(y_arr, pred)),
        "per_class_recall": recall,
        "confusion_matrix": {"labels": classes, "rows_true_cols_pred": cm.tolist()},
        "log_loss": float(-np.log(np.clip((proba * onehot).sum(1), 1e-7, 1.0)).mean()),
        "brier": float(((proba - onehot) ** 2).sum(1).mean()),
        "ece_top_label_5_bins": float(ece),
    }


def selection_cv(recipe: DxRecipe, table: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Stratified k-fold CV of both estimators, and of their ensembles (the members' out-of-fold probabilities
    averaged), inside the training table (model selection only)."""
    from sklearn.base import clone
    from sklearn.model_selection import StratifiedKFold

    X, y = table[recipe.features], table["group"].astype(str).to_numpy()
    classes = [c.name for c in recipe.classes]
    out: dict[str, dict[str, Any]] = {}
    probas: dict[str, np.ndarray] = {}
    skf = StratifiedKFold(n_splits=recipe.selection_folds, shuffle=True, random_state=recipe.seed)
    for name, est in build_estimators(recipe).items():
        proba = np.zeros((len(y), len(classes)))
        for tr, te in skf.split(X, y):
            m = clone(est).fit(X.iloc[tr], y[tr])
            order = [list(map(str, m.classes_)).index(c) for c in classes]
            proba[te] = np.asarray(m.predict_proba(X.iloc[te]))[:, order]
        probas[name] = proba
    for name, members in ENSEMBLES.items():
        probas[name] = np.mean([probas[m] for m in members], axis=0)
    for name, proba in probas.items():
        out[name] = classification_metrics(list(y), proba, classes)
        logger.info("selection CV %s: accuracy %.3f, log loss %.3f", name, out[name]["accuracy"],
                    out[name]["log_loss"])
    return out


def write_package(recipe: DxRecipe, out_dir: Path, fitted: dict[str, Any], table: pd.DataFrame, primary: str,
                  metrics: dict[str, float], *, run_id: str | None = None, reproduce: str = "",
                  n_train: int | None = None) -> Path:
    """Write the package folder (estimators, ``inference.json``, ``metadata.json``)."""
    import skops.io as sio

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sio.dump(fitted["baseline"], out_dir / ESTIMATOR_FILES["baseline"])
    fitted["fusion"].save(out_dir / ESTIMATOR_FILES["fusion"])
    medians = {f: float(v) for f, v in table[recipe.features].median(skipna=True).items() if np.isfinite(v)}
    cfg = CineDxInferenceConfig(seg_model=recipe.data.seg_model, classes=recipe.classes,
                                modalities={k: list(v) for k, v in recipe.modalities.items()},
                                estimators=dict(ESTIMATOR_FILES), fusion_estimator="fusion",
                                ensembles={k: list(v) for k, v in ENSEMBLES.items()}, primary=primary,
                                medians=medians)
    (out_dir / "inference.json").write_text(cfg.model_dump_json(indent=2) + "\n")
    from pipelines.cmr.train import ACDC_CITATION, ACDC_DESCRIPTION, hardware_description

    meta = ModelMetadata(
        name=recipe.package.name, version=recipe.package.version, predictor="cine_dx", task="classification",
        description=("ACDC 5-class cine CMR diagnosis (NOR, DCM, HCM, MINF, RV) from the features of the "
                     f"{recipe.data.seg_model} segmentation (volumes, EF, mass, AHA wall thickness and thickening) "
                     "and height/weight, by a calibrated random forest, by an adaptive fusion network over the "
                     f"modalities present and by the mean of the two; primary: {primary}."),
        intended_use=("Research use only; not a medical device. Adult cine bSSFP short-axis stacks; a decision aid "
                      "whose output a cardiologist reviews; trained on one centre (Dijon) and five groups only."),
        input_contract={"inputs": "ED and ES short-axis volumes (+ height, weight) or a segmented cine, or features",
                        "modalities": cfg.modalities},
        output_contract={"classes": [c.name for c in recipe.classes],
                         "extras": ["predicted_class", "modalities_used", "modality_contributions",
                                    "feature_attributions", "modality_weights (fusion)"]},
        labels=[{"value": i, "name": c.name, "code": c.code, "description": c.display}
                for i, c in enumerate(recipe.classes)],
        training_data=[TrainingData(
            name=f"ACDC official training set, {recipe.data.root}/splits.csv {recipe.data.train!r}",
            description=f"{ACDC_DESCRIPTION} Features from the {recipe.data.seg_model} segmentation"
            + (f" (training features: its cross-validation's out-of-fold fold packages, {recipe.data.seg_cv})."
               if recipe.data.seg_cv else "."),
            licence="CC BY-NC-SA 4.0", n_cases=n_train, citation=ACDC_CITATION)],
        metrics=metrics, mlflow_run_id=run_id,
        files=["inference.json", *ESTIMATOR_FILES.values(), "training_selection.json", "MODEL_CARD.md"],
        licence="CC BY-NC-SA 4.0",
        created=datetime.now(UTC).isoformat(timespec="seconds"), hardware=hardware_description(),
        reproduce=reproduce,
    )
    write_metadata(out_dir, meta)
    return out_dir


def fit_package(recipe: DxRecipe, table: pd.DataFrame, out_dir: Path, *, select: bool = True,
                run_id: str | None = None, reproduce: str = "") -> tuple[Path, dict[str, Any]]:
    """Fit both estimators on ``table`` (rows with a group), pick the primary, write the package.

    Returns:
        The package folder and ``{"selection": per-estimator CV metrics, "primary": name}``.
    """
    table = table[table["group"].notna()].reset_index(drop=True)
    if table.empty:
        raise ConfigError("no training patient has a group (Info.cfg 'Group'); nothing to fit")
    info: dict[str, Any] = {"primary": "fusion"}
    if select:
        sel = selection_cv(recipe, table)
        info["selection"] = sel
        info["primary"] = min(sel, key=lambda k: sel[k]["log_loss"])
    X, y = table[recipe.features], table["group"].astype(str).to_numpy()
    fitted = {k: est.fit(X, y) for k, est in build_estimators(recipe).items()}
    metrics: dict[str, float] = {}
    for name, m in info.get("selection", {}).items():
        metrics.update({f"selection_cv/{name}/accuracy": m["accuracy"], f"selection_cv/{name}/log_loss": m["log_loss"],
                        f"selection_cv/{name}/balanced_accuracy": m["balanced_accuracy"]})
    pkg = write_package(recipe, out_dir, fitted, table, info["primary"], metrics, run_id=run_id,
                        reproduce=reproduce, n_train=len(table))
    info["missing_modality_sets"] = recipe.missing_modality_sets
    info["train_patients"] = table["patient"].tolist()
    (pkg / "training_selection.json").write_text(json.dumps(info, indent=2) + "\n")
    return pkg, info


def train_table(recipe: DxRecipe, progress: Any = None) -> pd.DataFrame:
    """The feature table of the recipe's training split (segmented by its segmentation package, or with
    ``data.seg_cv`` by the cine CV's out-of-fold packages; cached)."""
    from medai.cardiac.predictor import load_default
    from medai.datasets.acdc import acdc_split_patients
    from pipelines.cmr.data import resolve_data_path
    from pipelines.dx.data import feature_table

    root = resolve_data_path(recipe.data.root)
    patients = acdc_split_patients(root, recipe.data.train)
    if recipe.data.max_patients:
        patients = patients[: recipe.data.max_patients]
    cache = get_settings().home / "cache"
    if recipe.data.seg_cv:
        from pipelines.dx.cv import out_of_fold_features

        seg_cv = Path(recipe.data.seg_cv)
        n_folds = len([d for d in seg_cv.glob("fold*") if d.is_dir()])  # the cine CV's folds (checked there)
        if n_folds < 2:
            raise ConfigError(f"data.seg_cv={seg_cv}: no cine CV fold packages (fold0, fold1, ...) there; run "
                              "python -m pipelines.cmr.cv configs/experiment/cmr_seg_2d.yaml --folds 0 1 2 3 4 "
                              f"--work {seg_cv} first, or drop data.seg_cv")
        table = out_of_fold_features(seg_cv, root, n_folds, cache)
        return table[table["patient"].isin(patients)].reset_index(drop=True)
    return feature_table(load_default(recipe.data.seg_model), root, patients=patients, cache_dir=cache,
                         progress=progress)


def train_from_recipe(recipe_path: Path, overrides: list[str] | None = None) -> dict[str, Any]:
    """Run a diagnosis recipe end to end (the ``medai train`` entry point of task ``cine_diagnosis``)."""
    import mlflow

    from pipelines import mlflow_utils
    from pipelines.cmr.train import reproduce_command

    overrides = list(overrides or [])
    recipe = load_recipe(recipe_path, overrides)
    reproduce = reproduce_command(recipe_path, overrides)
    t0 = time.perf_counter()
    with mlflow_utils.start_run("heart_mr_cine_dx", run_name=recipe.name, tags={"reproduce": reproduce}) as run:
        mlflow_utils.log_config(recipe.model_dump(mode="json"))
        table = train_table(recipe, progress=logger.info)
        out_dir = Path(recipe.package.out_dir) if recipe.package.out_dir else (
            get_settings().home / "packages" / recipe.package.name / run.info.run_id)
        pkg, info = fit_package(recipe, table, out_dir, run_id=run.info.run_id, reproduce=reproduce)
        mlflow_utils.log_metrics({k: v for k, v in json.loads((pkg / "metadata.json").read_text())["metrics"].items()})
        mlflow_utils.log_metrics({"train/wall_time_s": time.perf_counter() - t0})
        version = None
        if recipe.package.register_model:
            version = mlflow_utils.register_package(pkg, recipe.package.name, recipe.package.alias)
        mlflow.set_tag("package_dir", str(pkg))
    logger.info("primary estimator %s; package %s", info["primary"], pkg)
    return {"run_id": run.info.run_id, "package_dir": str(pkg), "primary": info["primary"], "model_version": version,
            "selection": info.get("selection")}
