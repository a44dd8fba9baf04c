"""Gene-level omics validation without the eigengene leak: in-fold modules, biomarker stability, prognosis.

For a cohort of gene expression (samples x genes) the unsupervised module step is part of the model, so it is refitted
inside every fold (:class:`medai.derm.modules.ModuleEigengenes` in a scikit-learn ``Pipeline``):

* :func:`loso_classification` -- leave-one-study-out with in-fold modules, beside the same protocol with modules fitted
  once on all samples (the leaky protocol of the COPS eigengenes), so the two AUCs can be read side by side;
* :func:`cv_prognosis` -- a prognosis / treatment-response head: Cox proportional hazards (scikit-survival) on
  in-fold eigengenes plus optional clinical covariates, grouped K-fold by patient or study; out-of-fold Harrell's
  C-index and risk-group Kaplan-Meier medians;
* both rank *genes* (modules differ between folds; genes do not) by ``|coef| x |kME|`` in every fold and report the
  top genes with their fold stability: how often a gene is in a fold's top ``k`` and its mean rank.

``medai evaluate skin_omics_psoriasis_cls --format genes-loso --data DIR`` (``matrix.csv`` of genes + ``labels.csv``
with ``sample``, ``label``, ``study``) and ``--format genes-prognosis`` (``labels.csv`` with ``time`` and ``event``,
optional ``patient``, and clinical columns named in ``--clinical``) call these.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from medai.derm.metrics import binary_auc
from medai.derm.modules import ModuleEigengenes
from medai.errors import ConfigError

logger = logging.getLogger(__name__)


class ModuleConfig(BaseModel):
    """Module detection settings (fixed a priori; nothing is tuned on held-out folds)."""

    n_modules: int = Field(12, ge=1)
    power: float = Field(6.0, gt=0)
    min_size: int = Field(10, ge=2)
    max_genes: int | None = 5000
    C: float = Field(1.0, gt=0, description="inverse L2 strength of the logistic / Cox model")
    top_k: int = Field(10, ge=1, description="genes per fold counted for the stability table")

    def modules(self) -> ModuleEigengenes:
        return ModuleEigengenes(self.n_modules, self.power, self.min_size, self.max_genes)


def _classifier(cfg: ModuleConfig, modules: ModuleEigengenes | None) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    steps = [modules] if modules is not None else []
    return make_pipeline(*steps, StandardScaler(), LogisticRegression(C=cfg.C, max_iter=5000))


def stability_table(
    importances: list[np.ndarray], gene_names: list[str], top_k: int, n_report: int | None = None
) -> list[dict[str, Any]]:
    """Genes by how often they are in a fold's top ``top_k`` (then by mean rank): ``gene``, ``top_k_frequency``,
    ``mean_rank``, ``rank_sd``, ``mean_importance``."""
    imp = np.vstack(importances)
    ranks = np.argsort(np.argsort(-imp, axis=1), axis=1) + 1
    freq = (ranks <= top_k).mean(0)
    order = np.lexsort((ranks.mean(0), -freq))
    rows = []
    for j in order[: n_report or top_k * 2]:
        rows.append(
            {
                "gene": gene_names[j],
                f"top{top_k}_frequency": float(freq[j]),
                "mean_rank": float(ranks[:, j].mean()),
                "rank_sd": float(ranks[:, j].std()),
                "mean_importance": float(imp[:, j].mean()),
            }
        )
    return rows


def loso_classification(
    X: np.ndarray,
    y: np.ndarray,
    studies: np.ndarray | list[str],
    class_names: list[str],
    gene_names: list[str],
    cfg: ModuleConfig | None = None,
    positive: str | None = None,
) -> dict[str, Any]:
    """Leave-one-study-out AUCs with modules fitted in each fold (``in_fold``) and, for comparison, once on all
    samples (``all_samples``: the leak), plus the in-fold gene stability table."""
    cfg = cfg or ModuleConfig()
    X = np.asarray(X, np.float64)
    y = np.asarray(y, int)
    studies = np.asarray(studies)
    uniq = sorted(set(studies.tolist()))
    if len(uniq) < 2:
        raise ConfigError("leave-one-study-out needs at least two studies")
    pos = class_names.index(positive) if positive in class_names else len(class_names) - 1
    leaky_features = cfg.modules().fit(X).transform(X)  # unsupervised, but it has seen every test sample
    oof = {k: np.full((len(y), len(class_names)), np.nan) for k in ("in_fold", "all_samples")}
    importances = []
    for s in uniq:
        test = studies == s
        train = ~test
        if len(np.unique(y[train])) < 2:
            raise ConfigError(f"leaving out study {s} leaves one class only: each fold needs two classes")
        pipe = _classifier(cfg, cfg.modules()).fit(X[train], y[train])
        cols = pipe.classes_
        oof["in_fold"][np.ix_(test, cols)] = pipe.predict_proba(X[test])
        mods: ModuleEigengenes = pipe.steps[0][1]
        coef = pipe.steps[-1][1].coef_
        weights = np.linalg.norm(coef, axis=0) if coef.shape[0] > 1 else np.abs(coef[0])
        importances.append(mods.gene_importance(weights, X.shape[1]))
        leak = _classifier(cfg, None).fit(leaky_features[train], y[train])
        oof["all_samples"][np.ix_(test, leak.classes_)] = leak.predict_proba(leaky_features[test])
    out: dict[str, Any] = {"n": int(len(y)), "n_studies": len(uniq), "positive_class": class_names[pos]}
    for k, p in oof.items():
        p = np.nan_to_num(p, nan=0.0)
        per = {c: binary_auc(p[:, i], y == i) for i, c in enumerate(class_names)}
        finite = [v for v in per.values() if not np.isnan(v)]
        out[k] = {
            f"auc_{class_names[pos]}_vs_rest": per[class_names[pos]],
            "auc_ovr_macro": float(np.mean(finite)) if finite else float("nan"),
            "auc_ovr": per,
        }
    out["top_genes"] = stability_table(importances, gene_names, cfg.top_k)
    out["protocol"] = (
        "in_fold: co-expression modules and eigengenes fitted on the training studies of each fold only; "
        "all_samples: modules fitted once on every sample (test studies included), then the same LOSO"
    )
    return out


def cv_prognosis(
    X: np.ndarray,
    time: np.ndarray,
    event: np.ndarray,
    groups: np.ndarray | list[str],
    gene_names: list[str],
    clinical: np.ndarray | None = None,
    clinical_names: list[str] | None = None,
    cfg: ModuleConfig | None = None,
    n_folds: int = 5,
    seed: int = 0,
) -> dict[str, Any]:
    """Grouped K-fold Cox model on in-fold eigengenes (+ clinical covariates): out-of-fold C-index, the hazard
    ratio per SD of each clinical covariate in the full fit, gene stability, and median time by risk half."""
    from sklearn.model_selection import GroupKFold
    from sklearn.preprocessing import StandardScaler
    from sksurv.linear_model import CoxPHSurvivalAnalysis
    from sksurv.metrics import concordance_index_censored
    from sksurv.util import Surv

    cfg = cfg or ModuleConfig()
    X = np.asarray(X, np.float64)
    time = np.asarray(time, np.float64)
    event = np.asarray(event, bool)
    groups = np.asarray(groups)
    if not (np.isfinite(time).all() and (time > 0).all()):
        raise ConfigError("follow-up times must be positive finite numbers")
    if event.sum() < 5:
        raise ConfigError(f"only {int(event.sum())} events: a prognosis model needs at least 5")
    C = np.zeros((len(X), 0)) if clinical is None else np.asarray(clinical, np.float64)
    n_folds = min(n_folds, len(set(groups.tolist())))
    risk = np.full(len(X), np.nan)
    importances = []

    def design(mods: ModuleEigengenes, rows: np.ndarray, scaler: StandardScaler | None) -> tuple[np.ndarray, Any]:
        F = np.hstack([mods.transform(X[rows]), C[rows]])
        scaler = scaler or StandardScaler().fit(F)
        return scaler.transform(F), scaler

    for train, test in GroupKFold(n_splits=n_folds, shuffle=True, random_state=seed).split(X, groups=groups):
        mods = cfg.modules().fit(X[train])
        Ftr, sc = design(mods, train, None)
        cox = CoxPHSurvivalAnalysis(alpha=1.0 / cfg.C).fit(Ftr, Surv.from_arrays(event[train], time[train]))
        risk[test] = cox.predict(design(mods, test, sc)[0])
        importances.append(mods.gene_importance(cox.coef_[: len(mods.modules_)], X.shape[1]))
    cindex = float(concordance_index_censored(event, time, risk)[0])
    high = risk > np.median(risk)
    mods = cfg.modules().fit(X)
    Fall, _ = design(mods, np.arange(len(X)), None)
    full = CoxPHSurvivalAnalysis(alpha=1.0 / cfg.C).fit(Fall, Surv.from_arrays(event, time))
    hr = {
        name: float(np.exp(b)) for name, b in zip(clinical_names or [], full.coef_[len(mods.modules_) :], strict=False)
    }
    return {
        "n": int(len(X)),
        "n_events": int(event.sum()),
        "n_folds": n_folds,
        "c_index_out_of_fold": cindex,
        "event_rate_high_risk_half": float(event[high].mean()),
        "event_rate_low_risk_half": float(event[~high].mean()),
        "clinical_hazard_ratio_per_sd_full_fit": hr,
        "top_genes": stability_table(importances, gene_names, cfg.top_k),
        "protocol": "grouped K-fold (groups never split); modules, scaling and Cox fitted on the training folds only",
    }
