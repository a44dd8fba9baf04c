"""LightningModule of LGE scar segmentation: the cine module's network/optimiser with batch Dice + CE and LGE metrics.

Reuses :class:`pipelines.cmr.module.CineSegModule` (registered network, AdamW with warm-up then cosine, training
step) and replaces the loss (MONAI ``DiceCELoss`` with Dice over the whole batch, so that slices without infarct
do not each contribute an unstable empty-class Dice) and the validation step.

Logged: ``train/loss``; on the held-out fold (curves only, never used to select weights), after the predictor's
:func:`medai.cardiac.lge_postprocess.clean_lge`: ``val/dice/lv``, ``val/dice/myo`` (myocardium = healthy +
infarct + MVO), ``val/dice/infarct`` (infarct + MVO, cases whose reference has infarct), ``val/dice/mvo`` (cases
with MVO), ``val/dice/mean`` (mean of myo and infarct), and ``val/dice_raw/...`` without the cleaning.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from medai.cardiac.lge_postprocess import clean_lge
from pipelines.cmr.module import CineSegModule, dice_score
from pipelines.lge.config import LgeModelConfig, LgeOptimConfig


def structure_masks(labels: np.ndarray, values: dict[str, int]) -> dict[str, np.ndarray]:
    """Evaluated structures of a label array: ``lv``, ``myo`` (2+3+4), ``infarct`` (3+4), ``mvo`` (4)."""
    return {
        "lv": labels == values["lv"],
        "myo": np.isin(labels, [values["myo"], values["infarct"], values["mvo"]]),
        "infarct": np.isin(labels, [values["infarct"], values["mvo"]]),
        "mvo": labels == values["mvo"],
    }


class LgeSegModule(CineSegModule):
    """Network + DiceCE (batch Dice) + AdamW; held-out Dice on whole cases for the training curves."""

    def __init__(self, model: LgeModelConfig, optim: LgeOptimConfig, max_epochs: int = 60,
                 val_chunk: int = 32) -> None:
        super().__init__(model, optim, max_epochs=max_epochs, divisor=model.size_divisor,  # type: ignore[arg-type]
                         val_chunk=val_chunk)
        from monai.losses import DiceCELoss

        self.loss = DiceCELoss(to_onehot_y=True, softmax=True, batch=optim.batch_dice,
                               lambda_dice=optim.lambda_dice, lambda_ce=optim.lambda_ce)

    @torch.no_grad()
    def segment(self, image: torch.Tensor) -> np.ndarray:
        """``(Z, C, h, w)`` network input -> ``(Z, h, w)`` uint8 argmax labels."""
        out = [self.net(image[i : i + self.val_chunk]).argmax(1) for i in range(0, len(image), self.val_chunk)]
        return torch.cat(out).cpu().numpy().astype(np.uint8)

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        values = self.model_cfg.labels
        raw = self.segment(batch["image"])
        pred = clean_lge(raw, values, self.model_cfg.mvo_policy)  # type: ignore[attr-defined]
        ref = structure_masks(batch["label"].cpu().numpy(), values)
        for tag, lab in (("dice", pred), ("dice_raw", raw)):
            got = structure_masks(lab, values)
            for name, r in ref.items():
                if name in ("infarct", "mvo") and not r.any():
                    continue
                self.log(f"val/{tag}/{name}", dice_score(got[name], r), batch_size=1)
        if ref["infarct"].any():
            got = structure_masks(pred, values)
            mean = 0.5 * (dice_score(got["myo"], ref["myo"]) + dice_score(got["infarct"], ref["infarct"]))
            self.log("val/dice/mean", mean, batch_size=1, prog_bar=True)
