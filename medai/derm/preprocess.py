"""The image preprocessing contract shared by training (:mod:`pipelines.derm`) and :class:`SkinLesionPredictor`.

1. :func:`resize_square` -- the whole RGB image resized to ``(S, S)`` with PIL's antialiased bilinear filter (the
   aspect ratio is not kept: HAM10000 images are 4:3 and lesions are centred, as in DermaMNIST). Training caches this
   ``uint8`` result once.
2. :func:`normalise` -- ``float32``, scaled to [0, 1], minus the per-channel mean, divided by the per-channel std
   (both stored in the package's ``inference.json``), channels first.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: default per-channel statistics (of HAM10000 training images, [0, 1] scale); packages store their own
DEFAULT_MEAN: tuple[float, float, float] = (0.76, 0.55, 0.57)
DEFAULT_STD: tuple[float, float, float] = (0.14, 0.15, 0.17)


def resize_square(rgb: np.ndarray, size: int) -> np.ndarray:
    """Resize ``(H, W, 3) uint8`` RGB to ``(size, size, 3) uint8`` (antialiased bilinear)."""
    from PIL import Image

    if rgb.shape[0] == size and rgb.shape[1] == size:
        return np.ascontiguousarray(rgb, dtype=np.uint8)
    img = Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8), mode="RGB")
    return np.asarray(img.resize((size, size), Image.Resampling.BILINEAR), dtype=np.uint8)


def normalise(
    rgb: np.ndarray, mean: tuple[float, ...] = DEFAULT_MEAN, std: tuple[float, ...] = DEFAULT_STD
) -> np.ndarray:
    """``(..., S, S, 3) uint8`` -> ``(..., 3, S, S) float32`` normalised with ``mean``/``std`` (on the [0, 1] scale)."""
    x = rgb.astype(np.float32) / 255.0
    x = (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(np.moveaxis(x, -1, -3))


def dihedral_views(x: Any, n: int) -> list[Any]:
    """The first ``n`` (1, 2, 4 or 8) of the 8 flips / 90-degree rotations of a ``(B, C, H, W)`` tensor (test-time
    augmentation shared by training's evaluation and the predictor: a lesion has no canonical orientation)."""
    views = [x, x.flip(3), x.flip(2), x.flip(2).flip(3)]
    views += [v.transpose(2, 3) for v in views]
    return views[: max(1, n)]
