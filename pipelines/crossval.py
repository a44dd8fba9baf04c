"""What the k-fold cross-validations of the segmentation recipes share (:mod:`pipelines.cmr.cv`,
:mod:`pipelines.lge.cv`): training (or reusing) a fold's package, the per-fold summary, logging a fold's held-out
evaluation to its training run, and the command line."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)


def log_to_run(run_id: str | None, doc: dict[str, Any], path: Path) -> None:
    """Log a fold's held-out means (``eval/...``) and its evaluation JSON to the fold's MLflow training run."""
    if not run_id:
        return
    import mlflow

    from pipelines import mlflow_utils

    mlflow_utils.setup_tracking()
    with mlflow.start_run(run_id=run_id):
        mlflow_utils.log_metrics({f"eval/{k.replace('.', '/')}": v for k, v in doc["mean"].items()})
        mlflow.log_artifact(str(path), artifact_path="evaluation")


def training_facts(meta: Any) -> dict[str, float | None]:
    """``train_time_s`` and ``epochs`` of a fold package: from its metadata, else from its MLflow training run."""
    keys = {"train_time_s": "train/wall_time_s", "epochs": "train/epochs"}
    found: dict[str, float | None] = {k: meta.metrics.get(v) for k, v in keys.items()}
    if any(v is None for v in found.values()) and meta.mlflow_run_id:
        from mlflow.tracking import MlflowClient

        from pipelines import mlflow_utils

        mlflow_utils.setup_tracking()
        try:
            logged = MlflowClient().get_run(meta.mlflow_run_id).data.metrics
        except Exception:  # noqa: BLE001 -- a run from another tracking store: the facts stay unknown
            logged = {}
        found = {k: found[k] if found[k] is not None else logged.get(v) for k, v in keys.items()}
    return found


def fold_result(k: int, doc: dict[str, Any], pkg: Path, run_id: str | None, meta: Any, **extra: Any
                ) -> dict[str, Any]:
    """One fold's entry of a CV document: its held-out means, package, run and training facts (plus ``extra``)."""
    return {"fold": k, "n_cases": doc["n_cases"], "mean": doc["mean"], "package": str(pkg), "mlflow_run_id": run_id,
            **training_facts(meta), **extra}


def cv_header(command: str, recipe_path: Path, overrides: list[str], data: Path, n_folds: int, fold_seed: Any,
              results: list[dict[str, Any]]) -> dict[str, Any]:
    """The opening fields of a CV document: how to reproduce it, and which folds ran (``complete`` when all)."""
    return {"command": command, "recipe": str(recipe_path), "overrides": overrides, "data": str(data),
            "n_folds": n_folds, "fold_seed": fold_seed, "folds_run": [r["fold"] for r in results],
            "complete": sorted(r["fold"] for r in results) == list(range(n_folds))}


def fold_summary(folds: list[dict[str, Any]]) -> tuple[dict[str, float], dict[str, float]]:
    """Mean and SD over folds of each fold-level mean (counts, ``n_*``, are left out)."""
    keys = sorted({k for f in folds for k in f["mean"] if not k.startswith("n_")})
    mean, sd = {}, {}
    for k in keys:
        v = [f["mean"][k] for f in folds if k in f["mean"] and math.isfinite(f["mean"][k])]
        if v:
            mean[k] = float(np.mean(v))
            sd[k] = float(np.std(v, ddof=1)) if len(v) > 1 else 0.0
    return mean, sd


def train_fold(k: int, recipe_path: Path, overrides: list[str], work: Path, version: str,
               train: Callable[[Path, list[str]], dict[str, Any]], *, skip_existing: bool = False
               ) -> tuple[Path, str | None]:
    """Train fold ``k``'s package into ``work``/``fold<k>`` with the recipe's entry point ``train`` (``data.fold=k``,
    not registered, version ``<version>-fold<k>``), or reuse the one there with ``skip_existing``.

    Returns:
        The package folder and its MLflow run id.
    """
    from medai.inference.package import read_metadata

    pkg = Path(work) / f"fold{k}"
    if skip_existing and (pkg / "metadata.json").is_file():
        logger.info("fold %d: reusing %s", k, pkg)
        return pkg, read_metadata(pkg).mlflow_run_id
    fold_ov = [*overrides, f"data.fold={k}", f"package.out_dir={pkg}", "package.register_model=false",
               f"package.version={version}-fold{k}"]
    logger.info("fold %d: training (%s)", k, " ".join(fold_ov))
    return pkg, train(recipe_path, fold_ov)["run_id"]


def cli(argv: list[str] | None, *, module: str, description: str, default_out: Path, data_help: str,
        load_recipe: Callable[[Path, list[str]], Any], run_cv: Callable[..., dict[str, Any]]) -> None:
    """The command line every ``pipelines.<task>.cv`` shares: recipe, overrides, ``--folds``, ``--data``, ``--out``,
    ``--work``, ``--skip-existing``; the reproducing command is recorded in the output JSON."""
    import argparse
    import logging as _logging
    import shlex

    from medai.errors import ConfigError
    from medai.settings import REPO_ROOT, get_settings
    from pipelines.cmr.data import resolve_data_path

    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("recipe", type=Path)
    ap.add_argument("overrides", nargs="*", help="dotted overrides applied to every fold")
    ap.add_argument("--folds", type=int, nargs="+", default=None, help="default: all folds of the recipe")
    ap.add_argument("--data", type=Path, default=None, help=data_help)
    ap.add_argument("--out", type=Path, default=default_out)
    ap.add_argument("--work", type=Path, default=None, help="fold packages (default: MEDAI_HOME/packages/<name>_cv)")
    ap.add_argument("--skip-existing", action="store_true", help="reuse fold packages already in --work")
    args = ap.parse_args(argv)
    _logging.basicConfig(level=_logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for noisy in ("lightning", "lightning.pytorch", "lightning.fabric", "mlflow", "alembic"):
        _logging.getLogger(noisy).setLevel(_logging.WARNING)
    recipe = load_recipe(args.recipe, args.overrides)
    if args.data is None and recipe.data.root is None:
        raise ConfigError("cross-validation needs the data: set data.root or pass --data")
    data = args.data or resolve_data_path(recipe.data.root)
    work = args.work or get_settings().home / "packages" / f"{recipe.package.name}_cv"
    folds = args.folds if args.folds is not None else list(range(recipe.data.n_folds))
    try:
        rel = args.recipe.resolve().relative_to(REPO_ROOT)
    except ValueError:
        rel = args.recipe
    command = " ".join([f"python -m {module}", shlex.quote(str(rel)), *map(shlex.quote, args.overrides),
                        "--folds", *map(str, folds), *(["--data", str(args.data)] if args.data else []),
                        "--out", str(args.out)])
    run_cv(args.recipe, folds, data, args.out, work, args.overrides, skip_existing=args.skip_existing,
           command=command)
