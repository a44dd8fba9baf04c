"""``quality_cnn``: a small strided CNN that scores MR artefacts on one slice; ``coverage_cnn``: the end-slice
CNN that judges whether a short-axis stack reaches the LV base and apex (:class:`EndSliceCNN`).

The artefact CNN's input is ``(B, 1, 128, 128)`` float32 in ``[0, 1]``
(:func:`medai.quality.preprocess.prepare_slices`); its output is ``(B, 2 * n_classes)`` logits: the first
``n_classes`` are the presence of each artefact (sigmoid, multi-label), the next ``n_classes`` its severity
(sigmoid, ``[0, 1]``). About 60 k parameters and 5 M multiply-adds, so one slice costs well under a millisecond on
one CPU thread.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from medai.registry import NETWORKS


def _block(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU(inplace=True))


class QualityCNN(nn.Module):
    """Strided conv stack -> global average and max pooling -> presence and severity logits."""

    def __init__(self, n_classes: int = 4, channels: Sequence[int] = (8, 16, 32, 64), in_channels: int = 1,
                 dropout: float = 0.2) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = in_channels
        for ch in channels:
            layers.append(_block(c, ch, 2))
            c = ch
        layers.append(_block(c, c, 1))
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * c, 2 * n_classes))
        self.n_classes = n_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features(x)
        pooled = torch.cat([f.mean(dim=(2, 3)), f.amax(dim=(2, 3))], dim=1)
        return self.head(pooled)


@NETWORKS.register("quality_cnn")
def quality_cnn(n_classes: int = 4, channels: Sequence[int] = (8, 16, 32, 64), in_channels: int = 1,
                dropout: float = 0.2, spatial_dims: int = 2) -> nn.Module:
    """The artefact CNN (see the module docstring); 2-D only (``spatial_dims`` is accepted for the shared loader)."""
    if spatial_dims != 2:
        raise ValueError(f"quality_cnn is 2-D; got spatial_dims={spatial_dims}")
    return QualityCNN(n_classes=n_classes, channels=channels, in_channels=in_channels, dropout=dropout)


class EndSliceCNN(nn.Module):
    """Four conv blocks (two 3x3 convolutions, batch norm, ReLU, 2x2 max pooling) -> global average -> one logit.

    Input ``(B, 4, 64, 64)`` (:func:`medai.quality.features.end_slice_inputs`); output ``(B,)``: the logit that the
    stack's outermost heart slice at that end is *not* the last one of the LV (slices are missing beyond it).
    """

    def __init__(self, in_channels: int = 4, channels: Sequence[int] = (16, 32, 64, 64), dropout: float = 0.3) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = in_channels
        for ch in channels:
            layers += [nn.Conv2d(c, ch, 3, padding=1, bias=False), nn.BatchNorm2d(ch), nn.ReLU(inplace=True),
                       nn.Conv2d(ch, ch, 3, padding=1, bias=False), nn.BatchNorm2d(ch), nn.ReLU(inplace=True),
                       nn.MaxPool2d(2)]
            c = ch
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(c, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3))).squeeze(1)


@NETWORKS.register("coverage_cnn")
def coverage_cnn(in_channels: int = 4, channels: Sequence[int] = (16, 32, 64, 64), dropout: float = 0.3,
                 spatial_dims: int = 2) -> nn.Module:
    """The end-slice coverage CNN (see :class:`EndSliceCNN`); 2-D only."""
    if spatial_dims != 2:
        raise ValueError(f"coverage_cnn is 2-D; got spatial_dims={spatial_dims}")
    return EndSliceCNN(in_channels=in_channels, channels=channels, dropout=dropout)
