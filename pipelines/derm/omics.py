"""Psoriasis omics classifier: leave-one-study-out validation, module ranking with stability, packaging, evaluation.

``medai train configs/experiment/derm_psoriasis_omics.yaml`` (task ``omics_classification``):

1. Leave-one-study-out (LOSO): for each GEO series, fit ``StandardScaler + LogisticRegression`` on the other series
   and predict the held-out one. Out-of-fold probabilities are pooled over all folds for the headline AUCs
   (one-vs-rest macro and lesional-vs-rest); per-study lesional-vs-rest AUC is reported where a study has both.
2. Module ranking: in each fold, modules are ranked by the L2 norm of their standardised coefficients over the three
   classes; reported as mean rank, rank SD, how often a module is in the top 3, and how often the sign of its
   lesional coefficient agrees with the full-data model.
3. The shipped model is then fitted on all studies (its metrics are the LOSO ones, never in-sample).
4. Study-effect diagnostics (no labels needed): per-feature share of variance explained by study (one-way eta^2),
   for the psoriasis eigengenes (beside the share explained by the label) and for the atopic dermatitis microarray
   z-scores. The AD data carries no disease labels, so no AD classifier is trained or claimed.

``medai evaluate skin_omics_psoriasis_cls --data DIR --out FILE.json`` re-runs the LOSO validation of the recipe
on ``DIR`` (default format ``cops-loso``); ``--format external`` applies the shipped model to a new labelled cohort
(``matrix.csv`` + ``labels.csv``) that must not contain the training studies.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field, ValidationError

from medai.derm.cohort import OmicsCohort
from medai.derm.metrics import binary_auc
from medai.derm.omics import OMICS_CLASS_CODES, OmicsLinearModel, write_model
from medai.errors import ConfigError
from medai.inference.package import ModelMetadata, TrainingData, write_metadata
from medai.settings import REPO_ROOT, find_data_dir
from pipelines.derm.recipe import load_yaml

logger = logging.getLogger(__name__)

COPS_CITATION = (
    "COPS (Clustering algorithms for Omics-driven Patient Stratification), R package, MIT licence; psoriasis "
    "RNA-seq from 10 public GEO series (GSE107871, GSE117405, GSE121212, GSE41745, GSE47944, GSE54456, GSE63979, "
    "GSE67785, GSE74697, GSE83645)."
)


class OmicsDataConfig(BaseModel):
    """``format: cops`` reads ``<root>`` (default ``<data>/derm/omics_cops``); ``format: csv`` reads a hospital's
    ``matrix_csv`` (samples x features) + ``labels_csv`` (``sample``, ``label``, ``study``, ``patient``)."""

    format: Literal["cops", "csv"] = "cops"
    root: Path | None = None
    matrix_csv: Path | None = None
    labels_csv: Path | None = None
    class_names: list[str] | None = None


class OmicsModelConfig(BaseModel):
    """Logistic regression settings (fixed a priori; nothing is tuned on the held-out studies)."""

    C: float = 1.0
    max_iter: int = 5000


class OmicsRecipe(BaseModel):
    """``configs/experiment/derm_psoriasis_omics.yaml``."""

    task: Literal["omics_classification"] = "omics_classification"
    name: str = "skin_omics_psoriasis_cls"
    version: str = "1.0.0"
    data: OmicsDataConfig = Field(default_factory=OmicsDataConfig)
    model: OmicsModelConfig = Field(default_factory=OmicsModelConfig)
    study_diagnostics_ad: bool = True
    package_dir: Path = REPO_ROOT / "models" / "packages" / "skin_omics_psoriasis_cls"
    register_model: bool = True
    alias: str = "candidate"


def load_omics_recipe(path: str | Path, overrides: list[str] | None = None) -> OmicsRecipe:
    """Validated :class:`OmicsRecipe`."""
    try:
        return OmicsRecipe.model_validate(load_yaml(path, overrides))
    except ValidationError as exc:
        raise ConfigError(f"invalid recipe {path}: {exc}") from exc


def _cops_root(root: Path | None) -> Path:
    if root:
        return Path(root)
    d = find_data_dir()
    if d is None:
        raise ConfigError("no data.root and no data dir found; set MEDAI_DATA_DIR or data.root")
    return d / "derm" / "omics_cops"


def load_omics_cohort(cfg: OmicsDataConfig) -> OmicsCohort:
    """The recipe's cohort (COPS psoriasis or a CSV cohort)."""
    if cfg.format == "cops":
        return OmicsCohort.from_cops_psoriasis(_cops_root(cfg.root))
    if not (cfg.matrix_csv and cfg.labels_csv):
        raise ConfigError("data.format csv needs data.matrix_csv and data.labels_csv")
    return OmicsCohort.from_csv(cfg.matrix_csv, cfg.labels_csv, class_names=cfg.class_names)


def _pipeline(cfg: OmicsModelConfig) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=cfg.C, max_iter=cfg.max_iter))


def _fit(
    X: np.ndarray, y: np.ndarray, cfg: OmicsModelConfig, features: list[str], classes: list[str]
) -> OmicsLinearModel:
    pipe = _pipeline(cfg).fit(X, y)
    return OmicsLinearModel.from_sklearn(pipe, features, classes, X)


def auc_summary(probs: np.ndarray, y: np.ndarray, classes: list[str], positive: str = "lesional") -> dict[str, Any]:
    """One-vs-rest AUC per class, their macro mean, and ``positive``-vs-rest AUC."""
    per = {c: binary_auc(probs[:, i], y == i) for i, c in enumerate(classes)}
    finite = [v for v in per.values() if not np.isnan(v)]
    pos = classes.index(positive) if positive in classes else 0
    return {
        "auc_ovr_macro": float(np.mean(finite)) if finite else float("nan"),
        f"auc_{classes[pos]}_vs_rest": per[classes[pos]],
        "auc_ovr": per,
    }


def leave_one_study_out(cohort: OmicsCohort, cfg: OmicsModelConfig) -> dict[str, Any]:
    """LOSO validation: pooled out-of-fold AUCs, per-study results, module ranks per fold.

    Returns:
        ``{"pooled": {...}, "per_study": {...}, "oof_probabilities": (N, K), "ranks": (folds, F),
        "lesional_coef": (folds, F), "studies": [...]}``.
    """
    from sklearn.metrics import balanced_accuracy_score

    X, y = cohort.X, cohort.y
    studies = np.asarray(cohort.studies)
    uniq = sorted(set(cohort.studies))
    if len(uniq) < 2:
        raise ConfigError("leave-one-study-out needs at least two studies")
    k = len(cohort.class_names)
    oof = np.full((len(y), k), np.nan)
    ranks, lcoef, per_study = [], [], {}
    pos = cohort.class_names.index("lesional") if "lesional" in cohort.class_names else 0
    for s in uniq:
        test = studies == s
        train = ~test
        missing = sorted(set(range(k)) - set(np.unique(y[train]).tolist()))
        if missing:
            logger.warning("study %s: training folds lack classes %s", s, missing)
        m = _fit(X[train], y[train], cfg, cohort.feature_names, cohort.class_names)
        p = m.predict_proba(X[test])
        oof[test] = p
        coef = np.asarray(m.coef)
        imp = np.linalg.norm(coef, axis=0)
        ranks.append(np.argsort(np.argsort(-imp)) + 1)
        lcoef.append(coef[pos])
        yt = y[test]
        per_study[s] = {
            "n": int(test.sum()),
            "classes": {cohort.class_names[c]: int((yt == c).sum()) for c in np.unique(yt)},
            "accuracy": float((p.argmax(1) == yt).mean()),
            f"auc_{cohort.class_names[pos]}_vs_rest": binary_auc(p[:, pos], yt == pos),
        }
    pred = oof.argmax(1)
    pooled = {
        "n": int(len(y)),
        "n_studies": len(uniq),
        **auc_summary(oof, y, cohort.class_names),
        "balanced_accuracy": float(balanced_accuracy_score(y, pred)),
        "accuracy": float((pred == y).mean()),
    }
    per_study_auc = [v[f"auc_{cohort.class_names[pos]}_vs_rest"] for v in per_study.values()]
    per_study_auc = [v for v in per_study_auc if not np.isnan(v)]
    pooled["auc_lesional_vs_rest_mean_over_studies"] = float(np.mean(per_study_auc)) if per_study_auc else float("nan")
    pooled["n_studies_with_auc"] = len(per_study_auc)
    return {
        "pooled": pooled,
        "per_study": per_study,
        "oof_probabilities": oof,
        "ranks": np.asarray(ranks),
        "lesional_coef": np.asarray(lcoef),
        "studies": uniq,
    }


def rank_modules(
    features: list[str], ranks: np.ndarray, lesional_coef: np.ndarray, full_model: OmicsLinearModel, top_k: int = 3
) -> list[dict[str, Any]]:
    """Modules ordered by mean fold rank, with stability across the LOSO folds."""
    pos = full_model.classes.index("lesional") if "lesional" in full_model.classes else 0
    full_coef = np.asarray(full_model.coef)
    full_sign = np.sign(full_coef[pos])
    rows = []
    for j, f in enumerate(features):
        rows.append(
            {
                "module": f,
                "mean_rank": float(ranks[:, j].mean()),
                "rank_sd": float(ranks[:, j].std()),
                "top3_frequency": float((ranks[:, j] <= top_k).mean()),
                "lesional_sign_agreement": float((np.sign(lesional_coef[:, j]) == full_sign[j]).mean()),
                "full_model_importance": float(np.linalg.norm(full_coef[:, j])),
                "full_model_lesional_coef": float(full_coef[pos, j]),
            }
        )
    rows.sort(key=lambda r: r["mean_rank"])
    for i, r in enumerate(rows, 1):
        r["rank"] = i
    return rows


def study_variance_explained(X: np.ndarray, groups: list[str] | np.ndarray) -> np.ndarray:
    """One-way eta^2 per feature: share of the feature's variance explained by ``groups`` (``(F,)`` in [0, 1])."""
    X = np.asarray(X, np.float64)
    g = np.asarray(groups)
    grand = X.mean(0)
    ss_tot = ((X - grand) ** 2).sum(0)
    ss_between = np.zeros(X.shape[1])
    for u in np.unique(g):
        m = g == u
        ss_between += m.sum() * (X[m].mean(0) - grand) ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ss_tot > 0, ss_between / ss_tot, np.nan)


def ad_study_diagnostics(root: Path, n_pcs: int = 20, seed: int = 0) -> dict[str, Any]:
    """Study effects in the unlabelled AD microarray z-scores.

    Reports (i) how much of each gene's variance study explains (one-way eta^2) and whether per-study means were
    already removed, and (ii) whether study identity can still be predicted from the top ``n_pcs`` principal
    components (5-fold stratified CV of a logistic regression, balanced accuracy vs the chance level), i.e. batch
    structure beyond per-gene location/scale.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    ad = OmicsCohort.from_cops_atopic_dermatitis(root)
    X = np.nan_to_num(ad.X)
    studies = np.asarray(ad.studies)
    eta = study_variance_explained(X, studies)
    max_study_mean = max(float(np.abs(X[studies == s].mean(0)).max()) for s in np.unique(studies))
    Xc = X - X.mean(0)
    u, sv, _ = np.linalg.svd(Xc, full_matrices=False)
    pcs = u[:, :n_pcs] * sv[:n_pcs]
    var_ratio = (sv**2 / (sv**2).sum())[:n_pcs]
    counts = {s: int((studies == s).sum()) for s in np.unique(studies)}
    keep = np.array([counts[s] >= 5 for s in studies])
    cv = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
    # per-study means are zero after within-study z-scoring, so a linear model on the PCs cannot see study; the
    # squared PC scores (per-sample spread along each axis) expose study-specific covariance instead
    feats = np.log1p(pcs[keep] ** 2)
    pred = cross_val_predict(LogisticRegression(max_iter=5000), feats, studies[keep], cv=cv)
    recalls = [float((pred[studies[keep] == s] == s).mean()) for s in np.unique(studies[keep])]
    bacc, chance = float(np.mean(recalls)), 1.0 / len(np.unique(studies[keep]))
    if bacc > 1.5 * chance:
        verdict = (
            f"Study identity remains predictable from per-sample spread along the top PCs (balanced accuracy "
            f"{bacc:.2f} vs chance {chance:.2f}), so study effects persist beyond location/scale"
        )
    else:
        verdict = (
            f"Study identity is not predictable from per-sample spread along the top PCs (balanced accuracy "
            f"{bacc:.2f} vs chance {chance:.2f})"
        )
    return {
        "what": "atopic dermatitis microarray z-scores (COPS); no disease labels: study-effect diagnostics only",
        "n_samples": len(ad),
        "n_genes": int(X.shape[1]),
        "n_studies": len(counts),
        "samples_per_study": counts,
        "gene_eta2_by_study_median": float(np.nanmedian(eta)),
        "max_abs_per_study_gene_mean": max_study_mean,
        "top_pcs_variance_ratio": [float(v) for v in var_ratio[:5]],
        "study_predictable_from_top_pcs": {
            "features": f"log(1 + PC score^2), top {n_pcs} PCs",
            "studies_used": int(len(np.unique(studies[keep]))),
            "cv_balanced_accuracy": bacc,
            "chance_balanced_accuracy": chance,
        },
        "interpretation": (
            "The z-scores were standardised within each study, so study explains none of any gene's mean "
            f"(eta^2 ~ 0 by construction). {verdict}. Any future AD model must still be validated leaving whole "
            "studies out. With no disease labels, this data cannot train or validate an AD classifier, and none "
            "is claimed."
        ),
    }


def _model_card(meta: ModelMetadata, loso: dict[str, Any], modules: list[dict[str, Any]], diag: dict[str, Any]) -> str:
    p = loso["pooled"]
    rows = "\n".join(
        f"| {r['rank']} | {r['module']} | {r['mean_rank']:.1f} +- {r['rank_sd']:.1f} | {r['top3_frequency']:.2f} | "
        f"{r['lesional_sign_agreement']:.2f} | {r['full_model_lesional_coef']:+.2f} |"
        for r in modules
    )
    studies = "\n".join(
        f"| {s} | {v['n']} | {v['classes']} | {v['accuracy']:.2f} | {v['auc_lesional_vs_rest']:.3f} |"
        for s, v in loso["per_study"].items()
    )
    return f"""# {meta.name} {meta.version}

{meta.description}

**Intended use.** {meta.intended_use} Research on psoriasis skin transcriptomes summarised as the 12 COPS WGCNA
module eigengenes. Not a diagnostic test.

## Data and licence
{COPS_CITATION} Licence: {meta.licence}. 445 samples; labels lesional / non-lesional / healthy control.
The module eigengenes were computed by COPS on all 445 samples together (unsupervised, labels not used), so the
held-out studies contributed to the module definitions: a mild, label-free leak that LOSO cannot remove.

## Leave-one-study-out validation (each GEO series held out once; metrics on pooled out-of-fold predictions)
One-vs-rest macro AUC **{p["auc_ovr_macro"]:.3f}**, lesional-vs-rest AUC **{p["auc_lesional_vs_rest"]:.3f}**
(mean over the {p["n_studies_with_auc"]} studies that contain lesional and other samples:
{p["auc_lesional_vs_rest_mean_over_studies"]:.3f}), balanced accuracy {p["balanced_accuracy"]:.3f}.

| held-out study | n | classes | accuracy | lesional-vs-rest AUC |
|---|---|---|---|---|
{studies}

## Ranked modules (stability over the {len(loso["studies"])} LOSO folds)
| rank | module | mean fold rank +- SD | top-3 frequency | lesional sign agreement | lesional coef (full model) |
|---|---|---|---|---|---|
{rows}

## Study effects
Share of each eigengene's variance explained by study (median eta^2):
{diag.get("psoriasis_eta2_study_median", float("nan")):.3f}; by label:
{diag.get("psoriasis_eta2_label_median", float("nan")):.3f}. Atopic dermatitis microarray data (unlabelled)
was used only for study-effect diagnostics (see `diagnostics.json`); no AD model is trained or claimed.

## Input caveat
New samples must be summarised with the same COPS module definitions; the gene loadings are not part of the
release used here.

Reproduce: `{meta.reproduce}`.
"""


def train_from_recipe(recipe_path: str | Path, overrides: list[str] | None = None) -> dict[str, Any]:
    """LOSO-validate, rank modules, fit on all studies, package and register the psoriasis omics model."""
    recipe = load_omics_recipe(recipe_path, overrides)
    t0 = time.time()
    cohort = load_omics_cohort(recipe.data)
    loso = leave_one_study_out(cohort, recipe.model)
    full = _fit(cohort.X, cohort.y, recipe.model, cohort.feature_names, cohort.class_names)
    modules = rank_modules(cohort.feature_names, loso["ranks"], loso["lesional_coef"], full)
    eta_study = study_variance_explained(cohort.X, cohort.studies)
    eta_label = study_variance_explained(cohort.X, cohort.labels)
    diag: dict[str, Any] = {
        "psoriasis_eta2_study_median": float(np.median(eta_study)),
        "psoriasis_eta2_label_median": float(np.median(eta_label)),
        "psoriasis_eta2_by_module": {
            f: {"study": float(a), "label": float(b)}
            for f, a, b in zip(cohort.feature_names, eta_study, eta_label, strict=True)
        },
    }
    if recipe.study_diagnostics_ad and recipe.data.format == "cops":
        try:
            diag["atopic_dermatitis"] = ad_study_diagnostics(_cops_root(recipe.data.root))
        except (OSError, ConfigError, KeyError) as exc:
            logger.warning("AD diagnostics skipped: %s", exc)
    seconds = time.time() - t0
    out = Path(recipe.package_dir)
    write_model(out, full)
    p = loso["pooled"]
    metrics = {
        "loso/auc_ovr_macro": p["auc_ovr_macro"],
        "loso/auc_lesional_vs_rest": p["auc_lesional_vs_rest"],
        "loso/auc_lesional_vs_rest_mean_over_studies": p["auc_lesional_vs_rest_mean_over_studies"],
        "loso/balanced_accuracy": p["balanced_accuracy"],
        **{f"loso/auc/{c}": v for c, v in p["auc_ovr"].items()},
    }
    metrics = {k: float(v) for k, v in metrics.items() if not np.isnan(v)}
    meta = ModelMetadata(
        name=recipe.name,
        version=recipe.version,
        predictor="psoriasis_omics",
        task="classification",
        description=(
            "Standardised multinomial logistic regression: 12 WGCNA module eigengenes of a skin transcriptome -> "
            "lesional / non-lesional / healthy-control probabilities, with per-sample top modules."
        ),
        input_contract={"kind": "factors", "features": cohort.feature_names, "units": "eigengene (dimensionless)"},
        output_contract={
            "classes": cohort.class_names,
            "extras.top_modules": "Contribution list (standardised value x coefficient of the predicted class)",
        },
        labels=[
            {"index": i, "name": c, "code": OMICS_CLASS_CODES[c].model_dump() if c in OMICS_CLASS_CODES else None}
            for i, c in enumerate(cohort.class_names)
        ],
        training_data=[
            TrainingData(
                name=cohort.name,
                description=f"{len(cohort)} samples, {len(set(cohort.studies))} studies, "
                f"{len(set(cohort.patients))} patients",
                licence="MIT (COPS); source data public GEO series",
                n_cases=len(cohort),
                citation=COPS_CITATION,
            )
        ],
        metrics=metrics,
        files=["omics_model.json", "validation.json", "diagnostics.json", "MODEL_CARD.md"],
        licence="MIT",
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        hardware=f"CPU; LOSO + fit {seconds:.1f} s",
        reproduce="medai train configs/experiment/derm_psoriasis_omics.yaml",
    )
    validation = {
        "protocol": "leave-one-study-out (GEO series); metrics on pooled out-of-fold predictions",
        "pooled": p,
        "per_study": loso["per_study"],
        "ranked_modules": modules,
    }
    (out / "validation.json").write_text(json.dumps(validation, indent=2))
    (out / "diagnostics.json").write_text(json.dumps(diag, indent=2))
    import mlflow

    from medai.settings import get_settings

    mlflow.set_tracking_uri(get_settings().mlflow_tracking_uri)
    mlflow.set_experiment(recipe.name)
    with mlflow.start_run() as run:
        meta.mlflow_run_id = run.info.run_id
        write_metadata(out, meta)
        (out / "MODEL_CARD.md").write_text(_model_card(meta, loso, modules, diag))
        mlflow.log_params({"C": recipe.model.C, "n_samples": len(cohort), "n_studies": len(set(cohort.studies))})
        mlflow.log_metrics(metrics)
        if recipe.register_model:
            from pipelines.derm.train import register_package

            register_package(run.info.run_id, out, recipe.name, recipe.alias)
    return {"package": out, "loso": loso, "modules": modules, "diagnostics": diag, "model": full}


def _genes_evaluation(data: Path, fmt: str, clinical: list[str]) -> dict[str, Any]:
    """``genes-loso`` / ``genes-prognosis`` on ``DIR/matrix.csv`` (samples x genes) + ``DIR/labels.csv``."""
    import pandas as pd

    from pipelines.derm.omics_genes import cv_prognosis, loso_classification

    try:
        X = pd.read_csv(data / "matrix.csv", index_col=0)
        lab = pd.read_csv(data / "labels.csv", dtype={"sample": str}).set_index("sample")
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{data}: needs matrix.csv (samples x genes) and labels.csv: {exc}") from exc
    X.index = X.index.astype(str)
    missing = sorted(set(lab.index) - set(X.index))
    if missing:
        raise ConfigError(f"{len(missing)} samples of labels.csv are not in matrix.csv, e.g. {missing[:3]}")
    X = X.loc[lab.index]
    genes = [str(g) for g in X.columns]
    if fmt == "genes-loso":
        for col in ("label", "study"):
            if col not in lab.columns:
                raise ConfigError(f"{data}/labels.csv needs a {col!r} column for genes-loso")
        classes = sorted(lab["label"].astype(str).unique())
        y = np.array([classes.index(v) for v in lab["label"].astype(str)])
        positive = "lesional" if "lesional" in classes else classes[-1]
        return {"protocol_family": "genes-loso", "is_held_out": True,
                **loso_classification(X.to_numpy(float), y, lab["study"].astype(str).to_numpy(), classes, genes,
                                      positive=positive)}
    for col in ("time", "event"):
        if col not in lab.columns:
            raise ConfigError(f"{data}/labels.csv needs a {col!r} column for genes-prognosis")
    absent = [c for c in clinical if c not in lab.columns]
    if absent:
        raise ConfigError(f"clinical columns {absent} are not in {data}/labels.csv")
    groups = lab["patient"].astype(str).to_numpy() if "patient" in lab.columns else lab.index.to_numpy()
    clin = lab[clinical].to_numpy(float) if clinical else None
    return {"protocol_family": "genes-prognosis", "is_held_out": True,
            **cv_prognosis(X.to_numpy(float), lab["time"].to_numpy(float), lab["event"].astype(bool).to_numpy(),
                           groups, genes, clinical=clin, clinical_names=clinical)}


def evaluate_cli(
    model: str,
    data: Path,
    fmt: str = "auto",
    out: Path = Path("evaluation.json"),
    package: Path | None = None,
    clinical: list[str] | None = None,
) -> dict[str, Any]:
    """``medai evaluate skin_omics_psoriasis_cls --data DIR``.

    Formats: ``auto``/``cops-loso`` (DIR is a COPS folder: the shipped model's recipe re-validated leaving each study
    out -- the shipped weights saw every study, so applying them to COPS would be in-sample); ``csv-loso`` (DIR holds
    ``matrix.csv`` + ``labels.csv``: LOSO on a hospital cohort); ``external`` (DIR holds ``matrix.csv`` +
    ``labels.csv`` of new studies: the shipped model applied as is); ``genes-loso`` / ``genes-prognosis`` (DIR holds a
    gene matrix: in-fold co-expression modules, see :mod:`pipelines.derm.omics_genes`; ``clinical`` names covariate
    columns of labels.csv for the prognosis head).
    """
    from medai.inference.package import read_metadata, resolve_package
    from medai.inference.predictor import Predictor

    pkg = resolve_package(package or model)
    meta = read_metadata(pkg)
    data = Path(data)
    fmt = "cops-loso" if fmt == "auto" else fmt
    import sys

    result: dict[str, Any] = {"model": meta.name, "version": meta.version, "data": str(data), "format": fmt,
                              "command": " ".join(["medai evaluate", *sys.argv[2:]])
                              if sys.argv and "evaluate" in sys.argv else ""}
    if fmt in ("cops-loso", "csv-loso"):
        cfg = (
            OmicsDataConfig(format="cops", root=data)
            if fmt == "cops-loso"
            else OmicsDataConfig(format="csv", matrix_csv=data / "matrix.csv", labels_csv=data / "labels.csv")
        )
        cohort = load_omics_cohort(cfg)
        loso = leave_one_study_out(cohort, OmicsModelConfig())
        full = _fit(cohort.X, cohort.y, OmicsModelConfig(), cohort.feature_names, cohort.class_names)
        result.update(
            {
                "protocol": "leave-one-study-out refit of the package's recipe; pooled out-of-fold predictions",
                "is_held_out": True,
                **loso["pooled"],
                "per_study": loso["per_study"],
                "ranked_modules": rank_modules(cohort.feature_names, loso["ranks"], loso["lesional_coef"], full),
            }
        )
        if fmt == "cops-loso":
            result["eigengene_leak"] = {
                "eigengenes": "computed by COPS on all 445 samples together (unsupervised, labels not used): each "
                "held-out study took part in the module step, so these LOSO figures can be optimistic",
                "leak_free_auc": None,
                "status": "blocked: the COPS release here holds the eigengenes only, not the gene expression "
                "(psoriasis_rnaseq_example) they were computed from, so they cannot be recomputed inside each fold. "
                "With a gene matrix, --format genes-loso reports the in-fold and the all-samples AUCs side by side.",
            }
    elif fmt in ("genes-loso", "genes-prognosis"):
        result.update(_genes_evaluation(data, fmt, clinical or []))
    elif fmt == "external":
        cohort = OmicsCohort.from_csv(data / "matrix.csv", data / "labels.csv")
        pred = Predictor.from_package(pkg)
        classes = pred.model.classes
        probs = np.vstack([[c.probability for c in pred.predict(x).classes] for x in cohort.X])
        y = np.array([classes.index(lab) for lab in cohort.labels])
        cited = " ".join(td.citation for td in meta.training_data).replace(",", " ").replace(")", " ")
        trained_on = {w for w in cited.split() if w.startswith("GSE")}
        overlap = sorted(set(cohort.studies) & trained_on)
        result.update(
            {
                "protocol": "shipped model applied to an external cohort",
                "is_held_out": not overlap,
                "studies_seen_in_training": overlap,
                **auc_summary(probs, y, classes),
            }
        )
    else:
        raise ConfigError(
            f"unknown --format {fmt!r} for {model}: use cops-loso, csv-loso, external, genes-loso or genes-prognosis"
        )
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=float))
    return result
