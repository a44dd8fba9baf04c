"""Compiled inference of additive linear risk models: the fitted pipeline as plain arrays.

medai's shipped risk models are linear on per-factor transforms: a ``ColumnTransformer`` (imputers, scaler,
one-hot encoder) in front of a logistic regression or a Cox model. Their linear predictor is therefore a sum of one
term per factor::

    lp(x) = lp(reference) + sum_j delta_j(x_j)        delta_j(ref_j) = 0

with ``delta_j`` affine in a numeric factor (``slope_j * (x_j - ref_j)``), a table over the allowed values of a
categorical or binary factor, and one value for an absent factor. :func:`compile_risk_model` reads these terms off
the fitted scikit-learn pipeline itself (the reference path) by scoring probe rows, then checks on a seeded sample
of valid patients that the compiled model reproduces the pipeline's linear predictor, risks and survival curves;
a model that is not additive (trees, splines, interactions) is refused with :class:`NotCompilable` and keeps the
scikit-learn path. Survival models add the reference patient's survival at the horizons and grid times: Cox models
give ``S(t | x) = S(t | ref) ** exp(lp(x) - lp(ref))`` (Breslow baseline, as scikit-survival computes it).

Contributions are then exact and closed-form: the occlusion effect of factor ``j`` (risk scale with the factor,
minus with the factor at its reference) is ``delta_j(x_j)`` on the log-hazard scale, and the same difference of
clipped log-odds that :class:`~medai.risk.predictor.RiskPredictor` computes for classifiers.

The compiled model is written at packaging time as ``compiled.json`` next to ``model.skops``
(:func:`write_compiled`; ``medai models compile NAME`` adds it to an existing package) and checked again against
the pipeline when the predictor loads it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medai.risk.spec import CohortSpec, FeatureType

COMPILED_FILE = "compiled.json"
FORMAT = "medai.compiled_linear_risk/1"
#: the clip of probabilities before the log-odds scale (as RiskPredictor._scale)
P_CLIP = 1e-6
#: tolerances of the compile-time and load-time check (absolute; linear predictor and risks)
ATOL_LP = 1e-7
ATOL_RISK = 1e-9
N_CHECK = 256


class NotCompilable(ValueError):
    """The fitted model is not an additive linear model, or its compiled form does not reproduce it."""


def _raw_score(model: Any, X: pd.DataFrame, kind: str) -> np.ndarray:
    """The pipeline's linear predictor: log hazard (survival) or decision function (classifiers)."""
    if kind == "survival":
        return np.asarray(model.predict(X), float)
    if not hasattr(model, "decision_function"):
        raise NotCompilable("classifier has no decision_function")
    return np.asarray(model.decision_function(X), float).reshape(-1)


#: a categorical value no model has seen (its delta is that of any unseen value)
UNSEEN = "\x00unseen"


def _fitted_categories(model: Any, name: str) -> list[Any]:
    """Categories a fitted encoder inside ``model`` learnt for column ``name`` (for factors whose spec lists none)."""
    found: list[Any] = []
    seen: set[int] = set()

    def walk(obj: Any, depth: int = 0) -> None:
        if id(obj) in seen or depth > 6:
            return
        seen.add(id(obj))
        cats, cols = getattr(obj, "categories_", None), getattr(obj, "feature_names_in_", None)
        if cats is not None and cols is not None and name in list(cols):
            found.extend(v for v in cats[list(cols).index(name)] if isinstance(v, str | int | float))
        for attr in ("steps", "transformers_", "named_steps"):
            sub = getattr(obj, attr, None)
            items = sub.values() if isinstance(sub, dict) else (sub or [])
            for it in items:
                for o in it if isinstance(it, tuple) else (it,):
                    if hasattr(o, "get_params"):
                        walk(o, depth + 1)

    walk(model)
    return found


def _score_or_nan(model: Any, spec: CohortSpec, row: dict[str, Any], kind: str) -> float:
    """Linear predictor of one probe row; NaN where the pipeline refuses the value (scored by it, then)."""
    try:
        return float(_raw_score(model, spec.to_frame([row]), kind)[0])
    except Exception:  # noqa: BLE001
        return math.nan


def _probe_values(spec: CohortSpec, name: str, ref: Any, model: Any = None) -> list[Any]:
    """Probe values of one factor: a table for categorical / binary factors, two points for numeric ones."""
    f = spec.feature(name)
    if f.type == FeatureType.CATEGORICAL:
        vals = list(f.categories or []) or _fitted_categories(model, name)
        return list(dict.fromkeys([*([] if ref is None else [ref]), *vals, UNSEEN]))
    if f.type == FeatureType.BINARY:
        return [0, 1]
    r = 0.0 if ref is None else float(ref)
    span = (f.maximum - f.minimum) if f.minimum is not None and f.maximum is not None else max(abs(r), 1.0)
    return [r, r + span / 4]


def _sample(spec: CohortSpec, reference: dict[str, Any], n: int, seed: int = 0,
            tables: dict[str, list[str]] | None = None) -> list[dict[str, Any]]:
    """Seeded valid patients spread over each factor's allowed range / categories.

    ``tables``: values of categorical factors whose spec lists none (the compiled table, plus an unseen value).
    """
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        row: dict[str, Any] = {}
        for f in spec.features:
            if f.type == FeatureType.CATEGORICAL:
                pool = f.categories or (tables or {}).get(f.name) or [reference.get(f.name)]
                row[f.name] = pool[int(rng.integers(0, len(pool)))]
            elif f.type == FeatureType.BINARY:
                row[f.name] = int(rng.integers(0, 2))
            else:
                ref = float(reference.get(f.name) or 0.0)
                lo = f.minimum if f.minimum is not None else ref - 3 * max(abs(ref), 1.0)
                hi = f.maximum if f.maximum is not None else ref + 3 * max(abs(ref), 1.0)
                v = float(rng.uniform(lo, hi))
                row[f.name] = round(v) if f.type == FeatureType.INTEGER else v
        rows.append(row)
    return rows


class CompiledLinearRisk:
    """An additive linear risk model as plain numbers (see the module docstring).

    Attributes:
        kind: ``"binary"`` or ``"survival"``.
        names: factor order of the spec.
        lp_ref: linear predictor of the reference patient.
        terms: factor -> ``{"slope": s}`` (numeric) or ``{"table": {value: delta}, "unseen": delta}`` (categorical,
            binary; ``unseen``: any value outside the table), each with ``"absent"``: delta of an absent factor.
        s_ref_horizons / s_ref_grid: the reference patient's survival at the horizons / grid times (survival).
    """

    def __init__(self, d: dict[str, Any]) -> None:
        if d.get("format") != FORMAT:
            raise NotCompilable(f"not a compiled risk model ({d.get('format')!r}, expected {FORMAT})")
        self.kind: str = d["kind"]
        self.names: list[str] = list(d["names"])
        self.reference: dict[str, Any] = dict(d["reference"])
        self.lp_ref = float(d["lp_ref"])
        self.terms: dict[str, dict[str, Any]] = d["terms"]
        self.s_ref_horizons = np.asarray(d.get("s_ref_horizons") or [], float)
        self.s_ref_grid = np.asarray(d.get("s_ref_grid") or [], float)
        self._tables = {k: t["table"] for k, t in self.terms.items() if "table" in t}
        self._slopes = {k: float(t["slope"]) for k, t in self.terms.items() if "slope" in t}
        self._ref = {k: (None if v is None else float(v)) for k, v in self.reference.items() if k in self._slopes}

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``compiled.json``); a value the pipeline refuses is ``null``."""
        return {"format": FORMAT, "kind": self.kind, "names": self.names, "reference": self.reference,
                "lp_ref": self.lp_ref, "terms": _nulls(self.terms), "s_ref_horizons": self.s_ref_horizons.tolist(),
                "s_ref_grid": self.s_ref_grid.tolist()}

    # ------------------------------------------------------------------------------------------------ scoring
    def deltas(self, rows: list[dict[str, Any]]) -> np.ndarray:
        """(n, n_factors) per-factor terms ``delta_j(x_j)`` of already-validated rows."""
        out = np.empty((len(rows), len(self.names)))
        for j, name in enumerate(self.names):
            term = self.terms[name]
            absent = _num(term["absent"])
            table = self._tables.get(name)
            if table is not None:
                unseen = _num(term.get("unseen", absent))
                for i, r in enumerate(rows):
                    v = r.get(name)
                    out[i, j] = absent if v is None else _num(table.get(_key(v), unseen))
            else:
                s, ref = self._slopes[name], self._ref.get(name) or 0.0
                for i, r in enumerate(rows):
                    v = r.get(name)
                    out[i, j] = absent if v is None else s * (float(v) - ref)
        return out

    def score(self, rows: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
        """(linear predictor (n,), deltas (n, n_factors)); NaN where the pipeline refuses a value (see
        :meth:`RiskPredictor._compiled_outputs`, which then lets the pipeline answer)."""
        d = self.deltas(rows)
        return self.lp_ref + d.sum(axis=1), d

    def probability(self, lp: np.ndarray) -> np.ndarray:
        """Classifier probability of the event."""
        return 1.0 / (1.0 + np.exp(-lp))

    def scale(self, lp: np.ndarray) -> np.ndarray:
        """The predictor's risk scale: log hazard, or the log-odds of the clipped probability (classifiers)."""
        if self.kind == "survival":
            return lp
        p = np.clip(self.probability(lp), P_CLIP, 1 - P_CLIP)
        return np.log(p / (1 - p))

    def survival(self, lp: np.ndarray, s_ref: np.ndarray) -> np.ndarray:
        """(n, len(s_ref)) survival ``S(t | ref) ** exp(lp - lp_ref)``."""
        return np.power(s_ref[None, :], np.exp(lp - self.lp_ref)[:, None])


def _num(v: Any) -> float:
    """A stored delta (``None``: the pipeline refuses that value)."""
    return math.nan if v is None else float(v)


def _nulls(obj: Any) -> Any:
    """NaN -> None throughout (strict JSON)."""
    if isinstance(obj, dict):
        return {k: _nulls(v) for k, v in obj.items()}
    if isinstance(obj, float) and math.isnan(obj):
        return None
    return obj


def _key(v: Any) -> str:
    """Table key of a categorical / binary value (JSON object keys are strings)."""
    if isinstance(v, bool):
        v = int(v)
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    return str(v)


def compile_risk_model(model: Any, spec: CohortSpec, kind: str, reference: dict[str, Any],
                       horizons: list[float], time_grid: list[float], impute_absent: bool = True) -> CompiledLinearRisk:
    """Read the additive terms off a fitted pipeline, then check them (raises :class:`NotCompilable`)."""
    if kind not in ("binary", "survival"):
        raise NotCompilable(f"kind {kind!r}")
    if not impute_absent:
        raise NotCompilable("models that take absent factors themselves are scored by their own code")
    names = spec.names
    ref_row = {k: reference.get(k) for k in names}
    try:
        lp_ref = float(_raw_score(model, spec.to_frame([ref_row]), kind)[0])
        probes: list[tuple[str, Any]] = []
        for name in names:
            probes += [(name, v) for v in _probe_values(spec, name, reference.get(name), model)] + [(name, None)]
        rows = [{**ref_row, name: v} for name, v in probes]
    except Exception as exc:  # noqa: BLE001 -- any failure to score the reference means: keep the reference path
        raise NotCompilable(f"probe scoring failed: {type(exc).__name__}: {exc}") from exc
    try:
        lp = _raw_score(model, spec.to_frame(rows), kind)
    except Exception:  # noqa: BLE001 -- a model that refuses some probes (absent / unseen values): one at a time
        lp = np.array([_score_or_nan(model, spec, r, kind) for r in rows])
    terms: dict[str, dict[str, Any]] = {}
    by_name: dict[str, list[tuple[Any, float]]] = {}
    for (name, v), s in zip(probes, lp, strict=True):
        by_name.setdefault(name, []).append((v, float(s) - lp_ref))
    for name in names:
        f = spec.feature(name)
        pts = by_name[name]
        absent = [d for v, d in pts if v is None][0]
        present = [(v, d) for v, d in pts if v is not None]
        if f.type in (FeatureType.CATEGORICAL, FeatureType.BINARY):
            table = {_key(v): d for v, d in present}
            if reference.get(name) is not None:
                table[_key(reference[name])] = 0.0  # by definition (removes rounding noise of the probe)
            terms[name] = {"table": table, "absent": absent, "unseen": table.pop(_key(UNSEEN), absent)}
        else:
            (r, _), (x1, d1) = present
            terms[name] = {"slope": d1 / (x1 - r) if x1 != r else 0.0, "absent": absent}
    s_h: list[float] = []
    s_g: list[float] = []
    if kind == "survival":
        fn = model.predict_survival_function(spec.to_frame([ref_row]))[0]
        s_h = [float(fn(h)) for h in horizons]
        s_g = [float(v) for v in np.atleast_1d(fn(np.asarray(time_grid, float)))] if time_grid else []
    compiled = CompiledLinearRisk({"format": FORMAT, "kind": kind, "names": names, "reference": ref_row,
                                   "lp_ref": lp_ref, "terms": terms, "s_ref_horizons": s_h, "s_ref_grid": s_g})
    check_compiled(compiled, model, spec, horizons, time_grid)
    return compiled


def check_compiled(c: CompiledLinearRisk, model: Any, spec: CohortSpec, horizons: list[float],
                   time_grid: list[float], n: int = N_CHECK) -> dict[str, float]:
    """Max absolute differences to the pipeline on a seeded sample; raises :class:`NotCompilable` beyond tolerance."""
    if c.names != spec.names:
        raise NotCompilable("compiled factor order differs from the spec")
    tables = {k: [*t["table"], "not-in-training"] for k, t in c.terms.items() if "table" in t}
    rows = [spec.validate_factors(r) for r in _sample(spec, c.reference, n, tables=tables)]
    rows = [{k: (c.reference.get(k) if v is None else v) for k, v in r.items()} for r in rows]
    X = spec.to_frame(rows)
    lp, _ = c.score(rows)
    ref_lp = _raw_score(model, X, c.kind)
    err = {"linear_predictor": float(np.max(np.abs(lp - ref_lp)))}
    if c.kind == "binary":
        err["risk"] = float(np.max(np.abs(c.probability(lp) - model.predict_proba(X)[:, 1])))
    else:
        fns = model.predict_survival_function(X)
        sk_h = np.array([[f(h) for h in horizons] for f in fns])
        err["risk"] = float(np.max(np.abs(c.survival(lp, c.s_ref_horizons) - sk_h)))
        if len(time_grid):
            grid = np.asarray(time_grid, float)
            sk_g = np.array([np.atleast_1d(f(grid)) for f in fns])
            err["survival_curve"] = float(np.max(np.abs(c.survival(lp, c.s_ref_grid) - sk_g)))
    scale_tol = ATOL_LP * max(1.0, float(np.max(np.abs(ref_lp))))
    if not (err["linear_predictor"] <= scale_tol and max(v for k, v in err.items() if k != "linear_predictor")
            <= ATOL_RISK) or not all(math.isfinite(v) for v in err.values()):
        raise NotCompilable(f"compiled model does not reproduce the pipeline (max abs differences {err})")
    return err


def write_compiled(package_dir: Path, compiled: CompiledLinearRisk) -> Path:
    """Write ``compiled.json`` into a package (atomic)."""
    from medai.fileio import atomic_write

    path = Path(package_dir) / COMPILED_FILE
    atomic_write(path, lambda fh: fh.write(json.dumps(compiled.to_dict(), indent=1, allow_nan=False).encode()))
    return path


def read_compiled(package_dir: Path) -> CompiledLinearRisk | None:
    """The package's compiled model, or None when it has none."""
    path = Path(package_dir) / COMPILED_FILE
    if not path.exists():
        return None
    return CompiledLinearRisk(json.loads(path.read_text()))


def add_compiled(package_dir: Path) -> dict[str, float]:
    """Compile a risk package's pipeline into its ``compiled.json`` (listed in ``metadata.files``).

    Returns:
        The check's max absolute differences to the pipeline. Raises :class:`NotCompilable` (nothing written).
    """
    from medai.inference.package import read_metadata, write_metadata
    from medai.risk.predictor import INFERENCE_FILE, MODEL_FILE, RiskInferenceConfig, load_skops

    package_dir = Path(package_dir)
    meta = read_metadata(package_dir)
    cfg = RiskInferenceConfig.model_validate_json((package_dir / INFERENCE_FILE).read_text())
    if cfg.model_format != "skops":
        raise NotCompilable(f"model_format {cfg.model_format!r} is scored by its estimator's own code")
    spec = CohortSpec.model_validate(meta.input_contract)
    model = load_skops(package_dir / MODEL_FILE)
    compiled = compile_risk_model(model, spec, cfg.kind, cfg.reference, cfg.horizons, cfg.time_grid,
                                  cfg.impute_absent)
    err = check_compiled(compiled, model, spec, cfg.horizons, cfg.time_grid)
    write_compiled(package_dir, compiled)
    if COMPILED_FILE not in meta.files:
        write_metadata(package_dir, meta.model_copy(update={"files": [*meta.files, COMPILED_FILE]}))
    return err
