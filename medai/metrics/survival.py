"""Metrics of survival and fixed-horizon risk models (built on :mod:`sksurv.metrics`).

Survival outcomes are structured arrays ``[("event", bool), ("time", float days)]``; risk scores are "higher =
worse"; survival probabilities are ``(n, n_times)`` arrays at the given times (days).

* discrimination: Harrell's and Uno's C, time-dependent cumulative/dynamic AUC, ROC AUC (binary);
* overall: integrated Brier score, Brier score at a horizon;
* calibration at a horizon: binned predicted vs Kaplan-Meier observed risk, plus logistic recalibration slope and
  intercept (``logit(observed) ~ a + b * logit(predicted)``; ideal a=0, b=1; survival rows censored before the
  horizon are excluded from the slope fit, a documented approximation);
* bootstrap percentile confidence intervals of any metric;
* risk groups with Kaplan-Meier curves and the log-rank test;
* subgroup tables.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, roc_auc_score
from sksurv.compare import compare_survival
from sksurv.metrics import (
    concordance_index_censored,
    concordance_index_ipcw,
    cumulative_dynamic_auc,
    integrated_brier_score,
)
from sksurv.nonparametric import kaplan_meier_estimator

logger = logging.getLogger(__name__)

_EPS = 1e-6


def harrell_c(y: np.ndarray, risk: np.ndarray) -> float:
    """Harrell's concordance index of ``risk`` (higher = worse) for outcome ``y``."""
    return float(concordance_index_censored(y["event"], y["time"], np.asarray(risk, float))[0])


def uno_c(y_train: np.ndarray, y_test: np.ndarray, risk: np.ndarray, tau: float | None = None) -> float:
    """Uno's IPCW concordance truncated at ``tau`` days (censoring distribution from ``y_train``)."""
    tau = tau if tau is not None else float(np.percentile(y_test["time"], 90))
    return float(concordance_index_ipcw(y_train, y_test, np.asarray(risk, float), tau=tau)[0])


def _valid_times(y_train: np.ndarray, y_test: np.ndarray, times: list[float]) -> np.ndarray:
    lo = max(y_test["time"].min(), 0)
    hi = min(y_test["time"].max(), y_train["time"][y_train["event"]].max() if y_train["event"].any() else 0)
    return np.array([t for t in times if lo < t < hi], float)


def td_auc(y_train: np.ndarray, y_test: np.ndarray, risk: np.ndarray, times: list[float]) -> dict[float, float]:
    """Cumulative/dynamic AUC at each horizon in ``times`` (days) that the follow-up supports."""
    ts = _valid_times(y_train, y_test, times)
    if len(ts) == 0:
        return {}
    aucs, _ = cumulative_dynamic_auc(y_train, y_test, np.asarray(risk, float), ts)
    return {float(t): float(a) for t, a in zip(ts, aucs, strict=True)}


def ibs(y_train: np.ndarray, y_test: np.ndarray, surv: np.ndarray, times: np.ndarray) -> float:
    """Integrated Brier score of survival probabilities ``surv`` (n, len(times)) over ``times`` (days)."""
    return float(integrated_brier_score(y_train, y_test, surv, times))


def ibs_times(y_train: np.ndarray, y_test: np.ndarray, n: int = 30) -> np.ndarray:
    """An evaluation grid for :func:`ibs`: ``n`` times between the 5th and 85th percentile of test follow-up."""
    t = y_test["time"]
    lo, hi = np.percentile(t, 5), np.percentile(t, 85)
    hi = min(hi, y_train["time"].max() - 1e-6)
    return np.unique(np.linspace(max(lo, t.min() + 1e-6), hi, n))


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, _EPS, 1 - _EPS)
    return np.log(p / (1 - p))


def calibration_binary(observed: np.ndarray, predicted: np.ndarray, n_bins: int = 10) -> dict[str, Any]:
    """Calibration of predicted probabilities against 0/1 outcomes.

    Returns:
        ``slope``, ``intercept`` (logistic recalibration), ``citl`` (calibration-in-the-large: mean observed minus
        mean predicted), ``bins`` (list of ``{"predicted", "observed", "n"}`` by quantile bin).
    """
    obs = np.asarray(observed, float)
    pred = np.clip(np.asarray(predicted, float), _EPS, 1 - _EPS)
    out: dict[str, Any] = {"citl": float(obs.mean() - pred.mean())}
    if len(np.unique(obs)) == 2:
        lr = LogisticRegression(C=1e6, max_iter=1000).fit(_logit(pred)[:, None], obs)
        out["slope"] = float(lr.coef_[0, 0])
        out["intercept"] = float(lr.intercept_[0])
    else:
        out["slope"] = out["intercept"] = float("nan")
    edges = np.unique(np.quantile(pred, np.linspace(0, 1, n_bins + 1)))
    which = np.clip(np.searchsorted(edges, pred, side="right") - 1, 0, max(len(edges) - 2, 0))
    out["bins"] = [
        {
            "predicted": float(pred[which == b].mean()),
            "observed": float(obs[which == b].mean()),
            "n": int((which == b).sum()),
        }
        for b in range(max(len(edges) - 1, 1))
        if (which == b).any()
    ]
    return out


def calibration_survival(y: np.ndarray, risk_at_t: np.ndarray, t: float, n_bins: int = 10) -> dict[str, Any]:
    """Calibration at horizon ``t`` days of predicted cumulative risk ``1 - S(t)``.

    Observed risk per quantile bin is ``1 - KM(t)`` (censoring-aware); slope/intercept use rows whose status at
    ``t`` is known (event by ``t``, or followed beyond ``t``).
    """
    pred = np.clip(np.asarray(risk_at_t, float), _EPS, 1 - _EPS)
    known = y["event"] & (y["time"] <= t) | (y["time"] > t)
    obs_known = (y["event"] & (y["time"] <= t)).astype(float)
    out = calibration_binary(obs_known[known], pred[known], n_bins)
    edges = np.unique(np.quantile(pred, np.linspace(0, 1, n_bins + 1)))
    which = np.clip(np.searchsorted(edges, pred, side="right") - 1, 0, max(len(edges) - 2, 0))
    bins = []
    for b in range(max(len(edges) - 1, 1)):
        m = which == b
        if m.sum() < 2:
            continue
        times, surv = kaplan_meier_estimator(y["event"][m], y["time"][m])
        s_t = surv[times <= t][-1] if (times <= t).any() else 1.0
        bins.append({"predicted": float(pred[m].mean()), "observed": float(1 - s_t), "n": int(m.sum())})
    out["bins"] = bins
    km_t, km_s = kaplan_meier_estimator(y["event"], y["time"])
    overall = km_s[km_t <= t][-1] if (km_t <= t).any() else 1.0
    out["citl"] = float((1 - overall) - pred.mean())
    out["horizon_days"] = float(t)
    return out


def bootstrap_ci(
    fn: Callable[[np.ndarray], float], n: int, n_boot: int = 200, seed: int = 0, alpha: float = 0.05
) -> tuple[float, float]:
    """Percentile bootstrap CI of ``fn(idx)`` over ``n_boot`` resamples of ``n`` row indices.

    ``fn`` receives resampled integer indices and returns the metric; failing resamples (e.g. no events) are
    skipped.
    """
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(n_boot):
        idx = rng.integers(0, n, n)
        try:
            v = fn(idx)
        except (ValueError, ZeroDivisionError):
            continue
        if np.isfinite(v):
            vals.append(v)
    if len(vals) < 10:
        return float("nan"), float("nan")
    lo, hi = np.percentile(vals, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(lo), float(hi)


def risk_groups(
    risk: np.ndarray, cutpoints: list[float], labels: tuple[str, ...] = ("low", "intermediate", "high")
) -> np.ndarray:
    """Assign risk groups by ``cutpoints`` (ascending; ``len(labels) - 1`` of them) -> str array."""
    idx = np.searchsorted(np.asarray(cutpoints, float), np.asarray(risk, float), side="right")
    return np.asarray(labels, dtype=object)[idx]


def km_by_group(y: np.ndarray, groups: np.ndarray) -> dict[str, Any]:
    """Kaplan-Meier curve per group and the log-rank test across groups.

    Returns:
        ``{"curves": {group: {"time": [...], "survival": [...], "n": int, "events": int}}, "logrank_chi2",
        "logrank_p"}``.
    """
    curves = {}
    for g in sorted(set(groups.tolist())):
        m = groups == g
        t, s = kaplan_meier_estimator(y["event"][m], y["time"][m])
        curves[str(g)] = {
            "time": t.tolist(),
            "survival": s.tolist(),
            "n": int(m.sum()),
            "events": int(y["event"][m].sum()),
        }
    out: dict[str, Any] = {"curves": curves}
    if len(curves) > 1:
        chi2, p = compare_survival(y, groups)
        out["logrank_chi2"], out["logrank_p"] = float(chi2), float(p)
    return out


def survival_metrics(
    y_train: np.ndarray,
    y_test: np.ndarray,
    risk: np.ndarray,
    surv_fn: Any | None,
    horizons: list[float],
    *,
    n_boot: int = 0,
    seed: int = 0,
) -> dict[str, Any]:
    """All survival metrics on one test set.

    Args:
        y_train: training outcomes (censoring distribution for Uno's C, AUC, Brier).
        y_test: test outcomes.
        risk: (n,) risk scores (higher = worse).
        surv_fn: callable ``times -> (n, len(times))`` survival probabilities, or None.
        horizons: horizons (days) for AUC and calibration.
        n_boot: bootstrap resamples for CIs of Harrell's C (0 = none).

    Returns:
        flat dict: ``c_index``, ``uno_c``, ``auc@<h>d``, ``mean_auc``, ``ibs``, ``calibration@<h>d`` (dicts),
        ``c_index_ci``.
    """
    out: dict[str, Any] = {"n": int(len(y_test)), "events": int(y_test["event"].sum())}
    out["c_index"] = harrell_c(y_test, risk)
    try:
        out["uno_c"] = uno_c(y_train, y_test, risk)
    except ValueError as exc:
        logger.debug("Uno's C not computable: %s", exc)
    aucs = td_auc(y_train, y_test, risk, horizons) if y_test["event"].any() else {}
    for t, a in aucs.items():
        out[f"auc@{t:g}d"] = a
    if aucs:
        out["mean_auc"] = float(np.mean(list(aucs.values())))
    if surv_fn is not None:
        try:
            grid = ibs_times(y_train, y_test)
            out["ibs"] = ibs(y_train, y_test, surv_fn(grid), grid)
        except ValueError as exc:
            logger.debug("IBS not computable: %s", exc)
        valid = _valid_times(y_train, y_test, horizons)
        if len(valid):
            s = surv_fn(valid)
            for j, t in enumerate(valid):
                out[f"calibration@{t:g}d"] = calibration_survival(y_test, 1 - s[:, j], float(t))
    if n_boot:
        out["c_index_ci"] = list(bootstrap_ci(lambda i: harrell_c(y_test[i], risk[i]), len(y_test), n_boot, seed))
    return out


def binary_metrics(y: np.ndarray, prob: np.ndarray, *, n_boot: int = 0, seed: int = 0) -> dict[str, Any]:
    """ROC AUC (also reported as ``c_index``), Brier score and calibration of probabilities ``prob`` for 0/1 ``y``."""
    y = np.asarray(y, int)
    out: dict[str, Any] = {"n": int(len(y)), "events": int(y.sum())}
    if len(np.unique(y)) < 2:
        return out
    out["auc"] = float(roc_auc_score(y, prob))
    out["c_index"] = out["auc"]
    out["brier"] = float(brier_score_loss(y, np.clip(prob, 0, 1)))
    out["calibration"] = calibration_binary(y, prob)
    if n_boot:

        def fn(i: np.ndarray) -> float:
            return float(roc_auc_score(y[i], prob[i]))

        out["auc_ci"] = list(bootstrap_ci(fn, len(y), n_boot, seed))
    return out


def subgroup_table(
    subgroups: pd.DataFrame,
    fn: Callable[[np.ndarray], dict[str, Any]],
    min_n: int = 20,
    min_events: int = 3,
    events: np.ndarray | None = None,
) -> dict[str, dict[str, Any]]:
    """Metrics per level of every subgroup column: ``{"<column>=<level>": fn(row_mask)}``.

    Levels with fewer than ``min_n`` rows or ``min_events`` events are reported with ``n`` and a ``note`` only.
    """
    out: dict[str, dict[str, Any]] = {}
    for col in subgroups.columns:
        vals = np.array(["unknown" if pd.isna(v) else str(v) for v in subgroups[col].tolist()], dtype=object)
        for level in sorted(set(vals.tolist())):
            m = vals == level
            key = f"{col}={level}"
            n_ev = int(events[m].sum()) if events is not None else min_events
            if m.sum() < min_n or n_ev < min_events:
                out[key] = {"n": int(m.sum()), "events": n_ev, "note": "too few rows/events for metrics"}
                continue
            try:
                out[key] = fn(m)
            except ValueError as exc:
                out[key] = {"n": int(m.sum()), "note": f"not computable: {exc}"}
    return out
