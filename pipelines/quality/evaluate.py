"""Held-out evaluation of ``heart_mr_quality`` through its predictor.

    medai evaluate heart_mr_quality --data ../shared/data/cardiac/acdc --format acdc --out F.json
    medai evaluate heart_mr_quality --data ../shared/data/cardiac/emidec --format emidec --out F.json
    medai evaluate heart_mr_quality --data ../shared/data/cardiac/sunnybrook --format sunnybrook --out F.json

* **Artefacts** (every format): each held-out slice as it is, and once with each artefact class simulated at a
  random strength (seed :data:`SEED`); per-class AUC (one class against every other image), "good" AUC (clean
  against any artefact), severity Spearman, and the false-alarm rate (real, unmodified slices flagged).
* **Coverage** (``acdc``): each held-out stack segmented by the cine model, then 0-2 basal or apical LV slices
  removed; error rate of the basal / apical decisions.
* **Segmentation quality** (``acdc``, ``sunnybrook``): each held-out stack segmented as it is and with a simulated
  artefact; predicted against real Dice: MAE, Pearson r, and the share of bad segmentations (real Dice < 0.8)
  that the gate's thresholds catch.

Held out: ACDC ``val`` (``--split``, default ``val`` when the folder has ``splits.csv``; every patient
otherwise), EMIDEC fold 0, the Sunnybrook patients of :func:`pipelines.quality.data.heldout_sunnybrook`.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from medai.errors import ConfigError

logger = logging.getLogger(__name__)

SEED = 2026
#: real Dice below which a segmentation counts as bad
BAD_DICE = 0.8


def _gate_params() -> Any:
    from medai.analyses.steps import CONFIG_DIR, read_step_config
    from medai.analyses.steps.quality import QualityParams

    return QualityParams.model_validate(read_step_config(CONFIG_DIR / "quality.yaml").params)


def artefact_metrics(predictor: Any, slices: list[Any], threshold: float, seed: int = SEED) -> dict[str, Any]:
    """Per-class AUC, severity Spearman and false-alarm rate on ``slices`` (see the module docstring)."""
    from scipy.stats import spearmanr
    from sklearn.metrics import roc_auc_score

    from pipelines.quality.data import EVAL_VARIANTS, make_samples

    samples = make_samples(slices, len(EVAL_VARIANTS), seed, forced=list(EVAL_VARIANTS), raw=True)
    scores = predictor.score_slices(samples.x)
    out: dict[str, Any] = {"n_real_slices": len(slices), "n_images": len(samples),
                           "n_patients": len({(s.source, s.patient) for s in slices}), "per_class": {}}
    for k, name in enumerate(scores.artefacts):
        y = samples.presence[:, k]
        sel = y > 0
        rho = spearmanr(scores.severity[sel, k], samples.severity[sel, k]).statistic if sel.sum() > 2 else None
        out["per_class"][name] = {"auc": float(roc_auc_score(y, scores.presence[:, k])),
                                  "sensitivity": float((scores.presence[sel, k] > threshold).mean()),
                                  "severity_spearman": None if rho is None else float(rho),
                                  "n_positive": int(sel.sum())}
    clean = samples.presence.sum(1) == 0
    out["good_auc"] = float(roc_auc_score(clean.astype(int), scores.good))
    flagged = scores.presence.max(1) > threshold
    out["false_alarm_rate"] = float(flagged[clean].mean())
    out["any_artefact_sensitivity"] = float(flagged[~clean].mean())
    out["false_alarm_by_source"] = {src: float(flagged[clean & (samples.source == src)].mean())
                                    for src in sorted(set(samples.source[clean]))}
    out["mean_auc"] = float(np.mean([v["auc"] for v in out["per_class"].values()]))
    out["threshold"] = threshold
    return out


def coverage_metrics(rows: list[dict[str, Any]], thresholds: dict[str, float], key: str = "") -> dict[str, Any]:
    """Error rates of the basal / apical decisions over the truncation rows, at the gate's thresholds per end
    (and, for reference, at 0.5). ``key``: which probabilities (``""``: from images and segmentation, as the gate
    judges; ``"_seg_only"``: from the segmentation alone)."""
    out: dict[str, Any] = {"n_stacks": len({r["case"] for r in rows}), "n_variants": len(rows)}
    errs, errs05 = [], []
    for end in ("basal", "apical"):
        t = thresholds[end]
        y = np.array([r[f"{end}_missing"] for r in rows], dtype=bool)
        p = np.array([r[f"p_{end}{key}"] for r in rows], dtype=float)
        wrong = (p >= t) != y
        errs.append(wrong)
        errs05.append((p >= 0.5) != y)
        out[end] = {"error_rate": float(wrong.mean()), "sensitivity": float((p[y] >= t).mean()),
                    "specificity": float((p[~y] < t).mean()), "n_missing": int(y.sum()),
                    "n_complete": int((~y).sum()), "threshold": t, "error_rate_at_0.5": float(errs05[-1].mean())}
        if all(f"{end}_depth" in r for r in rows):  # how many LV slices were removed: one is the hard case
            depth = np.array([r[f"{end}_depth"] for r in rows], dtype=int)
            out[end]["sensitivity_by_slices_missing"] = {str(d): float((p[depth == d] >= t).mean())
                                                         for d in sorted(set(depth[y].tolist()))}
    out["error_rate"] = float(np.concatenate(errs).mean())
    out["error_rate_at_0.5"] = float(np.concatenate(errs05).mean())
    return out


def seg_quality_metrics(rows: list[dict[str, Any]], limits: dict[str, float]) -> dict[str, Any]:
    """Predicted-vs-real Dice: MAE, r, catch rate of bad cases (< :data:`BAD_DICE`) by the gate's limits."""

    def summary(sub: list[dict[str, Any]]) -> dict[str, Any]:
        if not sub:
            return {"n": 0}
        pred = np.array([r["predicted"] for r in sub], dtype=float)
        real = np.array([r["dice"] for r in sub], dtype=float)
        flagged = np.array([r["predicted"] < limits.get(r["structure"], BAD_DICE) for r in sub])
        bad = real < BAD_DICE
        return {"n": len(sub), "mae": float(np.abs(pred - real).mean()),
                "pearson_r": float(np.corrcoef(pred, real)[0, 1]) if len(sub) > 2 and real.std() > 0 else None,
                "n_bad": int(bad.sum()), "catch_rate": float(flagged[bad].mean()) if bad.any() else None,
                "false_alarm_rate": float(flagged[~bad].mean()) if (~bad).any() else None,
                "real_dice_mean": float(real.mean()), "predicted_dice_mean": float(pred.mean())}

    out: dict[str, Any] = {"all": summary(rows), "clean": summary([r for r in rows if r["artefact"] is None]),
                           "corrupted": summary([r for r in rows if r["artefact"] is not None]),
                           "per_structure": {s: summary([r for r in rows if r["structure"] == s])
                                             for s in sorted({r["structure"] for r in rows})},
                           "bad_dice": BAD_DICE, "limits": limits}
    return out


def evaluate(predictor: Any, data: Path, fmt: str, split: str | None = None, cine_ref: str = "heart_mr_cine_seg",
             variants: int = 4, progress: Any = None) -> dict[str, Any]:
    """The held-out metrics of ``fmt`` data at ``data`` (see the module docstring); ``progress(text)`` is told
    each stage as it starts."""
    say = progress or logger.info
    from pipelines.quality import data as qdata

    params = _gate_params()
    data = Path(data)
    t0 = time.perf_counter()
    out: dict[str, Any] = {"model": predictor.metadata.name, "version": predictor.metadata.version,
                           "data": str(data), "format": fmt, "seed": SEED}
    cases = None
    if fmt == "acdc":
        from medai.datasets.acdc import find_acdc_splits, load_acdc_release

        if split is None and find_acdc_splits(data) is not None:
            split = "val"
        out["split"] = split or "all"
        slices = qdata.acdc_slices(data, split) if split else [
            qdata.RealSlice("acdc", c.patient_id, "cine", z) for c in load_acdc_release(data) for z in c.image]
        cases = load_acdc_release(data, split=split)
    elif fmt == "emidec":
        slices = qdata.emidec_slices(data, heldout=True)
        out["split"] = "fold 0 (held out)"
    elif fmt == "sunnybrook":
        from medai.datasets.sunnybrook import load_sunnybrook_patient

        slices = qdata.sunnybrook_slices(data, heldout=True)
        held = sorted({s.patient for s in slices})
        out["split"] = f"held out: {', '.join(held)}"
        cases = [c for p in held for c in load_sunnybrook_patient(data, p)]
    else:
        raise ConfigError(f"heart_mr_quality evaluates --format acdc, emidec or sunnybrook, not {fmt!r}")
    if not slices:
        raise ConfigError(f"no held-out slices found in {data} for --format {fmt}")
    say(f"artefacts: {len(slices)} held-out slices, clean and with each of 4 simulated artefacts")
    out["artefacts"] = artefact_metrics(predictor, slices, params.slice_threshold)
    if cases:
        from medai.cardiac.predictor import load_default
        from pipelines.quality.gate_data import coverage_rows, seg_quality_rows

        cine = load_default(cine_ref)
        out["segmentation_model"] = f"{cine.metadata.name} {cine.metadata.version}"
        if fmt == "acdc" and predictor.coverage_model is not None:
            say(f"coverage: {len(cases)} stacks segmented, then truncated")
            rows = coverage_rows(cine, cases, predictor)
            thresholds = {e: predictor.coverage_threshold(e, params.coverage_threshold) for e in ("basal", "apical")}
            out["coverage"] = coverage_metrics(rows, thresholds)
            out["coverage"]["judged_from"] = "images and segmentation" if predictor.coverage_nets else "segmentation"
            from pipelines.quality.fit_gate import THRESHOLD_RULE

            # packages before 1.2.0 did not write their rule down; it was the same one
            out["coverage"]["threshold_rule"] = predictor.coverage_model.get("threshold_rule", THRESHOLD_RULE)
            if predictor.coverage_nets:  # the same rows judged without the images, for comparison
                seg_t = {e: predictor.coverage_threshold(e, params.coverage_threshold, from_images=False)
                         for e in ("basal", "apical")}
                out["coverage"]["segmentation_only"] = coverage_metrics(rows, seg_t, key="_seg_only")
        if predictor.seg_models is not None:
            say(f"segmentation quality: {len(cases)} stacks x {variants} variants segmented")
            rows = seg_quality_rows(cine, predictor, cases, variants, SEED)
            out["segmentation_quality"] = seg_quality_metrics(rows, params.min_predicted_dice)
            out["segmentation_quality"]["rows"] = [{k: v for k, v in r.items() if k != "features"} for r in rows]
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return out


def evaluate_cli(model: str, data: Path, fmt: str, out: Path, package: Path | None = None,
                 split: str | None = None) -> dict[str, Any]:
    """``medai evaluate heart_mr_quality ...``: write the metrics JSON (and print a short table)."""
    from rich.console import Console

    from medai.inference.predictor import Predictor
    from medai.quality.predictor import QualityPredictor

    console = Console(stderr=True)
    pred = Predictor.from_package(package or model)
    if not isinstance(pred, QualityPredictor):
        raise ConfigError(f"{package or model} is a {pred.metadata.predictor} package, not an mr_quality one")
    if fmt == "auto":
        fmt = "acdc"
    res = evaluate(pred, data, fmt, split, progress=lambda t: console.print(f"[dim]{time.strftime('%H:%M:%S')}[/] {t}"))
    res["command"] = " ".join(["medai evaluate", *sys.argv[2:]]) if sys.argv and "evaluate" in sys.argv else ""
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(res, indent=1))
    a = res["artefacts"]
    console.print("artefact AUC " + ", ".join(f"{k} {v['auc']:.3f}" for k, v in a["per_class"].items())
                  + f"; good {a['good_auc']:.3f}; false alarms {100 * a['false_alarm_rate']:.1f} %")
    if "coverage" in res:
        console.print(f"coverage error {100 * res['coverage']['error_rate']:.1f} %")
    if "segmentation_quality" in res:
        q = res["segmentation_quality"]["all"]
        console.print(f"predicted vs real Dice MAE {q['mae']:.3f}, r {q['pearson_r']:.2f}, bad cases caught "
                      f"{q['catch_rate'] if q['catch_rate'] is None else round(100 * q['catch_rate'], 1)} %")
    console.print(f"wrote {out}")
    return res
