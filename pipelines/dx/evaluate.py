"""Evaluation of the cine diagnosis package on an official-layout ACDC folder, from the images.

``medai evaluate heart_mr_cine_dx --data DIR --format acdc [--split val] --out FILE.json``

For every ``patientNNN`` folder (``Info.cfg`` + the ED/ES frames; ``_gt`` masks are never read):
:meth:`CineDxPredictor.predict_volumes` (the package's cine segmentation, the features, the classifier) with the
primary estimator, then the other estimator and each modality subset of ``missing_modality_sets`` on the same
features through :meth:`CineDxPredictor.predict` (``modalities=`` subset). Patients whose ``Info.cfg`` has no
``Group`` are predicted but not scored.

The JSON holds, per estimator: ``accuracy``, ``balanced_accuracy``, ``per_class_recall``, ``confusion_matrix``,
``log_loss``, ``brier`` and ``ece_top_label_5_bins``; the missing-modality table; mean per-modality
contributions and the top feature attributions; and one row per patient. A confusion-matrix PNG goes beside it.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from medai.cardiac.dx_predictor import CineDxPredictor, load_dx
from medai.errors import ConfigError

logger = logging.getLogger(__name__)

#: Modality subsets scored when the package's recipe names none.
DEFAULT_SETS = {
    "cine_plus_clinical": ["cmr_volumes", "cmr_wall", "clinical"],
    "cine_only": ["cmr_volumes", "cmr_wall"],
    "measurements_plus_clinical": ["cmr_volumes", "clinical"],
    "measurements_only": ["cmr_volumes"],
}


def _mean_dict(rows: list[dict[str, float]]) -> dict[str, float]:
    keys = sorted({k for r in rows for k in r})
    return {k: float(np.mean([r[k] for r in rows if k in r])) for k in keys}


def evaluate(
    predictors: dict[str, CineDxPredictor],
    primary: str,
    data: Path,
    split: str | None = None,
    sets: dict[str, list[str]] | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Score every estimator (and modality subset) on the patients of ``data``.

    Args:
        predictors: estimator name -> loaded predictor (sharing one segmentation predictor).
        primary: the estimator whose ``predict_volumes`` runs the segmentation.
        sets: modality subsets for the missing-modality table (default :data:`DEFAULT_SETS`, restricted to the
            package's modalities).
    """
    from pipelines.dx.data import acdc_patient_dirs, read_dx_case
    from pipelines.dx.train import classification_metrics

    main = predictors[primary]
    classes = [c.name for c in main.config.classes]
    mods = set(main.config.modalities)
    sets = {k: v for k, v in (sets or DEFAULT_SETS).items() if set(v) <= mods}
    dirs = acdc_patient_dirs(Path(data), split)
    rows: list[dict[str, Any]] = []
    probs: dict[str, list[np.ndarray]] = {f"{e}/{s}": [] for e in predictors for s in ["all", *sets]}
    contrib: dict[str, list[dict[str, float]]] = {e: [] for e in predictors}
    attrib: dict[str, list[dict[str, float]]] = {e: [] for e in predictors}
    weights: list[dict[str, float]] = []
    t0 = time.perf_counter()
    for i, d in enumerate(dirs):
        case = read_dx_case(d)
        pred = main.predict_volumes(case.ed, case.es, case.patient)
        feats = pred.extras["features"]
        row: dict[str, Any] = {"patient": case.patient_id, "group": case.group}
        for name, p in predictors.items():
            full = pred if name == primary else p.predict({"features": feats})
            probs[f"{name}/all"].append(np.array([c.probability for c in full.classes]))
            contrib[name].append(full.extras["modality_contributions"])
            attrib[name].append(full.extras["feature_attributions"])
            if name == main.config.fusion_estimator and "modality_weights" in full.extras:
                weights.append(full.extras["modality_weights"])
            row[name] = {"predicted": full.extras["predicted_class"],
                         "probabilities": {c.name: round(c.probability, 4) for c in full.classes}}
            for s, subset in sets.items():
                sp = p.predict({"features": feats, "modalities": subset})
                probs[f"{name}/{s}"].append(np.array([c.probability for c in sp.classes]))
        row["features"] = feats
        rows.append(row)
        if progress is not None:
            progress(f"{i + 1}/{len(dirs)} {case.patient_id}: {case.group or '?'} -> "
                     f"{row[primary]['predicted']} ({time.perf_counter() - t0:.0f} s)")
    scored = [j for j, r in enumerate(rows) if r["group"] in classes]
    unknown = sorted({r["group"] for r in rows if r["group"] and r["group"] not in classes})
    if unknown:
        raise ConfigError(f"Info.cfg groups {unknown} are not classes of this model ({classes})")
    y = [rows[j]["group"] for j in scored]
    out: dict[str, Any] = {"n_patients": len(rows), "n_scored": len(scored), "classes": classes,
                           "primary": primary, "estimators": {}, "missing_modality": {}}
    for name in predictors:
        if scored:
            P = np.stack(probs[f"{name}/all"])[scored]
            out["estimators"][name] = classification_metrics(y, P, classes)
            out["missing_modality"][name] = {}
            for s, subset in sets.items():
                Ps = np.stack(probs[f"{name}/{s}"])[scored]
                m = classification_metrics(y, Ps, classes)
                out["missing_modality"][name][s] = {"modalities": subset, "accuracy": m["accuracy"],
                                                    "balanced_accuracy": m["balanced_accuracy"],
                                                    "log_loss": m["log_loss"]}
        mean_attr = _mean_dict([{k: abs(v) for k, v in a.items()} for a in attrib[name]])
        out.setdefault("explanations", {})[name] = {
            "mean_modality_contribution": _mean_dict(contrib[name]),
            "mean_abs_feature_attribution_top10": dict(sorted(mean_attr.items(), key=lambda kv: -kv[1])[:10]),
        }
    if weights:
        out["explanations"]["fusion_mean_modality_weights"] = _mean_dict(weights)
    for name in predictors:  # headline keys: the primary estimator
        if name == primary and name in out["estimators"]:
            out.update({k: out["estimators"][name][k] for k in ("accuracy", "balanced_accuracy", "per_class_recall",
                                                                  "confusion_matrix")})
    out["patients"] = rows
    out["wall_time_s"] = time.perf_counter() - t0
    return out


def confusion_png(res: dict[str, Any], path: Path) -> None:
    """Confusion matrices of every estimator, side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ests = list(res["estimators"])
    if not ests:
        return
    fig, axes = plt.subplots(1, len(ests), figsize=(4.2 * len(ests), 4))
    for ax, name in zip(np.atleast_1d(axes), ests, strict=True):
        cm = np.asarray(res["estimators"][name]["confusion_matrix"]["rows_true_cols_pred"])
        labels = res["estimators"][name]["confusion_matrix"]["labels"]
        ax.imshow(cm, cmap="Blues")
        for i in range(cm.shape[0]):
            for j in range(cm.shape[1]):
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", color="white" if cm[i, j] > cm.max() / 2
                        else "black")
        ax.set_xticks(range(len(labels)), labels)
        ax.set_yticks(range(len(labels)), labels)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        m = res["estimators"][name]
        ax.set_title(f"{name}: accuracy {m['accuracy']:.2f} (n={m['n']})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def load_predictors(ref: str | Path) -> tuple[dict[str, CineDxPredictor], str]:
    """Every estimator of a diagnosis package, loaded once each over one shared segmentation predictor."""
    main = load_dx(ref)
    preds = {main.estimator_name: main}
    for name in main.config.names:
        if name not in preds:
            preds[name] = load_dx(ref, estimator=name, seg_predictor=main.seg_predictor)
    return preds, main.estimator_name


def _recipe_sets(pkg_dir: Path) -> dict[str, list[str]] | None:
    sel = pkg_dir / "training_selection.json"
    if sel.is_file():
        doc = json.loads(sel.read_text())
        if isinstance(doc.get("missing_modality_sets"), dict):
            return doc["missing_modality_sets"]
    return None


def evaluate_cli(model: str, data: Path, fmt: str, out: Path, package: Path | None = None,
                 split: str | None = None) -> dict[str, Any]:
    """``medai evaluate heart_mr_cine_dx ...``: write the metrics JSON and a confusion-matrix PNG."""
    from rich.console import Console

    console = Console(stderr=True)
    if fmt not in ("auto", "acdc"):
        raise ConfigError(f"--format {fmt!r}: the diagnosis model is evaluated on the official ACDC layout (acdc)")
    preds, primary = load_predictors(package or model)
    res = evaluate(preds, primary, data, split, sets=_recipe_sets(preds[primary].package_dir),
                   progress=lambda t: console.print(f"[dim]{time.strftime('%H:%M:%S')}[/] {t}"))
    meta = preds[primary].metadata
    seg = preds[primary].seg_predictor.metadata
    res = {"model": {"name": meta.name, "version": meta.version}, "data": str(data), "format": "acdc",
           "segmentation": {"name": seg.name, "version": seg.version},
           "split": split, "code_path": "CineDxPredictor.predict_volumes (segmentation -> features -> classifier); "
           "other estimators and modality subsets: CineDxPredictor.predict on the same features",
           "command": " ".join(["medai evaluate", *sys.argv[2:]]) if sys.argv and "evaluate" in sys.argv else "",
           **res}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(res, indent=1, default=float))
    tmp.replace(out)
    confusion_png(res, out.with_name(out.stem + "_confusion.png"))
    for name, m in res["estimators"].items():
        console.print(f"{name}: accuracy {m['accuracy']:.3f}, balanced {m['balanced_accuracy']:.3f}, "
                      f"log loss {m['log_loss']:.3f} (n={m['n']})")
    console.print(f"wrote {out}")
    return res
