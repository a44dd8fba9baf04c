"""Adaptive multimodal fusion network: one encoder per modality, masked pooling over the modalities present.

Each modality ``m`` is a vector ``(B, d_m)`` (a tabular modality: encoded features; an image modality could be an
embedding). An encoder maps it to a token ``(B, d_model)``; a learned modality embedding is added so the pooling
knows which modality a token comes from. A query scores every token (``attention``: scaled dot product of a learned
query with projected keys; ``gated``: gated attention of Ilse et al., ICML 2018, ``w^T (tanh(V h) * sigmoid(U h))``);
absent modalities are masked out before the softmax, so the pooling weights of a row sum to 1 over the modalities
present in that row and are exactly 0 for the others. The pooled vector goes through a small MLP head.

Any non-empty subset of modalities may be present in any row; a row with no modality present is an error.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from medai.registry import NETWORKS

POOLINGS = ("attention", "gated")


class TabularEncoder(nn.Module):
    """Small MLP for one tabular modality: ``Linear -> GELU -> Dropout -> Linear -> LayerNorm``.

    The LayerNorm sits on the output token (not the input) so that a modality with a single feature is not
    normalised to zero.

    Args:
        in_features: number of encoded input features ``d_m``.
        d_model: token width.
        hidden: hidden width.
        dropout: dropout probability after the activation.
    """

    def __init__(self, in_features: int, d_model: int = 32, hidden: int = 64, dropout: float = 0.1) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_features, hidden),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, d_model),
            nn.LayerNorm(d_model),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in_features) float32 -> (B, d_model) float32``."""
        return self.net(x)


@NETWORKS.register("fusion_net")
class FusionNet(nn.Module):
    """Multimodal fusion over the modalities present in each row.

    Args:
        modality_dims: modality name -> number of input features, in modality order (names must not contain ``.``).
        n_out: output width (classes for a classifier, 1 for a risk or regression head).
        d_model: token width.
        hidden: hidden width of the encoders and the head.
        dropout: dropout probability in the encoders and the head.
        pooling: ``"attention"`` (query-key attention pooling) or ``"gated"`` (gated attention pooling).
    """

    def __init__(
        self,
        modality_dims: dict[str, int],
        n_out: int = 1,
        d_model: int = 32,
        hidden: int = 64,
        dropout: float = 0.1,
        pooling: str = "attention",
    ) -> None:
        super().__init__()
        if not modality_dims:
            raise ValueError("FusionNet needs at least one modality")
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        bad = [m for m in modality_dims if "." in m or not m]
        if bad:
            raise ValueError(f"modality names must be non-empty and contain no '.': {bad}")
        self.names = list(modality_dims)
        self.pooling = pooling
        self.d_model = d_model
        self.encoders = nn.ModuleDict(
            {m: TabularEncoder(int(d), d_model, hidden, dropout) for m, d in modality_dims.items()}
        )
        self.modality_embedding = nn.Parameter(torch.randn(len(self.names), d_model) * 0.02)
        if pooling == "attention":
            self.query = nn.Parameter(torch.randn(d_model) * 0.02)
            self.key = nn.Linear(d_model, d_model)
            self.value = nn.Linear(d_model, d_model)
        else:
            self.gate_v = nn.Linear(d_model, hidden)
            self.gate_u = nn.Linear(d_model, hidden)
            self.gate_w = nn.Linear(hidden, 1)
        self.head = nn.Sequential(
            nn.LayerNorm(d_model),
            nn.Linear(d_model, hidden),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, n_out),
        )

    def tokens(self, inputs: dict[str, torch.Tensor], present: torch.Tensor) -> torch.Tensor:
        """Modality tokens ``(B, M, d_model)``; absent tokens are zero (their inputs may hold NaN)."""
        toks = []
        for j, m in enumerate(self.names):
            x = torch.nan_to_num(inputs[m].float(), nan=0.0, posinf=0.0, neginf=0.0)
            toks.append(self.encoders[m](x) + self.modality_embedding[j])
        tok = torch.stack(toks, dim=1)
        return torch.where(present[..., None], tok, torch.zeros_like(tok))

    def forward(self, inputs: dict[str, torch.Tensor], present: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Fuse the modalities present in each row.

        Args:
            inputs: modality name -> ``(B, d_m)`` float tensor (values of absent rows are ignored).
            present: ``(B, M)`` bool, modality order of ``modality_dims``; each row needs at least one True.

        Returns:
            ``(out, weights)``: ``out`` ``(B, n_out)`` float32 (logits / log-risk / regression value) and
            ``weights`` ``(B, M)`` float32, the pooling weight of each modality (rows sum to 1, 0 for absent).

        Raises:
            ValueError: a row has no modality present, or ``present`` has the wrong shape.
        """
        present = present.bool()
        if present.ndim != 2 or present.shape[1] != len(self.names):
            raise ValueError(f"present must be (B, {len(self.names)}), got {tuple(present.shape)}")
        if present.shape[0] and not bool(present.any(dim=1).all()):
            raise ValueError("every row needs at least one modality present")
        tok = self.tokens(inputs, present)
        if self.pooling == "attention":
            scores = self.key(tok) @ self.query / math.sqrt(self.d_model)
            values = self.value(tok)
        else:
            scores = self.gate_w(torch.tanh(self.gate_v(tok)) * torch.sigmoid(self.gate_u(tok))).squeeze(-1)
            values = tok
        scores = scores.masked_fill(~present, float("-inf"))
        weights = torch.softmax(scores, dim=1)
        weights = torch.where(present, weights, torch.zeros_like(weights))
        pooled = (weights[..., None] * torch.where(present[..., None], values, torch.zeros_like(values))).sum(1)
        return self.head(pooled), weights


class FusionEnsemble(nn.Module):
    """Average of several :class:`FusionNet` members (same inputs, different initialisations).

    ``forward`` returns the mean output and the mean pooling weights (still 0 for absent modalities and summing to
    1 per row), so it is a drop-in for a single :class:`FusionNet`.

    Args:
        members: the networks (same modalities and output width).
    """

    def __init__(self, members: list[FusionNet]) -> None:
        super().__init__()
        if not members:
            raise ValueError("FusionEnsemble needs at least one member")
        self.members = nn.ModuleList(members)
        self.names = members[0].names

    def forward(self, inputs: dict[str, torch.Tensor], present: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Same contract as :meth:`FusionNet.forward`: ``(out (B, n_out), weights (B, M))``."""
        outs, ws = zip(*(m(inputs, present) for m in self.members), strict=True)
        return torch.stack(outs).mean(0), torch.stack(ws).mean(0)
