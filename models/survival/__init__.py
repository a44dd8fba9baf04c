"""Survival and fixed-horizon risk estimators, each inside a preprocessing pipeline, registered by stable name.

Every factory in :data:`medai.registry.ESTIMATORS` registered here has the signature
``factory(numeric: list[str], categorical: list[str], **params) -> sklearn.pipeline.Pipeline`` where the pipeline is
``ColumnTransformer(numeric: median imputation + missing indicators + scaling; categorical: "missing" category +
one-hot) -> estimator``. Parameters of the estimator are passed as ``params`` (no ``model__`` prefix).

Survival estimators follow the scikit-survival contract: ``y`` is a structured ``(event, time)`` array, ``fit``
returns self, ``predict`` returns a risk score (higher = worse) and ``predict_survival_function`` exists (the
pipeline forwards it). Classifiers follow the scikit-learn contract (``predict_proba[:, 1]`` = risk by the horizon).

Only scikit-learn / scikit-survival classes are used, so a fitted pipeline persists with skops and loads with an
allow-list of those packages (see :mod:`medai.risk.predictor`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sksurv.ensemble import GradientBoostingSurvivalAnalysis, RandomSurvivalForest
from sksurv.linear_model import CoxnetSurvivalAnalysis, CoxPHSurvivalAnalysis

from medai.registry import ESTIMATORS

#: estimator name -> "survival" | "binary"
KINDS: dict[str, str] = {}


def preprocessor(numeric: list[str], categorical: list[str]) -> ColumnTransformer:
    """Imputation with missing indicators, scaling and one-hot encoding.

    Args:
        numeric: numeric / binary columns (float, NaN = missing).
        categorical: categorical columns (str, None = missing).
    """
    parts: list[tuple[str, Any, list[str]]] = []
    if numeric:
        parts.append(
            (
                "num",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True)),
                        ("scale", StandardScaler()),
                    ]
                ),
                list(numeric),
            )
        )
    if categorical:
        parts.append(
            (
                "cat",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="constant", fill_value="missing", keep_empty_features=True)),
                        ("onehot", OneHotEncoder(handle_unknown="ignore", min_frequency=10, sparse_output=False)),
                    ]
                ),
                list(categorical),
            )
        )
    return ColumnTransformer(parts, remainder="drop", verbose_feature_names_out=True)


def _register(name: str, kind: str, make: Callable[..., Any]) -> None:
    def factory(numeric: list[str], categorical: list[str], **params: Any) -> Pipeline:
        return Pipeline([("pre", preprocessor(numeric, categorical)), ("model", make(**params))])

    factory.__name__ = f"make_{name}"
    factory.__doc__ = f"Preprocessing pipeline + {name} ({kind})."
    KINDS[name] = kind
    ESTIMATORS.add(name, factory)


def _coxph(alpha: float = 1e-3, ties: str = "efron") -> CoxPHSurvivalAnalysis:
    return CoxPHSurvivalAnalysis(alpha=alpha, ties=ties, n_iter=200)


def _coxnet(alpha: float = 0.01, l1_ratio: float = 0.5) -> CoxnetSurvivalAnalysis:
    return CoxnetSurvivalAnalysis(alphas=[alpha], l1_ratio=l1_ratio, fit_baseline_model=True, max_iter=100000)


def _rsf(
    n_estimators: int = 50,
    min_samples_leaf: int = 20,
    max_features: str | float = "sqrt",
    max_samples: float | None = None,
    max_depth: int | None = None,
    random_state: int = 0,
) -> RandomSurvivalForest:
    return RandomSurvivalForest(
        n_estimators=n_estimators,
        min_samples_leaf=min_samples_leaf,
        max_features=max_features,
        max_samples=max_samples,
        max_depth=max_depth,
        n_jobs=1,
        random_state=random_state,
        low_memory=False,
    )


def _gbsa(
    n_estimators: int = 100,
    learning_rate: float = 0.1,
    max_depth: int = 2,
    subsample: float = 0.8,
    min_samples_leaf: int = 20,
    random_state: int = 0,
) -> GradientBoostingSurvivalAnalysis:
    return GradientBoostingSurvivalAnalysis(
        loss="coxph",
        n_estimators=n_estimators,
        learning_rate=learning_rate,
        max_depth=max_depth,
        subsample=subsample,
        min_samples_leaf=min_samples_leaf,
        random_state=random_state,
    )


def _logreg(C: float = 1.0, class_weight: str | None = None) -> LogisticRegression:  # noqa: N803 - sklearn name
    return LogisticRegression(C=C, class_weight=class_weight, max_iter=5000)


def _hgb(
    learning_rate: float = 0.05,
    max_iter: int = 200,
    max_leaf_nodes: int = 15,
    min_samples_leaf: int = 40,
    l2_regularization: float = 0.0,
    random_state: int = 0,
) -> HistGradientBoostingClassifier:
    return HistGradientBoostingClassifier(
        learning_rate=learning_rate,
        max_iter=max_iter,
        max_leaf_nodes=max_leaf_nodes,
        min_samples_leaf=min_samples_leaf,
        l2_regularization=l2_regularization,
        random_state=random_state,
    )


_register("coxph", "survival", _coxph)
_register("coxnet", "survival", _coxnet)
_register("rsf", "survival", _rsf)
_register("gbsa", "survival", _gbsa)
_register("logreg", "binary", _logreg)
_register("hgb_classifier", "binary", _hgb)


def make_estimator(name: str, numeric: list[str], categorical: list[str], **params: Any) -> Pipeline:
    """Build the registered estimator ``name`` (see module docstring)."""
    return ESTIMATORS.get(name)(numeric, categorical, **params)  # type: ignore[return-value]
