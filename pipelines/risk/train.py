"""``medai train configs/experiment/risk_*.yaml``: tuned, cross-validated, held-out-tested risk models in MLflow.

Flow of :func:`train_from_recipe`:

1. load the cohort through its adapter (:mod:`medai.risk.cohorts`);
2. split off a held-out test part (``test_size``, fixed ``seed``, stratified on the event; one row = one patient)
   that is never used for tuning or selection;
3. on the rest, for each estimator and each grid point, ``cv_folds``-fold CV (folds grouped by site when the
   cohort has one and ``group_cv``); the best grid point by mean CV score (Harrell's C / ROC AUC) wins;
4. permutation importance on each validation fold (and SHAP for tree classifiers), with stability across folds;
5. refit on the whole development part, evaluate once on the held-out part (overall, per subgroup, calibration,
   bootstrap CIs, risk-group Kaplan-Meier + log-rank), compared with the data's own reference scores;
6. every final fit is a nested MLflow run (config, CV table, test metrics, plots, importance); the shipped estimator
   is written as a model package (skops), logged and registered under ``recipe.name``.

Competing-risks recipes (``outcome: recurrence_vs_death_14d``) estimate cumulative incidence functions and fit one
cause-specific Cox model per cause.
"""

from __future__ import annotations

import json
import logging
import platform
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import ParameterGrid, StratifiedGroupKFold, StratifiedKFold, train_test_split

from medai.errors import ConfigError
from medai.inference.package import ModelMetadata, TrainingData, write_metadata
from medai.metrics import survival as sm
from medai.risk.cohorts import OUTCOMES, Cohort, load_cohort
from medai.risk.predictor import INFERENCE_FILE, MODEL_FILE, RiskInferenceConfig
from medai.settings import find_data_dir, get_settings
from models.survival import KINDS, make_estimator
from pipelines.risk.recipe import RiskRecipe, load_recipe

logger = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------------------- helpers
def event_of(c: Cohort) -> np.ndarray:
    """0/1 event indicator for stratification."""
    return (c.y["event"] if c.kind != "binary" else c.y).astype(int)


def split_dev_test(c: Cohort, test_size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Held-out split by patient, stratified on the event indicator (fixed seed)."""
    idx = np.arange(len(c))
    dev, test = train_test_split(idx, test_size=test_size, random_state=seed, stratify=event_of(c))
    return np.sort(dev), np.sort(test)


def cv_splits(c: Cohort, folds: int, seed: int, group: bool) -> list[tuple[np.ndarray, np.ndarray]]:
    """CV folds on ``c`` (grouped by site when available and requested)."""
    ev = event_of(c)
    if group and c.groups is not None and len(np.unique(c.groups)) >= folds:
        sk = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
        return list(sk.split(np.zeros(len(c)), ev, c.groups))
    return list(StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(np.zeros(len(c)), ev))


def cap_rows(idx: np.ndarray, max_rows: int | None, seed: int) -> np.ndarray:
    """At most ``max_rows`` of ``idx`` (random, fixed seed, sorted); all of them when None."""
    if max_rows is None or len(idx) <= max_rows:
        return idx
    return np.sort(np.random.default_rng(seed).choice(idx, max_rows, replace=False))


def _score(model: Any, kind: str, X: pd.DataFrame, y: np.ndarray) -> float:
    if kind == "survival":
        return sm.harrell_c(y, model.predict(X))
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, model.predict_proba(X)[:, 1]))


def _scale(model: Any, kind: str, X: pd.DataFrame) -> np.ndarray:
    return model.predict(X) if kind == "survival" else model.predict_proba(X)[:, 1]


def permutation_importance(
    model: Any, kind: str, X: pd.DataFrame, y: np.ndarray, repeats: int, seed: int
) -> dict[str, float]:
    """Drop in Harrell's C / AUC when one factor (original column) is permuted, averaged over ``repeats``."""
    rng = np.random.default_rng(seed)
    base = _score(model, kind, X, y)
    out = {}
    for col in X.columns:
        drops = []
        for _ in range(repeats):
            Xp = X.copy()
            Xp[col] = rng.permutation(Xp[col].to_numpy())
            drops.append(base - _score(model, kind, Xp, y))
        out[col] = float(np.mean(drops))
    return out


def shap_importance(model: Any, X: pd.DataFrame) -> dict[str, float] | None:
    """Mean |SHAP| per original factor for tree classifiers (HGB); None when not applicable."""
    try:
        import shap

        pre, est = model.named_steps["pre"], model.named_steps["model"]
        if type(est).__name__ != "HistGradientBoostingClassifier":
            return None
        Z = pre.transform(X)
        vals = shap.TreeExplainer(est).shap_values(Z)
        vals = vals[1] if isinstance(vals, list) else vals
        names = pre.get_feature_names_out()
        agg: dict[str, float] = {}
        for j, n in enumerate(names):
            base = n.split("__", 1)[1]
            for col in X.columns:
                if base == col or base.startswith(col + "_") or base == f"missingindicator_{col}":
                    agg[col] = agg.get(col, 0.0) + float(np.abs(vals[:, j]).mean())
                    break
        return agg
    except Exception as exc:  # shap's failure modes are many; importance still has the permutation ranking
        logger.warning("SHAP not computed: %s", exc)
        return None


def stability(per_fold: list[dict[str, float]]) -> list[dict[str, Any]]:
    """Rank factors by mean importance across folds, with SD, mean rank and how often each is in a fold's top 10."""
    df = pd.DataFrame(per_fold)
    ranks = df.rank(axis=1, ascending=False)
    table = pd.DataFrame(
        {
            "mean": df.mean(),
            "sd": df.std(ddof=0),
            "mean_rank": ranks.mean(),
            "top10_folds": (ranks <= 10).sum(),
        }
    ).sort_values("mean", ascending=False)
    return [{"factor": f, **{k: float(v) for k, v in r.items()}} for f, r in table.iterrows()]


def fold_rank_agreement(per_fold: list[dict[str, float]]) -> float:
    """Mean pairwise Spearman correlation of importances between folds (1 = perfectly stable)."""
    df = pd.DataFrame(per_fold).T
    corr = df.corr(method="spearman").to_numpy()
    iu = np.triu_indices_from(corr, 1)
    return float(np.nanmean(corr[iu])) if len(iu[0]) else float("nan")


# ----------------------------------------------------------------------------------------------------- evaluation
def evaluate_model(
    model: Any,
    c_train: Cohort,
    c_test: Cohort,
    horizons: list[float],
    n_boot: int,
    seed: int,
    cutpoints: list[float] | None = None,
) -> dict[str, Any]:
    """Test metrics of a fitted pipeline: overall, per subgroup, calibration, risk groups (KM + log-rank)."""
    X, y = c_test.X, c_test.y
    if c_test.kind == "survival":
        risk = model.predict(X)
        fns = model.predict_survival_function(X)

        def surv_fn(times: np.ndarray, fns: Any = fns) -> np.ndarray:
            times = np.atleast_1d(np.asarray(times, float))
            return np.array([np.atleast_1d(f(times)) for f in fns]).reshape(len(fns), len(times))

        res = sm.survival_metrics(c_train.y, y, risk, surv_fn, horizons, n_boot=n_boot, seed=seed)
        h = horizons[min(1, len(horizons) - 1)]
        h_risk = 1 - np.array([f(min(h, f.x[-1])) for f in fns])
        cut = cutpoints if cutpoints is not None else list(np.quantile(h_risk, [1 / 3, 2 / 3]))
        groups = sm.risk_groups(h_risk, cut)
        km = sm.km_by_group(y, groups)
        res["risk_groups"] = {"horizon_days": h, "cutpoints": cut, **km}

        def sub_fn(m: np.ndarray) -> dict[str, Any]:
            d = sm.survival_metrics(c_train.y, y[m], risk[m], lambda t: surv_fn(t)[m], horizons)
            return {k: v for k, v in d.items() if not k.startswith("calibration") or k == f"calibration@{h:g}d"}

        res["subgroups"] = sm.subgroup_table(c_test.subgroups, sub_fn, events=y["event"])
    else:
        prob = model.predict_proba(X)[:, 1]
        res = sm.binary_metrics(y, prob, n_boot=n_boot, seed=seed)
        res["subgroups"] = sm.subgroup_table(c_test.subgroups, lambda m: sm.binary_metrics(y[m], prob[m]), events=y)
        cut = cutpoints if cutpoints is not None else list(np.quantile(prob, [1 / 3, 2 / 3]))
        groups = sm.risk_groups(prob, cut)
        res["risk_groups"] = {
            "cutpoints": cut,
            "observed": {g: float(y[groups == g].mean()) for g in sorted(set(groups)) if (groups == g).any()},
            "n": {g: int((groups == g).sum()) for g in sorted(set(groups))},
        }
    return res


def reference_metrics(c_test: Cohort) -> dict[str, Any]:
    """The data's own predicted risks evaluated on the same held-out rows (IST ``EXPD6``/``EXPD14``/``EXPDD``)."""
    out: dict[str, Any] = {}
    if not c_test.reference:
        return out
    target = {"death_6m": "EXPD6", "death_dependency_6m": "EXPDD", "death": "EXPD6"}
    ref = target.get(c_test.outcome)
    for name, score in c_test.reference.items():
        ok = np.isfinite(score)
        if c_test.kind == "binary":
            out[name] = sm.binary_metrics(c_test.y[ok], score[ok], n_boot=200)
        else:
            out[name] = {"c_index": sm.harrell_c(c_test.y[ok], score[ok]), "n": int(ok.sum())}
        out[name]["matches_outcome"] = name == ref
    return out


def oof_metrics(cd: Cohort, score: np.ndarray, h_risk: np.ndarray, h: float) -> dict[str, Any]:
    """Out-of-fold (pooled CV) metrics overall and per subgroup, with calibration at horizon ``h`` days.

    Every development patient is scored by the fold model that did not see it, so small cohorts get subgroup
    estimates on all development rows; these are CV results, reported apart from the held-out test.
    """
    y = cd.y
    if cd.kind == "survival":

        def fn(m: np.ndarray) -> dict[str, Any]:
            return {
                "n": int(m.sum()),
                "events": int(y["event"][m].sum()),
                "c_index": sm.harrell_c(y[m], score[m]),
                "calibration": sm.calibration_survival(y[m], h_risk[m], h),
            }

        events = y["event"]
    else:

        def fn(m: np.ndarray) -> dict[str, Any]:
            return sm.binary_metrics(y[m], h_risk[m])

        events = y
    out = {"overall": fn(np.ones(len(y), bool)), "subgroups": sm.subgroup_table(cd.subgroups, fn, events=events)}
    out["horizon_days"] = h
    return out


def paired_vs_reference(model: Any, c_test: Cohort, n_boot: int, seed: int) -> dict[str, Any]:
    """Paired bootstrap of (model - reference) discrimination on the same held-out rows, for the data's own score
    of this outcome (IST: EXPD6 for 6-month death, EXPDD for death/dependency, EXPD6 for death over time)."""
    target = {"death_6m": "EXPD6", "death_dependency_6m": "EXPDD", "death": "EXPD6"}
    ref_name = target.get(c_test.outcome)
    if not ref_name or ref_name not in c_test.reference or n_boot < 10:
        return {}
    ref = c_test.reference[ref_name]
    ok = np.flatnonzero(np.isfinite(ref))
    y = c_test.y[ok]
    if c_test.kind == "survival":
        mine = np.asarray(model.predict(c_test.X.iloc[ok]))

        def metric(i: np.ndarray, s: np.ndarray) -> float:
            return sm.harrell_c(y[i], s[i])
    else:
        from sklearn.metrics import roc_auc_score

        mine = model.predict_proba(c_test.X.iloc[ok])[:, 1]

        def metric(i: np.ndarray, s: np.ndarray) -> float:
            return float(roc_auc_score(y[i], s[i]))

    delta = metric(np.arange(len(ok)), mine) - metric(np.arange(len(ok)), ref[ok])
    lo, hi = sm.bootstrap_ci(lambda i: metric(i, mine) - metric(i, ref[ok]), len(ok), n_boot, seed)
    return {f"delta_vs_{ref_name}": delta, f"delta_vs_{ref_name}_ci": [lo, hi], "reference_rows": int(len(ok))}


# ----------------------------------------------------------------------------------------------------- packaging
def write_package(
    out: Path,
    model: Any,
    recipe: RiskRecipe,
    c: Cohort,
    horizons: list[float],
    cutpoints: list[float],
    metrics: dict[str, float],
    run_id: str | None,
    version: str,
    reproduce: str = "",
) -> Path:
    """Write a risk model package (metadata.json, inference.json, model.skops, MODEL_CARD.md, compiled.json)."""
    import skops.io as sio

    out.mkdir(parents=True, exist_ok=True)
    kind = c.kind
    ref: dict[str, Any] = {}
    for f in c.spec.features:
        col = c.X[f.name]
        if f.type == "categorical":
            mode = col.dropna().mode()
            ref[f.name] = str(mode.iloc[0]) if len(mode) else None
        else:
            med = col.median()
            ref[f.name] = None if pd.isna(med) else float(med)
    grid = list(np.unique(np.round(np.linspace(1, max(horizons) * 1.0, 60))))
    if kind == "survival":
        tmax = float(c.y["time"][c.y["event"]].max())
        grid = [g for g in grid if g <= tmax]
        horizons = [h for h in horizons if h <= tmax]
    primary = horizons[min(1, len(horizons) - 1)]
    cfg = RiskInferenceConfig(
        cohort=c.name,
        outcome=c.outcome,
        outcome_description=OUTCOMES[c.name][c.outcome][1],
        kind=kind,
        estimator=recipe.ship or "",
        params={},
        horizons=horizons,
        primary_horizon=primary,
        time_grid=grid if kind == "survival" else [],
        risk_group_cutpoints=cutpoints,
        reference=ref,
    )
    (out / INFERENCE_FILE).write_text(cfg.model_dump_json(indent=2))
    sio.dump(model, out / MODEL_FILE)
    meta = ModelMetadata(
        name=recipe.name,
        version=version,
        predictor="risk_model",
        task="survival" if kind == "survival" else "classification",
        description=recipe.description or OUTCOMES[c.name][c.outcome][1],
        input_contract=c.spec.model_dump(mode="json"),
        output_contract={
            "risks": "one RiskEstimate: horizons (days -> cumulative risk), survival curve (survival "
            "models), risk_group (tertiles of development risk), top contributions (occlusion, "
            "model risk scale)",
            "horizons_days": horizons,
        },
        training_data=[
            TrainingData(
                name=c.name,
                description=f"development part ({len(c)} patients) of the "
                f"{c.name} release; held-out {recipe.test_size:.0%} never used for tuning",
                licence=c.spec.licence,
                n_cases=len(c),
                citation=c.spec.citation,
            )
        ],
        metrics=metrics,
        mlflow_run_id=run_id,
        files=[MODEL_FILE, INFERENCE_FILE, "MODEL_CARD.md"],
        licence=c.spec.licence,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        hardware=f"{platform.machine()} CPU",
        reproduce=reproduce or f"medai train <recipe of {recipe.name}>",
    )
    write_metadata(out, meta)
    lines = [
        f"# {recipe.name}",
        "",
        meta.description,
        "",
        "Research use only. Not a medical device.",
        "",
        f"Data: {c.spec.citation} ({c.spec.licence}).",
        "",
        "## Held-out metrics",
        "",
    ]
    lines += [f"- `{k}`: {v:.4f}" for k, v in metrics.items()]
    lines += ["", "## Inputs", ""] + [
        f"- `{f.name}` ({f.type}{', ' + f.unit if f.unit else ''}): {f.description}" for f in c.spec.features
    ]
    (out / "MODEL_CARD.md").write_text("\n".join(lines) + "\n")
    from medai.risk.compiled import NotCompilable, add_compiled

    try:  # compiled inference (plain arrays) where the pipeline is additive-linear; the pipeline stays the reference
        add_compiled(out)
    except NotCompilable as exc:
        logger.info("%s: no compiled.json, served by the pipeline (%s)", recipe.name, exc)
    return out


# ----------------------------------------------------------------------------------------------------- competing
def competing_risks(c: Cohort, dev: np.ndarray, test: np.ndarray, seed: int) -> dict[str, Any]:
    """Cumulative incidence (Aalen-Johansen) and cause-specific Cox models for recurrence (1) vs death (2).

    Each cause-specific model is a ridge-penalised Cox model (alpha 1.0: recurrence is rare, ~2 %) fitted on the
    development rows with the other cause as censoring, and scored on the held-out rows. Recurrence time is
    ``DRSISCD`` (days from randomisation), death time ``TD``; both truncated at 14 days.
    """
    from sksurv.nonparametric import cumulative_incidence_competing_risks

    status = c.extra["status"]
    t = c.y["time"]
    times, cif = cumulative_incidence_competing_risks(status, t)
    res: dict[str, Any] = {
        "cif": {"time": times.tolist(), "recurrence": cif[1].tolist(), "death": cif[2].tolist()},
        "n": len(c),
        "recurrences": int((status == 1).sum()),
        "deaths": int((status == 2).sum()),
    }
    cd, ct = c.subset(dev), c.subset(test)
    for cause, label in ((1, "recurrence"), (2, "death")):
        yd = sm_surv(c.extra["status"][dev] == cause, cd.y["time"])
        yt = sm_surv(c.extra["status"][test] == cause, ct.y["time"])
        m = make_estimator("coxph", c.spec.numeric, c.spec.categorical, alpha=1.0).fit(cd.X, yd)
        res[f"cause_specific/{label}"] = {
            "test_c_index": sm.harrell_c(yt, m.predict(ct.X)),
            "events_test": int(yt["event"].sum()),
        }
    return res


def sm_surv(event: np.ndarray, time_: np.ndarray) -> np.ndarray:
    from medai.risk.cohorts import surv_y

    return surv_y(event, time_)


# ----------------------------------------------------------------------------------------------------- main flow
def _plots(outdir: Path, name: str, test_res: dict[str, Any], kind: str) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    if kind == "survival" and "risk_groups" in test_res:
        fig, ax = plt.subplots(figsize=(5, 4))
        for g, cur in test_res["risk_groups"]["curves"].items():
            ax.step(cur["time"], cur["survival"], where="post", label=f"{g} (n={cur['n']}, events={cur['events']})")
        p = test_res["risk_groups"].get("logrank_p")
        ax.set(
            xlabel="days",
            ylabel="survival (Kaplan-Meier)",
            title=f"{name}: held-out risk groups" + (f", log-rank p={p:.2g}" if p is not None else ""),
        )
        ax.legend(fontsize=7)
        fig.tight_layout()
        paths.append(outdir / f"{name}_km_risk_groups.png")
        fig.savefig(paths[-1], dpi=110)
        plt.close(fig)
    cals = {k: v for k, v in test_res.items() if k.startswith("calibration") and isinstance(v, dict)}
    if cals:
        fig, ax = plt.subplots(figsize=(4.5, 4.5))
        for k, cal in cals.items():
            xs = [b["predicted"] for b in cal["bins"]]
            ys = [b["observed"] for b in cal["bins"]]
            ax.plot(
                xs,
                ys,
                "o-",
                label=f"{k} slope={cal.get('slope', float('nan')):.2f} int={cal.get('intercept', float('nan')):.2f}",
            )
        lim = max([1e-3] + [max(b["predicted"], b["observed"]) for cal in cals.values() for b in cal["bins"]])
        ax.plot([0, lim], [0, lim], "k--", lw=0.8)
        ax.set(
            xlabel="predicted risk (bin mean)",
            ylabel="observed risk (KM / proportion)",
            title=f"{name}: held-out calibration",
        )
        ax.legend(fontsize=7)
        fig.tight_layout()
        paths.append(outdir / f"{name}_calibration.png")
        fig.savefig(paths[-1], dpi=110)
        plt.close(fig)
    return paths


def _flat(prefix: str, d: dict[str, Any]) -> dict[str, float]:
    out = {}
    for k, v in d.items():
        if isinstance(v, int | float) and not isinstance(v, bool):
            out[f"{prefix}/{k}".replace("@", "_at_")] = float(v)
        elif isinstance(v, dict) and k.startswith("calibration"):
            for kk in ("slope", "intercept", "citl"):
                if kk in v:
                    out[f"{prefix}/{k}/{kk}".replace("@", "_at_")] = float(v[kk])
    return out


def train_from_recipe(recipe_path: str | Path, overrides: list[str] | None = None) -> dict[str, Any]:
    """Run a risk recipe end to end (see module docstring). Returns the summary (also written as JSON)."""
    from rich.console import Console
    from rich.table import Table

    from pipelines import mlflow_utils as mu

    console = Console(stderr=True)
    recipe = load_recipe(recipe_path, overrides)
    root = Path(recipe.data) if recipe.data else find_data_dir()
    if root is None:
        raise ConfigError("no data: set 'data' in the recipe or MEDAI_DATA_DIR")
    c = load_cohort(recipe.cohort, recipe.outcome, root)
    if recipe.subsample and recipe.subsample < len(c):
        keep, _ = train_test_split(
            np.arange(len(c)), train_size=recipe.subsample, random_state=recipe.seed, stratify=event_of(c)
        )
        c = c.subset(np.sort(keep))
    horizons = recipe.horizons or c.horizons
    dev, test = split_dev_test(c, recipe.test_size, recipe.seed)
    cd, ct = c.subset(dev), c.subset(test)
    outdir = get_settings().home / "risk_runs" / recipe.name
    outdir.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {
        "name": recipe.name,
        "cohort": c.name,
        "outcome": c.outcome,
        "kind": c.kind,
        "n": len(c),
        "n_dev": len(dev),
        "n_test": len(test),
        "events_dev": int(event_of(cd).sum()),
        "events_test": int(event_of(ct).sum()),
        "seed": recipe.seed,
        "horizons_days": horizons,
        "data_problems": c.problems,
        "models": {},
    }
    config = recipe.model_dump(mode="json")
    with mu.start_run(f"risk_{recipe.name}", run_name=recipe.name, tags={"task": recipe.task}) as parent:
        mu.log_config(config)
        mlflow = __import__("mlflow")
        mlflow.log_dict({"dev": dev.tolist(), "test": test.tolist()}, "split.json")
        if c.kind == "competing":
            res = competing_risks(c, dev, test, recipe.seed)
            summary["competing_risks"] = res
            mu.log_metrics({f"test/{k}/c_index": v["test_c_index"] for k, v in res.items() if k.startswith("cause")})
            (outdir / "summary.json").write_text(json.dumps(summary, indent=2, default=float))
            mlflow.log_dict(summary, "summary.json")
            console.print(
                f"competing risks: {res['recurrences']} recurrences, {res['deaths']} deaths; "
                + ", ".join(f"{k} test C={v['test_c_index']:.3f}" for k, v in res.items() if k.startswith("cause"))
            )
            return summary
        folds = cv_splits(cd, recipe.cv_folds, recipe.seed, recipe.group_cv)
        summary["cv_grouped_by_site"] = bool(
            recipe.group_cv and cd.groups is not None and len(np.unique(cd.groups)) >= recipe.cv_folds
        )
        summary["reference_on_test"] = reference_metrics(ct)
        fitted: dict[str, Any] = {}
        for entry in recipe.models:
            kind = KINDS.get(entry.name)
            if kind is None:
                raise ConfigError(f"unknown estimator {entry.name!r}; known: {', '.join(KINDS)}")
            if (kind == "survival") != (c.kind == "survival"):
                raise ConfigError(f"estimator {entry.name} is a {kind} model but {c.name}/{c.outcome} is {c.kind}")
            best: tuple[float, dict[str, Any], list[float]] | None = None
            grid_log = []
            for params in ParameterGrid(entry.grid or {}):
                t0 = time.perf_counter()
                scores = []
                failed = ""
                for tr, va in folds:
                    m = make_estimator(entry.name, c.spec.numeric, c.spec.categorical, **params)
                    tr = cap_rows(tr, entry.max_train_rows, recipe.seed)
                    try:
                        m.fit(cd.X.iloc[tr], cd.y[tr])
                    except (ValueError, ArithmeticError, np.linalg.LinAlgError) as exc:
                        failed = str(exc)
                        break
                    scores.append(_score(m, kind, cd.X.iloc[va], cd.y[va]))
                if failed:  # e.g. Cox not converging: this grid point is reported and skipped
                    logger.warning("%s %s %s failed to fit: %s", recipe.name, entry.name, params, failed)
                    grid_log.append({"params": params, "failed": failed})
                    continue
                grid_log.append(
                    {
                        "params": params,
                        "mean": float(np.mean(scores)),
                        "folds": scores,
                        "seconds": time.perf_counter() - t0,
                    }
                )
                console.print(f"[dim]{recipe.name} {entry.name} {params}: CV {np.mean(scores):.4f}[/]")
                if best is None or np.mean(scores) > best[0]:
                    best = (float(np.mean(scores)), params, scores)
            if best is None:
                summary["models"][entry.name] = {"failed": grid_log}
                console.print(f"[red]{recipe.name} {entry.name}: every grid point failed to fit[/]")
                continue
            _, params, scores = best
            # importance per fold with the chosen parameters
            imps, shaps = [], []
            oof_score = np.full(len(cd), np.nan)
            oof_hrisk = np.full(len(cd), np.nan)
            h_oof = horizons[min(1, len(horizons) - 1)]
            for i, (tr, va) in enumerate(folds):
                tr = cap_rows(tr, entry.max_train_rows, recipe.seed)
                m = make_estimator(entry.name, c.spec.numeric, c.spec.categorical, **params).fit(
                    cd.X.iloc[tr], cd.y[tr]
                )
                if kind == "survival":
                    oof_score[va] = m.predict(cd.X.iloc[va])
                    oof_hrisk[va] = [1 - f(min(h_oof, f.x[-1])) for f in m.predict_survival_function(cd.X.iloc[va])]
                else:
                    oof_score[va] = oof_hrisk[va] = m.predict_proba(cd.X.iloc[va])[:, 1]
                va = va[: recipe.importance_rows]
                imps.append(
                    permutation_importance(m, kind, cd.X.iloc[va], cd.y[va], recipe.importance_repeats, recipe.seed + i)
                )
                if recipe.shap:
                    s = shap_importance(m, cd.X.iloc[va])
                    if s:
                        shaps.append(s)
            t0 = time.perf_counter()
            fin_idx = cap_rows(np.arange(len(cd)), entry.max_train_rows, recipe.seed)
            final = make_estimator(entry.name, c.spec.numeric, c.spec.categorical, **params)
            final.fit(cd.X.iloc[fin_idx], cd.y[fin_idx])
            fit_s = time.perf_counter() - t0
            test_res = evaluate_model(final, cd, ct, horizons, recipe.bootstrap, recipe.seed)
            test_res.update(paired_vs_reference(final, ct, recipe.bootstrap, recipe.seed))
            metric_name = "c_index" if kind == "survival" else "auc"
            rec = {
                "params": params,
                "cv": {metric_name: scores, "mean": float(np.mean(scores)), "sd": float(np.std(scores))},
                "grid": grid_log,
                "fit_seconds": fit_s,
                "test": test_res,
                "importance": stability(imps),
                "importance_fold_agreement": fold_rank_agreement(imps),
            }
            if shaps:
                rec["shap"] = stability(shaps)
            rec["cv_out_of_fold"] = oof_metrics(cd, oof_score, oof_hrisk, h_oof)
            summary["models"][entry.name] = rec
            fitted[entry.name] = final
            with mlflow.start_run(run_name=f"{recipe.name}/{entry.name}", nested=True):
                mu.log_config({"estimator": entry.name, "params": params, "recipe": config})
                mu.log_metrics({f"cv/{metric_name}/fold{i}": s for i, s in enumerate(scores)})
                mu.log_metrics({f"cv/{metric_name}": float(np.mean(scores)), "train/fit_seconds": fit_s})
                mu.log_metrics(_flat("test", test_res))
                mlflow.log_dict(rec, "results.json")
                mlflow.log_dict({"ranked_factors": rec["importance"]}, "biomarker_ranking.json")
                for p in _plots(outdir, f"{recipe.name}_{entry.name}", test_res, c.kind):
                    mu.log_artifacts(p, "plots")
            console.print(
                f"{recipe.name} {entry.name}: CV {metric_name} {np.mean(scores):.4f} ± {np.std(scores):.4f}"
                f" | held-out {metric_name} {test_res.get(metric_name, float('nan')):.4f}"
            )
        # choose and ship
        metric_name = "c_index" if c.kind == "survival" else "auc"
        ok_models = {k: v for k, v in summary["models"].items() if "cv" in v}
        if not ok_models:
            raise ConfigError(f"{recipe.name}: no estimator could be fitted; see the warnings above")
        ship = recipe.ship if recipe.ship in ok_models else max(ok_models, key=lambda k: ok_models[k]["cv"]["mean"])
        recipe.ship = ship
        summary["shipped"] = ship
        final = fitted[ship]
        if c.kind == "survival":
            h = horizons[min(1, len(horizons) - 1)]
            fns = final.predict_survival_function(cd.X)
            dev_risk = 1 - np.array([f(min(h, f.x[-1])) for f in fns])
        else:
            dev_risk = final.predict_proba(cd.X)[:, 1]
        cutpoints = [float(x) for x in np.quantile(dev_risk, [1 / 3, 2 / 3])]
        tr_ship = summary["models"][ship]["test"]
        pkg_metrics = {
            f"test/{metric_name}": float(tr_ship[metric_name]),
            f"cv/{metric_name}": summary["models"][ship]["cv"]["mean"],
        }
        for k in ("uno_c", "ibs", "brier", "mean_auc"):
            if k in tr_ship:
                pkg_metrics[f"test/{k}"] = float(tr_ship[k])
        for k, v in tr_ship.items():
            if k.startswith("auc@"):
                pkg_metrics[f"test/{k}"] = float(v)
        mu.log_metrics(_flat("test", tr_ship))
        pkg = write_package(
            outdir / "package",
            final,
            recipe,
            cd,
            horizons,
            cutpoints,
            pkg_metrics,
            parent.info.run_id,
            version="1.0.0",
            reproduce=f"medai train {recipe_path}",
        )
        json.dump(
            {"dev": dev.tolist(), "test": test.tolist(), "seed": recipe.seed, "test_size": recipe.test_size},
            open(pkg / "split.json", "w"),
        )
        try:
            summary["registered_version"] = mu.register_package(pkg, recipe.name)
        except Exception as exc:  # registry problems must not lose the run
            logger.warning("registration of %s failed: %s", recipe.name, exc)
        if recipe.ship_dir:
            import shutil

            dest = Path(recipe.ship_dir)
            if not dest.is_absolute():
                dest = Path(__file__).resolve().parents[2] / dest
            shutil.rmtree(dest, ignore_errors=True)
            shutil.copytree(pkg, dest)
            summary["shipped_to"] = str(dest)
        for p in _plots(outdir, recipe.name, tr_ship, c.kind):
            mu.log_artifacts(p, "plots")
        mlflow.log_dict(summary, "summary.json")
        (outdir / "summary.json").write_text(json.dumps(summary, indent=2, default=float))
    table = Table(title=f"{recipe.name}: {cd.name}/{cd.outcome} ({len(dev)} dev / {len(test)} held-out)")
    for col in ("model", f"CV {metric_name} mean ± sd", "folds", f"held-out {metric_name}", "95% CI"):
        table.add_column(col)
    for k, r in summary["models"].items():
        if "failed" in r:
            continue
        ci = r["test"].get("c_index_ci") or r["test"].get("auc_ci") or [float("nan")] * 2
        table.add_row(
            k,
            f"{r['cv']['mean']:.4f} ± {r['cv']['sd']:.4f}",
            " ".join(f"{s:.3f}" for s in r["cv"][metric_name]),
            f"{r['test'].get(metric_name, float('nan')):.4f}",
            f"{ci[0]:.3f}-{ci[1]:.3f}",
        )
    for k, r in summary["reference_on_test"].items():
        table.add_row(f"reference: {k}", "", "", f"{r.get(metric_name, r.get('c_index', float('nan'))):.4f}", "")
    console.print(table)
    console.print(f"summary: {outdir / 'summary.json'}")
    return summary
