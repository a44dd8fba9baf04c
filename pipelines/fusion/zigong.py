"""``python -m pipelines.fusion.zigong --out models/packages/<name>``: fused-modality prognosis on Zigong.

Flow of :func:`run` (recipe ``configs/experiment/fusion_zigong_death_6m.yaml``):

1. load the cohort through :mod:`medai.risk.cohorts` (``zigong_echo``: the Zigong factors plus the echo fields,
   outcome ``death_6m_time``: the 6-month death of ``risk_zigong_death_6m`` with its time);
2. take the development / held-out rows of ``split_from`` (the shipped ``cardio_zigong_death_6m`` split: same rows,
   same event); the held-out rows are never used for tuning or selection;
3. per estimator (fusion survival head, CoxPH with a ridge penalty, random survival forest), pick the grid point by
   ``cv_folds``-fold CV (Harrell's C) on the development rows, then refit on all of them;
4. write every final fit as a risk model package (the shipped one to ``--out``, the baselines to a temporary
   folder) and evaluate each **through** ``Predictor.from_package(...).predict_batch(...)`` on the held-out rows:
   Harrell's and Uno's C with percentile bootstrap CIs, the 6-month death ROC AUC, paired differences;
5. missing-modality curves: every modality dropped at test time, and every modality alone. Dropped factors are
   passed to the Predictor as absent: the fusion model masks the modality out; the Cox / RSF pipelines impute the
   training median with the missing indicator they were trained with (their own preprocessing, exactly as for
   naturally missing values);
6. write ``evaluation/zigong_test.json`` (with the command that produced it), a PNG chart of the missing-modality
   C-indices, the metrics into ``metadata.json`` and ``MODEL_CARD.md`` generated from the JSON.

Runs on one CPU thread (torch, BLAS and the forest).
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import shlex
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import ParameterGrid

from medai.errors import ConfigError
from medai.inference.package import ModelMetadata, TrainingData, write_metadata
from medai.inference.predictor import Predictor
from medai.metrics import survival as sm
from medai.registry import ESTIMATORS
from medai.risk.cohorts import OUTCOMES, Cohort, load_cohort
from medai.risk.predictor import INFERENCE_FILE, MODEL_FILE, STATE_DIR, RiskInferenceConfig, horizon_key
from medai.risk.spec import CohortSpec, FeatureType
from medai.settings import find_data_dir
from models.survival import KINDS, make_estimator
from pipelines.fusion.recipe import FusionModelEntry, FusionRecipe, load_fusion_recipe
from pipelines.risk.train import cv_splits

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_RECIPE = ROOT / "configs" / "experiment" / "fusion_zigong_death_6m.yaml"
EVAL_FILE = "zigong_test.json"
FIGURE_FILE = "zigong_missing_modalities.png"
LABELS = {"fusion_survival": "fusion", "coxph": "CoxPH (ridge)", "rsf": "RSF", "coxnet": "Coxnet"}


# ----------------------------------------------------------------------------------------------- helpers
def check_modalities(spec: CohortSpec, modalities: dict[str, list[str]]) -> None:
    """Every factor of ``spec`` in exactly one modality, and no unknown factor.

    Raises:
        ConfigError: naming the unknown, duplicated and unassigned factors.
    """
    seen: dict[str, str] = {}
    problems = []
    for m, cols in modalities.items():
        for c in cols:
            if c in seen:
                problems.append(f"{c} in both {seen[c]} and {m}")
            seen[c] = m
    unknown = sorted(set(seen) - set(spec.names))
    missing = [n for n in spec.names if n not in seen]
    if unknown:
        problems.append(f"not factors of {spec.name}: {', '.join(unknown)}")
    if missing:
        problems.append(f"in no modality: {', '.join(missing)}")
    if problems:
        raise ConfigError("invalid modality grouping: " + "; ".join(problems))


def make_model(name: str, params: dict[str, Any], spec: CohortSpec, modalities: dict[str, list[str]]) -> Any:
    """A registered estimator: the preprocessing pipelines of :mod:`models.survival` or a fusion wrapper."""
    if name in KINDS:
        return make_estimator(name, spec.numeric, spec.categorical, **params)
    return ESTIMATORS.get(name)(modalities=modalities, **params)


def read_split(path: Path, n: int) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """``(dev, test, raw)`` row positions of a ``split.json`` made for a cohort of ``n`` rows."""
    try:
        raw = json.loads(path.read_text())
        dev, test = np.asarray(raw["dev"], int), np.asarray(raw["test"], int)
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(f"cannot read split {path}: {exc}") from exc
    if len(dev) + len(test) != n or len(np.intersect1d(dev, test)):
        raise ConfigError(f"split {path} ({len(dev)} + {len(test)} rows) does not match the cohort ({n} rows)")
    return np.sort(dev), np.sort(test), raw


def subsample_rows(idx: np.ndarray, event: np.ndarray, n: int, seed: int) -> np.ndarray:
    """At most ``n`` rows of ``idx`` keeping up to half of them events (smoke tests)."""
    if len(idx) <= n:
        return idx
    rng = np.random.default_rng(seed)
    ev, ne = idx[event[idx]], idx[~event[idx]]
    k = min(len(ev), max(2, n // 2))
    return np.sort(np.concatenate([rng.choice(ev, k, replace=False), rng.choice(ne, n - k, replace=False)]))


def rows_of(X: pd.DataFrame) -> list[dict[str, Any]]:
    """Table -> factor dicts for ``predict_batch`` (missing -> None)."""
    return [{k: (None if pd.isna(v) else v) for k, v in r.items()} for r in X.to_dict(orient="records")]


def reference_values(c: Cohort) -> dict[str, Any]:
    """Training median (numeric) / mode (categorical) of every factor."""
    ref: dict[str, Any] = {}
    for f in c.spec.features:
        col = c.X[f.name]
        if f.type == FeatureType.CATEGORICAL:
            mode = col.dropna().mode()
            ref[f.name] = str(mode.iloc[0]) if len(mode) else None
        else:
            med = col.median()
            ref[f.name] = None if pd.isna(med) else float(med)
    return ref


# ----------------------------------------------------------------------------------------------- CV
def cv_select(
    entry: FusionModelEntry, c_dev: Cohort, recipe: FusionRecipe
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Grid point with the best mean CV Harrell's C on the development rows, and the CV table."""
    splits = cv_splits(c_dev, recipe.cv_folds, recipe.seed, group=False)
    table = []
    for point in ParameterGrid(entry.grid or {}):
        params = {**entry.params, **point}
        scores = []
        for tr, va in splits:
            m = make_model(entry.name, params, c_dev.spec, recipe.modalities).fit(c_dev.X.iloc[tr], c_dev.y[tr])
            scores.append(sm.harrell_c(c_dev.y[va], m.predict(c_dev.X.iloc[va])))
        table.append({"params": point, "c_index_folds": scores, "c_index": float(np.mean(scores))})
        logger.info("CV %s %s: C %.3f", entry.name, point, table[-1]["c_index"])
    best = max(table, key=lambda r: r["c_index"])
    return {**entry.params, **best["params"]}, table


# ----------------------------------------------------------------------------------------------- packaging
def write_package(
    out: Path,
    model: Any,
    name: str,
    estimator: str,
    params: dict[str, Any],
    recipe: FusionRecipe,
    c_dev: Cohort,
    split: dict[str, Any],
    reproduce: str,
    metrics: dict[str, float] | None = None,
) -> Path:
    """Write a ``risk_model`` package; fusion models as ``model/`` (JSON + state_dict), others as ``model.skops``.

    Every package passes absent factors to its model (``impute_absent: false``): the fusion model masks absent
    modalities, the scikit-learn pipelines impute medians with missing indicators as in training.
    """
    out.mkdir(parents=True, exist_ok=True)
    horizons = list(recipe.horizons)
    h = recipe.primary_horizon
    fns = model.predict_survival_function(c_dev.X)
    dev_risk = np.array([1.0 - f(h) for f in fns])
    cut = [float(v) for v in np.quantile(dev_risk, [1 / 3, 2 / 3])]
    state = hasattr(model, "save")
    cfg = RiskInferenceConfig(
        cohort=c_dev.name,
        outcome=c_dev.outcome,
        outcome_description=OUTCOMES[c_dev.name][c_dev.outcome][1],
        kind="survival",
        estimator=estimator,
        params=params,
        horizons=horizons,
        primary_horizon=h,
        time_grid=[float(t) for t in np.unique(np.round(np.linspace(1, max(horizons), 60)))],
        risk_group_cutpoints=cut,
        reference=reference_values(c_dev),
        model_format="state" if state else "skops",
        impute_absent=False,
    )
    (out / INFERENCE_FILE).write_text(cfg.model_dump_json(indent=2))
    if state:
        model.save(out / STATE_DIR)
        files = [f"{STATE_DIR}/fusion.json", f"{STATE_DIR}/weights.pt"]
    else:
        import skops.io as sio

        sio.dump(model, out / MODEL_FILE)
        files = [MODEL_FILE]
    (out / "split.json").write_text(json.dumps(split))
    spec = c_dev.spec
    meta = ModelMetadata(
        name=name,
        version=recipe.version,
        predictor="risk_model",
        task="survival",
        description=recipe.description or OUTCOMES[c_dev.name][c_dev.outcome][1],
        input_contract=spec.model_dump(mode="json"),
        output_contract={
            "risks": "one RiskEstimate: horizons (days -> cumulative risk), survival curve, risk_group (tertiles "
            "of development risk at the primary horizon), top contributions (occlusion, log hazard)",
            "horizons_days": horizons,
            "modalities": recipe.modalities if state else {},
            "extras": "modality_weights: pooling weight of each modality (0 for an absent one)" if state else "",
        },
        training_data=[
            TrainingData(
                name=c_dev.name,
                description=f"development rows ({len(c_dev)} admissions) of the Zigong release; the held-out rows "
                f"of {recipe.split_from} were never used for tuning or selection",
                licence=spec.licence,
                n_cases=len(c_dev),
                citation=spec.citation,
            )
        ],
        metrics=metrics or {},
        files=[
            *files,
            INFERENCE_FILE,
            "split.json",
            "MODEL_CARD.md",
            f"evaluation/{EVAL_FILE}",
            f"evaluation/{FIGURE_FILE}",
        ],
        licence=spec.licence,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        hardware=f"{platform.machine()} CPU, 1 thread",
        reproduce=reproduce,
    )
    write_metadata(out, meta)
    return out


# ----------------------------------------------------------------------------------------------- evaluation
def drop_scenarios(modalities: dict[str, list[str]]) -> list[tuple[str, list[str]]]:
    """``(scenario, dropped modalities)``: none, each one dropped, each one alone."""
    names = list(modalities)
    out = [("all", [])]
    out += [(f"drop {m}", [m]) for m in names]
    out += [(f"only {m}", [o for o in names if o != m]) for m in names]
    return out


def with_dropped(
    X: pd.DataFrame, modalities: dict[str, list[str]], dropped: list[str]
) -> tuple[pd.DataFrame, np.ndarray]:
    """``X`` with the factors of ``dropped`` set missing, and the rows that keep at least one modality."""
    Xs = X.copy()
    for m in dropped:
        for col in modalities[m]:
            Xs[col] = np.nan if Xs[col].dtype != object else None
    keep = np.zeros(len(Xs), dtype=bool)
    for cols in modalities.values():
        keep |= ~Xs[cols].isna().all(axis=1).to_numpy()
    return Xs, keep


def _uno(y_train: np.ndarray, y: np.ndarray, s: np.ndarray, tau: float) -> float:
    return sm.uno_c(y_train, y, s, tau=tau)


def discrimination(
    y_train: np.ndarray, y: np.ndarray, score: np.ndarray, h_risk: np.ndarray, tau: float, n_boot: int, seed: int
) -> dict[str, Any]:
    """Harrell's C, Uno's C (truncated at ``tau``) with bootstrap CIs, and the ROC AUC of the event by ``tau``."""
    from sklearn.metrics import roc_auc_score

    out: dict[str, Any] = {"n": int(len(y)), "events": int(y["event"].sum())}
    if out["events"] == 0 or out["events"] == len(y):
        return out
    out["c_index"] = sm.harrell_c(y, score)
    out["c_index_ci"] = list(sm.bootstrap_ci(lambda i: sm.harrell_c(y[i], score[i]), len(y), n_boot, seed))
    try:
        out["uno_c"] = _uno(y_train, y, score, tau)
        out["uno_c_ci"] = list(sm.bootstrap_ci(lambda i: _uno(y_train, y[i], score[i], tau), len(y), n_boot, seed))
    except ValueError as exc:
        logger.info("Uno's C not computable: %s", exc)
    died = y["event"] & (y["time"] <= tau)
    if 0 < died.sum() < len(y):
        out["auc_event_by_horizon"] = float(roc_auc_score(died, h_risk))
    return out


def paired_delta(y: np.ndarray, a: np.ndarray, b: np.ndarray, n_boot: int, seed: int) -> dict[str, Any]:
    """Harrell's C of ``a`` minus that of ``b`` on the same rows, with a paired percentile bootstrap CI."""
    d = sm.harrell_c(y, a) - sm.harrell_c(y, b)
    lo, hi = sm.bootstrap_ci(lambda i: sm.harrell_c(y[i], a[i]) - sm.harrell_c(y[i], b[i]), len(y), n_boot, seed)
    return {"delta_c_index": float(d), "delta_ci": [lo, hi]}


def predict_package(pred: Predictor, X: pd.DataFrame, h: float) -> dict[str, np.ndarray]:
    """Risk score, risk by ``h`` and modality weights (fusion) of every row of ``X`` via ``predict_batch``."""
    preds = pred.predict_batch(rows_of(X))  # type: ignore[attr-defined]
    est = [p.risks[0] for p in preds]
    out = {
        "score": np.array([e.risk_score for e in est], float),
        "risk_h": np.array([e.horizons[horizon_key(h)] for e in est], float),
    }
    if preds and "modality_weights" in preds[0].extras:
        names = list(preds[0].extras["modality_weights"])
        out["weights"] = np.array([[p.extras["modality_weights"][m] for m in names] for p in preds], float)
    return out


def evaluate(
    packages: dict[str, Path],
    c_test: Cohort,
    y_dev: np.ndarray,
    recipe: FusionRecipe,
) -> dict[str, Any]:
    """Held-out figures of every package, through its Predictor, for every missing-modality scenario."""
    preds = {k: Predictor.from_package(p) for k, p in packages.items()}
    h, nb, seed = recipe.primary_horizon, recipe.bootstrap, recipe.seed
    res: dict[str, Any] = {"scenarios": {}}
    full: dict[str, dict[str, np.ndarray]] = {}
    for scen, dropped in drop_scenarios(recipe.modalities):
        Xs, keep = with_dropped(c_test.X, recipe.modalities, dropped)
        y = c_test.y[keep]
        block: dict[str, Any] = {"dropped": dropped, "n_rows": int(keep.sum()), "models": {}}
        t0 = time.perf_counter()
        for k, pred in preds.items():
            p = predict_package(pred, Xs[keep].reset_index(drop=True), h)
            block["models"][k] = discrimination(y_dev, y, p["score"], p["risk_h"], h, nb, seed)
            if scen == "all":
                full[k] = p
        res["scenarios"][scen] = block
        logger.info(
            "%s (%d rows, %.1fs): %s", scen, keep.sum(), time.perf_counter() - t0,
            {k: round(v.get("c_index", float("nan")), 3) for k, v in block["models"].items()},
        )  # fmt: skip
    ship = recipe.ship
    res["paired_vs_ship"] = {
        k: paired_delta(c_test.y, full[ship]["score"], full[k]["score"], nb, seed) for k in preds if k != ship
    }
    # natural missingness: rows whose echo (or any modality) is absent in the record
    sub: dict[str, Any] = {}
    for m, cols in recipe.modalities.items():
        absent = c_test.X[cols].isna().all(axis=1).to_numpy()
        if 0 < absent.sum() < len(absent):
            for label, mask in ((f"{m} recorded", ~absent), (f"{m} absent in the record", absent)):
                sub[label] = {
                    k: discrimination(y_dev, c_test.y[mask], v["score"][mask], v["risk_h"][mask], h, nb, seed)
                    for k, v in full.items()
                }
    res["natural_missingness"] = sub
    if "weights" in full[ship]:
        w = full[ship]["weights"]
        names = list(recipe.modalities)
        allp = np.ones(len(w), dtype=bool)
        for cols in recipe.modalities.values():
            allp &= ~c_test.X[cols].isna().all(axis=1).to_numpy()
        res["modality_weights"] = {
            "mean_all_rows": dict(zip(names, w.mean(0).round(4).tolist(), strict=True)),
            "mean_rows_with_every_modality": dict(zip(names, w[allp].mean(0).round(4).tolist(), strict=True))
            if allp.any()
            else {},
            "n_rows_with_every_modality": int(allp.sum()),
        }
    return res


def plot_missing(res: dict[str, Any], models: list[str], path: Path) -> Path:
    """Grouped bars of Harrell's C (95 % bootstrap CI) per missing-modality scenario and model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scen = list(res["scenarios"])
    fig, ax = plt.subplots(figsize=(1.1 * len(scen) + 2, 4))
    width = 0.8 / len(models)
    for j, k in enumerate(models):
        c = [res["scenarios"][s]["models"][k].get("c_index", np.nan) for s in scen]
        ci = [res["scenarios"][s]["models"][k].get("c_index_ci", [np.nan, np.nan]) for s in scen]
        err = np.array([[ci_i[0], ci_i[1]] for ci_i in ci], float).T
        yerr = np.abs(err - np.array(c)[None, :])
        xs = np.arange(len(scen)) + (j - (len(models) - 1) / 2) * width
        ax.bar(xs, c, width, yerr=yerr, capsize=2, label=LABELS.get(k, k))
    ax.axhline(0.5, color="grey", lw=0.8, ls="--")
    ax.set_xticks(np.arange(len(scen)), [f"{s}\n(n={res['scenarios'][s]['n_rows']})" for s in scen], fontsize=8)
    ax.set_ylim(0.3, 1.1)
    ax.set_ylabel("Harrell's C (95 % bootstrap CI)")
    ax.set_title("Zigong held-out: C-index when modalities are missing at test time", fontsize=10)
    ax.legend(fontsize=8, loc="upper center", ncol=len(models), frameon=False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ----------------------------------------------------------------------------------------------- card
def _fmt(d: dict[str, Any], key: str = "c_index") -> str:
    v = d.get(key)
    if v is None:
        return "n/a"
    ci = d.get(f"{key}_ci") or [float("nan"), float("nan")]
    return f"{v:.3f} ({ci[0]:.3f}-{ci[1]:.3f})"


def model_card(ev: dict[str, Any]) -> str:
    """``MODEL_CARD.md`` text generated from the evaluation JSON."""
    models = ev["models"]
    ship = ev["ship"]
    lab = {k: LABELS.get(k, k) for k in models}
    scen = ev["test"]["scenarios"]
    allm = scen["all"]["models"]
    lines = [
        f"# {ev['package']}",
        "",
        ev["outcome_description"],
        "",
        "Research use only. Not a medical device.",
        "",
        f"Data: {ev['citation']} ({ev['licence']}).",
        "",
        "## Model",
        "",
        "Multimodal fusion survival model (`fusion_survival`, `models.fusion`): one small MLP encoder per modality, "
        "a learned modality embedding, attention pooling over the modalities present in the record (an absent "
        "modality -- every factor missing -- is masked out and gets weight 0), a Cox partial-likelihood head "
        "(Breslow ties) and the Breslow baseline hazard. Modality dropout during training; internal validation "
        "split for early stopping. Parameters: `" + json.dumps(ev["params"][ship]) + "`.",
        "",
        "Modalities (from the recipe):",
        "",
    ]
    lines += [f"- **{m}** ({len(c)}): {', '.join(f'`{x}`' for x in c)}" for m, c in ev["modalities"].items()]
    lines += [
        "",
        "## Evaluation",
        "",
        f"Held-out rows: {ev['split']['n_test']} admissions ({ev['split']['test_events']} deaths within 6 months) of "
        f"`{ev['split']['source']}`, never used for tuning or selection; development: {ev['split']['n_dev']} "
        f"({ev['split']['dev_events']} deaths). Every figure comes from `Predictor.from_package(...).predict_batch` "
        "on those rows; the baselines were packaged the same way in a temporary folder. Grid points were chosen by "
        f"{ev['cv_folds']}-fold CV on the development rows.",
        "",
        f"Command: `{ev['command']}`",
        "",
        "| model | CV C (dev) | Harrell's C (95 % CI) | Uno's C (95 % CI) | 6-month death AUC |",
        "|---|---|---|---|---|",
    ]
    for k in models:
        a = allm[k]
        auc = a.get("auc_event_by_horizon")
        lines.append(
            f"| {lab[k]} | {ev['cv'][k]['best_c_index']:.3f} | {_fmt(a)} | {_fmt(a, 'uno_c')} | "
            f"{'n/a' if auc is None else f'{auc:.3f}'} |"
        )
    if all(abs(allm[k].get("uno_c", -1) - allm[k].get("c_index", -2)) < 1e-9 for k in models):
        lines += [
            "",
            "Uno's C equals Harrell's C here: the only censoring is at 6 months, after every death, so every IPCW "
            "weight is 1.",
        ]
    for k, d in ev["test"]["paired_vs_ship"].items():
        lines.append("")
        lines.append(
            f"Paired difference {lab[ship]} - {lab[k]} in Harrell's C: {d['delta_c_index']:+.3f} "
            f"(95 % CI {d['delta_ci'][0]:+.3f} to {d['delta_ci'][1]:+.3f})."
        )
    for name, r in ev.get("reference_packages", {}).items():
        lines += ["", f"Reference on the same rows: `{name}` ({r['what']}): {_fmt(r['metrics'])} Harrell's C."]
    lines += [
        "",
        "### Missing modalities at test time",
        "",
        "Harrell's C (95 % bootstrap CI). Dropped factors are passed as absent: the fusion model masks the "
        "modality; CoxPH and RSF impute the training median together with the missing indicator their pipelines "
        "were trained with. Rows left with no modality are excluded from that scenario (n rows).",
        "",
        "| scenario | n rows (events) | " + " | ".join(lab[k] for k in models) + " |",
        "|---|---|" + "---|" * len(models),
    ]
    for s, b in scen.items():
        ev_n = next(iter(b["models"].values()))["events"]
        lines.append(f"| {s} | {b['n_rows']} ({ev_n}) | " + " | ".join(_fmt(b["models"][k]) for k in models) + " |")
    nat = ev["test"].get("natural_missingness", {})
    if nat:
        lines += ["", "Rows as recorded, by natural missingness:", ""]
        lines += ["| rows | n (events) | " + " | ".join(lab[k] for k in models) + " |"]
        lines += ["|---|---|" + "---|" * len(models)]
        for s, b in nat.items():
            f0 = next(iter(b.values()))
            lines.append(f"| {s} | {f0['n']} ({f0['events']}) | " + " | ".join(_fmt(b[k]) for k in models) + " |")
    w = ev["test"].get("modality_weights")
    if w:
        lines += [
            "",
            "Mean pooling weight per modality on the held-out rows: "
            + ", ".join(f"{m} {v:.2f}" for m, v in w["mean_all_rows"].items())
            + f"; rows with every modality ({w['n_rows_with_every_modality']}): "
            + ", ".join(f"{m} {v:.2f}" for m, v in w["mean_rows_with_every_modality"].items())
            + ".",
        ]
    lines += [
        "",
        f"![missing modalities](evaluation/{FIGURE_FILE})",
        "",
        "## Limitations",
        "",
        f"- Only {ev['split']['test_events']} deaths in the held-out rows: the confidence intervals are wide"
        + (
            "; every paired difference's CI includes 0, so the models are not distinguishable on this test set."
            if all(d["delta_ci"][0] <= 0 <= d["delta_ci"][1] for d in ev["test"]["paired_vs_ship"].values())
            else "."
        ),
        "- Time to death is missing for 16 of the 57 deaths of the release; those times are the midpoints of the "
        "interval given by the 28-day / 3-month / 6-month flags. Every survivor is censored at 6 months.",
        "- Single centre (Zigong, Sichuan, 2016-19); no external validation.",
        "- A record with no factor of any modality cannot be scored.",
    ]
    if ev.get("notes"):
        lines += ["", "## Notes", ""] + [f"- {n}" for n in ev["notes"]]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------- flow
def run(
    recipe: FusionRecipe, out: Path, data: Path | None = None, command: str = "", baseline_dir: Path | None = None
) -> dict[str, Any]:
    """Train, package and evaluate (see module docstring); returns the evaluation dict (also written as JSON)."""
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    t_start = time.perf_counter()
    root = Path(data or recipe.data or find_data_dir() or "")
    if not str(root) or not root.exists():
        raise ConfigError("real data not found: pass --data or set MEDAI_DATA_DIR")
    c = load_cohort(recipe.cohort, recipe.outcome, root)
    if c.kind != "survival":
        raise ConfigError(f"{recipe.cohort}/{recipe.outcome} is not a survival outcome")
    check_modalities(c.spec, recipe.modalities)
    split_path = Path(recipe.split_from)
    split_path = split_path if split_path.is_absolute() else ROOT / split_path
    dev, test, split_raw = read_split(split_path, len(c))
    if recipe.subsample:
        dev = subsample_rows(dev, c.y["event"], recipe.subsample, recipe.seed)
        test = subsample_rows(test, c.y["event"], max(20, recipe.subsample // 3), recipe.seed)
    c_dev, c_test = c.subset(dev), c.subset(test)
    split = {
        "dev": dev.tolist(),
        "test": test.tolist(),
        "seed": split_raw.get("seed"),
        "test_size": split_raw.get("test_size"),
        "source": recipe.split_from,
    }
    reproduce = command or f"python -m pipelines.fusion.zigong --out {out}"
    ev: dict[str, Any] = {
        "package": recipe.name,
        "version": recipe.version,
        "command": reproduce,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "hardware": f"{platform.machine()} CPU, 1 thread",
        "cohort": c.name,
        "outcome": c.outcome,
        "outcome_description": OUTCOMES[c.name][c.outcome][1],
        "citation": c.spec.citation,
        "licence": c.spec.licence,
        "modalities": recipe.modalities,
        "split": {
            "source": recipe.split_from,
            "n_dev": len(dev),
            "n_test": len(test),
            "dev_events": int(c_dev.y["event"].sum()),
            "test_events": int(c_test.y["event"].sum()),
            "subsample": recipe.subsample,
        },
        "ship": recipe.ship,
        "models": [m.name for m in recipe.models],
        "cv_folds": recipe.cv_folds,
        "evaluated_through": "Predictor.from_package(...).predict_batch(held-out rows)",
        "missing_modality_handling": {
            "fusion": "dropped factors passed as absent; the modality is masked out of the pooling (weight 0)",
            "baselines": "dropped factors passed as absent; the scikit-learn pipeline imputes the training median "
            "and sets the missing indicator it was trained with (as for naturally missing values)",
        },
        "cv": {},
        "params": {},
        "notes": list(recipe.notes),
    }
    packages: dict[str, Path] = {}
    tmp = tempfile.TemporaryDirectory(prefix="fusion_baselines_") if baseline_dir is None else None
    bdir = baseline_dir or Path(tmp.name)  # type: ignore[union-attr]
    try:
        with threadpool_limits(1):
            for entry in recipe.models:
                t0 = time.perf_counter()
                params, table = cv_select(entry, c_dev, recipe)
                model = make_model(entry.name, params, c_dev.spec, recipe.modalities).fit(c_dev.X, c_dev.y)
                ev["cv"][entry.name] = {"table": table, "best_c_index": max(r["c_index"] for r in table)}
                ev["params"][entry.name] = params
                is_ship = entry.name == recipe.ship
                name = recipe.name if is_ship else f"{recipe.name}_baseline_{entry.name}"
                pdir = out if is_ship else bdir / entry.name
                packages[entry.name] = write_package(
                    pdir, model, name, entry.name, params, recipe, c_dev, split, reproduce
                )
                logger.info("%s: CV + fit + package in %.1fs", entry.name, time.perf_counter() - t0)
            ev["test"] = evaluate(packages, c_test, c_dev.y, recipe)
            ev["reference_packages"] = reference_packages(c, test, recipe)
    finally:
        if tmp is not None:
            tmp.cleanup()
    ev["runtime_s"] = round(time.perf_counter() - t_start, 1)
    (out / "evaluation").mkdir(parents=True, exist_ok=True)
    (out / "evaluation" / EVAL_FILE).write_text(json.dumps(ev, indent=2, default=float))
    finish_package(out)
    return ev


def reference_packages(c: Cohort, test: np.ndarray, recipe: FusionRecipe) -> dict[str, Any]:
    """The shipped binary Zigong package on the same held-out rows (context; its own factors, no echo fields)."""
    pkg = ROOT / Path(recipe.split_from).parent
    if recipe.subsample or not (pkg / "metadata.json").is_file():
        return {}
    pred = Predictor.from_package(pkg)
    names = pred.spec.names  # type: ignore[attr-defined]
    X = c.X.iloc[test][names].reset_index(drop=True)
    preds = pred.predict_batch(rows_of(X))  # type: ignore[attr-defined]
    p = np.array([e.risks[0].risk_score for e in preds])
    y = c.y[test]
    m = {"c_index": sm.harrell_c(y, p)}
    m["c_index_ci"] = list(sm.bootstrap_ci(lambda i: sm.harrell_c(y[i], p[i]), len(y), recipe.bootstrap, recipe.seed))
    return {pred.metadata.name: {"what": f"{pred.config.estimator}, 6-month death classifier", "metrics": m}}  # type: ignore[attr-defined]


def finish_package(out: Path) -> None:
    """Chart, held-out metrics in ``metadata.json`` and ``MODEL_CARD.md``, all generated from the evaluation JSON."""
    from medai.inference.package import read_metadata

    ev = json.loads((out / "evaluation" / EVAL_FILE).read_text())
    plot_missing(ev["test"], ev["models"], out / "evaluation" / FIGURE_FILE)
    a = ev["test"]["scenarios"]["all"]["models"][ev["ship"]]
    metrics = {f"test/{k}": float(a[k]) for k in ("c_index", "uno_c", "auc_event_by_horizon") if k in a}
    metrics["cv/c_index"] = float(ev["cv"][ev["ship"]]["best_c_index"])
    for s, b in ev["test"]["scenarios"].items():
        if s != "all" and "c_index" in b["models"][ev["ship"]]:
            metrics[f"test/c_index/{s.replace(' ', '_')}"] = float(b["models"][ev["ship"]]["c_index"])
    meta = read_metadata(out)
    write_metadata(out, meta.model_copy(update={"metrics": metrics}))
    (out / "MODEL_CARD.md").write_text(model_card(ev))


def main(argv: list[str] | None = None) -> int:
    """Command line (see module docstring)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(prog="python -m pipelines.fusion.zigong", description=__doc__.split("\n")[0])
    ap.add_argument("--recipe", default=str(DEFAULT_RECIPE.relative_to(ROOT)), help="fusion recipe YAML")
    ap.add_argument("--out", required=True, help="package folder to write")
    ap.add_argument("--data", default=None, help="real-data root (default: MEDAI_DATA_DIR or ../shared/data)")
    ap.add_argument("--card-only", action="store_true", help="regenerate metadata metrics and the card from the JSON")
    ap.add_argument("overrides", nargs="*", help="recipe overrides key=value (dotted keys, YAML values)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    out = Path(args.out)
    if args.card_only:
        finish_package(out)
        return 0
    recipe_path = Path(args.recipe)
    recipe = load_fusion_recipe(recipe_path if recipe_path.is_absolute() else ROOT / recipe_path, args.overrides)
    cmd = " ".join(["python -m pipelines.fusion.zigong", *(shlex.quote(a) for a in argv)])
    ev = run(recipe, out, Path(args.data) if args.data else None, command=cmd)
    logger.info("wrote %s in %.0fs", out / "evaluation" / EVAL_FILE, ev["runtime_s"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
