"""Compiled risk inference (plain arrays) answers what the scikit-learn pipeline answers, on every shipped package.

The compiled path is checked against the reference path (``compiled=False``): risks, survival curves, risk score,
risk group and every reported contribution to 1e-6 (they agree to ~1e-14), on seeded patients spread over each
factor's range, with optional factors absent. Non-additive pipelines are refused and keep the pipeline; a stale
``compiled.json`` is not used.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from medai.inference.package import read_metadata, shipped_packages
from medai.inference.predictor import Predictor
from medai.risk.compiled import COMPILED_FILE, NotCompilable, _sample, compile_risk_model
from medai.risk.spec import CohortSpec

RISK = {n: p for n, p in shipped_packages().items() if read_metadata(p).predictor == "risk_model"}
LINEAR = sorted(n for n, p in RISK.items() if json.loads((p / "inference.json").read_text()).get(
    "model_format", "skops") == "skops")


def patients(p: Predictor, n: int = 150) -> list[dict]:
    """Seeded valid patients; every third one drops its optional factors."""
    tables = {k: [*t["table"], "ZZ"] for k, t in p._compiled.terms.items() if "table" in t}
    rows = _sample(p.spec, p.config.reference, n, seed=7, tables=tables)
    optional = [f.name for f in p.spec.features if not f.required]
    for i in range(0, n, 3):
        for k in optional:
            rows[i].pop(k, None)
    return rows


def test_every_skops_risk_package_ships_compiled() -> None:
    assert LINEAR, "no scikit-learn risk package shipped"
    for name in LINEAR:
        assert (RISK[name] / COMPILED_FILE).exists(), f"{name}: run `medai compile-risk {name}`"
        assert COMPILED_FILE in read_metadata(RISK[name]).files


@pytest.mark.parametrize("name", LINEAR)
def test_compiled_equals_pipeline(name: str) -> None:
    fast = Predictor.from_package(name)
    ref = Predictor.from_package(name, compiled=False)
    assert fast.engine == "compiled" and ref.engine == "reference"
    rows = patients(fast)
    a, b = fast.predict_batch(rows), ref.predict_batch(rows)
    for pa, pb in zip(a, b, strict=True):
        ra, rb = pa.risks[0], pb.risks[0]
        assert ra.horizons.keys() == rb.horizons.keys()
        assert np.allclose(list(ra.horizons.values()), list(rb.horizons.values()), rtol=0, atol=1e-6)
        assert np.allclose(ra.survival, rb.survival, rtol=0, atol=1e-6) and len(ra.survival) == len(rb.survival)
        assert abs(ra.risk_score - rb.risk_score) <= 1e-6 and ra.risk_group == rb.risk_group
        ca = {c.factor: c.contribution for c in ra.contributions}
        cb = {c.factor: c.contribution for c in rb.contributions}
        # same reported factors, except where two factors tie within rounding
        for f in ca.keys() & cb.keys():
            assert abs(ca[f] - cb[f]) <= 1e-6
        assert len(ca.keys() & cb.keys()) >= len(cb) - 1
        assert [f.code for f in pa.flags] == [f.code for f in pb.flags]
    # one-patient predict agrees with the batch
    one = fast.predict(rows[1]).risks[0]
    assert np.allclose(list(one.horizons.values()), list(a[1].risks[0].horizons.values()), atol=1e-12)


def _cohort(n: int = 400) -> tuple[pd.DataFrame, np.ndarray, CohortSpec]:
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"age": rng.uniform(20, 90, n), "sbp": rng.uniform(90, 200, n),
                      "sex": rng.choice(["M", "F"], n)})
    y = ((X.age - 55) / 10 + (X.sbp - 140) / 30 * (X.age > 60) + rng.normal(0, 1, n) > 0).astype(int).to_numpy()
    spec = CohortSpec.model_validate({"name": "toy", "features": [
        {"name": "age", "type": "numeric", "minimum": 18, "maximum": 100, "required": True},
        {"name": "sbp", "type": "numeric", "minimum": 60, "maximum": 250, "required": True},
        {"name": "sex", "type": "categorical", "categories": ["M", "F"], "required": True}]})
    return X, y, spec


def _pipeline(model, interactions: bool = False):
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, PolynomialFeatures, StandardScaler

    num = make_pipeline(StandardScaler(), *([PolynomialFeatures(2, interaction_only=True)] if interactions else []))
    pre = ColumnTransformer([("num", num, ["age", "sbp"]), ("cat", OneHotEncoder(), ["sex"])])
    return make_pipeline(pre, model)


def test_additive_logistic_pipeline_compiles() -> None:
    from sklearn.linear_model import LogisticRegression

    X, y, spec = _cohort()
    m = _pipeline(LogisticRegression()).fit(X, y)
    c = compile_risk_model(m, spec, "binary", {"age": 55.0, "sbp": 140.0, "sex": "M"}, [30.0], [])
    rows = [{"age": 70.0, "sbp": 180.0, "sex": "F"}]
    lp, d = c.score(rows)
    assert abs(c.probability(lp)[0] - m.predict_proba(pd.DataFrame(rows))[0, 1]) < 1e-12
    assert d.shape == (1, 3) and d[0, 2] != 0.0


@pytest.mark.parametrize("kind", ["trees", "interactions"])
def test_non_additive_pipeline_is_refused(kind: str) -> None:
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    X, y, spec = _cohort()
    est = GradientBoostingClassifier(n_estimators=20) if kind == "trees" else LogisticRegression()
    m = _pipeline(est, interactions=kind == "interactions").fit(X, y)
    with pytest.raises(NotCompilable):
        compile_risk_model(m, spec, "binary", {"age": 55.0, "sbp": 140.0, "sex": "M"}, [30.0], [])


def test_stale_compiled_file_is_not_used(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    name = LINEAR[0]
    pkg = tmp_path / name
    shutil.copytree(RISK[name], pkg)
    d = json.loads((pkg / COMPILED_FILE).read_text())
    d["lp_ref"] += 0.01  # a compiled file that no longer matches model.skops
    (pkg / COMPILED_FILE).write_text(json.dumps(d))
    p = Predictor.from_package(pkg)
    assert p.engine == "reference" and "not used" in caplog.text
    (pkg / COMPILED_FILE).write_text('{"format": "something else"}')
    assert Predictor.from_package(pkg).engine == "reference"


def test_compile_risk_cli_writes_and_lists_the_file(tmp_path: Path) -> None:
    from medai.cli import app

    name = LINEAR[0]
    pkg = tmp_path / name
    shutil.copytree(RISK[name], pkg)
    (pkg / COMPILED_FILE).unlink()
    meta = json.loads((pkg / "metadata.json").read_text())
    meta["files"] = [f for f in meta["files"] if f != COMPILED_FILE]
    (pkg / "metadata.json").write_text(json.dumps(meta))
    assert Predictor.from_package(pkg).engine == "reference"
    res = CliRunner().invoke(app, ["compile-risk", str(pkg)])
    assert res.exit_code == 0, res.output
    assert "compiled.json written" in res.output and COMPILED_FILE in read_metadata(pkg).files
    assert Predictor.from_package(pkg).engine == "compiled"


def test_predict_batch_pauses_the_collector_only_while_it_runs() -> None:
    """The cyclic GC is off during a batch (linear time) and back on afterwards, also when the batch is refused."""
    import gc

    from medai.errors import InputValidationError
    from medai.inference.predictor import Predictor
    from medai.risk import predictor as risk_predictor

    p = Predictor.from_package("stroke_ist_death_6m")
    seen: list[bool] = []
    real = p._predict_batch
    p._predict_batch = lambda rows: (seen.append(gc.isenabled()), real(rows))[1]  # type: ignore[method-assign]
    good = {"AGE": 70, "SEX": "F", "RDELAY": 4, "RCONSC": "F", "RSBP": 140, "STYPE": "TACS"}
    assert len(p.predict_batch([good, good])) == 2
    with pytest.raises(InputValidationError):
        p.predict_batch([good, {**good, "AGE": "old"}])
    assert seen == [False, False] and gc.isenabled()
    gc.disable()
    try:
        with risk_predictor.gc_paused():
            pass
        assert not gc.isenabled()  # a caller's own choice is kept
    finally:
        gc.enable()
