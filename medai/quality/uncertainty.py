"""Per-slice summaries of a segmentation network's class probabilities, kept for the segmentation-quality estimate.

The full probability maps are not kept (a cine study has hundreds of slices); per slice and class, three sums on
the network's grid are enough for the features of :mod:`medai.quality.features`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: columns of :func:`slice_stats`: voxels whose argmax is the class, summed probability of the class, and summed
#: ``1 - max probability`` over the voxels whose argmax is the class.
STAT_COLUMNS = ("hard", "soft", "uncertain")


def slice_stats(prob: np.ndarray | Any) -> np.ndarray:
    """``(N, C, H, W)`` softmax probabilities (numpy or torch) -> ``(N, C, 3)`` float32 sums (:data:`STAT_COLUMNS`).

    One max pass gives both the argmax and the max probability; the per-class sums are one ``bincount`` each.
    """
    import torch

    p = torch.as_tensor(prob)
    n, c = p.shape[:2]
    top, arg = p.max(dim=1)
    idx = (torch.arange(n, device=p.device)[:, None, None] * c + arg).reshape(-1)
    hard = torch.bincount(idx, minlength=n * c).reshape(n, c).float()
    uncertain = torch.bincount(idx, weights=(1.0 - top).reshape(-1).float(), minlength=n * c).reshape(n, c)
    soft = p.reshape(n, c, -1).sum(-1).float()
    return torch.stack([hard, soft, uncertain.float()], dim=-1).cpu().numpy().astype(np.float32)
