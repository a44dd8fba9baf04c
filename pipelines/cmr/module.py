"""LightningModule of cine segmentation: registered network + DiceCE loss + per-structure Dice/HD95."""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pipelines.cmr.config import ModelConfig, OptimConfig


def build_network(cfg: ModelConfig) -> nn.Module:
    """The registered network of a model config (``medai.registry.NETWORKS``)."""
    from medai.registry import NETWORKS

    params = dict(cfg.network.params)
    params.setdefault("spatial_dims", cfg.spatial_dims)
    return NETWORKS.get(cfg.network.name)(**params)  # type: ignore[return-value]


@torch.no_grad()
def segment_slices(net: nn.Module, image: torch.Tensor, divisor: int = 32, chunk: int = 32) -> torch.Tensor:
    """Slice-wise segmentation of a normalised volume.

    Args:
        net: 2-D network in eval mode, ``(B, 1, H, W)`` -> ``(B, C, H, W)`` logits.
        image: ``(Z, Y, X)`` float32, already intensity-normalised.
        divisor: pad Y and X to multiples of this (zeros, centred), cropped back afterwards.
        chunk: slices per forward pass.

    Returns:
        ``(Z, Y, X)`` int64 label map (argmax).
    """
    z, h, w = image.shape
    ph, pw = (-h) % divisor, (-w) % divisor
    pad = (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)
    x = F.pad(image[:, None], pad)
    out = []
    for i in range(0, z, chunk):
        out.append(net(x[i : i + chunk]).argmax(1))
    lab = torch.cat(out)
    return lab[:, pad[2] : pad[2] + h, pad[0] : pad[0] + w]


def dice_score(pred: np.ndarray, ref: np.ndarray) -> float:
    """Dice of two boolean masks (1.0 when both are empty)."""
    s = int(pred.sum()) + int(ref.sum())
    return 1.0 if s == 0 else 2.0 * float(np.logical_and(pred, ref).sum()) / s


def hd95(pred: np.ndarray, ref: np.ndarray, spacing: tuple[float, ...] | None = None) -> float:
    """95th-percentile symmetric Hausdorff distance between two boolean masks (voxel units without spacing).

    Returns NaN when one mask is empty.
    """
    if not pred.any() or not ref.any():
        return float("nan")
    from monai.metrics import compute_hausdorff_distance

    p = torch.from_numpy(pred[None, None])
    r = torch.from_numpy(ref[None, None])
    return float(compute_hausdorff_distance(p, r, percentile=95, spacing=list(spacing) if spacing else None)[0, 0])


class CineSegModule(L.LightningModule):
    """Network + DiceCE + AdamW (warm-up then cosine); validation on whole volumes.

    Validation Dice is computed after :func:`medai.cardiac.postprocess.clean_frame` (the predictor's consistency
    step); ``val/dice_raw/<label>`` is the network's argmax alone.

    Logged metrics: ``train/loss``, ``val/dice/<label>``, ``val/dice/mean``, ``val/dice_ed/<label>``,
    ``val/dice_es/<label>``, ``val/hd95/<label>`` (voxels when spacing is unknown).
    """

    def __init__(self, model: ModelConfig, optim: OptimConfig, max_epochs: int = 100, divisor: int = 32,
                 val_chunk: int = 32) -> None:
        super().__init__()
        self.save_hyperparameters({"model": model.model_dump(), "optim": optim.model_dump(), "max_epochs": max_epochs})
        self.model_cfg = model
        self.optim_cfg = optim
        self.max_epochs_sched = max_epochs
        self.divisor = divisor
        self.val_chunk = val_chunk
        #: HD95 is costly on CPU: computed in the final validation of the selected model, not every epoch.
        self.compute_hd95 = False
        self.net = build_network(model)
        from monai.losses import DiceCELoss

        self.loss = DiceCELoss(to_onehot_y=True, softmax=True, lambda_dice=optim.lambda_dice,
                               lambda_ce=optim.lambda_ce)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        logits = self.net(batch["image"])
        loss = self.loss(logits, batch["label"])
        self.log("train/loss", loss, on_step=False, on_epoch=True, batch_size=batch["image"].shape[0], sync_dist=True)
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        from medai.cardiac.postprocess import clean_frame

        raw = segment_slices(self.net, batch["image"], self.divisor, self.val_chunk).cpu().numpy().astype(np.uint8)
        # the predictor's 3-D consistency step (largest component per structure, no RV inside the LV): the
        # selection metric is computed on what the shipped predictor outputs; raw Dice is logged alongside
        pred = clean_frame(raw, self.model_cfg.labels)
        ref = batch["label"].cpu().numpy()
        phase = str(batch.get("phase", "")).lower()
        spacing = batch.get("spacing")  # (dz, dy, dx) mm of the (resampled) grid; None: HD95 in voxels
        dices = []
        for name, value in self.model_cfg.labels.items():
            d = dice_score(pred == value, ref == value)
            self.log(f"val/dice_raw/{name}", dice_score(raw == value, ref == value), batch_size=1, sync_dist=True)
            dices.append(d)
            self.log(f"val/dice/{name}", d, batch_size=1, sync_dist=True)
            if phase in ("ed", "es"):
                self.log(f"val/dice_{phase}/{name}", d, batch_size=1, sync_dist=True)
            h = hd95(pred == value, ref == value, spacing) if self.compute_hd95 else float("nan")
            if not math.isnan(h):
                self.log(f"val/hd95/{name}", h, batch_size=1, sync_dist=True)
        self.log("val/dice/mean", float(np.mean(dices)), batch_size=1, sync_dist=True, prog_bar=True)

    def configure_optimizers(self) -> Any:
        opt = torch.optim.AdamW(self.net.parameters(), lr=self.optim_cfg.lr, weight_decay=self.optim_cfg.weight_decay)
        warm, total, floor = self.optim_cfg.warmup_epochs, max(1, self.max_epochs_sched), self.optim_cfg.min_lr_ratio

        def factor(epoch: int) -> float:
            if epoch < warm:
                return (epoch + 1) / (warm + 1)
            t = min(1.0, (epoch - warm) / max(1, total - warm))
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}
