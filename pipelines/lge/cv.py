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

import argparse
import json
import logging
import shlex
import time
from pathlib import Path
from typing import Any

from medai.cardiac.lge_predictor import load_default
from medai.errors import ConfigError
from medai.inference.package import read_metadata
from medai.settings import REPO_ROOT, get_settings
from pipelines.crossval import fold_summary, log_to_run
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
        pkg = Path(work) / f"fold{k}"
        fold_ov = [*overrides, f"data.fold={k}", f"package.out_dir={pkg}", "package.register_model=false",
                   f"package.version={recipe.package.version}-fold{k}"]
        if skip_existing and (pkg / "metadata.json").is_file():
            logger.info("fold %d: reusing %s", k, pkg)
            run_id = read_metadata(pkg).mlflow_run_id
        else:
            logger.info("fold %d: training (%s)", k, " ".join(fold_ov))
            run_id = train_from_recipe(recipe_path, fold_ov)["run_id"]
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
        results.append({"fold": k, "n_cases": doc["n_cases"], "mean": doc["mean"], "package": str(pkg),
                        "mlflow_run_id": run_id, "train_time_s": meta.metrics.get("train/wall_time_s"),
                        "epochs": meta.metrics.get("train/epochs"), "heldout_cases": got})
        rows += [{"fold": k, **r} for r in doc["cases"]]
        fmean, fsd = fold_summary(results)
        cv = {
            "command": command,
            "recipe": str(recipe_path),
            "overrides": overrides,
            "data": str(data),
            "n_folds": recipe.data.n_folds,
            "fold_seed": recipe.data.fold_seed,
            "folds_run": [r["fold"] for r in results],
            "complete": sorted(r["fold"] for r in results) == list(range(recipe.data.n_folds)),
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
    ap = argparse.ArgumentParser(description="k-fold CV of an LGE segmentation recipe (train + held-out evaluation)")
    ap.add_argument("recipe", type=Path)
    ap.add_argument("overrides", nargs="*", help="dotted overrides applied to every fold")
    ap.add_argument("--folds", type=int, nargs="+", default=None, help="default: all folds of the recipe")
    ap.add_argument("--data", type=Path, default=None, help="EMIDEC folder (default: the recipe's data.root)")
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "models/packages/heart_mr_lge_seg/evaluation/"
                    "emidec_cv5.json")
    ap.add_argument("--work", type=Path, default=None, help="fold packages (default: MEDAI_HOME/packages/<name>_cv)")
    ap.add_argument("--skip-existing", action="store_true", help="reuse fold packages already in --work")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for noisy in ("lightning", "lightning.pytorch", "lightning.fabric", "mlflow", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    recipe = load_recipe(args.recipe, args.overrides)
    from pipelines.cmr.data import resolve_data_path

    data = args.data or resolve_data_path(recipe.data.root)
    work = args.work or get_settings().home / "packages" / f"{recipe.package.name}_cv"
    folds = args.folds if args.folds is not None else list(range(recipe.data.n_folds))
    try:
        rel = args.recipe.resolve().relative_to(REPO_ROOT)
    except ValueError:
        rel = args.recipe
    command = " ".join(["python -m pipelines.lge.cv", shlex.quote(str(rel)), *map(shlex.quote, args.overrides),
                        "--folds", *map(str, folds), *(["--data", str(args.data)] if args.data else []),
                        "--out", str(args.out)])
    run_cv(args.recipe, folds, data, args.out, work, args.overrides, skip_existing=args.skip_existing,
           command=command)


if __name__ == "__main__":
    main()
