"""Image cache, lesion-grouped splits, dermoscopy augmentation and the Lightning DataModule.

The images are decoded and resized once with :func:`medai.derm.preprocess.resize_square` (the predictor's exact
contract) into a ``(N, S, S, 3) uint8`` array cached under ``MEDAI_HOME/cache/derm``; every epoch then reads that
array. Augmentation runs on whole batches as tensors (one ``affine_grid``/``grid_sample`` per batch).
"""

from __future__ import annotations

import hashlib
import logging
import math
from pathlib import Path

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, Field
from torch.utils.data import DataLoader, Dataset

from medai.derm.cohort import ImageCohort
from medai.derm.image import load_skin_image
from medai.derm.preprocess import resize_square
from medai.settings import get_settings

logger = logging.getLogger(__name__)


class AugmentConfig(BaseModel):
    """Dermoscopy augmentation (lesions have no canonical orientation; colour varies with device and lighting).

    Attributes:
        flip: random horizontal and vertical flips.
        rotate_deg: uniform rotation in ``[-rotate_deg, rotate_deg]`` (180 = any orientation).
        scale: random zoom range (relative crop side; <1 zooms in).
        aspect: random aspect ratio jitter (max relative stretch).
        brightness / contrast / saturation: multiplicative jitter ``1 +- value``.
        hue: hue shift as a fraction of the colour wheel (approximated by a rotation around the grey axis).
    """

    flip: bool = True
    rotate_deg: float = 180.0
    scale: tuple[float, float] = (0.75, 1.0)
    aspect: float = 0.1
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    hue: float = 0.02


def cache_images(cohort: ImageCohort, size: int, cache_dir: Path | None = None) -> np.ndarray:
    """Decode and resize every image of ``cohort`` once: ``(N, size, size, 3) uint8``, cached on disk.

    The cache key hashes the image paths, their sizes on disk and ``size``.
    """
    from rich.progress import track

    key_src = "|".join(f"{p}:{p.stat().st_size}" for p in cohort.paths) + f"|{size}"
    key = hashlib.sha1(key_src.encode()).hexdigest()[:16]
    cache_dir = cache_dir or (get_settings().home / "cache" / "derm")
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"{cohort.name.replace(' ', '_')}_{size}px_{key}.npy"
    if path.is_file():
        arr = np.load(path)
        if arr.shape == (len(cohort), size, size, 3):
            return arr
    arr = np.empty((len(cohort), size, size, 3), np.uint8)
    for i, p in enumerate(track(cohort.paths, description=f"decoding {len(cohort)} images at {size}px")):
        arr[i] = resize_square(load_skin_image(p).pixels, size)
    np.save(path, arr)
    return arr


def channel_stats(images: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-channel mean and std on the [0, 1] scale of ``(N, S, S, 3) uint8`` images."""
    x = images.reshape(-1, 3).astype(np.float64) / 255.0
    return x.mean(0).round(4).tolist(), x.std(0).round(4).tolist()


def augment_batch(
    x: torch.Tensor, cfg: AugmentConfig, generator: torch.Generator | None = None, out_size: int | None = None
) -> torch.Tensor:
    """Augment a batch ``(B, 3, S, S) float32`` in [0, 1] (before normalisation); returns ``(B, 3, s, s)`` with
    ``s = out_size or S``.

    Geometry (flip, rotation, zoom, aspect) is one affine warp with reflection padding, so no black corners appear;
    a smaller ``out_size`` samples the warp at lower resolution in the same step (progressive resizing). Colour
    jitter is per image.
    """
    b = x.shape[0]
    dev = x.device

    def u(lo: float, hi: float, *shape: int) -> torch.Tensor:
        return torch.rand(*(shape or (b,)), generator=generator, device=dev) * (hi - lo) + lo

    ang = u(-cfg.rotate_deg, cfg.rotate_deg) * math.pi / 180
    s = u(*cfg.scale)
    a = u(-cfg.aspect, cfg.aspect)
    sx, sy = s * (1 + a), s * (1 - a)
    fx = torch.where(u(0, 1) < 0.5, -1.0, 1.0) if cfg.flip else torch.ones(b, device=dev)
    fy = torch.where(u(0, 1) < 0.5, -1.0, 1.0) if cfg.flip else torch.ones(b, device=dev)
    max_shift = (1 - s).clamp(min=0)
    tx, ty = u(-1, 1) * max_shift, u(-1, 1) * max_shift
    cos, sin = torch.cos(ang), torch.sin(ang)
    theta = torch.stack(
        [
            torch.stack([cos * sx * fx, -sin * sy, tx], 1),
            torch.stack([sin * sx, cos * sy * fy, ty], 1),
        ],
        1,
    )
    shape = list(x.shape) if not out_size else [b, x.shape[1], out_size, out_size]
    grid = F.affine_grid(theta, shape, align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    # colour: brightness, contrast, saturation, hue
    x = x * u(1 - cfg.brightness, 1 + cfg.brightness).view(b, 1, 1, 1)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * u(1 - cfg.contrast, 1 + cfg.contrast).view(b, 1, 1, 1) + mean
    grey = x.mean(dim=1, keepdim=True)
    x = (x - grey) * u(1 - cfg.saturation, 1 + cfg.saturation).view(b, 1, 1, 1) + grey
    if cfg.hue > 0:
        h = u(-cfg.hue, cfg.hue) * 2 * math.pi
        c, sn = torch.cos(h), torch.sin(h)
        k = 1 / 3
        sq = math.sqrt(k)
        # rotation around the (1,1,1) grey axis (Rodrigues)
        rot = torch.stack(
            [
                torch.stack([c + (1 - c) * k, (1 - c) * k - sq * sn, (1 - c) * k + sq * sn], 1),
                torch.stack([(1 - c) * k + sq * sn, c + (1 - c) * k, (1 - c) * k - sq * sn], 1),
                torch.stack([(1 - c) * k - sq * sn, (1 - c) * k + sq * sn, c + (1 - c) * k], 1),
            ],
            1,
        )
        x = torch.einsum("bij,bjhw->bihw", rot, x)
    return x.clamp(0, 1)


class ArrayDataset(Dataset):
    """Items ``(image (S, S, 3) uint8, metadata (D,) float32, label int64)`` from cached arrays (``D`` may be 0)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, meta: np.ndarray | None = None) -> None:
        self.images = images
        self.labels = labels
        self.meta = meta if meta is not None else np.zeros((len(labels), 0), np.float32)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return torch.from_numpy(self.images[i]), torch.from_numpy(self.meta[i]), torch.tensor(self.labels[i])


def sampling_weights(labels: np.ndarray, power: float) -> np.ndarray:
    """Per-image draw weights ``count(label)^-power`` (1: balanced classes, 0.5: square-root, 0: uniform)."""
    counts = np.bincount(labels).astype(np.float64)
    return 1.0 / np.maximum(counts[labels], 1) ** power


class SplitConfig(BaseModel):
    """Group-wise split: fractions of lesions (or patients) for val and test, and the seed."""

    val_fraction: float = Field(0.15, ge=0.0, lt=0.5)
    test_fraction: float = Field(0.15, ge=0.0, lt=0.5)
    seed: int = 20260


class SkinDataModule(L.LightningDataModule):
    """Train/val/test loaders over a cached, lesion-split image array.

    Args:
        images: ``(N, S, S, 3) uint8`` cached images.
        labels: ``(N,) int64`` class indices.
        split: ``{"train"|"val"|"test": indices}`` (from :func:`medai.derm.cohort.group_split`).
        batch_size: images per batch.
        sampler: ``"weighted"`` draws training images with probability ~ class frequency^-``sampler_power``;
            ``"shuffle"`` plain.
        meta: ``(N, D) float32`` encoded patient metadata (``None``: none).
    """

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        split: dict[str, np.ndarray],
        batch_size: int = 64,
        sampler: str = "shuffle",
        seed: int = 0,
        sampler_power: float = 1.0,
        meta: np.ndarray | None = None,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        self.images, self.labels, self.split, self.meta = images, labels, split, meta
        self.batch_size, self.sampler, self.seed = batch_size, sampler, seed
        self.sampler_power, self.num_workers = sampler_power, num_workers

    def _ds(self, name: str) -> ArrayDataset:
        idx = self.split[name]
        return ArrayDataset(self.images[idx], self.labels[idx], None if self.meta is None else self.meta[idx])

    def train_dataloader(self) -> DataLoader:
        ds = self._ds("train")
        g = torch.Generator().manual_seed(self.seed)
        kw = {"num_workers": self.num_workers, "persistent_workers": self.num_workers > 0}
        if self.sampler == "weighted":
            w = sampling_weights(ds.labels, self.sampler_power)
            from torch.utils.data import WeightedRandomSampler

            samp = WeightedRandomSampler(torch.as_tensor(w), num_samples=len(ds), replacement=True, generator=g)
            return DataLoader(ds, batch_size=self.batch_size, sampler=samp, drop_last=True, **kw)
        return DataLoader(ds, batch_size=self.batch_size, shuffle=True, generator=g, drop_last=True, **kw)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self._ds("val"), batch_size=256, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return DataLoader(self._ds("test"), batch_size=256, shuffle=False)
