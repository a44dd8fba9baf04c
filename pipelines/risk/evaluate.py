"""``medai evaluate <risk model> --data FILE --out FILE.json``: a risk package on a cohort file, via the predict path.

``<risk model>`` is a shipped package name, a package folder or ``models:/<name>@<alias>`` (``--model`` overrides
it with a package folder). ``--data`` is a file (or folder) in the official layout of the package's cohort; every
patient goes through :meth:`medai.risk.predictor.RiskPredictor.predict_batch`, the same code as the CLI and the API.

``--format``:

* ``auto`` / ``heldout`` (default): when the package's ``split.json`` matches the file (same row count), only the
  held-out rows -- never used for tuning or selection -- are scored (``is_test_result: true``); other files are
  scored whole (an external cohort: a test result as well);
* ``all``: every row, including development rows (``is_test_result: false`` when a split matches);
* ``csv``: a hospital CSV mapped onto the package's spec, with outcome columns ``event`` and (survival) ``time``
  in days.

Writes keys ``c_index`` (survival: Harrell; classifiers: ROC AUC), ``auc`` (fixed horizon; survival models: the
cumulative/dynamic AUC at the primary horizon), ``uno_c``, ``ibs``, calibration, bootstrap CIs, ``subgroups``
(sex, age band, comorbidities) and, for IST, the trial's own predicted risks on the same rows.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np

from medai.errors import ConfigError
from medai.inference.package import resolve_package
from medai.inference.predictor import Predictor
from medai.metrics import survival as sm
from medai.risk.cohorts import load_cohort, load_csv
from medai.risk.predictor import RiskPredictor, horizon_key

logger = logging.getLogger(__name__)


def evaluate_risk(predictor: RiskPredictor, data: Path, fmt: str = "auto", n_boot: int = 200) -> dict[str, Any]:
    """Metrics of ``predictor`` on the cohort file ``data`` (see module docstring)."""
    cfg = predictor.config
    if fmt == "csv":
        c = load_csv(data, predictor.spec, event="event", time="time" if cfg.kind == "survival" else None, strict=False)
    else:
        c = load_cohort(cfg.cohort, cfg.outcome, data)
    out: dict[str, Any] = {
        "model": predictor.ref.model_dump(),
        "data": str(data),
        "cohort": c.name,
        "outcome": c.outcome,
        "format": fmt,
    }
    split_path = predictor.package_dir / "split.json"
    idx = np.arange(len(c))
    out["subset"], out["is_test_result"] = "all rows of an external file", True
    if split_path.is_file() and fmt != "csv":
        split = json.loads(split_path.read_text())
        n_split = len(split["dev"]) + len(split["test"])
        if n_split == len(c):
            if fmt == "all":
                out["subset"], out["is_test_result"] = "all rows including development rows", False
            else:
                idx = np.asarray(split["test"])
                out["subset"] = "held-out rows of the package's split (never used for tuning or selection)"
    c = c.subset(idx)
    rows = [
        {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in r.items()}
        for r in c.X.to_dict(orient="records")
    ]
    preds = predictor.predict_batch(rows)
    ests = [p.risks[0] for p in preds]
    score = np.array([e.risk_score for e in ests])
    hk = horizon_key(cfg.primary_horizon)
    h_risk = np.array([e.horizons[hk] for e in ests])
    if cfg.kind == "survival":
        grid = np.asarray(cfg.time_grid, float)
        curves = np.array([e.survival for e in ests])

        def surv_fn(times: np.ndarray) -> np.ndarray:
            j = np.clip(np.searchsorted(grid, times, side="right") - 1, 0, len(grid) - 1)
            return curves[:, j]

        res = sm.survival_metrics(c.y, c.y, score, surv_fn, cfg.horizons, n_boot=n_boot)
        aucs = {k: v for k, v in res.items() if k.startswith("auc@")}
        if f"auc@{cfg.primary_horizon:g}d" in aucs:
            res["auc"] = aucs[f"auc@{cfg.primary_horizon:g}d"]
        res["subgroups"] = sm.subgroup_table(
            c.subgroups,
            lambda m: {k: v for k, v in sm.survival_metrics(c.y, c.y[m], score[m], None, cfg.horizons).items()},
            events=c.y["event"],
        )
        groups = np.array([e.risk_group for e in ests], dtype=object)
        res["risk_groups"] = sm.km_by_group(c.y, groups)
        res["note"] = "censoring distribution for Uno's C / time-dependent AUC / Brier estimated on this file"
    else:
        res = sm.binary_metrics(c.y, h_risk, n_boot=n_boot)
        res["subgroups"] = sm.subgroup_table(c.subgroups, lambda m: sm.binary_metrics(c.y[m], h_risk[m]), events=c.y)
    out.update(res)
    if c.reference:
        ref = {}
        for name, s in c.reference.items():
            ok = np.isfinite(s)
            ref[name] = (
                sm.binary_metrics(c.y[ok], s[ok]) if cfg.kind == "binary" else {"c_index": sm.harrell_c(c.y[ok], s[ok])}
            )
            ref[name].pop("calibration", None)
        target = {"death_6m": "EXPD6", "death_dependency_6m": "EXPDD", "death": "EXPD6"}
        rname = target.get(c.outcome)
        if rname in c.reference:
            s_ref = c.reference[rname]
            ok = np.flatnonzero(np.isfinite(s_ref))
            mine = (score if cfg.kind == "survival" else h_risk)[ok]
            yy = c.y[ok]

            def disc(i: np.ndarray, s: np.ndarray) -> float:
                if cfg.kind == "survival":
                    return sm.harrell_c(yy[i], s[i])
                from sklearn.metrics import roc_auc_score

                return float(roc_auc_score(yy[i], s[i]))

            allr = np.arange(len(ok))
            ref[rname]["delta_model_minus_reference"] = disc(allr, mine) - disc(allr, s_ref[ok])
            ref[rname]["delta_ci"] = list(
                sm.bootstrap_ci(lambda i: disc(i, mine) - disc(i, s_ref[ok]), len(ok), n_boot)
            )
            ref[rname]["matches_outcome"] = True
        out["reference_scores_same_rows"] = ref
    return out


def evaluate_cli(
    model: str, data: Path, fmt: str = "auto", out: Path | None = None, package: Path | None = None
) -> dict[str, Any]:
    """Entry point of ``medai evaluate`` for risk models; writes ``out`` (JSON) and returns the metrics."""
    ref = package or model
    try:
        path = resolve_package(ref)
    except Exception as exc:
        raise ConfigError(f"{model!r} is not a risk model package: {exc}") from exc
    pred = Predictor.from_package(path)
    if not isinstance(pred, RiskPredictor):
        raise ConfigError(f"{model} is not a risk model (predictor {pred.metadata.predictor})")
    res = evaluate_risk(pred, Path(data), fmt)
    res["model"] = {"name": pred.metadata.name, "version": pred.metadata.version}
    res["command"] = " ".join(["medai evaluate", *sys.argv[2:]]) if sys.argv and "evaluate" in sys.argv else ""
    out = Path(out or "evaluation.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2, default=float))
    try:
        import mlflow

        if mlflow.active_run() is not None:
            from pipelines.mlflow_utils import log_metrics

            log_metrics({f"test/{k}": v for k, v in res.items() if isinstance(v, float)})
    except ImportError:  # pragma: no cover
        pass
    logger.info("wrote %s", out)
    return res
