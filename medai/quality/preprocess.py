"""The one preprocessing of ``heart_mr_quality``'s artefact network, shared by training and the predictor."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from medai.percentiles import percentiles

#: Network input side (pixels): each slice is resized (anti-aliased) to this square.
INPUT_SIZE = 128


def normalise(img: np.ndarray) -> np.ndarray:
    """Clip to the 0.5-99.5th percentiles and scale to ``[0, 1]`` (float32)."""
    img = np.asarray(img, dtype=np.float32)
    if not np.isfinite(img).all():
        img = np.nan_to_num(img, nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = percentiles(img, [0.5, 99.5])
    out = img - np.float32(lo)  # float32 throughout: half the memory traffic of numpy's float64 promotion
    out /= np.float32(max(float(hi - lo), 1e-6))
    return np.clip(out, 0.0, 1.0, out=out)


def prepare_slices(slices: Sequence[np.ndarray] | np.ndarray, size: int = INPUT_SIZE) -> np.ndarray:
    """``N`` 2-D slices of any shape -> ``(N, 1, size, size)`` float32 network input (normalised, resized).

    The field of view is kept whole (ghosts and wrap-around sit anywhere in it); the aspect ratio is not kept.
    """
    import torch
    import torch.nn.functional as F

    out = np.empty((len(slices), 1, size, size), dtype=np.float32)
    by_shape: dict[tuple[int, int], list[int]] = {}
    for i, s in enumerate(slices):
        by_shape.setdefault(tuple(np.shape(s)), []).append(i)  # type: ignore[arg-type]
    for shape, idx in by_shape.items():
        if len(shape) != 2 or min(shape) < 2:
            from medai.errors import InputValidationError

            raise InputValidationError(f"the quality model scores 2-D grey-level slices; got an image of shape {shape}",
                                       details=[{"field": "slice", "problem": "shape", "value": list(shape)}])
        batch = torch.from_numpy(np.stack([normalise(slices[i]) for i in idx])[:, None])
        if shape != (size, size):
            batch = F.interpolate(batch, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        out[idx] = batch.numpy()
    return out
