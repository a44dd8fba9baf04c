"""Training of the end-slice coverage CNN (``coverage_cnn``) of ``heart_mr_quality``, with Lightning.

The samples are the stack ends of :func:`pipelines.quality.gate_data.coverage_rows`: the image inputs of
:func:`medai.quality.features.end_slice_inputs` and whether LV slices were removed beyond that end. One network
per end (basal, apical) and per cross-validation fold: the out-of-fold logits feed the coverage logistic
regression (:func:`pipelines.quality.fit_gate.fit_coverage`) as one more feature, and the fold networks are
shipped together as an ensemble (:meth:`medai.quality.predictor.QualityPredictor.coverage`).

The same stack end appears in several truncation rows (an apical cut leaves the basal end as it was); each
distinct input of a patient is trained on once.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
from torch import nn

from medai.quality.predictor import end_cnn_logits

logger = logging.getLogger(__name__)

#: the recipe (chosen by patient-grouped cross-validation on the ACDC training patients only)
EPOCHS = 40
BATCH = 32
LR = 2e-3
WEIGHT_DECAY = 1e-3
NETWORK = {"name": "coverage_cnn", "params": {"in_channels": 4, "channels": [16, 32, 64, 64], "dropout": 0.3}}


def augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Random 90-degree rotation and flip of the batch, then per image a small rotation (+-17 degrees), scale
    (+-15 %) and shift, a gamma / gain change and Gaussian noise: orientation and contrast vary across scanners."""
    b = x.shape[0]
    x = torch.rot90(x, int(torch.randint(0, 4, (1,), generator=g)), (2, 3))
    if float(torch.rand(1, generator=g)) < 0.5:
        x = x.flip(3)
    ang = (torch.rand(b, generator=g) - 0.5) * 0.6
    sc = 1 + (torch.rand(b, generator=g) - 0.5) * 0.3
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = torch.cos(ang) * sc, -torch.sin(ang) * sc
    theta[:, 1, 0], theta[:, 1, 1] = torch.sin(ang) * sc, torch.cos(ang) * sc
    theta[:, :, 2] = (torch.rand(b, 2, generator=g) - 0.5) * 0.15
    grid = nn.functional.affine_grid(theta, list(x.shape), align_corners=False)
    x = nn.functional.grid_sample(x, grid, align_corners=False)
    gamma = torch.exp((torch.rand(b, 1, 1, 1, generator=g) - 0.5) * 0.6)
    gain = 1 + (torch.rand(b, 1, 1, 1, generator=g) - 0.5) * 0.3
    return x.clamp(min=0) ** gamma * gain + 0.02 * torch.randn(x.shape, generator=g)


def fit_network(x: np.ndarray, y: np.ndarray, seed: int = 0, epochs: int = EPOCHS) -> nn.Module:
    """Train one ``coverage_cnn`` on inputs ``x`` ``(N, 4, S, S)`` and labels ``y`` (1 = slices missing), with
    the positive class weighted to balance the loss; returns it in eval mode."""
    import lightning as L
    from torch.utils.data import DataLoader, TensorDataset

    from medai.registry import NETWORKS

    net = NETWORKS.get(NETWORK["name"])(**NETWORK["params"])
    xt, yt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), torch.from_numpy(y.astype(np.float32))
    pos = float(yt.mean())
    if not 0 < pos < 1:
        raise ValueError(f"coverage CNN: the training ends must hold both classes (share missing {pos:.2f})")
    pos_weight = torch.tensor((1 - pos) / pos)
    steps = epochs * int(np.ceil(len(xt) / BATCH))

    class EndModule(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = net
            self.gen = torch.Generator().manual_seed(seed)

        def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> torch.Tensor:
            xb, yb = batch
            return nn.functional.binary_cross_entropy_with_logits(self.net(augment(xb, self.gen)), yb,
                                                                  pos_weight=pos_weight)

        def configure_optimizers(self) -> Any:
            opt = torch.optim.AdamW(self.parameters(), LR, weight_decay=WEIGHT_DECAY)
            sched = torch.optim.lr_scheduler.OneCycleLR(opt, LR, total_steps=steps)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    torch.manual_seed(seed)
    loader = DataLoader(TensorDataset(xt, yt), batch_size=BATCH, shuffle=True, drop_last=len(xt) % BATCH == 1,
                        generator=torch.Generator().manual_seed(seed))
    lightning_log = logging.getLogger("lightning.pytorch")
    level = lightning_log.level
    lightning_log.setLevel(logging.WARNING)  # ten small fits: no banner per fit (the caller's level comes back)
    try:
        trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, logger=False,
                            enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
        trainer.fit(EndModule(), loader)
    finally:
        lightning_log.setLevel(level)
    return recalibrate_batch_norm(net, xt)


def recalibrate_batch_norm(net: nn.Module, x: torch.Tensor) -> nn.Module:
    """Re-estimate the batch-norm statistics of the trained ``net`` on the un-augmented training inputs (exact
    averages, not running ones), and return it in eval mode.

    The running averages mix statistics of early weights and of augmented images; with a small cohort (a few
    hundred steps or fewer) they are far from what the final network sees at inference."""
    norms = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the pass
    net.train()
    with torch.no_grad():
        for i in range(0, len(x), BATCH):
            net(x[i : i + BATCH])
    for m, mom in zip(norms, saved, strict=True):
        m.momentum = mom
    return net.eval()


def distinct(patients: np.ndarray, x: np.ndarray, y: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """The rows of ``idx`` with a distinct (patient, input, label): a stack end repeated across rows counts once."""
    seen: dict[tuple[str, bytes, int], int] = {}
    for i in idx:
        seen.setdefault((str(patients[i]), x[i].tobytes(), int(y[i])), int(i))
    return np.array(sorted(seen.values()), dtype=int)


def fit_end(patients: np.ndarray, x: np.ndarray, y: np.ndarray, folds: int = 5, seed: int = 0, epochs: int = EPOCHS
            ) -> tuple[np.ndarray, list[nn.Module]]:
    """Out-of-fold logits of every row (patient-grouped ``folds``-fold CV) and the fold networks.

    Rows whose end has no heart (``x`` all zero) get logit 0 and are not trained on.
    """
    from sklearn.model_selection import GroupKFold

    has = np.abs(x).reshape(len(x), -1).sum(1) > 0
    oof = np.zeros(len(x), dtype=np.float64)
    nets: list[nn.Module] = []
    for k, (tr, te) in enumerate(GroupKFold(folds).split(x, y, patients)):
        train = distinct(patients, x, y, tr[has[tr]])
        logger.info("coverage CNN fold %d/%d: %d distinct ends", k + 1, folds, len(train))
        net = fit_network(x[train], y[train], seed=seed + k, epochs=epochs)
        nets.append(net)
        sel = te[has[te]]
        if len(sel):
            oof[sel] = end_cnn_logits([net], x[sel])
    return oof, nets
