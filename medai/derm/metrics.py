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


def rank_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """ROC AUC by the Mann-Whitney rank sum (ties averaged; same value as sklearn, far faster in a bootstrap loop);
    ``nan`` when one class is absent."""
    from scipy.stats import rankdata

    positive = np.asarray(positive, bool)
    n1 = int(positive.sum())
    n0 = len(positive) - n1
    if n1 == 0 or n0 == 0:
        return float("nan")
    r = rankdata(scores)
    return float((r[positive].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def sensitivity_at_specificity(scores: np.ndarray, positive: np.ndarray, specificity: float = 0.9) -> dict[str, float]:
    """Sensitivity at the lowest threshold whose specificity is at least ``specificity`` (the operating point a
    screening service would pick), with that threshold and the specificity reached."""
    scores = np.asarray(scores, np.float64)
    positive = np.asarray(positive, bool)
    if positive.all() or not positive.any():
        return {"sensitivity": float("nan"), "specificity": float("nan"), "threshold": float("nan")}
    neg = np.sort(scores[~positive])
    # threshold t: predict positive when score > t; specificity = share of negatives <= t
    k = int(np.ceil(specificity * len(neg))) - 1
    t = float(neg[min(max(k, 0), len(neg) - 1)])
    return {
        "sensitivity": float((scores[positive] > t).mean()),
        "specificity": float((scores[~positive] <= t).mean()),
        "threshold": t,
    }


def melanoma_report(probs: np.ndarray, y: np.ndarray, class_names: list[str]) -> dict[str, object]:
    """Melanoma figures of a HAM10000-class report: melanoma-vs-benign AUC (``mel`` against ``nv``, ``bkl``,
    ``df``, ``vasc``; the other malignant classes left out), melanoma-vs-rest AUC, and sensitivity at 90 %
    specificity on P(mel) against every other lesion. Empty when the classes have no ``mel``."""
    if "mel" not in class_names:
        return {}
    mel = class_names.index("mel")
    benign = [class_names.index(c) for c in ("nv", "bkl", "df", "vasc") if c in class_names]
    y = np.asarray(y, int)
    p = np.asarray(probs, np.float64)[:, mel]
    keep = np.isin(y, [mel, *benign])
    return {
        "melanoma_vs_benign_auc": binary_auc(p[keep], y[keep] == mel),
        "melanoma_vs_rest_auc": binary_auc(p, y == mel),
        "melanoma_at_90_specificity": sensitivity_at_specificity(p, y == mel, 0.9),
    }


def bootstrap_ci(
    probs: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray | list[str],
    class_names: list[str],
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, dict[str, float]]:
    """Percentile bootstrap intervals, resampling *lesions* (groups) with replacement so images of one lesion stay
    together: balanced accuracy, accuracy, macro AUC and (when present) melanoma-vs-benign AUC and melanoma
    sensitivity at 90 % specificity."""
    probs = np.asarray(probs, np.float64)
    y = np.asarray(y, int)
    groups = np.asarray(groups)
    uniq, inv = np.unique(groups, return_inverse=True)
    members = [np.flatnonzero(inv == g) for g in range(len(uniq))]
    rng = np.random.default_rng(seed)
    k = len(class_names)
    stats: dict[str, list[float]] = {"balanced_accuracy": [], "accuracy": [], "macro_auc": []}
    mel = "mel" in class_names
    if mel:
        stats["melanoma_vs_benign_auc"] = []
        stats["melanoma_sensitivity_at_90_specificity"] = []
    for _ in range(n_boot):
        idx = np.concatenate([members[g] for g in rng.integers(0, len(uniq), len(uniq))])
        yb, pb = y[idx], probs[idx]
        pred = pb.argmax(1)
        present = [c for c in range(k) if (yb == c).any()]
        stats["balanced_accuracy"].append(float(np.mean([(pred[yb == c] == c).mean() for c in present])))
        stats["accuracy"].append(float((pred == yb).mean()))
        aucs = [rank_auc(pb[:, c], yb == c) for c in present]
        aucs = [a for a in aucs if not np.isnan(a)]
        stats["macro_auc"].append(float(np.mean(aucs)) if aucs else float("nan"))
        if mel:
            mi = class_names.index("mel")
            benign = [class_names.index(c) for c in ("nv", "bkl", "df", "vasc") if c in class_names]
            keep = np.isin(yb, [mi, *benign])
            stats["melanoma_vs_benign_auc"].append(rank_auc(pb[keep, mi], yb[keep] == mi))
            stats["melanoma_sensitivity_at_90_specificity"].append(
                sensitivity_at_specificity(pb[:, mi], yb == mi, 0.9)["sensitivity"]
            )
    lo, hi = (1 - level) / 2 * 100, (1 + level) / 2 * 100
    out = {}
    for name, vals in stats.items():
        v = np.asarray(vals, np.float64)
        v = v[~np.isnan(v)]
        out[name] = {
            "low": float(np.percentile(v, lo)) if len(v) else float("nan"),
            "high": float(np.percentile(v, hi)) if len(v) else float("nan"),
        }
    return {"level": level, "n_boot": n_boot, "unit": "lesion", "intervals": out}  # type: ignore[return-value]
