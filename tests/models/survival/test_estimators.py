"""Every registered risk estimator: the scikit-survival / scikit-learn contract inside its preprocessing pipeline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medai.registry import ESTIMATORS
from medai.risk.cohorts import surv_y
from medai.risk.predictor import load_skops
from models.survival import KINDS, make_estimator

FAST = {"rsf": {"n_estimators": 10}, "gbsa": {"n_estimators": 20}, "hgb_classifier": {"max_iter": 30}}


def _frame(n: int = 300, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    age = rng.uniform(40, 90, n)
    grp = rng.choice(["a", "b", "c"], n).astype(object)
    lab = rng.normal(size=n)
    lab[rng.uniform(size=n) < 0.2] = np.nan  # missing values are imputed with indicators
    grp[rng.uniform(size=n) < 0.1] = np.nan
    lin = 0.06 * (age - 65) + np.where(grp == "c", 1.0, 0.0)
    t = rng.exponential(200 * np.exp(-lin))
    c = rng.uniform(50, 400, n)
    X = pd.DataFrame({"age": age, "lab": lab, "grp": pd.Series(grp, dtype=object)})
    return X, surv_y(t <= c, np.minimum(t, c)), (t < 150).astype(int), lin


def test_registry_names_are_stable() -> None:
    for name in ("coxph", "coxnet", "rsf", "gbsa", "logreg", "hgb_classifier"):
        assert name in ESTIMATORS


@pytest.mark.parametrize("name", sorted(KINDS))
def test_contract(name: str, tmp_path: Path) -> None:
    X, ys, yb, lin = _frame()
    m = make_estimator(name, ["age", "lab"], ["grp"], **FAST.get(name, {}))
    y = ys if KINDS[name] == "survival" else yb
    assert m.fit(X, y) is m
    if KINDS[name] == "survival":
        risk = m.predict(X)
        assert np.corrcoef(risk, lin)[0, 1] > 0.3  # higher = worse
        fns = m.predict_survival_function(X.iloc[:5])
        s = np.array([f(np.array([30.0, 100.0])) for f in fns])
        assert s.shape == (5, 2) and np.all((s >= 0) & (s <= 1)) and np.all(s[:, 1] <= s[:, 0])
    else:
        p = m.predict_proba(X)[:, 1]
        assert np.corrcoef(p, lin)[0, 1] > 0.3
    names = m.named_steps["pre"].get_feature_names_out()
    assert any("missingindicator" in n for n in names)  # imputation with missing indicators
    # persisted with skops and loaded through the allow-list (no pickle)
    import skops.io as sio

    sio.dump(m, tmp_path / "m.skops")
    m2 = load_skops(tmp_path / "m.skops")
    a = m.predict(X.iloc[:20]) if KINDS[name] == "survival" else m.predict_proba(X.iloc[:20])
    b = m2.predict(X.iloc[:20]) if KINDS[name] == "survival" else m2.predict_proba(X.iloc[:20])
    np.testing.assert_allclose(a, b)


def test_skops_allow_list_refuses_foreign_types(tmp_path: Path) -> None:
    import skops.io as sio

    from medai.errors import ConfigError

    sio.dump({"x": Path("/tmp")}, tmp_path / "bad.skops")
    with pytest.raises(ConfigError, match="allow-list"):
        load_skops(tmp_path / "bad.skops")
