"""The coverage model's end-slice CNN ensemble as one torch module (so that it exports to ONNX as one graph).

Each end (basal, apical) has one :class:`~models.quality.networks.EndSliceCNN` per training fold. The ensemble's
logit for a ``(N, 4, S, S)`` input is the mean over the fold networks and the four 90-degree rotations of the
input: the same test-time averaging the coverage fit used to make its training rows
(:func:`medai.quality.predictor.end_cnn_logits`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class EndSliceEnsemble(nn.Module):
    """Mean logit of ``nets`` over the four 90-degree rotations of ``(N, C, S, S)`` inputs; output ``(N,)``."""

    def __init__(self, nets: Sequence[nn.Module]) -> None:
        super().__init__()
        self.nets = nn.ModuleList(nets)

    @property
    def n_members(self) -> int:
        """How many fold networks the ensemble averages."""
        return len(self.nets)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        views = torch.cat([torch.rot90(x, k, (2, 3)) for k in range(4)])
        out = torch.stack([net(views) for net in self.nets]).mean(0)
        return out.reshape(4, x.shape[0]).mean(0)
