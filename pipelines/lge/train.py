"""``medai train configs/experiment/lge_seg_*.yaml``: train one fold, export and register a package.

Flow of :func:`train_from_recipe`: recipe (+ dotted overrides) -> MLflow run under ``MEDAI_HOME`` (resolved config
as params and YAML) -> Lightning ``fit`` for a fixed number of epochs (no early stopping, no checkpoint
selection: the held-out fold is logged as curves only) -> :func:`export_package` (weights of the last epoch,
``inference.json``, ``split.json`` with the training and held-out case ids) -> plots, history and package logged
to the run -> registered model ``heart_mr_lge_seg`` with alias ``candidate``.

Held-out figures are *not* written here: they come from ``medai evaluate`` through ``Predictor.from_package``
(:mod:`pipelines.lge.evaluate`, :mod:`pipelines.lge.cv`, :mod:`pipelines.lge.ship`).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from torch import nn

from medai.cardiac.lge_predictor import metadata_labels
from medai.datasets.emidec import CITATION, LICENCE
from medai.inference.compiled import export_package as export_onnx
from medai.inference.package import ModelMetadata, TrainingData, write_metadata
from medai.settings import REPO_ROOT, get_settings
from pipelines import mlflow_utils
from pipelines.cmr.train import HistoryCallback, hardware_description, metric_history, reproduce_command
from pipelines.lge.config import LgeDataFormat, LgeSegRecipe, load_recipe
from pipelines.lge.data import LgeDataModule
from pipelines.lge.module import LgeSegModule

logger = logging.getLogger(__name__)

SPLIT_FILE = "split.json"
CURVE_KEYS = ["train/loss", "val/dice/lv", "val/dice/myo", "val/dice/infarct", "val/dice/mvo", "val/dice/mean"]


def emidec_training_data(n_cases: int, fold: int | None) -> TrainingData:
    """The training-data entry of an EMIDEC-trained package."""
    held = f"fold {fold} of 5 held out (never trained on)" if fold is not None else "all cases"
    return TrainingData(
        name=f"EMIDEC (MICCAI 2020), {n_cases} cases; {held}",
        description="Delayed-enhancement short-axis cardiac MR of the LV, University Hospital of Dijon; expert "
        "masks of cavity, myocardium, infarct and no-reflow (MVO). 2-D PNG re-release (256 x 256, 8-bit, no pixel "
        "spacing) of irehmanar/LV_Segmentation_MRI_Dataset_EMIDEC; case-level, N/P-stratified folds.",
        licence=LICENCE,
        n_cases=n_cases,
        citation=CITATION,
    )


def write_split(out_dir: Path, recipe: LgeSegRecipe, train_ids: list[str], heldout_ids: list[str]) -> Path:
    """``split.json``: the fold definition and the case ids trained on / held out (read by the evaluation)."""
    d = recipe.data
    doc = {"dataset": "emidec" if d.format == LgeDataFormat.EMIDEC else str(d.format), "group": "case",
           "n_folds": d.n_folds, "fold_seed": d.fold_seed, "heldout_fold": d.fold, "exclude_folds": d.exclude_folds,
           "train_cases": sorted(train_ids), "heldout_cases": sorted(heldout_ids)}
    path = Path(out_dir) / SPLIT_FILE
    path.write_text(json.dumps(doc, indent=1))
    return path


def export_package(
    net: nn.Module, recipe: LgeSegRecipe, out_dir: Path, train_ids: list[str], heldout_ids: list[str],
    metrics: dict[str, float] | None = None, *, run_id: str | None = None, hardware: str = "",
    train_time_s: float | None = None, reproduce: str = "",
) -> Path:
    """Write an LGE segmentation package (``metadata.json``, ``inference.json``, ``weights.pt``, ``split.json``, card).

    Args:
        net: the trained network (its ``state_dict``; fp16 when ``recipe.package.fp16``).
        recipe: the recipe that produced it.
        out_dir: package folder (created).
        train_ids / heldout_ids: the cases trained on and the held-out fold's cases.
        metrics: training metrics (``train/...``); held-out figures come from the evaluation, not from here.

    Returns:
        ``out_dir``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fp16 = recipe.package.fp16
    state = {k: (v.half() if fp16 and v.is_floating_point() else v).detach().cpu().clone()
             for k, v in net.state_dict().items()}
    torch.save(state, out_dir / "weights.pt")
    icfg = recipe.model.inference_config()
    (out_dir / "inference.json").write_text(icfg.model_dump_json(indent=2))
    write_split(out_dir, recipe, train_ids, heldout_ids)
    n_params = sum(p.numel() for p in net.parameters())
    is_emidec = recipe.data.format == LgeDataFormat.EMIDEC
    ctx = f"2.5-D ({icfg.in_channels} adjacent slices as channels)" if icfg.context else "2-D"
    crop = f"centred {icfg.crop_size[0]}x{icfg.crop_size[1]} crop" if icfg.crop_size else "whole grid"
    meta = ModelMetadata(
        name=recipe.package.name,
        version=recipe.package.version,
        predictor="lge_sax_seg",
        task="segmentation",
        description=(
            f"Slice-wise {ctx} segmentation of late-gadolinium-enhancement short-axis cardiac MR into LV cavity, "
            f"healthy myocardium, infarct (scar) and microvascular obstruction: {recipe.model.network.name} "
            f"({n_params / 1e6:.2f} M parameters), trained with Dice+CE on EMIDEC slices"
            + (f" (fold {recipe.data.fold} held out)." if recipe.data.fold is not None else " (all cases).")
        ),
        intended_use="Research use only; not a medical device. LGE (inversion-recovery) short-axis stacks of the "
        "LV after myocardial infarction, framed like EMIDEC (LV near the image centre, ~1/5 of the field of "
        "view); results must be reviewed by a qualified reader.",
        input_contract={
            "modality": "MR", "series": "LGE short-axis stack, (Z, Y, X), any in-plane size",
            "preprocessing": f"each slice resized to {icfg.canonical_size[0]}x{icfg.canonical_size[1]} (bilinear, "
            f"aspect not kept, as the EMIDEC release was made); per-{icfg.norm} intensity clip p{icfg.p_low:g}-"
            f"p{icfg.p_high:g} then z-score; {crop}; context {icfg.context} slice(s) per side",
            "network_input": f"(B, {icfg.in_channels}, {(icfg.crop_size or icfg.canonical_size)[0]}, "
            f"{(icfg.crop_size or icfg.canonical_size)[1]}) float32",
        },
        output_contract={
            "network_output": f"(B, {max(icfg.labels.values()) + 1}, H, W) logits; softmax, put back on the canonical "
            "grid, bilinear to the source grid, argmax = label value; then medai.cardiac.lge_postprocess.clean_lge",
            "labels": dict(icfg.labels),
            "label_map": "(Z, Y, X) uint8 in the source geometry",
        },
        labels=metadata_labels(icfg.labels),
        training_data=[emidec_training_data(len(train_ids), recipe.data.fold)] if is_emidec
        else [TrainingData(name=str(recipe.data.format), n_cases=len(train_ids))],
        metrics={k: float(v) for k, v in (metrics or {}).items() if np.isfinite(v)},
        mlflow_run_id=run_id,
        files=["weights.pt", "inference.json", SPLIT_FILE, "MODEL_CARD.md"],
        licence=LICENCE if is_emidec else "",
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        hardware=hardware + (f"; training wall time {train_time_s / 60:.1f} min" if train_time_s else ""),
        reproduce=reproduce,
    )
    write_metadata(out_dir, meta)
    (out_dir / "MODEL_CARD.md").write_text(training_card(meta, recipe, n_params, len(heldout_ids)))
    export_onnx(out_dir)  # the ONNX export beside the weights (medai.inference.compiled)
    return out_dir


def training_card(meta: ModelMetadata, recipe: LgeSegRecipe, n_params: int, n_heldout: int) -> str:
    """The model card of a freshly trained package (no held-out figures yet; :mod:`pipelines.lge.ship` adds them)."""
    td = meta.training_data[0] if meta.training_data else None
    return f"""# {meta.name} {meta.version} -- LGE short-axis scar segmentation (as trained)

{meta.description}

## Model
- Network: `{recipe.model.network.name}` {json.dumps(recipe.model.network.params)} ({n_params / 1e6:.2f} M parameters).
- Preprocessing (shared with the predictor, `medai.cardiac.lge_predictor`): {meta.input_contract["preprocessing"]}.
- Training: {recipe.trainer.max_epochs} epochs, Dice (batch) + CE, AdamW lr {recipe.optim.lr}, warm-up + cosine,
  batch {recipe.data.batch_size}, slices with infarct sampled x{recipe.data.infarct_oversample:g}; last-epoch
  weights (no checkpoint selection). Hardware: {meta.hardware}.
- Data: {td.name if td else "n/a"}; {n_heldout} held-out cases listed in `split.json`. Licence {meta.licence}.

## Held-out figures
Not part of training: `medai evaluate {meta.name} --model <this folder> --data <emidec> --format emidec` evaluates
the cases of `split.json` that were not trained on, through `Predictor.from_package`.

## Reproduce
```
{meta.reproduce}
```
"""


def _plot_history(history: list[dict[str, float]], path: Path) -> Path | None:
    if not history:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    tr = [h for h in history if "train/loss" in h]
    if tr:
        axes[0].plot([h["epoch"] for h in tr], [h["train/loss"] for h in tr], label="train Dice+CE loss")
        axes[0].set_xlabel("epoch")
        axes[0].legend()
    for k in CURVE_KEYS[1:]:
        pts = [(h["epoch"], h[k]) for h in history if k in h]
        if pts:
            axes[1].plot(*zip(*pts, strict=True), marker=".", label=k)
    axes[1].set_xlabel("epoch")
    axes[1].set_ylabel("Dice (held-out fold, curves only)")
    axes[1].set_ylim(0, 1)
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _trainer(recipe: LgeSegRecipe, callbacks: list[Callback], root: Path, has_val: bool) -> L.Trainer:
    t = recipe.trainer
    kwargs: dict[str, Any] = {}
    if t.max_time_minutes:
        kwargs["max_time"] = {"minutes": t.max_time_minutes}
    if t.limit_train_batches is not None:
        kwargs["limit_train_batches"] = t.limit_train_batches
    kwargs["limit_val_batches"] = (t.limit_val_batches if t.limit_val_batches is not None else 1.0) if has_val else 0
    return L.Trainer(
        accelerator=t.accelerator, devices=t.devices, num_nodes=t.num_nodes, strategy=t.strategy,
        precision=t.precision, max_epochs=t.max_epochs, check_val_every_n_epoch=t.check_val_every_n_epoch,
        fast_dev_run=t.fast_dev_run, deterministic=t.deterministic, enable_progress_bar=t.enable_progress_bar,
        callbacks=callbacks, logger=False, default_root_dir=str(root), num_sanity_val_steps=0,
        enable_model_summary=False, enable_checkpointing=False, **kwargs,
    )


def train_from_recipe(recipe_path: Path, overrides: list[str] | None = None) -> dict[str, Any]:
    """Run an LGE segmentation recipe end to end (the ``medai train`` entry point of task ``lge_segmentation``).

    Returns:
        ``{"run_id", "package_dir", "metrics", "model_version", "train_time_s", "train_cases", "heldout_cases"}``.
    """
    overrides = list(overrides or [])
    recipe = load_recipe(recipe_path, overrides)
    if recipe.trainer.num_threads:
        torch.set_num_threads(recipe.trainer.num_threads)
    L.seed_everything(recipe.seed, workers=True)
    home = get_settings().home
    reproduce = reproduce_command(recipe_path, overrides)
    with mlflow_utils.start_run(recipe.name, run_name=f"{recipe.name}_fold{recipe.data.fold}",
                                tags={"task": recipe.task, "fold": str(recipe.data.fold)}) as run:
        run_id = run.info.run_id
        mlflow_utils.log_config(recipe.model_dump(mode="json"))
        import mlflow

        mlflow.set_tags({"reproduce": reproduce, "hardware": hardware_description()})
        work = home / "runs" / recipe.name / run_id
        work.mkdir(parents=True, exist_ok=True)
        icfg = recipe.model.inference_config()
        dm = LgeDataModule(recipe.data, icfg)
        mlflow_utils.log_metrics({"data/n_train_cases": len(dm.train_ids), "data/n_heldout_cases": len(dm.heldout_ids)})
        module = LgeSegModule(recipe.model, recipe.optim, max_epochs=recipe.trainer.max_epochs)
        history = HistoryCallback(run_id, mlflow_utils.setup_tracking())
        trainer = _trainer(recipe, [history], work, has_val=bool(dm.heldout_ids))
        t0 = time.time()
        trainer.fit(module, datamodule=dm)
        train_time = time.time() - t0
        trainer.save_checkpoint(work / "last.ckpt")
        last = {k: float(v) for k, v in trainer.callback_metrics.items()}
        metrics = {"train/wall_time_s": train_time, "train/epochs": float(trainer.current_epoch)}
        if "train/loss" in last:
            metrics["train/loss_last"] = last["train/loss"]
        mlflow_utils.log_metrics(metrics)
        pkg_dir = (Path(recipe.package.out_dir) if recipe.package.out_dir
                   else home / "packages" / recipe.package.name / run_id)
        if not pkg_dir.is_absolute():
            pkg_dir = REPO_ROOT / pkg_dir
        export_package(module.net, recipe, pkg_dir, dm.train_ids, dm.heldout_ids, metrics, run_id=run_id,
                       hardware=hardware_description(), train_time_s=train_time, reproduce=reproduce)
        plots = work / "plots"
        plots.mkdir(exist_ok=True)
        curves = metric_history(run_id, CURVE_KEYS)
        p = _plot_history(curves, plots / "training_curves.png")
        if p is not None:
            mlflow_utils.log_artifacts(p, "plots")
        (work / "history.json").write_text(json.dumps(curves, indent=1))
        mlflow_utils.log_artifacts(work / "history.json", "history")
        version = None
        if recipe.package.register_model:
            version = mlflow_utils.register_package(pkg_dir, recipe.package.name, recipe.package.alias)
        else:
            mlflow_utils.log_artifacts(pkg_dir, mlflow_utils.PACKAGE_ARTIFACT_PATH)
        logger.info("package written to %s (%.1f MB) after %.1f min", pkg_dir,
                    sum(f.stat().st_size for f in pkg_dir.iterdir() if f.is_file()) / 1e6, train_time / 60)
    return {"run_id": run_id, "package_dir": pkg_dir, "metrics": metrics, "model_version": version,
            "train_time_s": train_time, "train_cases": dm.train_ids, "heldout_cases": dm.heldout_ids,
            "python": sys.version.split()[0]}
