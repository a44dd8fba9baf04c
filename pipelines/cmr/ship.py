"""Add the committed evaluations of ``heart_mr_cine_seg`` to its model card and metadata.

    python -m pipelines.cmr.ship --package models/packages/heart_mr_cine_seg
    python -m pipelines.cmr.ship --package models/packages/heart_mr_cine_seg --recipe configs/experiment/cmr_seg_2d.yaml

``--recipe`` first sets the package's inference settings (``model.tta``) to the recipe's and gives it the recipe's
version (:func:`apply_recipe`).

Reads ``<package>/evaluation/*.json`` (written by ``medai evaluate heart_mr_cine_seg ...``, i.e. through
``CineSegPredictor``) and writes one section per file into ``MODEL_CARD.md`` (replacing the section of an earlier
run) and ``eval/<file stem>/<metric>`` keys into ``metadata.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from medai.cardiac.phases import PHASE_CANDIDATE_MARGIN, PHASE_CANDIDATES_MAX
from medai.cardiac.preprocess import TTA_MODES
from medai.inference.package import read_metadata, write_metadata

MARK = "## Evaluation through the predictor"
#: issue-12 floors and goals on the official ACDC test set (mean of ED and ES)
FLOOR = {"lv": 0.93, "myo": 0.87, "rv": 0.87}
GOAL = {"lv": 0.95, "myo": 0.90, "rv": 0.92}


def _f(m: dict[str, Any], k: str, fmt: str = "{:.3f}") -> str:
    return fmt.format(m[k]) if k in m else "-"


def section(name: str, doc: dict[str, Any]) -> list[str]:
    """The card lines of one evaluation JSON."""
    m = doc["mean"]
    what = f"{doc['format']} {Path(doc['data']).name}" + (f", split {doc['split']!r}" if doc.get("split") else "")
    lines = [f"### `evaluation/{name}.json`: {what} ({doc['n_patients']} patients, {doc['n_cases']} cases)", "",
             f"    {doc.get('command') or 'medai evaluate heart_mr_cine_seg'}", "",
             "| structure | Dice ED | Dice ES | Dice ED+ES | HD95 (" + doc["hd95_unit"].split(" ")[0] + ") |",
             "|---|---|---|---|---|"]
    for s in ("lv", "myo", "rv"):
        if f"dice.{s}" in m:
            lines.append(f"| {s.upper()} | {_f(m, f'dice.{s}.ed')} | {_f(m, f'dice.{s}.es')} | "
                         f"{_f(m, f'dice.{s}')} | {_f(m, f'hd95.{s}')} |")
    lines.append("")
    clin = [("LVEF absolute error (points)", "ef_mae", "ef_bias"), ("RVEF absolute error (points)", "rvef_mae",
                                                                     "rvef_bias"),
            ("LV EDV error (mL)", "edv_mae_ml", "edv_bias_ml"), ("LV ESV error (mL)", "esv_mae_ml", "esv_bias_ml"),
            ("RV EDV error (mL)", "rv_edv_mae_ml", "rv_edv_bias_ml"), ("LV mass error (g)", "lv_mass_mae_g",
                                                                       "lv_mass_bias_g")]
    rows = [f"| {label} | {_f(m, a, '{:.2f}')} | {_f(m, b, '{:+.2f}')} |" for label, a, b in clin if a in m]
    if rows:
        lines += ["| clinical value | mean absolute error | bias |", "|---|---|---|", *rows, ""]
    return lines


def cv_section(name: str, doc: dict[str, Any]) -> list[str]:
    """The card lines of a cross-validation JSON (:mod:`pipelines.cmr.cv`): pooled held-out figures, then folds."""
    n, run = doc["n_folds"], doc["folds_run"]
    status = (f"all {n} folds" if doc["complete"] else
              f"PARTIAL: {len(run)} of {n} folds run ({', '.join(map(str, run))}); the others are still to run")
    pooled = {**doc, "mean": doc["pooled"], "format": "acdc", "split": None}
    lines = section(name, pooled)
    lines[0] = (f"### `evaluation/{name}.json`: {n}-fold cross-validation on the ACDC release, {status} "
                f"({doc['n_patients']} held-out patients, {doc['n_cases']} cases)")
    lines[2] = f"    {doc.get('command') or 'python -m pipelines.cmr.cv'}"
    lines.insert(4, f"Protocol: {doc['protocol']}. Pooled over the held-out patients:")
    lines.insert(5, "")
    lines += ["| fold | patients | epochs | training (min) | Dice LV | Dice MYO | Dice RV | LVEF MAE |",
              "|---|---|---|---|---|---|---|---|"]
    for f in doc["folds"]:
        m = f["mean"]
        minutes = f"{f['train_time_s'] / 60:.0f}" if f.get("train_time_s") else "-"
        epochs = f"{f['epochs']:.0f}" if f.get("epochs") is not None else "-"
        lines.append(f"| {f['fold']} | {f['n_patients']} | {epochs} | {minutes} | {_f(m, 'dice.lv')} | "
                     f"{_f(m, 'dice.myo')} | {_f(m, 'dice.rv')} | {_f(m, 'ef_mae', '{:.2f}')} |")
    return [*lines, ""]


def apply_recipe(pkg: Path, recipe_path: Path, overrides: list[str] | None = None) -> dict[str, Any]:
    """The recipe's inference settings into the package (:func:`pipelines.cmr.train.apply_inference_settings`),
    which then takes the recipe's version: the same weights run another way are another version.

    Raises:
        ConfigError: the settings change but the recipe's version is the package's (bump ``package.version``).
    """
    from medai.errors import ConfigError
    from pipelines.cmr.config import load_recipe
    from pipelines.cmr.train import apply_inference_settings, inference_changes

    recipe = load_recipe(recipe_path, list(overrides or []))
    meta = read_metadata(pkg)
    if not inference_changes(pkg, recipe):
        return {}
    if recipe.package.version == meta.version:
        raise ConfigError(f"{recipe_path} changes how {pkg} runs but keeps its version {meta.version}; set "
                          "package.version in the recipe to a new version")
    changed = apply_inference_settings(pkg, recipe)
    old, meta.version = meta.version, recipe.package.version
    write_metadata(pkg, meta)
    card = pkg / "MODEL_CARD.md"
    if card.is_file():  # the title names the version
        head, _, rest = card.read_text().partition("\n")
        card.write_text(head.replace(f"{meta.name} {old}", f"{meta.name} {meta.version}", 1) + "\n" + rest)
    return changed


def main(argv: list[str] | None = None) -> None:
    """Command line: refresh the card's evaluation sections and the metadata ``eval/`` metrics."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--package", type=Path, default=Path("models/packages/heart_mr_cine_seg"))
    ap.add_argument("--recipe", type=Path, default=None,
                    help="first set the package's inference settings (test-time augmentation) to this recipe's; "
                    "when they change, the package takes the recipe's package.version, which must then be new")
    args = ap.parse_args(argv)
    pkg = args.package
    if args.recipe is not None:
        apply_recipe(pkg, args.recipe)
    docs = {p.stem: json.loads(p.read_text()) for p in sorted((pkg / "evaluation").glob("*.json"))}
    card = (pkg / "MODEL_CARD.md").read_text()
    card = card.split(MARK)[0].rstrip() + "\n\n"
    lines = [MARK, "", "Every figure here comes from the JSON named, written by `medai evaluate` through "
             "`CineSegPredictor` (resampling, normalisation, consistency step and measurement exactly as "
             "`medai analyze`). The ACDC `val` split selected the shipped checkpoint: a validation figure, not a test; "
             "a cross-validation fold's package never saw its held-out patients. "
             "Floor on the official test set (not available here): Dice " + ", ".join(
                 f"{k.upper()} {v}" for k, v in FLOOR.items()) + "; goal " + ", ".join(
                 f"{k.upper()} {v}" for k, v in GOAL.items()) + ".", ""]
    tta = json.loads((pkg / "inference.json").read_text()).get("tta", "none")
    if tta != "none":
        lines += [f"Test-time augmentation `{tta}` (`inference.json`): the measured frames are segmented with the "
                  f"class logits averaged over {len(TTA_MODES[tta])} flipped/transposed copies of each slice. In a "
                  "cine, every frame is segmented once, then the ED/ES candidates (the "
                  f"{PHASE_CANDIDATES_MAX} frames nearest the LV curve's maximum / minimum, within "
                  f"{PHASE_CANDIDATE_MARGIN:.0%} of it) again under the augmentation, "
                  "and ED/ES are picked among them. An evaluation JSON names the setting it ran with "
                  "(`tta`). The recipe's `model.tta` sets it: `python -m pipelines.cmr.ship --recipe RECIPE` on a "
                  "trained package, `python -m pipelines.cmr.cv --skip-existing` on the CV's fold packages.", ""]
    meta = read_metadata(pkg)
    meta.metrics = {k: v for k, v in meta.metrics.items() if not k.startswith("eval/")}
    for name, doc in docs.items():
        cv = "folds_run" in doc
        lines += cv_section(name, doc) if cv else section(name, doc)
        meta.metrics.update({f"eval/{name}/{k}": float(v) for k, v in (doc["pooled"] if cv else doc["mean"]).items()
                             if k.startswith(("dice.", "ef_", "rvef_", "lv_mass_", "edv_"))})
    (pkg / "MODEL_CARD.md").write_text(card + "\n".join(lines))
    meta.files = sorted({*meta.files, *(f"evaluation/{n}.json" for n in docs)})
    write_metadata(pkg, meta)


if __name__ == "__main__":
    main()
