"""Ship one fold package as ``models/packages/heart_mr_lge_seg``: copy, evaluate through the predictor, write figures.

``python -m pipelines.lge.ship --from <MEDAI_HOME>/packages/heart_mr_lge_seg_cv/fold0 \
    --cv models/packages/heart_mr_lge_seg/evaluation/emidec_cv5.json``

1. the fold package's ``weights.pt``, ``inference.json``, ``split.json`` and ``metadata.json`` are copied into
   ``--out`` (an ``evaluation/`` folder there is kept);
2. ``medai evaluate heart_mr_lge_seg --model <out> --data <emidec> --format emidec`` runs on the copied package
   (``Predictor.from_package``): the cases it was not trained on, i.e. its held-out fold; the JSON is written to
   ``<out>/evaluation/emidec_heldout_fold<k>.json``;
3. ``metadata.json`` metrics are set from that JSON (``test/...``) and from the CV JSON (``cv/...``, pooled over
   the held-out cases of every fold), and ``MODEL_CARD.md`` is written from both, with the commands that made them.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
from pathlib import Path
from typing import Any

from medai.datasets.emidec import CITATION
from medai.inference.compiled import export_package as export_onnx
from medai.inference.package import read_metadata, write_metadata
from medai.settings import REPO_ROOT
from pipelines.lge.evaluate import INFARCT_CALL_THRESHOLD_PCT, evaluate_cli

logger = logging.getLogger(__name__)

COPIED = ("weights.pt", "inference.json", "split.json", "metadata.json")
#: Optional record of design decisions measured before the CV (read into the card when present in evaluation/).
DESIGN_FILE = "design_selection_fold1.json"
#: Keys of the evaluation ``mean`` copied into ``metadata.json`` (as ``test/<key>`` and ``cv/<key>``).
METRIC_KEYS = ("dice.myo", "dice.infarct", "dice.mvo", "dice.lv", "dice.infarct_only", "scar_pct_abs_error",
               "scar_pct_abs_error_infarct_cases", "mvo_pct_abs_error", "infarct_pct_pearson_r", "fp_scar_pct_normal",
               "case_accuracy", "case_sensitivity", "case_specificity", "dice_raw.myo", "dice_raw.infarct",
               "dice_raw.mvo")
#: EMIDEC 2020 challenge winner (challenge test set, as given in the issue) and the floor medai requires.
ANCHOR = {"dice.myo": 0.879, "dice.infarct": 0.712, "dice.mvo": 0.785}
FLOOR = {"dice.myo": 0.80, "dice.infarct": 0.55}
TTA_TEXT = {"none": "none", "x": "mean softmax of the image and its left-right flip",
            "xy": "mean softmax of the image and its left-right, up-down and double flips (4 forward passes)"}


def _key(k: str) -> str:
    return k.replace(".", "/")


def metadata_metrics(heldout: dict[str, Any], cv: dict[str, Any] | None) -> dict[str, float]:
    """``test/...`` from the shipped model's held-out evaluation, ``cv/...`` (pooled) from the CV JSON."""
    out = {f"test/{_key(k)}": float(heldout["mean"][k]) for k in METRIC_KEYS if k in heldout["mean"]}
    if cv:
        out.update({f"cv/{_key(k)}": float(cv["pooled"][k]) for k in METRIC_KEYS if k in cv["pooled"]})
    return out


def _f(d: dict[str, Any], k: str, nd: int = 3) -> str:
    v = d.get(k)
    return "n/a" if v is None else f"{v:.{nd}f}"


def model_card(meta: Any, heldout: dict[str, Any], cv: dict[str, Any] | None, heldout_json: str,
               cv_json: str | None, tta: str = "none") -> str:
    """The model card, every figure read from the two evaluation JSONs."""
    m = heldout["mean"]
    fold = heldout.get("heldout_fold")
    td = meta.training_data[0] if meta.training_data else None
    rows = "\n".join(
        f"| {name} | {_f(m, k)} | {_f(cv['pooled'], k) if cv else 'n/a'} | "
        f"{(_f(cv['fold_mean'], k) + ' ± ' + _f(cv['fold_sd'], k)) if cv else 'n/a'} | "
        f"{ANCHOR.get(k, '')} | {FLOOR.get(k, '')} |"
        for name, k in (("Myocardium (2+3+4)", "dice.myo"), ("Infarct incl. MVO (3+4)", "dice.infarct"),
                        ("MVO (4)", "dice.mvo"), ("LV cavity (1)", "dice.lv"),
                        ("Infarct only (3)", "dice.infarct_only"))
    )
    other = "\n".join(
        f"| {name} | {_f(m, k, nd)} | {_f(cv['pooled'], k, nd) if cv else 'n/a'} |"
        for name, k, nd in (
            ("infarct % of myocardium, mean abs. error (pp), all cases", "scar_pct_abs_error", 2),
            ("infarct %, mean abs. error (pp), infarct cases", "scar_pct_abs_error_infarct_cases", 2),
            ("infarct %, Pearson r (predicted vs reference)", "infarct_pct_pearson_r", 3),
            ("MVO % of myocardium, mean abs. error (pp)", "mvo_pct_abs_error", 2),
            ("false-positive infarct % on normal cases (mean)", "fp_scar_pct_normal", 2),
            (f"normal vs infarct case accuracy (infarct % > {INFARCT_CALL_THRESHOLD_PCT:g})", "case_accuracy", 3),
            ("  sensitivity (P cases called infarct)", "case_sensitivity", 3),
            ("  specificity (N cases called normal)", "case_specificity", 3),
            ("Dice myocardium without post-processing", "dice_raw.myo", 3),
            ("Dice infarct without post-processing", "dice_raw.infarct", 3),
            ("Dice MVO without post-processing", "dice_raw.mvo", 3),
        )
    )
    folds = ""
    if cv:
        folds = "\n".join(
            f"| {f['fold']} | {f['n_cases']} | {_f(f['mean'], 'dice.myo')} | {_f(f['mean'], 'dice.infarct')} | "
            f"{_f(f['mean'], 'dice.mvo')} | {_f(f['mean'], 'scar_pct_abs_error', 2)} | "
            f"{(f['train_time_s'] or 0) / 60:.1f} |"
            for f in cv["folds"]
        )
        folds = ("\n### Cross-validation per fold\n| held-out fold | cases | Dice myo | Dice infarct | Dice MVO | "
                 "infarct % MAE | training min |\n|---|---|---|---|---|---|---|\n" + folds + "\n")
        if not cv.get("complete"):
            folds += f"\n**Incomplete CV**: only folds {cv['folds_run']} ran.\n"
    n_mvo = int(m.get("n_mvo_cases", 0))
    ref = cv["pooled"] if cv else m
    short = [f"{k.split('.')[1]} {ref[k]:.3f} < {v}" for k, v in FLOOR.items() if k in ref and ref[k] < v]
    verdict = (f"**Below the medai floor** ({'CV pooled' if cv else 'held-out'} Dice: {'; '.join(short)}): not fit "
               "to replace a reader's scar contours; use as a research baseline." if short else
               f"Meets the medai floor ({', '.join(f'{k} >= {v}' for k, v in FLOOR.items())}) on the "
               f"{'CV pooled figures' if cv else 'held-out figures'}.")
    if cv:
        below = [f"fold {f['fold']} {k.split('.')[1]} {f['mean'][k]:.3f}" for f in cv["folds"]
                 for k, v in FLOOR.items() if k in f["mean"] and f["mean"][k] < v]
        if below:
            verdict += f" Single folds below it: {', '.join(below)} (16 cases each; the folds' SD is in the table)."
    fold_min = ([f["train_time_s"] / 60 for f in cv["folds"] if f.get("train_time_s")] if cv else [])
    budget = (f"{min(fold_min):.0f}-{max(fold_min):.0f} min of training per fold on 2 CPUs" if fold_min
              else "a CPU budget")
    return f"""# {meta.name} {meta.version} -- LGE short-axis scar segmentation (LV cavity, myocardium, infarct, MVO)

{meta.description}

**What is shipped**: the fold-{fold} model of the 5-fold case-level cross-validation: trained on the other four
folds ({td.n_cases if td else "?"} cases), fold {fold} ({heldout["n_cases"]} cases, listed in `split.json`) never
trained on and never used to choose anything. Its figures below are held-out figures on those cases; the
cross-validation figures (each fold's model on its own held-out fold, same recipe) estimate the recipe's
performance over all 80 cases. Research use only; not a medical device.

## Intended use
{meta.intended_use}
Outputs a `(Z, Y, X)` label map in the source geometry: 1 LV cavity, 2 healthy myocardium, 3 infarct, 4 MVO
(SNOMED CT codes in `metadata.json`; MVO has no verified SNOMED CT concept and is coded 99MEDAI). Scar
quantification (infarct % of myocardium, transmurality) is done by the `lge_scar` analysis, not here.
Not validated for: images not framed like EMIDEC (the model expects the LV near the image centre, about a fifth of
the field of view wide, after resizing each slice to 256 x 256), other sequences than LGE, long-axis views,
non-ischaemic scar patterns (EMIDEC holds only normal and post-infarct hearts), other centres or vendors.

## Model
- {meta.input_contract.get("network_input", "")} -> {meta.output_contract.get("network_output", "")}.
- Preprocessing (`medai.cardiac.lge_predictor`, shared with training): {meta.input_contract.get("preprocessing", "")}.
- Test-time augmentation (`inference.json` `tta`): {TTA_TEXT.get(tta, tta)}.
- Post-processing (`medai.cardiac.lge_postprocess.clean_lge`): one 3-D myocardium (largest component; infarct and
  MVO outside it dropped), MVO not touching infarct relabelled infarct, one LV cavity enclosed by closed rings.
- Hardware and training time: {meta.hardware}.

## Held-out figures
Dice per case on its stacked slices, mean over cases; infarct/MVO Dice over cases whose reference has them
({int(m.get("n_infarct_cases", 0))} infarct, {n_mvo} MVO cases of {heldout["n_cases"]} in the shipped model's fold).
Infarct = labels 3+4 (MVO counted as infarct, EMIDEC-style), MVO = 4, myocardium = 2+3+4.

| Dice | shipped, held-out fold {fold} | CV pooled | CV mean ± SD over folds | EMIDEC 2020 winner | floor |
|---|---|---|---|---|---|
{rows}

{verdict}

| other figure | shipped model, held-out fold {fold} | CV pooled |
|---|---|---|
{other}
{folds}
Anchor: the EMIDEC 2020 challenge winner reached Dice 0.879 myocardium / 0.712 infarct / 0.785 MVO on the
challenge's 50-case test set (3-D NIfTI with spacing); these figures are on a different, 2-D PNG re-release with
5-fold CV on 80 cases and {budget}, so they are not directly comparable. MVO Dice rests on
few cases and small regions ({n_mvo} cases in fold {fold}); read it with care.

## Data and licence
- Training data: {td.name if td else "n/a"}. {td.description if td else ""}
- Licence of the data and therefore of these weights: **{meta.licence}** (non-commercial research only).
- Citation: {CITATION}

## Reproduce
```
{meta.reproduce}
```
Held-out JSON: `{heldout_json}` (`{heldout.get("command", "")}`).
{f"CV JSON: `{cv_json}` (`{cv.get('command', '')}`)." if cv else "No CV JSON."}
MLflow run of the shipped fold: {meta.mlflow_run_id or "n/a"}.
"""


def _minutes(seconds: float | None) -> str:
    return "same weights" if seconds is None else f"{seconds / 60:.1f}"


def design_section(doc: dict[str, Any]) -> str:
    """Card section: the design measurements (figures from the design-selection JSON, through the predictor)."""
    rows = "\n".join(
        f"| {name} | {_f(r['mean'], 'dice.myo')} | {_f(r['mean'], 'dice.infarct')} | {_f(r['mean'], 'dice.mvo')} | "
        f"{_minutes(r.get('train_time_s'))} |"
        for name, r in doc["runs"].items()
    )
    decisions = "\n".join(f"- {k.replace('_', ' ')}: {v}" for k, v in doc.items() if k.startswith("decision"))
    return f"""
## Design decisions (measured before the cross-validation)
{doc["purpose"]}

| run (trained on folds 2-4, evaluated on fold 1) | Dice myo | Dice infarct | Dice MVO | training min |
|---|---|---|---|---|
{rows}

{decisions}

Figures: `evaluation/{DESIGN_FILE}`.
"""


def recipe_history_section(evaluation: Path, current: str | None) -> str:
    """Card section: every committed 5-fold CV of a recipe (``evaluation/emidec_cv5*.json``), the shipped one marked.

    Each earlier recipe was replaced only when its successor's pooled CV Dice was higher on myocardium and infarct
    (the rule recorded in the design JSON); comparing recipes on the same cases makes the later figures optimistic.
    """
    files = sorted(evaluation.glob("emidec_cv5*.json"), key=lambda p: (p.name == current, p.name))
    if len(files) < 2:
        return ""
    rows = []
    for p in files:
        cv = json.loads(p.read_text())
        pooled = cv.get("pooled", {})
        shipped = " (shipped)" if p.name == current else ""
        epochs = sorted({int(f["epochs"]) for f in cv.get("folds", []) if f.get("epochs") is not None})
        rows.append(f"| `{p.name}`{shipped} | {' '.join(cv.get('overrides') or []) or 'none'} | "
                    f"{'/'.join(map(str, epochs)) or 'n/a'} | {_f(pooled, 'dice.myo')} | "
                    f"{_f(pooled, 'dice.infarct')} | {_f(pooled, 'dice.mvo')} |")
    return f"""
## Recipe history (5-fold CV of each recipe, same folds and seed)
A recipe replaced its predecessor only when its pooled CV Dice was higher on both myocardium and infarct, a rule
written before its folds ran. Choosing between recipes on the same 80 cases makes the shipped recipe's CV figures
slightly optimistic; the official EMIDEC test set (not available here) is the unbiased check.

| CV JSON | overrides given to the CV command | epochs trained | Dice myo | Dice infarct | Dice MVO |
|---|---|---|---|---|---|
{chr(10).join(rows)}
"""


def ship(src: Path, out: Path, data: Path, cv_path: Path | None = None, version: str = "1.0.0") -> dict[str, Any]:
    """Steps 1-3 of the module docstring; returns the held-out evaluation document."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name in COPIED:
        shutil.copy2(Path(src) / name, out / name)
    meta = read_metadata(out)
    split = json.loads((out / "split.json").read_text())
    fold = split.get("heldout_fold")
    name = "heart_mr_lge_seg"
    write_metadata(out, meta.model_copy(update={"name": name, "version": version}))
    rel_out = out.resolve().relative_to(REPO_ROOT) if out.resolve().is_relative_to(REPO_ROOT) else out
    heldout_rel = f"evaluation/emidec_heldout_fold{fold}.json"
    evaluate_cli(name, Path(data), "emidec", Path(rel_out) / heldout_rel, package=Path(rel_out))
    heldout = json.loads((out / heldout_rel).read_text())  # as committed (with its command)
    cv = json.loads(Path(cv_path).read_text()) if cv_path and Path(cv_path).is_file() else None
    files = ["weights.pt", "inference.json", "split.json", "MODEL_CARD.md", heldout_rel]
    cv_rel = None
    if cv_path and Path(cv_path).resolve().parent == (out / "evaluation").resolve():
        cv_rel = f"evaluation/{Path(cv_path).name}"
    files += sorted(f"evaluation/{p.name}" for p in (out / "evaluation").glob("*.json")
                    if f"evaluation/{p.name}" not in files)
    design = out / "evaluation" / DESIGN_FILE
    reproduce = "\n".join(filter(None, [
        cv.get("command") if cv else None,
        f"python -m pipelines.lge.ship --from <MEDAI_HOME>/packages/heart_mr_lge_seg_cv/fold{fold}"
        + (f" --cv {rel_out}/{cv_rel}" if cv_rel else "") + f" --out {rel_out}",
        f"medai evaluate {name} --data {data} --format emidec --out {rel_out}/{heldout_rel}",
    ]))
    meta = meta.model_copy(update={"name": name, "version": version, "metrics": metadata_metrics(heldout, cv),
                                   "files": files, "reproduce": reproduce})
    write_metadata(out, meta)
    export_onnx(out)  # the copied weights' ONNX export (medai.inference.compiled); adds weights.onnx to files
    tta = json.loads((out / "inference.json").read_text()).get("tta", "none")
    card = model_card(meta, heldout, cv, heldout_rel, cv_rel, tta=tta)
    if design.is_file():
        card += design_section(json.loads(design.read_text()))
    card += recipe_history_section(out / "evaluation", Path(cv_rel).name if cv_rel else None)
    (out / "MODEL_CARD.md").write_text(card)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    logger.info("shipped %s (%.1f MB)", out, size / 1e6)
    return heldout


def main(argv: list[str] | None = None) -> None:
    """Command line of :func:`ship`."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--from", dest="src", type=Path, required=True, help="a fold package (pipelines.lge.cv --work)")
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "models" / "packages" / "heart_mr_lge_seg")
    ap.add_argument("--data", type=Path, default=None, help="EMIDEC folder (default: <data root>/cardiac/emidec)")
    ap.add_argument("--cv", type=Path, default=None, help="the CV JSON of pipelines.lge.cv")
    ap.add_argument("--version", default="1.0.0")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    from pipelines.cmr.data import resolve_data_path

    ship(args.src, args.out, args.data or resolve_data_path("cardiac/emidec"), args.cv, args.version)


if __name__ == "__main__":
    main()
