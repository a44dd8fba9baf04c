"""k-fold cross-validation of the cine segmentation recipe on every patient of the official ACDC training set.

``python -m pipelines.cmr.cv configs/experiment/cmr_seg_2d.yaml [overrides...] [--folds 0 1 2 3 4] \
    [--out models/packages/heart_mr_cine_seg/evaluation/acdc_cv5.json]``

The folds are :func:`medai.datasets.acdc.acdc_folds` (5 group-stratified folds of the 100 patients, 4 per group in
each, seed 2017), the same folds as the diagnosis CV (:mod:`pipelines.dx.cv`). For every fold ``k``:
``train_from_recipe(recipe, data.fold=k)`` (its own MLflow run under ``MEDAI_HOME``) trains on the other 80
patients, with the held-out fold logged as curves only (no checkpoint selection, no early stopping: the last
epoch's weights), and writes a fold package to ``--work``/``fold<k>``. Then ``Predictor.from_package(fold
package)`` segments the held-out patients' ED and ES volumes (:func:`pipelines.cmr.evaluate.evaluate`: Dice, HD95,
EF, volume and mass errors against the reference masks); that JSON goes beside the package
(``evaluation/acdc_heldout.json``) and its means to the fold's run.

The output JSON holds each fold's means, the mean and SD over folds, and the pooled means over every held-out case
(each patient is held out exactly once when all folds ran). It is rewritten after each fold, so a partial run leaves
honest partial results (``complete`` says whether all folds ran); ``--skip-existing`` reuses fold packages already
trained, so a run can be resumed fold by fold. Hyperparameters are the recipe's, identical for every fold.

On CPU each fold takes the recipe's ``trainer.max_time_minutes`` (85 min on 2 threads); on a GPU add
``trainer.preset=gpu trainer.accelerator=gpu``.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from medai.errors import ConfigError
from medai.inference.package import read_metadata
from medai.settings import REPO_ROOT
from pipelines.cmr.config import load_recipe
from pipelines.crossval import cli, cv_header, fold_result, fold_summary, log_to_run, train_fold

logger = logging.getLogger(__name__)

#: the model-card headline figures, logged after each fold
HEADLINE = ("dice.lv", "dice.myo", "dice.rv", "ef_mae")


def _write(doc: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=1, default=float))
    tmp.replace(path)
    return path


def fold_packages(work: Path, root: Path, n_folds: int = 5) -> list[tuple[Path, list[str]]]:
    """``(package, held-out patients)`` of each fold package of a finished cine CV in ``work`` (``fold<k>``), checked
    against ``root``'s folds: for models fitted on segmentations of patients the segmentation never trained on
    (the diagnosis CV's and the quality gate's ``--seg-cv``).

    Raises:
        ConfigError: a fold package is missing or unscored, or it held out other patients than fold ``k``.
    """
    from medai.datasets.acdc import acdc_folds

    assignment = acdc_folds(root, n_folds)
    out = []
    for k in range(n_folds):
        pkg = Path(work) / f"fold{k}"
        held = sorted(p for p, f in assignment.items() if f == k)
        evaluation = pkg / "evaluation" / "acdc_heldout.json"
        if not evaluation.is_file():
            raise ConfigError(f"--seg-cv {work}: no scored fold {k} package ({evaluation} is missing); run "
                              f"python -m pipelines.cmr.cv configs/experiment/cmr_seg_2d.yaml --folds {k} "
                              f"--work {work} first")
        if json.loads(evaluation.read_text()).get("patients_selected") != held:
            raise ConfigError(f"--seg-cv {work}: fold {k}'s package held out other patients than fold {k} of "
                              f"{n_folds}; train the cine CV with data.n_folds={n_folds}")
        out.append((pkg, held))
    return out


def run_cv(
    recipe_path: Path, folds: list[int], data: Path, out: Path, work: Path, overrides: list[str] | None = None,
    *, skip_existing: bool = False, command: str = "",
) -> dict[str, Any]:
    """Train and evaluate ``folds``; write and return the CV document (see the module docstring)."""
    from medai.cardiac.predictor import load_default
    from pipelines.cmr.data import fold_patients
    from pipelines.cmr.evaluate import evaluate, summarize
    from pipelines.cmr.train import apply_inference_settings, train_from_recipe

    overrides = list(overrides or [])
    recipe = load_recipe(recipe_path, [*overrides, f"data.root={Path(data).resolve()}", "data.fold=0"])  # foldable?
    n_folds = recipe.data.n_folds
    bad = [k for k in folds if not 0 <= k < n_folds]
    if bad:
        raise ConfigError(f"folds {bad} do not exist: the recipe has data.n_folds={n_folds} (0..{n_folds - 1})")
    assignment = fold_patients(recipe.data)
    results: list[dict[str, Any]] = []
    cases: list[dict[str, Any]] = []
    patients: list[dict[str, Any]] = []
    t_all = time.time()
    cv: dict[str, Any] = {}
    for k in folds:
        pkg, run_id = train_fold(k, recipe_path, [*overrides, f"data.root={Path(data).resolve()}"], work,
                                 recipe.package.version, train_from_recipe, skip_existing=skip_existing)
        changed = apply_inference_settings(pkg, recipe)  # a reused fold package runs as the recipe says
        if changed:
            logger.info("fold %d: inference settings from the recipe: %s", k, changed)
        meta = read_metadata(pkg)
        held = sorted(p for p, f in assignment.items() if f == k)
        doc = evaluate(load_default(pkg), data, "acdc", patients=held)  # Predictor.from_package(fold package)
        got = sorted({p["patient"] for p in doc["patients"]})
        if got != held:
            raise ConfigError(f"fold {k}: the evaluated patients differ from the held-out fold ({len(got)} vs "
                              f"{len(held)})")
        doc["command"] = (f"medai evaluate heart_mr_cine_seg --model {pkg} --data {data} --format acdc "
                          f"(patients of fold {k})")
        fold_json = _write(doc, pkg / "evaluation" / "acdc_heldout.json")
        log_to_run(run_id, doc, fold_json)
        results.append(fold_result(k, doc, pkg, run_id, meta, n_patients=doc["n_patients"], heldout_patients=held))
        cases += [{"fold": k, **c} for c in doc["cases"]]
        patients += [{"fold": k, **p} for p in doc["patients"]]
        fmean, fsd = fold_summary(results)
        cv = {
            **cv_header(command, recipe_path, overrides, data, n_folds, "medai.datasets.acdc.FOLD_SEED (2017)",
                        results),
            "protocol": "each fold's package (trained on the other folds' patients with the recipe's fixed "
            "hyperparameters, last-epoch weights, the held-out fold never used for selection) evaluated through "
            "Predictor.from_package(...).segment_volume on the held-out patients' ED and ES volumes",
            "n_patients": len(patients),
            "n_cases": len(cases),
            "hd95_unit": doc["hd95_unit"],
            "tta": recipe.model.tta,
            "pooled": summarize({"cases": cases, "patients": patients}),
            "fold_mean": fmean,
            "fold_sd": fsd,
            "folds": results,
            "cases": cases,
            "patients": patients,
            "seconds": time.time() - t_all,
        }
        _write(cv, out)
        logger.info("fold %d: %s", k, {m: round(doc["mean"][m], 3) for m in HEADLINE if m in doc["mean"]})
    return cv


def main(argv: list[str] | None = None) -> None:
    """Command line of :func:`run_cv`."""
    cli(argv, module="pipelines.cmr.cv", description="k-fold CV of a cine segmentation recipe on the ACDC release",
        default_out=REPO_ROOT / "models/packages/heart_mr_cine_seg/evaluation/acdc_cv5.json",
        data_help="ACDC release root (default: the recipe's data.root)", load_recipe=load_recipe, run_cv=run_cv)


if __name__ == "__main__":
    main()
