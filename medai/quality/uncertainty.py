"""Per-slice summaries of a segmentation network's class probabilities, kept for the segmentation-quality estimate.

The full probability maps are not kept (a cine study has hundreds of slices); per slice and class, three sums on
the network's grid are enough for the features of :mod:`medai.quality.features`.
"""

from __future__ import annotations

import numpy as np

#: columns of :func:`slice_stats`: voxels whose argmax is the class, summed probability of the class, and summed
#: ``1 - max probability`` over the voxels whose argmax is the class.
STAT_COLUMNS = ("hard", "soft", "uncertain")


def slice_stats(prob: np.ndarray) -> np.ndarray:
    """``(N, C, H, W)`` softmax probabilities -> ``(N, C, 3)`` float32 sums (see :data:`STAT_COLUMNS`)."""
    n, c = prob.shape[:2]
    arg = prob.argmax(1)
    unc = 1.0 - prob.max(1)
    idx = (np.arange(n)[:, None, None] * c + arg).ravel()
    hard = np.bincount(idx, minlength=n * c).reshape(n, c)
    uncertain = np.bincount(idx, weights=unc.ravel(), minlength=n * c).reshape(n, c)
    soft = prob.reshape(n, c, -1).sum(-1)
    return np.stack([hard, soft, uncertain], axis=-1).astype(np.float32)
