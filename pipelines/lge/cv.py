"""k-fold cross-validation of an LGE recipe: train each fold, evaluate each fold's package on its held-out fold.

``python -m pipelines.lge.cv configs/experiment/lge_seg_2d.yaml --folds 0 1 2 3 4 \
    --out models/packages/heart_mr_lge_seg/evaluation/emidec_cv5.json``

For every fold ``k``: ``train_from_recipe(recipe, data.fold=k)`` (its own MLflow run under ``MEDAI_HOME``) writes a
fold package to ``--work``/``fold<k>``; then ``Predictor.from_package(fold package)`` is evaluated on the cases it
was not trained on (its held-out fold, :func:`pipelines.lge.evaluate.evaluate`), the JSON is written beside the
package (``evaluation/emidec_heldout.json``) and its means are logged to the fold's run. The output JSON holds
per-fold means, the mean and SD over folds, and the pooled means over all held-out cases (every case is held out
exactly once when all folds ran). It is rewritten after each fold, so a partial run leaves honest partial results.
Hyperparameters are the recipe's, identical for every fold.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from medai.cardiac.lge_predictor import load_default
from medai.errors import ConfigError
from medai.inference.package import read_metadata
from medai.settings import REPO_ROOT
from pipelines.crossval import cli, cv_header, fold_result, fold_summary, log_to_run, train_fold
from pipelines.lge.config import load_recipe
from pipelines.lge.evaluate import CONVENTIONS, evaluate, summarize, write

logger = logging.getLogger(__name__)


def run_cv(
    recipe_path: Path, folds: list[int], data: Path, out: Path, work: Path, overrides: list[str] | None = None,
    *, skip_existing: bool = False, command: str = "",
) -> dict[str, Any]:
    """Train and evaluate ``folds``; write and return the CV document (see the module docstring)."""
    from pipelines.lge.train import train_from_recipe

    overrides = list(overrides or [])
    recipe = load_recipe(recipe_path, overrides)
    if recipe.data.fold is None:
        raise ConfigError("cross-validation needs data.fold (the recipe trains on every case)")
    results: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    t_all = time.time()
    for k in folds:
        pkg, run_id = train_fold(k, recipe_path, overrides, work, recipe.package.version, train_from_recipe,
                                 skip_existing=skip_existing)
        meta = read_metadata(pkg)
        predictor = load_default(pkg)  # Predictor.from_package(...)
        doc = evaluate(predictor, data, "emidec")
        split = json.loads((pkg / "split.json").read_text())
        got = sorted(r["case"] for r in doc["cases"])
        if got != sorted(split["heldout_cases"]):
            raise ConfigError(f"fold {k}: evaluated cases differ from the package's held-out fold")
        fold_json = write(doc, pkg / "evaluation" / "emidec_heldout.json",
                          f"medai evaluate heart_mr_lge_seg --model {pkg} --data {data} --format emidec")
        log_to_run(run_id, doc, fold_json)
        results.append(fold_result(k, doc, pkg, run_id, meta, heldout_cases=got))
        rows += [{"fold": k, **r} for r in doc["cases"]]
        fmean, fsd = fold_summary(results)
        cv = {
            **cv_header(command, recipe_path, overrides, data, recipe.data.n_folds, recipe.data.fold_seed, results),
            "protocol": "each fold's package (trained without its held-out fold, fixed hyperparameters, last-epoch "
            "weights) evaluated through Predictor.from_package(...).segment_volume on its held-out fold",
            "conventions": CONVENTIONS,
            "pooled": summarize(rows),
            "fold_mean": fmean,
            "fold_sd": fsd,
            "folds": results,
            "cases": rows,
            "seconds": time.time() - t_all,
        }
        write(cv, out)
        logger.info("fold %d: %s", k, {m: round(doc["mean"][m], 3) for m in
                                        ("dice.myo", "dice.infarct", "dice.mvo") if m in doc["mean"]})
    return cv


def main(argv: list[str] | None = None) -> None:
    """Command line of :func:`run_cv`."""
    cli(argv, module="pipelines.lge.cv", description="k-fold CV of an LGE segmentation recipe (train + held-out "
        "evaluation)", default_out=REPO_ROOT / "models/packages/heart_mr_lge_seg/evaluation/emidec_cv5.json",
        data_help="EMIDEC folder (default: the recipe's data.root)", load_recipe=load_recipe, run_cv=run_cv)


if __name__ == "__main__":
    main()
