"""Held-out evaluation of an LGE scar segmentation package, through ``Predictor.from_package`` and ``segment_volume``.

``medai evaluate heart_mr_lge_seg --data DIR --format emidec --out FILE.json [--model PKG]``

Which cases (``--format``):

* ``emidec`` (and ``auto``): the cases of ``DIR`` that the package was **not trained on** -- every case id listed in
  the package's ``split.json`` ``train_cases`` is left out, so a fold package is evaluated on its held-out fold (and
  on any case of ``DIR`` it never saw). The JSON states the selection. A package trained on every case has nothing
  to evaluate here; its estimate is the cross-validation (:mod:`pipelines.lge.cv`).
* ``emidec-all``: every case of ``DIR``; rows of cases the package was trained on carry ``"in_training_set": true``
  and the ``mean`` then is *not* a held-out figure (the JSON says so).
* ``python -m pipelines.lge.evaluate PKG --data DIR --cases FILE --out F.json`` restricts to a list of case ids
  (one per line); cases the package was trained on are refused.

Per case, the case's slices are stacked into one ``(Z, Y, X)`` volume, segmented by
:meth:`LgeSegPredictor.segment_volume` (and once more with ``postprocess=False`` for the ``dice_raw`` figures), and
compared with the reference. Conventions (also written into the JSON):

* ``dice.myo``: myocardium = healthy + infarct + MVO (labels 2+3+4); ``dice.lv``: cavity (1);
* ``dice.infarct``: infarct **including MVO** (3+4); ``dice.infarct_only``: label 3 alone; ``dice.mvo``: label 4;
* Dice of a case on all its slices stacked (3-D); means over cases; infarct / MVO Dice averaged over the cases whose
  reference has infarct / MVO (a case with that reference label and an empty prediction scores 0);
* ``infarct_pct`` = 100 (3+4) / (2+3+4) voxel counts (spacing-free, the data has no spacing); ``mvo_pct`` likewise;
  ``scar_pct_abs_error`` = mean over all cases of |predicted - reference| infarct %;
* a case is called *infarct* when its predicted infarct % exceeds :data:`INFARCT_CALL_THRESHOLD_PCT` (fixed before
  any evaluation); ``accuracy`` / ``sensitivity`` / ``specificity`` against the N / P case group.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from medai.cardiac.lge_predictor import LgeSegPredictor, load_default
from medai.datasets.base import SegCase
from medai.datasets.emidec import emidec_case_ids, load_emidec
from medai.errors import ConfigError
from pipelines.cmr.module import dice_score
from pipelines.lge.module import structure_masks

logger = logging.getLogger(__name__)

#: A case is called "infarct" when its predicted infarct extent exceeds this % of the myocardium (fixed a priori).
INFARCT_CALL_THRESHOLD_PCT = 1.0
FORMATS = ("emidec", "emidec-all")

CONVENTIONS = {
    "dice.myo": "myocardium = labels 2+3+4 (healthy + infarct + MVO)",
    "dice.lv": "LV cavity = label 1",
    "dice.infarct": "infarct including MVO = labels 3+4 (EMIDEC-style 'infarction'); mean over cases whose "
    "reference has infarct",
    "dice.infarct_only": "label 3 alone; mean over cases whose reference has label 3",
    "dice.mvo": "MVO = label 4; mean over cases whose reference has MVO",
    "dice": "per case on all its slices stacked (3-D), then the mean over cases",
    "dice_raw": "the same Dice on the network's argmax without medai.cardiac.lge_postprocess.clean_lge",
    "infarct_pct": "100 * (3+4) / (2+3+4) voxel counts per case (no spacing in the data: a % of myocardium)",
    "scar_pct_abs_error": "mean over all cases of |predicted - reference| infarct_pct (percentage points)",
    "fp_scar_pct_normal": "mean predicted infarct_pct over normal (Case_N) cases",
    "case_call": f"a case is called infarct when predicted infarct_pct > {INFARCT_CALL_THRESHOLD_PCT}",
}


def _pct(part: np.ndarray, whole: np.ndarray) -> float:
    n = int(whole.sum())
    return 100.0 * float(part.sum()) / n if n else 0.0


def case_metrics(pred: np.ndarray, raw: np.ndarray, ref: np.ndarray, values: dict[str, int],
                 ref_values: dict[str, int]) -> dict[str, Any]:
    """Dice, infarct % and MVO % of one case (``(Z, Y, X)`` predicted, raw and reference label maps)."""
    p, r, w = structure_masks(pred, values), structure_masks(ref, ref_values), structure_masks(raw, values)
    row: dict[str, Any] = {}
    for name in ("lv", "myo", "infarct", "mvo"):
        if name in ("infarct", "mvo") and not r[name].any():
            continue
        row[f"dice.{name}"] = dice_score(p[name], r[name])
        row[f"dice_raw.{name}"] = dice_score(w[name], r[name])
    inf_only_ref = ref == ref_values["infarct"]
    if inf_only_ref.any():
        row["dice.infarct_only"] = dice_score(pred == values["infarct"], inf_only_ref)
    row["infarct_pct_ref"] = _pct(r["infarct"], r["myo"])
    row["infarct_pct_pred"] = _pct(p["infarct"], p["myo"])
    row["infarct_pct_abs_error"] = abs(row["infarct_pct_pred"] - row["infarct_pct_ref"])
    row["mvo_pct_ref"] = _pct(r["mvo"], r["myo"])
    row["mvo_pct_pred"] = _pct(p["mvo"], p["myo"])
    row["mvo_pct_abs_error"] = abs(row["mvo_pct_pred"] - row["mvo_pct_ref"])
    row["predicted_infarct"] = bool(row["infarct_pct_pred"] > INFARCT_CALL_THRESHOLD_PCT)
    row["predicted_mvo_voxels"] = int(p["mvo"].sum())
    return row


def evaluate_cases(predictor: LgeSegPredictor, cases: list[SegCase], training: set[str] | None = None
                   ) -> list[dict[str, Any]]:
    """Per-case rows for labelled cases, each segmented through :meth:`LgeSegPredictor.segment_volume`."""
    values = predictor.config.labels
    rows = []
    for case in cases:
        assert case.label is not None
        t0 = time.perf_counter()
        vol = case.to_volume()
        pred = predictor.segment_volume(vol).volume.array
        raw = predictor.segment_volume(vol, postprocess=False).volume.array
        group = str(case.meta.get("group", ""))
        row: dict[str, Any] = {"case": case.case_id, "group": group, "n_slices": int(case.image.shape[0])}
        if training is not None:
            row["in_training_set"] = case.case_id in training
        row.update(case_metrics(pred, raw, case.label, values, case.labels))
        row["seconds"] = time.perf_counter() - t0
        rows.append(row)
        logger.info("%s: %s", case.case_id, {k: round(v, 3) for k, v in row.items() if isinstance(v, float)})
    return rows


def _mean(rows: list[dict[str, Any]], key: str) -> float | None:
    vals = [r[key] for r in rows if key in r and r[key] is not None and math.isfinite(r[key])]
    return float(np.mean(vals)) if vals else None


def summarize(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Means over cases (Dice, infarct % errors), normal-case false-positive scar, and the N/P case call."""
    mean: dict[str, float] = {}
    for key in ("dice.lv", "dice.myo", "dice.infarct", "dice.infarct_only", "dice.mvo",
                "dice_raw.lv", "dice_raw.myo", "dice_raw.infarct", "dice_raw.mvo"):
        v = _mean(rows, key)
        if v is not None:
            mean[key] = v
    p_rows = [r for r in rows if r.get("group") == "P"]
    n_rows = [r for r in rows if r.get("group") == "N"]
    for key, name in (("infarct_pct_abs_error", "scar_pct_abs_error"), ("mvo_pct_abs_error", "mvo_pct_abs_error")):
        for sub, suffix in ((rows, ""), (p_rows, "_infarct_cases")):
            v = _mean(sub, key)
            if v is not None:
                mean[name + suffix] = v
    if len(rows) > 2:
        a = np.array([r["infarct_pct_ref"] for r in rows])
        b = np.array([r["infarct_pct_pred"] for r in rows])
        if a.std() > 0 and b.std() > 0:
            mean["infarct_pct_pearson_r"] = float(np.corrcoef(a, b)[0, 1])
        mean["infarct_pct_bias"] = float((b - a).mean())
    if n_rows:
        mean["fp_scar_pct_normal"] = float(np.mean([r["infarct_pct_pred"] for r in n_rows]))
        mean["normal_cases_called_infarct"] = float(sum(r["predicted_infarct"] for r in n_rows))
    if p_rows and n_rows:
        tp = sum(r["predicted_infarct"] for r in p_rows)
        tn = sum(not r["predicted_infarct"] for r in n_rows)
        mean["case_accuracy"] = (tp + tn) / (len(p_rows) + len(n_rows))
        mean["case_sensitivity"] = tp / len(p_rows)
        mean["case_specificity"] = tn / len(n_rows)
    mean["n_cases"] = float(len(rows))
    mean["n_infarct_cases"] = float(sum("dice.infarct" in r for r in rows))
    mean["n_mvo_cases"] = float(sum("dice.mvo" in r for r in rows))
    return mean


def package_split(predictor: LgeSegPredictor) -> dict[str, Any]:
    """The package's ``split.json`` (empty when it has none)."""
    path = predictor.package_dir / "split.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def select_cases(predictor: LgeSegPredictor, data: Path, fmt: str, cases: list[str] | None = None
                 ) -> tuple[list[str], set[str], str]:
    """``(case ids to evaluate, the package's training cases, a sentence saying how they were chosen)``."""
    split = package_split(predictor)
    training = set(split.get("train_cases", []))
    available = emidec_case_ids(data)
    if cases is not None:
        bad = sorted(set(cases) & training)
        if bad:
            raise ConfigError(f"{len(bad)} listed cases were used to train {predictor.ref.name} "
                              f"({', '.join(bad[:5])}...); a held-out figure cannot include them")
        missing = sorted(set(cases) - set(available))
        if missing:
            raise ConfigError(f"listed cases not in {data}: {', '.join(missing[:5])}")
        return sorted(set(cases)), training, f"the {len(set(cases))} listed cases (none used for training)"
    if fmt == "emidec-all":
        return available, training, (f"all {len(available)} cases of the folder; "
                                     f"{len(set(available) & training)} of them were used for training, so the "
                                     "mean is NOT a held-out figure")
    if not split:
        raise ConfigError(f"{predictor.package_dir} has no split.json, so its training cases are unknown; use "
                          "--format emidec-all (not a held-out figure) or list held-out cases")
    held = [c for c in available if c not in training]
    if not held:
        raise ConfigError(f"{predictor.ref.name} was trained on every case of {data}; its held-out estimate is the "
                          "cross-validation (python -m pipelines.lge.cv)")
    fold = split.get("heldout_fold")
    return held, training, (f"the {len(held)} cases of the folder not in the package's training set (split.json: "
                            f"held-out fold {fold} of {split.get('n_folds')}, seed {split.get('fold_seed')})")


def evaluate(predictor: LgeSegPredictor, data: Path, fmt: str = "emidec", cases: list[str] | None = None
             ) -> dict[str, Any]:
    """Run the evaluation and return the JSON document (without writing it)."""
    data = Path(data)
    fmt = "emidec" if fmt == "auto" else fmt
    if fmt not in FORMATS:
        raise ConfigError(f"unknown --format {fmt!r} for an LGE segmentation model; use {' or '.join(FORMATS)}")
    t0 = time.perf_counter()
    ids, training, selection = select_cases(predictor, data, fmt, cases)
    rows = evaluate_cases(predictor, load_emidec(data, ids), training if fmt == "emidec-all" else None)
    split = package_split(predictor)
    return {
        "model": predictor.ref.model_dump(),
        "data": str(data),
        "format": fmt,
        "case_selection": selection,
        "heldout": fmt != "emidec-all" or not (set(ids) & training),
        "heldout_fold": split.get("heldout_fold"),
        "n_cases": len(rows),
        "conventions": CONVENTIONS,
        "mean": summarize(rows),
        "cases": rows,
        "seconds": time.perf_counter() - t0,
        "code_path": "Predictor.from_package(...) -> LgeSegPredictor.segment_volume (per case, slices stacked)",
    }


def _log_mlflow(doc: dict[str, Any], out: Path) -> None:
    try:
        import mlflow
    except ImportError:  # pragma: no cover
        return
    if mlflow.active_run() is None:
        return
    from pipelines.mlflow_utils import log_metrics

    log_metrics({f"eval/{k.replace('.', '/')}": v for k, v in doc["mean"].items() if math.isfinite(v)})
    mlflow.log_artifact(str(out), artifact_path="evaluation")


def write(doc: dict[str, Any], out: Path, command: str = "") -> Path:
    """Write the evaluation JSON (with the command that made it)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if command:
        doc = {"command": command, **doc}
    out.write_text(json.dumps(doc, indent=2, default=float))
    return out


def evaluate_cli(model: str, data: Path, fmt: str, out: Path, package: Path | None = None,
                 cases: list[str] | None = None) -> dict[str, Any]:
    """``medai evaluate`` for LGE segmentation models: writes ``out`` JSON and prints the means."""
    from rich.console import Console
    from rich.table import Table

    predictor = load_default(package or model)
    doc = evaluate(predictor, data, fmt, cases)
    cmd = f"medai evaluate {model} --data {data} --format {doc['format']} --out {out}" + (
        f" --model {package}" if package else "")
    write(doc, out, cmd)
    _log_mlflow(doc, Path(out))
    table = Table(title=f"{doc['format']}: {doc['n_cases']} cases ({doc['case_selection']})")
    table.add_column("metric")
    table.add_column("mean")
    for k, v in doc["mean"].items():
        table.add_row(k, f"{v:.3f}")
    Console().print(table)
    Console().print(f"wrote {out}")
    return doc


def main(argv: list[str] | None = None) -> None:
    """``python -m pipelines.lge.evaluate PKG --data DIR [--cases FILE] [--format F] --out F.json``."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("package", help="package folder, shipped name or models:/<name>@<alias>")
    ap.add_argument("--data", required=True, type=Path)
    ap.add_argument("--format", default="emidec", choices=FORMATS)
    ap.add_argument("--cases", type=Path, help="file with one case id per line (held-out cases only)")
    ap.add_argument("--out", required=True, type=Path)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    cases = [ln.strip() for ln in args.cases.read_text().splitlines() if ln.strip()] if args.cases else None
    evaluate_cli(args.package, args.data, args.format, args.out, cases=cases)


if __name__ == "__main__":
    main()
