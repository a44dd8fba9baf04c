"""Benchmark of the risk models: predict latency of the shipped packages and fit time on IST, vs direct sksurv calls.

For each shipped risk package (``models/packages/*`` with predictor ``risk_model``):

* single patient: ``RiskPredictor.predict(factors)`` (validation + risk + horizons + survival curve + risk group +
  occlusion contributions) vs the direct scikit-survival / scikit-learn call on a ready 1-row DataFrame
  (``pipeline.predict`` + ``predict_survival_function`` or ``predict_proba``);
* batch: ``predict_batch(rows)`` vs the same direct calls on the whole frame;
* overhead ratio = medai time / direct time (the extra work is validation and per-patient contributions).

Fit time on IST (``death`` for survival estimators, ``death_6m`` for classifiers, ``--rows`` development rows):
``make_estimator(name).fit`` (preprocessing pipeline) vs the bare estimator fitted on the already preprocessed
matrix.

Usage::

    nice -n 10 .venv/bin/python bench/risk_predict.py [--rows 4000] [--batch 1000] [--repeats 20] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np


def _timeit(fn: Any, repeats: int) -> float:
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def bench_predict(batch: int, repeats: int) -> list[dict[str, Any]]:
    from medai.inference.package import read_metadata, shipped_packages
    from medai.inference.predictor import Predictor
    from medai.risk.cohorts import load_cohort
    from medai.settings import find_data_dir

    root = find_data_dir()
    rows_out = []
    for name, path in shipped_packages().items():
        if read_metadata(path).predictor != "risk_model":
            continue
        p = Predictor.from_package(path)
        cfg = p.config
        c = load_cohort(cfg.cohort, cfg.outcome, root)
        X = c.X.iloc[:batch].reset_index(drop=True)
        # complete rows for the direct call (the predictor fills absent optional factors the same way)
        Xf = X.copy()
        for k, v in cfg.reference.items():
            Xf[k] = Xf[k].where(Xf[k].notna(), v)
        recs = [
            {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in r.items()}
            for r in X.to_dict(orient="records")
        ]
        one, one_df = recs[0], Xf.iloc[:1]
        grid = np.asarray(cfg.time_grid, float)

        def direct(df: Any, p: Any = p, cfg: Any = cfg, grid: Any = grid) -> Any:
            if cfg.kind == "survival":
                p.model.predict(df)
                return [f(grid) for f in p.model.predict_survival_function(df)]
            return p.model.predict_proba(df)

        t_single = _timeit(lambda one=one, p=p: p.predict(one), repeats)
        t_single_direct = _timeit(lambda one_df=one_df, direct=direct: direct(one_df), repeats)
        t_batch = _timeit(lambda recs=recs, p=p: p.predict_batch(recs), max(2, repeats // 5))
        t_batch_direct = _timeit(lambda Xf=Xf, direct=direct: direct(Xf), max(2, repeats // 5))
        rows_out.append(
            {
                "package": name,
                "estimator": cfg.estimator,
                "kind": cfg.kind,
                "batch_rows": len(X),
                "single_ms": 1e3 * t_single,
                "single_direct_ms": 1e3 * t_single_direct,
                "single_overhead": t_single / t_single_direct,
                "batch_ms": 1e3 * t_batch,
                "batch_direct_ms": 1e3 * t_batch_direct,
                "batch_overhead": t_batch / t_batch_direct,
                "batch_per_patient_ms": 1e3 * t_batch / len(X),
            }
        )
    return rows_out


FIT_PARAMS = {
    "rsf": {"n_estimators": 40, "min_samples_leaf": 50, "max_samples": 0.3},
    "gbsa": {"n_estimators": 60, "subsample": 0.25},
    "hgb_classifier": {"max_iter": 200},
}


def bench_fit(n_rows: int) -> list[dict[str, Any]]:
    from sklearn.base import clone

    from medai.risk.cohorts import load_cohort
    from medai.settings import find_data_dir
    from models.survival import KINDS, make_estimator

    root = find_data_dir()
    out = []
    cohorts = {"survival": load_cohort("ist", "death", root), "binary": load_cohort("ist", "death_6m", root)}
    for name, kind in KINDS.items():
        c = cohorts[kind]
        rng = np.random.default_rng(0)
        idx = np.sort(rng.choice(len(c), min(n_rows, len(c)), replace=False))
        X, y = c.X.iloc[idx], c.y[idx]
        pipe = make_estimator(name, c.spec.numeric, c.spec.categorical, **FIT_PARAMS.get(name, {}))
        t0 = time.perf_counter()
        pipe.fit(X, y)
        t_pipe = time.perf_counter() - t0
        Z = pipe.named_steps["pre"].transform(X)
        bare = clone(pipe.named_steps["model"])
        t0 = time.perf_counter()
        bare.fit(Z, y)
        t_bare = time.perf_counter() - t0
        out.append(
            {
                "estimator": name,
                "kind": kind,
                "rows": len(X),
                "fit_s": t_pipe,
                "direct_fit_s": t_bare,
                "overhead": t_pipe / t_bare,
            }
        )
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=4000, help="IST development rows for the fit benchmark")
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--skip-fit", action="store_true")
    args = ap.parse_args(argv)
    from rich.console import Console
    from rich.table import Table

    con = Console(width=150)
    res: dict[str, Any] = {"predict": bench_predict(args.batch, args.repeats)}
    t = Table(title="risk predict latency: medai RiskPredictor vs direct sksurv/sklearn (median)")
    for col in ("package", "single ms", "direct ms", "ratio", "batch ms", "direct ms", "ratio", "ms/patient"):
        t.add_column(col)
    for r in res["predict"]:
        t.add_row(
            r["package"],
            f"{r['single_ms']:.1f}",
            f"{r['single_direct_ms']:.1f}",
            f"{r['single_overhead']:.1f}",
            f"{r['batch_ms']:.0f}",
            f"{r['batch_direct_ms']:.0f}",
            f"{r['batch_overhead']:.1f}",
            f"{r['batch_per_patient_ms']:.2f}",
        )
    con.print(t)
    if not args.skip_fit:
        res["fit"] = bench_fit(args.rows)
        t = Table(title=f"fit time on IST ({args.rows} rows): preprocessing pipeline vs bare estimator")
        for col in ("estimator", "pipeline s", "bare s", "ratio"):
            t.add_column(col)
        for r in res["fit"]:
            t.add_row(r["estimator"], f"{r['fit_s']:.2f}", f"{r['direct_fit_s']:.2f}", f"{r['overhead']:.2f}")
        con.print(t)
    if args.out:
        args.out.write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
