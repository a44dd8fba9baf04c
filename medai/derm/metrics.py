"""Classification metrics and temperature scaling (numpy / scikit-learn; no framework imports).

Probabilities are ``(N, K) float`` rows summing to one; labels ``(N,) int`` class indices.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax


def fit_temperature(logits: np.ndarray, y: np.ndarray, bounds: tuple[float, float] = (0.05, 20.0)) -> float:
    """Temperature ``T`` minimising the NLL of ``softmax(logits / T)`` on ``(logits, y)`` (Guo et al., 2017).

    Fit on the validation split only.
    """
    logits = np.asarray(logits, np.float64)
    y = np.asarray(y, int)

    def nll(log_t: float) -> float:
        lp = log_softmax(logits / np.exp(log_t), axis=1)
        return float(-lp[np.arange(len(y)), y].mean())

    res = minimize_scalar(nll, bounds=(np.log(bounds[0]), np.log(bounds[1])), method="bounded")
    return float(np.exp(res.x))


def calibrated_probabilities(logits: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(logits / temperature)`` row-wise: ``(N, K)``."""
    return softmax(np.asarray(logits, np.float64) / temperature, axis=1)


def expected_calibration_error(probs: np.ndarray, y: np.ndarray, n_bins: int = 15) -> tuple[float, dict[str, list]]:
    """Top-label expected calibration error with ``n_bins`` equal-width confidence bins.

    Returns:
        ``(ece, reliability)`` where ``reliability`` has per-bin ``bin_lower``, ``bin_upper``, ``confidence``,
        ``accuracy`` and ``count`` (for the reliability diagram).
    """
    probs = np.asarray(probs, np.float64)
    y = np.asarray(y, int)
    conf = probs.max(1)
    correct = (probs.argmax(1) == y).astype(np.float64)
    edges = np.linspace(0, 1, n_bins + 1)
    ece = 0.0
    rel: dict[str, list] = {"bin_lower": [], "bin_upper": [], "confidence": [], "accuracy": [], "count": []}
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        m = (conf > lo) & (conf <= hi) if lo > 0 else (conf >= lo) & (conf <= hi)
        n = int(m.sum())
        rel["bin_lower"].append(float(lo))
        rel["bin_upper"].append(float(hi))
        rel["count"].append(n)
        if n:
            c, a = float(conf[m].mean()), float(correct[m].mean())
            ece += n / len(y) * abs(c - a)
            rel["confidence"].append(c)
            rel["accuracy"].append(a)
        else:
            rel["confidence"].append(float("nan"))
            rel["accuracy"].append(float("nan"))
    return float(ece), rel


def classification_report(probs: np.ndarray, y: np.ndarray, class_names: list[str]) -> dict[str, object]:
    """Balanced accuracy, accuracy, macro AUC, per-class AUC / sensitivity / specificity, confusion matrix, ECE.

    The predicted class is the arg-max of ``probs``. Per-class AUC is one-vs-rest (``nan`` when a class is absent).
    """
    from sklearn.metrics import balanced_accuracy_score, confusion_matrix, roc_auc_score

    probs = np.asarray(probs, np.float64)
    y = np.asarray(y, int)
    k = len(class_names)
    pred = probs.argmax(1)
    cm = confusion_matrix(y, pred, labels=list(range(k)))
    per_class: dict[str, dict[str, float | int]] = {}
    aucs = []
    for i, name in enumerate(class_names):
        pos = y == i
        tp, fn = int(cm[i, i]), int(cm[i].sum() - cm[i, i])
        fp = int(cm[:, i].sum() - cm[i, i])
        tn = int(cm.sum() - tp - fn - fp)
        auc = float(roc_auc_score(pos, probs[:, i])) if 0 < pos.sum() < len(y) else float("nan")
        if not np.isnan(auc):
            aucs.append(auc)
        per_class[name] = {
            "n": int(pos.sum()),
            "auc": auc,
            "sensitivity": tp / (tp + fn) if tp + fn else float("nan"),
            "specificity": tn / (tn + fp) if tn + fp else float("nan"),
            "ppv": tp / (tp + fp) if tp + fp else float("nan"),
        }
    ece, rel = expected_calibration_error(probs, y)
    nll = float(-np.log(np.clip(probs[np.arange(len(y)), y], 1e-12, None)).mean())
    return {
        "n": int(len(y)),
        "balanced_accuracy": float(balanced_accuracy_score(y, pred)),
        "accuracy": float((pred == y).mean()),
        "macro_auc": float(np.mean(aucs)) if aucs else float("nan"),
        "ece": ece,
        "nll": nll,
        "per_class": per_class,
        "confusion_matrix": {"labels": list(class_names), "rows_true_cols_pred": cm.tolist()},
        "reliability": rel,
    }


def binary_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """ROC AUC of ``scores`` for the boolean ``positive`` (``nan`` when only one class is present)."""
    from sklearn.metrics import roc_auc_score

    positive = np.asarray(positive, bool)
    if positive.all() or not positive.any():
        return float("nan")
    return float(roc_auc_score(positive, scores))
