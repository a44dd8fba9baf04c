"""FusionNet and its scikit-learn / scikit-survival wrappers: shapes, any-subset inference, learning, persistence."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone

from medai.registry import ESTIMATORS, NETWORKS
from medai.risk.cohorts import surv_y
from models.fusion import FusionClassifier, FusionNet, FusionRegressor, FusionSurvival, cox_breslow_loss, load_fusion
from models.fusion.estimators import _drop_modalities

MODS = {"clin": ["age", "sex", "bp"], "lab": ["l0", "l1"], "img": ["i0", "i1", "i2"]}
FAST = {"max_epochs": 25, "d_model": 16, "hidden": 32, "n_threads": 1}


def _frame(n: int = 500, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Synthetic 3-modality table and its linear predictor; ~25 % of rows lack ``lab``, ~25 % lack ``img``."""
    rng = np.random.default_rng(seed)
    age = rng.uniform(40, 90, n)
    sex = rng.choice(["F", "M"], n).astype(object)
    bp = rng.normal(130, 15, n)
    lab = rng.normal(size=(n, 2))
    img = rng.normal(size=(n, 3))
    lin = 0.05 * (age - 65) + 0.5 * (sex == "M") + 0.8 * lab[:, 0] + 0.8 * img[:, 1]
    X = pd.DataFrame({"age": age, "sex": pd.Series(sex, dtype=object), "bp": bp})
    X[["l0", "l1"]] = lab
    X[["i0", "i1", "i2"]] = img
    no_lab = rng.uniform(size=n) < 0.25
    no_img = (rng.uniform(size=n) < 0.25) & ~no_lab
    X.loc[no_lab, ["l0", "l1"]] = np.nan
    X.loc[no_img, ["i0", "i1", "i2"]] = np.nan
    X.loc[rng.uniform(size=n) < 0.1, "bp"] = np.nan  # missing inside a present modality: median + indicator
    return X, lin


def _surv(lin: np.ndarray, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed + 1)
    t = rng.exponential(100 * np.exp(-lin))
    c = rng.uniform(20, 300, len(lin))
    return surv_y(t <= c, np.maximum(1.0, np.round(np.minimum(t, c))))  # rounded: tied times (Breslow)


# ----------------------------------------------------------------------------------------------- network
@pytest.mark.parametrize("pooling", ["attention", "gated"])
def test_network_shapes_and_masking(pooling: str) -> None:
    torch.manual_seed(0)
    net = FusionNet({"a": 3, "b": 2, "c": 1}, n_out=4, d_model=8, hidden=16, pooling=pooling).eval()
    x = {"a": torch.randn(6, 3), "b": torch.randn(6, 2), "c": torch.randn(6, 1)}
    present = torch.tensor([[1, 1, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 1], [0, 1, 1]], dtype=torch.bool)
    x["b"][~present[:, 1]] = float("nan")  # absent inputs may hold NaN
    out, w = net(x, present)
    assert out.shape == (6, 4) and w.shape == (6, 3)
    assert torch.isfinite(out).all()
    assert torch.all(w[~present] == 0)
    torch.testing.assert_close(w.sum(1), torch.ones(6))
    for i in range(1, 4):  # single-modality rows: weight 1 on it
        assert float(w[i, present[i]].item()) == pytest.approx(1.0)
    # a row's output does not depend on an absent modality's values
    x2 = {k: v.clone() for k, v in x.items()}
    x2["a"][2] = 100.0
    torch.testing.assert_close(net(x2, present)[0][2], out[2])


def test_network_rejects_rows_without_modality() -> None:
    net = FusionNet({"a": 2, "b": 2})
    with pytest.raises(ValueError, match="at least one modality"):
        net({"a": torch.randn(2, 2), "b": torch.randn(2, 2)}, torch.tensor([[1, 0], [0, 0]], dtype=torch.bool))


def test_registry_names() -> None:
    assert "fusion_net" in NETWORKS
    for name, cls in {
        "fusion_classifier": FusionClassifier,
        "fusion_survival": FusionSurvival,
        "fusion_regressor": FusionRegressor,
    }.items():
        assert ESTIMATORS.get(name) is cls


def test_cox_breslow_loss_matches_numpy() -> None:
    rng = np.random.default_rng(3)
    r = rng.normal(size=30)
    t = rng.integers(1, 8, 30).astype(float)  # many ties
    e = rng.uniform(size=30) < 0.6
    ref = -np.mean([r[i] - np.log(np.exp(r[t >= t[i]]).sum()) for i in np.flatnonzero(e)])
    got = cox_breslow_loss(torch.tensor(r), torch.tensor(t), torch.tensor(e))
    assert float(got) == pytest.approx(ref, rel=1e-9)


def test_modality_dropout_never_drops_all() -> None:
    rng = np.random.default_rng(0)
    present = rng.uniform(size=(2000, 3)) < 0.6
    present[~present.any(1), 0] = True
    kept = _drop_modalities(present, 0.9, rng)
    assert kept.any(1).all() and not (kept & ~present).any()
    assert kept.sum() < present.sum()


# ----------------------------------------------------------------------------------------------- classifier
def test_classifier_learns_and_any_subset() -> None:
    X, lin = _frame()
    y = np.where(lin + np.random.default_rng(1).normal(0, 0.5, len(lin)) > 0.3, "sick", "well")
    tr, te = np.arange(400), np.arange(400, 500)
    m = FusionClassifier(modalities=MODS, **FAST)
    assert m.fit(X.iloc[tr], y[tr]) is m
    assert list(m.classes_) == ["sick", "well"]
    p = m.predict_proba(X.iloc[te])
    assert p.shape == (100, 2) and np.allclose(p.sum(1), 1)
    acc = float(np.mean(m.predict(X.iloc[te]) == y[te]))
    assert acc > 0.7, acc  # chance is ~0.5
    assert m.temperature_ > 0
    # only one modality present in a row: finite output, weight 1 on it
    row = X.iloc[[0]].copy()
    row[MODS["clin"] + MODS["lab"]] = np.nan
    row["sex"] = None
    w = m.modality_contributions(row)
    assert list(w.columns) == ["clin", "lab", "img"]
    assert w.iloc[0].tolist() == pytest.approx([0.0, 0.0, 1.0])
    assert np.isfinite(m.predict_proba(row)).all()
    assert m.modalities_used(row).iloc[0] == ["img"]
    # absent modality gets weight 0 across the table
    wt = m.modality_contributions(X)
    used = m.modalities_used(X)
    no_lab = X[MODS["lab"]].isna().all(axis=1)
    assert (wt.loc[no_lab, "lab"] == 0).all() and np.allclose(wt.sum(1), 1)
    assert all("lab" not in u for u in used[no_lab])
    # sklearn contract
    assert clone(m).get_params()["modalities"] == MODS


def test_classifier_rejects_empty_rows() -> None:
    X, lin = _frame(200)
    m = FusionClassifier(modalities=MODS, max_epochs=2).fit(X, (lin > 0).astype(int))
    empty = X.iloc[[0]].copy()
    empty[:] = np.nan
    with pytest.raises(ValueError, match="no modality present"):
        m.predict_proba(empty)


# ----------------------------------------------------------------------------------------------- survival
def test_survival_contract_and_c_index() -> None:
    X, lin = _frame(700)
    y = _surv(lin)
    tr, te = np.arange(500), np.arange(500, 700)
    m = FusionSurvival(modalities=MODS, **FAST)
    assert m.fit(X.iloc[tr], y[tr]) is m
    c = m.score(X.iloc[te], y[te])
    assert c > 0.6, c
    risk = m.predict(X.iloc[te])
    assert risk.shape == (200,) and np.corrcoef(risk, lin[te])[0, 1] > 0.3  # higher = worse
    fns = m.predict_survival_function(X.iloc[te[:5]])
    grid = np.array([0.0, 10.0, 50.0, 100.0, 200.0])
    s = np.array([f(grid) for f in fns])
    assert s.shape == (5, 5) and np.all((s >= 0) & (s <= 1)) and np.allclose(s[:, 0], 1)
    assert np.all(np.diff(s, axis=1) <= 1e-12)  # non-increasing
    arr = m.predict_survival_function(X.iloc[te[:5]], return_array=True)
    assert arr.shape == (5, len(m.unique_times_)) and np.all(np.diff(arr, axis=1) <= 1e-12)
    with pytest.raises(ValueError, match="structured"):
        FusionSurvival(modalities=MODS).fit(X, y["time"])


# ----------------------------------------------------------------------------------------------- regressor
def test_regressor_learns() -> None:
    X, lin = _frame(400)
    m = FusionRegressor(modalities=MODS, **FAST).fit(X.iloc[:300], lin[:300])
    assert m.score(X.iloc[300:], lin[300:]) > 0.3


# ----------------------------------------------------------------------------------------------- persistence
@pytest.mark.parametrize("kind", ["classifier", "survival", "regressor"])
def test_save_load_round_trip(kind: str, tmp_path: Path) -> None:
    X, lin = _frame(200)
    params = {**FAST, "max_epochs": 3}
    if kind == "classifier":
        m = FusionClassifier(modalities=MODS, pooling="gated", **params).fit(X, (lin > 0).astype(int))
        out = lambda e: e.predict_proba(X)  # noqa: E731
    elif kind == "survival":
        m = FusionSurvival(modalities=MODS, n_members=2, **params).fit(X, _surv(lin))  # a seed ensemble
        out = lambda e: e.predict_survival_function(X, return_array=True)  # noqa: E731
    else:
        m = FusionRegressor(modalities=MODS, **params).fit(X, lin)
        out = lambda e: e.predict(X)  # noqa: E731
    m.save(tmp_path / "m")
    json.loads((tmp_path / "m" / "fusion.json").read_text())  # plain JSON
    torch.load(tmp_path / "m" / "weights.pt", weights_only=True)  # plain tensors, no pickled code
    m2 = load_fusion(tmp_path / "m")
    assert type(m2) is type(m)
    np.testing.assert_array_equal(out(m), out(m2))
    np.testing.assert_array_equal(m.modality_contributions(X).to_numpy(), m2.modality_contributions(X).to_numpy())
    cfg, tensors = m.to_state()
    m3 = type(m).from_state(json.loads(json.dumps(cfg)), tensors)
    np.testing.assert_array_equal(out(m), out(m3))
    if kind == "classifier":
        with pytest.raises(ValueError, match="cannot be loaded"):
            FusionSurvival.load(tmp_path / "m")


def test_fit_is_deterministic() -> None:
    X, lin = _frame(200)
    y = _surv(lin)
    a = FusionSurvival(modalities=MODS, max_epochs=3, n_members=2).fit(X, y).predict(X)
    b = FusionSurvival(modalities=MODS, max_epochs=3, n_members=2).fit(X, y).predict(X)
    np.testing.assert_array_equal(a, b)
