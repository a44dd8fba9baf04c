"""Train the artefact CNN of ``heart_mr_quality`` (Lightning, tracked in MLflow) and write the package.

``medai train configs/experiment/quality_artefact.yaml [dotted.overrides=...]`` (task ``quality_artefact``).
The coverage classifier and segmentation-quality regressors are fitted into the same package afterwards by
``python -m pipelines.quality.fit_gate``.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from medai.inference.compiled import export_package as export_onnx
from medai.quality.simulate import ARTEFACTS
from pipelines.cmr.config import PackageConfig, TrainerConfig, read_recipe

logger = logging.getLogger(__name__)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class QualityData(_Strict):
    root: str = "cardiac"
    sources: list[str] = Field(default_factory=lambda: ["acdc", "emidec", "sunnybrook"])
    variants: int = Field(6, ge=1, le=50)
    monitor_fraction: float = Field(0.1, ge=0.0, lt=0.5)
    batch_size: int = Field(64, ge=1)


class QualityNetwork(_Strict):
    name: str = "quality_cnn"
    params: dict[str, Any] = Field(default_factory=dict)


class QualityModel(_Strict):
    network: QualityNetwork = Field(default_factory=QualityNetwork)
    input_size: int = Field(128, ge=32, le=512)


class QualityOptim(_Strict):
    lr: float = Field(0.003, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    severity_weight: float = Field(1.0, ge=0)


class QualityRecipe(_Strict):
    """``configs/experiment/quality_artefact.yaml``."""

    task: str = "quality_artefact"
    name: str = "quality_artefact"
    seed: int = 7
    data: QualityData = Field(default_factory=QualityData)
    model: QualityModel = Field(default_factory=QualityModel)
    optim: QualityOptim = Field(default_factory=QualityOptim)
    trainer: TrainerConfig = Field(default_factory=TrainerConfig)
    package: PackageConfig = Field(default_factory=lambda: PackageConfig(name="heart_mr_quality"))


def _module(recipe: QualityRecipe, net: Any) -> Any:
    import lightning as L
    import torch
    import torch.nn.functional as F

    k = len(ARTEFACTS)

    class ArtefactModule(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x)

        def _loss(self, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
            x, pres, sev = batch
            out = self.net(x)
            loss = F.binary_cross_entropy_with_logits(out[:, :k], pres)
            sev_pred = torch.sigmoid(out[:, k:])
            return loss + recipe.optim.severity_weight * ((sev_pred - sev) ** 2 * pres).sum() / pres.sum().clamp(min=1)

        def training_step(self, batch: tuple[torch.Tensor, ...], _: int) -> torch.Tensor:
            x, pres, sev = batch
            # geometric augmentation: flips / transposes keep every artefact an artefact
            if torch.rand(()) < 0.5:
                x = x.flip(-1)
            if torch.rand(()) < 0.5:
                x = x.flip(-2)
            if torch.rand(()) < 0.5:
                x = x.transpose(-1, -2)
            loss = self._loss((x, pres, sev))
            self.log("train/loss", loss, on_epoch=True, on_step=False)
            return loss

        def validation_step(self, batch: tuple[torch.Tensor, ...], _: int) -> None:
            self.log("monitor/loss", self._loss(batch), on_epoch=True)

        def configure_optimizers(self) -> Any:
            opt = torch.optim.AdamW(self.parameters(), lr=recipe.optim.lr, weight_decay=recipe.optim.weight_decay)
            sched = torch.optim.lr_scheduler.OneCycleLR(
                opt, max_lr=recipe.optim.lr, total_steps=self.trainer.estimated_stepping_batches)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    return ArtefactModule()


def _epoch_printer(max_epochs: int) -> Any:
    """A callback that prints one line per epoch (loss, monitor loss, elapsed) to stderr."""
    import lightning as L
    from rich.console import Console

    console = Console(stderr=True)
    t0 = time.perf_counter()

    class EpochPrinter(L.Callback):
        def on_train_epoch_end(self, trainer: Any, module: Any) -> None:
            m = trainer.callback_metrics
            mon = f", monitor loss {float(m['monitor/loss']):.4f}" if "monitor/loss" in m else ""
            console.print(f"epoch {trainer.current_epoch + 1}/{max_epochs}: train loss "
                          f"{float(m.get('train/loss', float('nan'))):.4f}{mon} ({time.perf_counter() - t0:.0f} s)")

    return EpochPrinter()


def export_package(recipe: QualityRecipe, net: Any, out_dir: Path, extra_meta: dict[str, Any]) -> Path:
    """Write weights, ``inference.json`` and ``metadata.json`` (the gate files are added by ``fit_gate``)."""
    import torch

    from medai.inference.package import ModelMetadata, TrainingData, write_metadata

    out_dir.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), out_dir / "weights.pt")
    cfg_path = out_dir / "inference.json"
    cfg = json.loads(cfg_path.read_text()) if cfg_path.is_file() else {}
    cfg.update({"network": recipe.model.network.model_dump(), "weights": "weights.pt",
                "input_size": recipe.model.input_size, "artefacts": list(ARTEFACTS)})
    cfg_path.write_text(json.dumps(cfg, indent=2))
    files = sorted({"weights.pt", "inference.json", *extra_meta.pop("files", [])})
    meta = ModelMetadata(
        name=recipe.package.name, version=recipe.package.version, predictor="mr_quality", task="quality",
        description="Image quality of short-axis cardiac MR (cine and LGE): artefact CNN (motion, ghosting/wrap, "
        "spike/noise, low contrast; presence and severity per slice), LV coverage classifier (end-slice images and "
        "segmentation) and per-structure segmentation-quality (predicted Dice) regressors.",
        intended_use="Research use only; not a medical device. Flags slices and studies whose measurements need "
        "review; it does not replace a reader's check of the images.",
        input_contract={"modality": "MR", "series": "cine or LGE short-axis slices, any size",
                        "preprocessing": f"per slice: clip 0.5-99.5th percentile, scale to [0, 1], resize "
                        f"(anti-aliased bilinear) to {recipe.model.input_size}x{recipe.model.input_size}"},
        output_contract={"network_output": f"(B, {2 * len(ARTEFACTS)}) logits: sigmoid presence of "
                         f"{', '.join(ARTEFACTS)}, then sigmoid severity of each", "good": "1 - max presence"},
        training_data=[TrainingData(name=n, licence=lic, description=d) for n, lic, d in (
            ("ACDC official training set, 80 train patients (splits.csv)", "CC BY-NC-SA 4.0", "cine SAX, ED/ES"),
            ("EMIDEC, folds 1-4 (64 cases)", "CC BY-NC-SA 4.0", "LGE SAX"),
            ("Sunnybrook Cardiac Data, 2 of 5 patients", "CC0 1.0", "cine SAX"))],
        licence="CC BY-NC-SA 4.0",
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        files=files,
        **extra_meta,
    )
    write_metadata(out_dir, meta)
    export_onnx(out_dir)  # the ONNX export beside the weights (medai.inference.compiled)
    return out_dir


def train_from_recipe(recipe_path: Path, overrides: list[str] | None = None, out: Path | None = None
                      ) -> dict[str, Any]:  # noqa: C901
    """Build the samples, train, export the package; return the run's summary."""
    import lightning as L
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from medai.registry import NETWORKS
    from medai.settings import get_settings
    from pipelines import mlflow_utils
    from pipelines.quality.data import make_samples, real_slices

    recipe = read_recipe(QualityRecipe, recipe_path, overrides, "quality recipe")
    if recipe.trainer.num_threads:
        torch.set_num_threads(recipe.trainer.num_threads)
    L.seed_everything(recipe.seed, workers=True)
    from medai.errors import ConfigError
    from medai.settings import find_data_dir

    base = get_settings().data_dir or find_data_dir()
    if base is None:
        raise ConfigError("no real data found: set MEDAI_DATA_DIR (or place ../shared/data beside the repository)")
    root = base / recipe.data.root
    t0 = time.perf_counter()
    slices = real_slices(root, heldout=False, sources=recipe.data.sources)
    patients = sorted({(s.source, s.patient) for s in slices})
    rng = np.random.default_rng(recipe.seed)
    monitor = {patients[i] for i in rng.permutation(len(patients))[: int(len(patients) * recipe.data.monitor_fraction)]}
    train_sl = [s for s in slices if (s.source, s.patient) not in monitor]
    mon_sl = [s for s in slices if (s.source, s.patient) in monitor]
    from rich.console import Console

    Console(stderr=True).print(f"simulating {len(train_sl)} real slices x {recipe.data.variants} variants "
                               f"({len(mon_sl)} monitor slices) ...")
    tr = make_samples(train_sl, recipe.data.variants, recipe.seed)
    mon = make_samples(mon_sl, 2, recipe.seed + 1) if mon_sl else None
    t_sim = time.perf_counter() - t0

    def loader(s: Any, shuffle: bool) -> DataLoader:
        ds = TensorDataset(torch.from_numpy(s.x.astype(np.float32)), torch.from_numpy(s.presence),
                           torch.from_numpy(s.severity))
        return DataLoader(ds, batch_size=recipe.data.batch_size, shuffle=shuffle, num_workers=0)

    net = NETWORKS.get(recipe.model.network.name)(**recipe.model.network.params)
    module = _module(recipe, net)
    work = get_settings().home / "runs" / recipe.name
    work.mkdir(parents=True, exist_ok=True)
    with mlflow_utils.start_run(recipe.name, run_name=recipe.name, tags={"task": recipe.task}) as run:
        mlflow_utils.log_config(recipe.model_dump(mode="json"))
        mlflow_utils.log_metrics({"data/n_train_samples": len(tr), "data/n_train_slices": len(train_sl),
                                  "data/n_train_patients": len(patients) - len(monitor)})
        trainer = L.Trainer(
            accelerator=recipe.trainer.accelerator, devices=recipe.trainer.devices,
            max_epochs=recipe.trainer.max_epochs,
            max_time={"minutes": recipe.trainer.max_time_minutes} if recipe.trainer.max_time_minutes else None,
            limit_train_batches=recipe.trainer.limit_train_batches, fast_dev_run=recipe.trainer.fast_dev_run,
            enable_progress_bar=recipe.trainer.enable_progress_bar, logger=False, enable_checkpointing=False,
            default_root_dir=str(work), check_val_every_n_epoch=recipe.trainer.check_val_every_n_epoch,
            callbacks=[_epoch_printer(recipe.trainer.max_epochs)])
        t1 = time.perf_counter()
        trainer.fit(module, loader(tr, True), loader(mon, False) if mon is not None else None)
        t_fit = time.perf_counter() - t1
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
        mlflow_utils.log_metrics(metrics)
        net.eval()
        pkg = (Path(out) if out is not None else Path(recipe.package.out_dir) if recipe.package.out_dir
               else get_settings().home / "packages" / recipe.package.name)
        export_package(recipe, net, pkg, {
            "mlflow_run_id": getattr(getattr(run, "info", None), "run_id", None),
            "hardware": f"{torch.get_num_threads()} CPU threads, torch {torch.__version__}; simulation "
                        f"{t_sim / 60:.1f} min, training {t_fit / 60:.1f} min",
            "reproduce": f"medai train {recipe_path} package.out_dir={pkg} {' '.join(overrides or [])}".strip()})
        if recipe.package.register_model and not recipe.trainer.fast_dev_run:
            mlflow_utils.register_package(pkg, recipe.package.name, recipe.package.alias)
    logger.info("package written to %s", pkg)
    return {"package": str(pkg), "metrics": metrics, "n_train": len(tr)}
