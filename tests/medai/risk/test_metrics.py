"""Survival metrics on synthetic data with a known answer."""

from __future__ import annotations

import numpy as np

from medai.metrics import survival as sm
from medai.risk.cohorts import surv_y


def _data(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    t = rng.exponential(100 * np.exp(-x))
    c = rng.uniform(20, 300, n)
    return x, surv_y(t <= c, np.minimum(t, c))


def test_discrimination_of_true_risk_beats_noise() -> None:
    x, y = _data()
    assert sm.harrell_c(y, x) > 0.65
    assert abs(sm.harrell_c(y, np.random.default_rng(1).normal(size=len(x))) - 0.5) < 0.08
    assert sm.uno_c(y, y, x) > 0.65
    aucs = sm.td_auc(y, y, x, [30, 90, 10_000])
    assert set(aucs) == {30.0, 90.0} and all(a > 0.65 for a in aucs.values())


def test_calibration_of_perfect_probabilities() -> None:
    rng = np.random.default_rng(0)
    p = rng.uniform(0.05, 0.6, 20_000)
    obs = rng.uniform(size=p.size) < p
    cal = sm.calibration_binary(obs, p)
    assert abs(cal["slope"] - 1) < 0.1 and abs(cal["intercept"]) < 0.1 and abs(cal["citl"]) < 0.01
    cal2 = sm.calibration_binary(obs, p**0.5)  # over-predicts
    assert cal2["citl"] < -0.1


def test_survival_calibration_and_bootstrap_and_km() -> None:
    x, y = _data(600)
    s_t = np.exp(-90 / (100 * np.exp(-x)))  # true S(90)
    cal = sm.calibration_survival(y, 1 - s_t, 90.0)
    assert abs(cal["slope"] - 1) < 0.35 and abs(cal["citl"]) < 0.06
    lo, hi = sm.bootstrap_ci(lambda i: sm.harrell_c(y[i], x[i]), len(x), n_boot=50)
    assert lo < sm.harrell_c(y, x) < hi
    groups = sm.risk_groups(x, list(np.quantile(x, [1 / 3, 2 / 3])))
    km = sm.km_by_group(y, groups)
    assert set(km["curves"]) == {"low", "intermediate", "high"} and km["logrank_p"] < 1e-6
    assert km["curves"]["high"]["survival"][-1] < km["curves"]["low"]["survival"][-1]


def test_binary_metrics_and_subgroups() -> None:
    import pandas as pd

    rng = np.random.default_rng(0)
    p = rng.uniform(size=500)
    y = (rng.uniform(size=500) < p).astype(int)
    res = sm.binary_metrics(y, p, n_boot=30)
    assert res["auc"] > 0.7 and res["auc_ci"][0] < res["auc"] < res["auc_ci"][1]
    sub = pd.DataFrame({"sex": np.where(np.arange(500) % 2, "male", "female"), "tiny": ["a"] * 495 + ["b"] * 5})
    tab = sm.subgroup_table(sub, lambda m: sm.binary_metrics(y[m], p[m]), events=y)
    assert tab["sex=male"]["auc"] > 0.6 and "note" in tab["tiny=b"]
