"""``medai train configs/experiment/cmr_seg_*.yaml``: train, select on validation, export and register a package.

Flow of :func:`train_from_recipe`: recipe (+ dotted overrides) -> MLflow run (resolved config as params and
YAML) -> Lightning ``fit`` (checkpoint on ``val/dice/mean``, early stopping) -> re-validation of the best
checkpoint (ED/ES Dice, HD95) -> :func:`export_package` -> plots and package logged to the run -> registered
model ``heart_mr_cine_seg`` with alias ``candidate``.

The validation split is the model-selection split: its figures are *validation* figures, not a test result.
With ``data.fold`` (cross-validation, :mod:`pipelines.cmr.cv`) the held-out fold takes the validation split's
place as curves only: no selection, no early stopping, and the package holds the last epoch's weights.
"""

from __future__ import annotations

import json
import logging
import math
import platform
import shlex
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint
from torch import nn

from medai.cardiac.preprocess import CineSegInferenceConfig
from medai.datasets.acdc import FOLD_SEED
from medai.inference.compiled import export_package as export_onnx
from medai.inference.package import ModelMetadata, TrainingData, write_metadata
from medai.settings import REPO_ROOT, get_settings
from pipelines import mlflow_utils
from pipelines.cmr.config import CmrSegRecipe, DataFormat, load_recipe
from pipelines.cmr.data import CineSegDataModule
from pipelines.cmr.module import CineSegModule

logger = logging.getLogger(__name__)

#: SNOMED CT codes of the cine labels (DICOM CID 7152 "Cardiac Structure Segmentation Type" and CID 7151).
LABEL_CODES: dict[str, dict[str, str]] = {
    "lv": {"value": "87878005", "scheme": "SCT", "meaning": "Left ventricle", "segment": "LV blood pool (cavity)"},
    "myo": {"value": "74281007", "scheme": "SCT", "meaning": "Myocardium", "segment": "LV myocardium"},
    "rv": {"value": "53085002", "scheme": "SCT", "meaning": "Right ventricle", "segment": "RV blood pool (cavity)"},
}
LABEL_COLORS = {"lv": (220, 40, 40), "myo": (40, 180, 60), "rv": (40, 90, 230)}

ACDC_DESCRIPTION = ("Automated Cardiac Diagnosis Challenge, MICCAI 2017: cine SAX MR, 1.5T/3T Siemens, Dijon; "
                    "5 groups (NOR, MINF, DCM, HCM, ARV).")
ACDC_CITATION = ("Bernard O. et al., Deep Learning Techniques for Automatic MRI Cardiac Multi-Structures Segmentation "
                 "and Diagnosis: Is the Problem Solved? IEEE TMI 37(11):2514-2525, 2018.")


def _count_patients(recipe: CmrSegRecipe, split: str) -> int | None:
    """Patients of a split of an ACDC recipe (from splits.csv or the folder), None when it cannot be told."""
    from medai.datasets.acdc import acdc_split_patients
    from medai.errors import ConfigError
    from pipelines.cmr.data import fold_patients, resolve_data_path

    d = recipe.data
    name = d.train if split == "train" else d.val
    try:
        if d.fold is not None:
            n = sum((k == d.fold) == (split == "val") for k in fold_patients(d).values())
        elif d.format == DataFormat.ACDC and d.root is not None:
            n = len(acdc_split_patients(resolve_data_path(d.root), name))
        else:
            folder = resolve_data_path(name)
            pattern = "patient*_frame*.h5" if d.format == DataFormat.ACDC_H5 else "patient*/Info.cfg"
            n = len({p.name.split("_")[0] if p.suffix == ".h5" else p.parent.name for p in folder.glob(pattern)})
    except (ConfigError, OSError):
        return None
    if d.max_cases:  # two cases (ED, ES) per patient
        n = min(n, math.ceil(d.max_cases / 2))
    return n or None


def split_description(recipe: CmrSegRecipe, split: str) -> str:
    """The data of one split in words, e.g. ``"ACDC official training set, cardiac/acdc/splits.csv 'val' (20
    patients)"``."""
    d = recipe.data
    n = _count_patients(recipe, split)
    count = f"{n} patient{'' if n == 1 else 's'}" if n else "patients"
    if d.max_cases:
        count += f", data.max_cases={d.max_cases}"
    name = d.train if split == "train" else d.val
    if d.fold is not None:
        which = f"fold {d.fold} of {d.n_folds}" if split == "val" else f"every patient but fold {d.fold} of {d.n_folds}"
        return f"ACDC official training set, {d.root}: {which} (group-stratified, seed {FOLD_SEED}; {count})"
    if d.format == DataFormat.ACDC and d.root is not None:
        return f"ACDC official training set, {d.root}/splits.csv {name!r} ({count})"
    if d.format == DataFormat.ACDC_H5:
        return f"ACDC HDF5 copy {name} ({count})"
    if d.format == DataFormat.ACDC:
        return f"ACDC official layout {name} ({count})"
    return f"{d.format} {split}"


def acdc_training_data(recipe: CmrSegRecipe) -> TrainingData:
    """The ``training_data`` entry of a package trained by an ACDC recipe (split names and sizes from the data)."""
    n = _count_patients(recipe, "train")
    return TrainingData(
        name=f"{split_description(recipe, 'train')}, ED+ES",
        description=f"{ACDC_DESCRIPTION} " + (
            f"Held out, never trained on and not used for selection (last-epoch weights): "
            f"{split_description(recipe, 'val')}." if recipe.data.fold is not None
            else f"Model selection on {split_description(recipe, 'val')}."),
        licence="CC BY-NC-SA 4.0",
        n_cases=n,
        citation=ACDC_CITATION,
    )


def hardware_description() -> str:
    """CPU/GPU of this machine, in words."""
    import os

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    desc = f"{cpu}, {os.cpu_count()} logical CPUs, torch {torch.__version__}, threads {torch.get_num_threads()}"
    if torch.cuda.is_available():
        desc += f", GPU {torch.cuda.get_device_name(0)} x{torch.cuda.device_count()}"
    return desc


class HistoryCallback(Callback):
    """Keeps per-epoch metrics and logs them to the MLflow run (rank 0 only; works in spawned DDP workers too).

    Args:
        run_id: the MLflow run to log to (None: no MLflow logging).
        tracking_uri: the MLflow store (passed explicitly so spawned processes find it).
    """

    def __init__(self, run_id: str | None = None, tracking_uri: str | None = None) -> None:
        self.history: list[dict[str, float]] = []
        self.run_id = run_id
        self.tracking_uri = tracking_uri
        self._t0 = time.time()

    def _record(self, trainer: L.Trainer, stage: str) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith(stage)}
        if not metrics:
            return
        row = {"epoch": float(trainer.current_epoch), "time_s": time.time() - self._t0, **metrics}
        if stage == "train":
            row["train/lr"] = float(trainer.optimizers[0].param_groups[0]["lr"])
        self.history.append(row)
        if self.run_id:
            from mlflow.entities import Metric
            from mlflow.tracking import MlflowClient

            now = int(time.time() * 1000)
            batch = [Metric(k, v, now, trainer.current_epoch) for k, v in row.items() if "/" in k and np.isfinite(v)]
            MlflowClient(self.tracking_uri).log_batch(self.run_id, metrics=batch)
        keys = [k for k in ("train/loss", "val/dice/lv", "val/dice/myo", "val/dice/rv", "val/dice/mean") if k in row]
        logger.info("epoch %d (%.0f s): %s", trainer.current_epoch, row["time_s"],
                    ", ".join(f"{k}={row[k]:.4f}" for k in keys))

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._record(trainer, "train")

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._record(trainer, "val")


def metric_history(run_id: str, keys: list[str]) -> list[dict[str, float]]:
    """Per-epoch rows ``{"epoch", key: value}`` of a run's metrics, read back from MLflow."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    rows: dict[int, dict[str, float]] = {}
    for k in keys:
        for m in client.get_metric_history(run_id, k):
            rows.setdefault(m.step, {"epoch": float(m.step)})[k] = m.value
    return [rows[e] for e in sorted(rows)]


def inference_config(recipe: CmrSegRecipe) -> CineSegInferenceConfig:
    """The frozen ``inference.json`` of a recipe's model."""
    m = recipe.model
    return CineSegInferenceConfig(
        network=m.network, spatial_dims=m.spatial_dims, target_spacing_mm=m.target_spacing_mm,
        size_divisor=m.size_divisor, labels=dict(m.labels), tta=m.tta,
    )


#: ``inference.json`` fields that change how a package is run, not what it learnt: a CV that reuses fold packages
#: (``--skip-existing``) sets them from the recipe (:func:`apply_inference_settings`).
INFERENCE_SETTINGS = ("tta",)


def inference_changes(package: Path, recipe: CmrSegRecipe) -> dict[str, Any]:
    """The package's :data:`INFERENCE_SETTINGS` that differ from the recipe's (name -> [package's, recipe's])."""
    from medai.cardiac.preprocess import CineSegInferenceConfig

    cfg = CineSegInferenceConfig.model_validate_json((Path(package) / "inference.json").read_text())
    want = inference_config(recipe)
    return {k: [getattr(cfg, k), getattr(want, k)] for k in INFERENCE_SETTINGS if getattr(cfg, k) != getattr(want, k)}


def apply_inference_settings(package: Path, recipe: CmrSegRecipe) -> dict[str, Any]:
    """Set the package's :data:`INFERENCE_SETTINGS` to the recipe's; returns those that changed (name -> old, new).
    The weights and everything they were trained with stay as they are."""
    from medai.cardiac.preprocess import CineSegInferenceConfig

    path = Path(package) / "inference.json"
    changed = inference_changes(package, recipe)
    if changed:
        cfg = CineSegInferenceConfig.model_validate_json(path.read_text())
        tmp = path.with_suffix(".tmp")
        tmp.write_text(cfg.model_copy(update={k: new for k, (_, new) in changed.items()}).model_dump_json(indent=2))
        tmp.replace(path)
    return changed


def export_package(
    net: nn.Module,
    recipe: CmrSegRecipe,
    out_dir: Path,
    metrics: dict[str, float] | None = None,
    *,
    run_id: str | None = None,
    hardware: str = "",
    train_time_s: float | None = None,
    reproduce: str = "",
    fp16: bool | None = None,
) -> Path:
    """Write a cine segmentation model package (``metadata.json``, ``inference.json``, ``weights.pt``, card).

    Args:
        net: the trained network (its ``state_dict`` is saved; fp16 when ``fp16``, restored to fp32 on load).
        recipe: the recipe (network spec, labels, data) that produced it.
        out_dir: package folder (created).
        metrics: validation metrics keyed ``stage/name[/label]``.
        run_id: the MLflow run.
        hardware: training hardware in words.
        train_time_s: training wall time.
        reproduce: the command that reproduces the package.
        fp16: store weights as float16 (default: ``recipe.package.fp16``).

    Returns:
        ``out_dir``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fp16 = recipe.package.fp16 if fp16 is None else fp16
    state = {k: (v.half() if fp16 and v.is_floating_point() else v).detach().cpu().clone()
             for k, v in net.state_dict().items()}
    torch.save(state, out_dir / "weights.pt")
    icfg = inference_config(recipe)
    (out_dir / "inference.json").write_text(icfg.model_dump_json(indent=2))
    labels = [
        {"value": v, "name": k, "code": {kk: LABEL_CODES[k][kk] for kk in ("value", "scheme", "meaning")},
         "description": LABEL_CODES[k]["segment"], "color": list(LABEL_COLORS[k])}
        for k, v in sorted(recipe.model.labels.items(), key=lambda kv: kv[1]) if k in LABEL_CODES
    ]
    n_params = sum(p.numel() for p in net.parameters())
    is_acdc = recipe.data.format in (DataFormat.ACDC_H5, DataFormat.ACDC)
    meta = ModelMetadata(
        name=recipe.package.name,
        version=recipe.package.version,
        predictor="cine_sax_seg",
        task="segmentation",
        description=(
            f"Slice-wise 2-D segmentation of cine short-axis cardiac MR into LV blood pool, LV myocardium and RV "
            f"blood pool: {recipe.model.network.name} ({n_params / 1e6:.2f} M parameters), trained with DiceCE "
            f"on ACDC ED/ES slices." if is_acdc else f"Cine segmentation network {recipe.model.network.name}."
        ),
        intended_use="Research use only; not a medical device. Cine bSSFP short-axis stacks of adult hearts "
        "(1.5 T/3 T); results must be reviewed by a qualified reader.",
        input_contract={
            "modality": "MR", "series": "cine short-axis (SAX) stack, (T, Z, Y, X)",
            "preprocessing": f"in-plane resampling to {icfg.target_spacing_mm} mm; per-series intensity clip "
            f"p{icfg.p_low:g}-p{icfg.p_high:g} then z-score; zero-pad to a multiple of {icfg.size_divisor}",
            "network_input": "(B, 1, H, W) float32",
        },
        output_contract={"network_output": f"(B, {len(recipe.model.labels) + 1}, H, W) logits; argmax = label value",
                         "labels": dict(recipe.model.labels)},
        labels=labels,
        training_data=[acdc_training_data(recipe)] if is_acdc else [TrainingData(name=str(recipe.data.format))],
        metrics={k: float(v) for k, v in (metrics or {}).items() if np.isfinite(v)},
        mlflow_run_id=run_id,
        files=["weights.pt", "inference.json", "MODEL_CARD.md"],
        licence="CC BY-NC-SA 4.0" if is_acdc else "",
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        hardware=hardware + (f"; training wall time {train_time_s / 60:.1f} min" if train_time_s else ""),
        reproduce=reproduce,
    )
    write_metadata(out_dir, meta)
    (out_dir / "MODEL_CARD.md").write_text(model_card(meta, recipe, n_params))
    export_onnx(out_dir)  # the ONNX export beside the weights (medai.inference.compiled)
    return out_dir


def model_card(meta: ModelMetadata, recipe: CmrSegRecipe, n_params: int) -> str:
    """The human-readable model card (Markdown) of a package."""
    m = meta.metrics

    def g(key: str) -> str:
        return f"{m[key]:.3f}" if key in m else "n/a"

    rows = "\n".join(
        f"| {name.upper()} | {g(f'val/dice_ed/{name}')} | {g(f'val/dice_es/{name}')} | {g(f'val/dice/{name}')} | "
        f"{g(f'val/hd95/{name}')} |"
        for name in ("lv", "myo", "rv")
    )
    td = meta.training_data[0] if meta.training_data else None
    d = recipe.data
    val_desc = split_description(recipe, "val")
    val_heading = (f"held-out cross-validation fold, not trained on and not used for selection: {val_desc}"
                   if d.fold is not None else f"model-selection split: {val_desc}; NOT an independent test")
    kept = ("last epoch kept (cross-validation fold)" if d.fold is not None
            else "checkpoint selected on validation mean Dice")
    selection_note = ("These are the last epoch's weights; nothing was chosen on these figures." if d.fold is not None
                      else "The checkpoint was selected on these figures, so they are optimistic for unseen data.")
    if d.format in (DataFormat.ACDC_H5, DataFormat.SYNTHETIC):
        hd_unit, grid_note = "voxels", " as stored (no spacing is known; HD95 in voxels)"
    elif d.resample:
        hd_unit = "mm"
        grid_note = f" (resampled in-plane to {recipe.model.target_spacing_mm} mm, as the predictor does; HD95 in mm)"
    else:
        hd_unit, grid_note = "mm", " as stored (HD95 in mm)"
    return f"""# {meta.name} {meta.version} -- cine short-axis ventricular segmentation

{meta.description}

## Intended use
{meta.intended_use}
Not validated for: paediatric or congenital hearts, long-axis views, LGE/T1/T2 maps, non-bSSFP cine, CT or echo.
Failure modes to expect: basal slices (LV outflow / atria), apical slices with partial volume, RV at the base.

## Model
- Network: `{recipe.model.network.name}` {json.dumps(recipe.model.network.params)} ({n_params / 1e6:.2f} M parameters),
  2-D slice-wise; labels {json.dumps(recipe.model.labels)} (SNOMED CT codes in `metadata.json`).
- Preprocessing (shared with training, `medai.cardiac.preprocess`): {meta.input_contract.get("preprocessing", "")}.
- Training: DiceCE loss, AdamW (lr {recipe.optim.lr}, weight decay {recipe.optim.weight_decay}), warm-up + cosine,
  batch {recipe.data.batch_size} random {recipe.data.patch_size[0]}x{recipe.data.patch_size[1]} crops,
  MONAI augmentation (rotation, flips, zoom {recipe.data.augment.zoom[0]}-{recipe.data.augment.zoom[1]}, intensity
  scale/shift, gamma, noise); {kept}.
- Hardware and time: {meta.hardware}.

## Data and licence
- Training data: {td.name if td else "n/a"}. {td.description if td else ""}
- Licence of the data and therefore of these weights: **{meta.licence or "see training data"}** (non-commercial).
- Citation: {td.citation if td else ""}

## Validation ({val_heading})
3-D Dice per volume, mean over the patients x {{ED, ES}}, after the predictor's consistency step
(`medai.cardiac.postprocess.clean_frame`: largest component per structure, no RV inside the LV), on the
training grid{grid_note}. {selection_note}

| structure | Dice ED | Dice ES | Dice ED+ES | HD95 ({hd_unit}) |
|---|---|---|---|---|
{rows}

Mean Dice (LV, MYO, RV): {g("val/dice/mean")}. Raw network output without the consistency step: LV
{g("val/dice_raw/lv")}, MYO {g("val/dice_raw/myo")}, RV {g("val/dice_raw/rv")}.
Floor required by medai: LV 0.90, MYO 0.80, RV 0.80; published state of the art on ACDC: LV ~0.95, MYO ~0.90,
RV ~0.92. External evaluation (Sunnybrook) is produced by
`medai evaluate heart_mr_cine_seg --format sunnybrook`.

## Reproduce
```
{meta.reproduce}
```
MLflow run: {meta.mlflow_run_id or "n/a"}.
"""


def _plot_history(history: list[dict[str, float]], path: Path) -> Path | None:
    if not history:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    tr = [h for h in history if "train/loss" in h]
    va = [h for h in history if "val/dice/mean" in h]
    if tr:
        axes[0].plot([h["epoch"] for h in tr], [h["train/loss"] for h in tr], label="train DiceCE loss")
        axes[0].set_xlabel("epoch")
        axes[0].legend()
    for key in ("lv", "myo", "rv", "mean"):
        k = f"val/dice/{key}"
        pts = [(h["epoch"], h[k]) for h in va if k in h]
        if pts:
            axes[1].plot(*zip(*pts, strict=True), marker=".", label=k)
    axes[1].set_xlabel("epoch")
    axes[1].set_ylabel("validation Dice")
    axes[1].set_ylim(0, 1)
    axes[1].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _plot_overlay(net: nn.Module, dm: CineSegDataModule, recipe: CmrSegRecipe, path: Path) -> Path | None:
    """Validation overlay: mid-ventricular slices of the first validation cases, reference vs prediction."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pipelines.cmr.module import segment_slices

    if dm.val_ds is None or len(dm.val_ds) == 0:
        return None
    n = min(4, len(dm.val_ds))
    fig, axes = plt.subplots(2, n, figsize=(3.2 * n, 6.4), squeeze=False)
    colors = np.zeros((max(recipe.model.labels.values()) + 1, 4))
    for name, v in recipe.model.labels.items():
        colors[v] = (*(np.array(LABEL_COLORS.get(name, (255, 255, 0))) / 255.0), 0.45)
    net.eval()
    for j in range(n):
        item = dm.val_ds[j * max(1, len(dm.val_ds) // n)]
        from medai.cardiac.postprocess import clean_frame

        raw = segment_slices(net, item["image"], recipe.model.size_divisor).numpy().astype(np.uint8)
        pred = clean_frame(raw, recipe.model.labels)
        ref = item["label"].numpy()
        z = int(np.argmax((ref > 0).sum(axis=(1, 2)))) if ref.any() else ref.shape[0] // 2
        for i, (lab, title) in enumerate(((ref, "reference"), (pred, "prediction"))):
            ax = axes[i, j]
            ax.imshow(item["image"][z].numpy(), cmap="gray")
            ax.imshow(colors[lab[z]], interpolation="nearest")
            ax.set_title(f"{item['case_id']} z={z} {title}", fontsize=8)
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _trainer(recipe: CmrSegRecipe, callbacks: list[Callback], ckpt_dir: Path) -> L.Trainer:
    t = recipe.trainer
    kwargs: dict[str, Any] = {}
    if t.max_time_minutes:
        kwargs["max_time"] = {"minutes": t.max_time_minutes}
    for k in ("limit_train_batches", "limit_val_batches"):
        if getattr(t, k) is not None:
            kwargs[k] = getattr(t, k)
    return L.Trainer(
        accelerator=t.accelerator, devices=t.devices, num_nodes=t.num_nodes, strategy=t.strategy,
        precision=t.precision, max_epochs=t.max_epochs, check_val_every_n_epoch=t.check_val_every_n_epoch,
        fast_dev_run=t.fast_dev_run, deterministic=t.deterministic, enable_progress_bar=t.enable_progress_bar,
        callbacks=callbacks, logger=False, default_root_dir=str(ckpt_dir), num_sanity_val_steps=0,
        enable_model_summary=False, **kwargs,
    )


def _launched_worker_rank() -> int:
    """Global rank of a process started by Lightning's DDP subprocess launcher (0 for the launching process)."""
    import os

    node = int(os.environ.get("NODE_RANK", os.environ.get("GROUP_RANK", "0")) or 0)
    local = int(os.environ.get("LOCAL_RANK", "0") or 0)
    return node * 1000 + local


def _selection(recipe: CmrSegRecipe, ckpt_dir: Path | None = None) -> tuple[ModelCheckpoint, list[Callback]]:
    """The checkpoint callback and the callbacks to train with: the best ``val/dice/mean`` checkpoint and early
    stopping on it; with ``data.fold`` (a cross-validation fold held out), the last epoch's and nothing that looks
    at the held-out fold."""
    where = {"dirpath": str(ckpt_dir)} if ckpt_dir is not None else {}
    if recipe.data.fold is not None:
        ckpt = ModelCheckpoint(**where, save_last=True, filename="epoch-{epoch:03d}")
        return ckpt, [ckpt]
    ckpt = ModelCheckpoint(**where, monitor="val/dice/mean", mode="max", save_top_k=1, save_last=True,
                           filename="best-{epoch:03d}")
    early = EarlyStopping(monitor="val/dice/mean", mode="max", patience=recipe.trainer.early_stopping_patience,
                          check_on_train_epoch_end=False)
    return ckpt, [ckpt, early]


def _fit_only(recipe: CmrSegRecipe) -> dict[str, Any]:
    dm = CineSegDataModule(recipe.data, recipe.model.target_spacing_mm)
    module = CineSegModule(recipe.model, recipe.optim, max_epochs=recipe.trainer.max_epochs,
                           divisor=recipe.model.size_divisor, val_chunk=recipe.data.val_batch_slices)
    _, callbacks = _selection(recipe)
    _trainer(recipe, callbacks, get_settings().home / "runs" / recipe.name / "worker").fit(module, datamodule=dm)
    return {}


def reproduce_command(recipe_path: Path, overrides: list[str]) -> str:
    """The ``medai train`` command line of a run."""
    try:
        rel = Path(recipe_path).resolve().relative_to(REPO_ROOT)
    except ValueError:
        rel = Path(recipe_path)
    return " ".join(["medai", "train", shlex.quote(str(rel)), *(shlex.quote(o) for o in overrides)])


def train_from_recipe(recipe_path: Path, overrides: list[str] | None = None) -> dict[str, Any]:
    """Run a cine segmentation recipe end to end (the ``medai train`` entry point of task ``cmr_segmentation``).

    Returns:
        ``{"run_id", "package_dir", "metrics", "model_version", "train_time_s"}``.
    """
    overrides = list(overrides or [])
    recipe = load_recipe(recipe_path, overrides)
    if recipe.trainer.num_threads:
        torch.set_num_threads(recipe.trainer.num_threads)
    L.seed_everything(recipe.seed, workers=True)
    home = get_settings().home
    reproduce = reproduce_command(recipe_path, overrides)
    if _launched_worker_rank() != 0:
        # a DDP worker started by Lightning's subprocess launcher re-runs this command: train, do not track
        return _fit_only(recipe)
    with mlflow_utils.start_run(recipe.name, run_name=recipe.name, tags={"task": recipe.task}) as run:
        run_id = run.info.run_id
        mlflow_utils.log_config(recipe.model_dump(mode="json"))
        import mlflow

        mlflow.set_tags({"reproduce": reproduce, "hardware": hardware_description()})
        work = home / "runs" / recipe.name / run_id
        work.mkdir(parents=True, exist_ok=True)
        dm = CineSegDataModule(recipe.data, recipe.model.target_spacing_mm)
        module = CineSegModule(recipe.model, recipe.optim, max_epochs=recipe.trainer.max_epochs,
                               divisor=recipe.model.size_divisor, val_chunk=recipe.data.val_batch_slices)
        history = HistoryCallback(run_id, mlflow_utils.setup_tracking())
        ckpt, selection = _selection(recipe, work / "checkpoints")
        trainer = _trainer(recipe, [history, *selection], work)
        t0 = time.time()
        trainer.fit(module, datamodule=dm)
        train_time = time.time() - t0
        if not trainer.is_global_zero:
            return {"run_id": run_id}
        best = ckpt.best_model_path if recipe.data.fold is None else ""  # a CV fold keeps the last epoch's weights
        if best:
            state = torch.load(best, map_location="cpu", weights_only=False)["state_dict"]
            module.load_state_dict(state)
            logger.info("best checkpoint %s (val/dice/mean=%s)", best, ckpt.best_model_score)
        # Final figures of the selected model: one full validation pass, on a single process.
        module.compute_hd95 = True
        val_trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                                enable_model_summary=False, limit_val_batches=recipe.trainer.limit_val_batches)
        metrics = {k: float(v) for k, v in val_trainer.validate(module, datamodule=dm, verbose=False)[0].items()}
        metrics = {k.replace("val/", "val/", 1): v for k, v in metrics.items()}
        hw = hardware_description()
        metrics["train/wall_time_s"] = train_time
        metrics["train/epochs"] = float(trainer.current_epoch)
        # the selected model's figures: ``best/val/...`` (per-epoch ``val/...`` curves stay clean)
        mlflow_utils.log_metrics({f"best/{k}": v for k, v in metrics.items() if k.startswith("val/")})
        mlflow_utils.log_metrics({k: v for k, v in metrics.items() if not k.startswith("val/")})
        pkg_dir = (Path(recipe.package.out_dir) if recipe.package.out_dir
                   else home / "packages" / recipe.package.name / run_id)
        if not pkg_dir.is_absolute():
            pkg_dir = REPO_ROOT / pkg_dir
        export_package(module.net, recipe, pkg_dir,
                       {k: v for k, v in metrics.items() if k.startswith(("val/", "train/"))},
                       run_id=run_id, hardware=hw, train_time_s=train_time, reproduce=reproduce)
        plots = work / "plots"
        plots.mkdir(exist_ok=True)
        curves = metric_history(run_id, ["train/loss", "val/dice/lv", "val/dice/myo", "val/dice/rv", "val/dice/mean"])
        for p in (_plot_history(curves, plots / "training_curves.png"),
                  _plot_overlay(module.net, dm, recipe, plots / "val_overlay.png")):
            if p is not None:
                mlflow_utils.log_artifacts(p, "plots")
        (work / "history.json").write_text(json.dumps(curves, indent=1))
        mlflow_utils.log_artifacts(work / "history.json", "history")
        version = None
        if recipe.package.register_model:
            version = mlflow_utils.register_package(pkg_dir, recipe.package.name, recipe.package.alias)
        logger.info("package written to %s (%.1f MB)", pkg_dir,
                    sum(f.stat().st_size for f in pkg_dir.iterdir()) / 1e6)
    return {"run_id": run_id, "package_dir": pkg_dir, "metrics": metrics, "model_version": version,
            "train_time_s": train_time, "python": sys.version.split()[0]}


def export_from_checkpoint(
    checkpoint: Path, recipe_path: Path, out_dir: Path, overrides: list[str] | None = None, *, reproduce: str = "",
    hardware: str = "", train_time_s: float | None = None, run_id: str | None = None,
) -> tuple[Path, dict[str, float]]:
    """Re-validate a Lightning checkpoint of a cine recipe on its validation split and export it as a package.

    Returns:
        The package folder and the validation metrics written into it.
    """
    recipe = load_recipe(recipe_path, overrides)
    module = CineSegModule(recipe.model, recipe.optim, max_epochs=recipe.trainer.max_epochs,
                           divisor=recipe.model.size_divisor, val_chunk=recipe.data.val_batch_slices)
    module.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=False)["state_dict"])
    module.compute_hd95 = True
    dm = CineSegDataModule(recipe.data, recipe.model.target_spacing_mm)
    dm.setup("validate")
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                        enable_model_summary=False)
    metrics = {k: float(v) for k, v in trainer.validate(module, datamodule=dm, verbose=False)[0].items()}
    pkg = export_package(module.net, recipe, out_dir, metrics, run_id=run_id, hardware=hardware or
                         hardware_description(), train_time_s=train_time_s,
                         reproduce=reproduce or reproduce_command(recipe_path, list(overrides or [])))
    return pkg, metrics
