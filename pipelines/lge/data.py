"""LightningDataModule of LGE scar segmentation: EMIDEC slices split by case into training and held-out folds.

Every case goes through the predictor's own preprocessing (:func:`medai.cardiac.lge_predictor.canonical_slices`:
resize to the canonical grid, per-slice percentile normalisation; :func:`stack_context` for 2.5-D input).

* Training items: one slice (with its context channels) sampled with replacement, slices holding infarct or MVO
  ``infarct_oversample`` times as often; a ``patch_size`` window (default: the network window) centred on a random
  heart pixel (``fg_fraction`` of the time) or on the window's centre, jittered, rotated (any angle), zoomed,
  flipped, in one ``grid_sample``; intensity scale/shift, gamma and noise. The network is fully convolutional, so
  it may train on patches smaller than the window it segments at inference (as the cine recipe does).
* Held-out items: whole cases, the centred crop (what the predictor feeds the network), for training curves only.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, WeightedRandomSampler

from medai.cardiac.lge_predictor import LgeSegInferenceConfig, canonical_slices, crop_box, stack_context
from medai.datasets.base import SegCase
from medai.datasets.emidec import EMIDEC_LABELS, INFARCT_LABELS, emidec_case_ids, fold_split, load_emidec
from medai.errors import ConfigError
from pipelines.cmr.data import resolve_data_path
from pipelines.lge.config import LgeAugmentConfig, LgeDataConfig, LgeDataFormat

logger = logging.getLogger(__name__)


def synthetic_lge_cases(n: int, shape: tuple[int, int, int] = (5, 96, 96), seed: int = 0) -> list[SegCase]:
    """Synthetic LGE-like stacks (bright cavity, dark nulled myocardial ring, bright scar sector, dark MVO core).

    Returns:
        ``n`` cases (alternately normal ``Case_N*`` and infarct ``Case_P*``) with ``(Z, Y, X)`` float32 images and
        uint8 labels in the EMIDEC convention.
    """
    rng = np.random.default_rng(seed)
    z, h, w = shape
    yy, xx = np.mgrid[:h, :w]
    cases = []
    for i in range(n):
        sick = i % 2 == 1
        cid = f"Case_{'P' if sick else 'N'}{i:03d}"
        img = rng.normal(60, 10, shape).astype(np.float32)
        lab = np.zeros(shape, np.uint8)
        cy, cx = h / 2 + rng.uniform(-3, 3), w / 2 + rng.uniform(-3, 3)
        for k in range(z):
            r = (0.08 + 0.02 * k / max(1, z - 1)) * min(h, w)
            d = np.hypot(yy - cy, xx - cx)
            ang = np.arctan2(yy - cy, xx - cx)
            ring = (d >= r) & (d < 1.6 * r)
            lab[k][ring] = 2
            lab[k][d < r] = 1
            if sick:
                scar = ring & (ang > 0.2) & (ang < 1.4)
                lab[k][scar] = 3
                lab[k][scar & (d < 1.25 * r) & (ang > 0.6) & (ang < 1.0)] = 4
        img[lab == 1] += 120
        img[lab == 2] -= 40
        img[lab == 3] += 160
        img[lab == 4] -= 30
        cases.append(SegCase(cid, cid, np.clip(img, 0, 255), lab, labels=dict(EMIDEC_LABELS),
                             meta={"group": "P" if sick else "N"}))
    return cases


def split_cases(cfg: LgeDataConfig) -> tuple[list[str], list[str]]:
    """``(train, held_out)`` case ids of the recipe (held-out empty when ``data.fold`` is None)."""
    if cfg.format == LgeDataFormat.SYNTHETIC:
        ids = [c.case_id for c in synthetic_lge_cases(max(2, cfg.max_cases or 4))]
        half = max(1, len(ids) // 2)
        return (ids[half:], ids[:half]) if cfg.fold is not None else (ids, [])
    ids = emidec_case_ids(resolve_data_path(cfg.root))
    if cfg.fold is None:
        excluded = set()
        if cfg.exclude_folds:
            from medai.datasets.emidec import emidec_folds

            folds = emidec_folds(ids, cfg.n_folds, cfg.fold_seed)
            excluded = {c for c, f in folds.items() if f in cfg.exclude_folds}
        return sorted(set(ids) - excluded), []
    return fold_split(ids, cfg.fold, cfg.n_folds, cfg.fold_seed, cfg.exclude_folds)


def load_cases(cfg: LgeDataConfig, ids: list[str]) -> list[SegCase]:
    """The labelled cases ``ids`` (the first ``max_cases`` of them when set)."""
    if cfg.max_cases:
        ids = ids[: cfg.max_cases]
    if not ids:
        return []
    if cfg.format == LgeDataFormat.SYNTHETIC:
        by_id = {c.case_id: c for c in synthetic_lge_cases(max(2, cfg.max_cases or 4))}
        return [by_id[i] for i in ids]
    if cfg.format == LgeDataFormat.EMIDEC:
        return load_emidec(resolve_data_path(cfg.root), ids)
    raise ConfigError(f"unknown data format {cfg.format}")  # pragma: no cover - pydantic restricts the enum


def prepare_case(case: SegCase, icfg: LgeSegInferenceConfig) -> tuple[np.ndarray, np.ndarray]:
    """A case on the canonical grid: ``(Z, C, H, W)`` float32 network channels and ``(Z, H, W)`` uint8 labels."""
    canon, step = canonical_slices(case.image, icfg)
    assert case.label is not None
    return stack_context(canon, icfg.context), step.labels(case.label).astype(np.uint8)


def _augment(
    img: torch.Tensor, lab: torch.Tensor, centre: tuple[float, float], patch: tuple[int, int],
    aug: LgeAugmentConfig, rng: np.random.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One augmented ``patch`` around ``centre`` of a ``(C, H, W)`` slice and its ``(H, W)`` labels.

    Returns:
        ``(C, h, w)`` float32 image and ``(1, h, w)`` int64 label.
    """
    _, h, w = img.shape
    cy = centre[0] + rng.uniform(-aug.jitter_px, aug.jitter_px)
    cx = centre[1] + rng.uniform(-aug.jitter_px, aug.jitter_px)
    a = np.eye(2)
    if rng.random() < aug.prob:
        if aug.rotate:
            t = rng.uniform(-np.pi, np.pi)
            a = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
        lo, hi = aug.zoom
        a = a @ np.diag(np.exp(rng.uniform(np.log(lo), np.log(hi), size=2)))
    if aug.flip:
        a = a @ np.diag(np.where(rng.random(2) < 0.5, -1.0, 1.0))
    ph, pw = patch
    oy, ox = np.meshgrid(np.arange(ph) - (ph - 1) / 2, np.arange(pw) - (pw - 1) / 2, indexing="ij")
    src = a @ np.stack([oy.ravel(), ox.ravel()]) + np.array([[cy], [cx]])
    grid = np.stack([(2 * src[1] + 1) / w - 1, (2 * src[0] + 1) / h - 1], -1).reshape(1, ph, pw, 2)
    g = torch.from_numpy(grid.astype(np.float32))
    out = F.grid_sample(img[None], g, mode="bilinear", padding_mode="border", align_corners=False)[0]
    out_lab = F.grid_sample(lab[None, None].float(), g, mode="nearest", padding_mode="zeros", align_corners=False)[0]
    if rng.random() < aug.prob:
        out = out * (1 + rng.uniform(-aug.intensity_scale, aug.intensity_scale))
        out = out + rng.uniform(-aug.intensity_shift, aug.intensity_shift)
    if rng.random() < 0.3:
        lo_v, hi_v = out.min(), out.max()
        span = float(hi_v - lo_v) + 1e-6
        out = ((out - lo_v) / span) ** rng.uniform(*aug.gamma) * span + lo_v
    if rng.random() < 0.3:
        out = out + torch.randn_like(out) * rng.uniform(0, aug.noise_std)
    return out.float(), out_lab.long()


class LgeSliceDataset(Dataset):
    """Augmented training slices: ``{"image": (C, h, w) float32, "label": (1, h, w) int64}``.

    Attributes:
        weights: sampling weight per slice (``infarct_oversample`` for slices with infarct/MVO, else 1).
    """

    def __init__(self, cases: list[SegCase], icfg: LgeSegInferenceConfig, aug: LgeAugmentConfig,
                 infarct_oversample: float = 1.0, patch: tuple[int, int] | None = None,
                 fg_fraction: float = 0.5) -> None:
        self.slices: list[tuple[torch.Tensor, torch.Tensor, np.ndarray]] = []
        weights = []
        for c in cases:
            x, y = prepare_case(c, icfg)
            for z in range(len(x)):
                self.slices.append((torch.from_numpy(x[z].copy()), torch.from_numpy(y[z].astype(np.int64)),
                                    np.argwhere(y[z] > 0)))
                weights.append(infarct_oversample if np.isin(y[z], INFARCT_LABELS).any() else 1.0)
        self.weights = np.asarray(weights, dtype=float)
        self.icfg = icfg
        self.aug = aug
        self.fg_fraction = fg_fraction
        y0, y1, x0, x1 = crop_box(icfg.canonical_size, icfg.crop_size)
        self.patch = tuple(patch) if patch else (y1 - y0, x1 - x0)
        self.centre = ((y0 + y1 - 1) / 2, (x0 + x1 - 1) / 2)
        self._rng: np.random.Generator | None = None
        self._rng_owner: tuple[int, int] | None = None

    def _generator(self) -> np.random.Generator:
        """A generator per process/worker, seeded from torch's seed (set by ``seed_everything(workers=True)``)."""
        owner = (os.getpid(), torch.initial_seed())
        if self._rng is None or self._rng_owner != owner:
            self._rng = np.random.default_rng(torch.initial_seed() % 2**63)
            self._rng_owner = owner
        return self._rng

    def __len__(self) -> int:
        return len(self.slices)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        img, lab, fg = self.slices[i]
        rng = self._generator()
        centre = tuple(fg[rng.integers(len(fg))]) if len(fg) and rng.random() < self.fg_fraction else self.centre
        x, y = _augment(img, lab, centre, self.patch, self.aug, rng)  # type: ignore[arg-type]
        return {"image": x, "label": y}


class LgeCaseDataset(Dataset):
    """Whole cases on the network's window: ``{"image": (Z, C, h, w), "label": (Z, h, w) int64, "case_id"}``."""

    def __init__(self, cases: list[SegCase], icfg: LgeSegInferenceConfig) -> None:
        y0, y1, x0, x1 = crop_box(icfg.canonical_size, icfg.crop_size)
        self.items = []
        for c in cases:
            x, y = prepare_case(c, icfg)
            self.items.append({"image": torch.from_numpy(x[..., y0:y1, x0:x1].copy()),
                               "label": torch.from_numpy(y[..., y0:y1, x0:x1].astype(np.int64)),
                               "case_id": c.case_id})

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.items[i]


def _collate_one(batch: list[dict[str, Any]]) -> dict[str, Any]:
    return batch[0]


class LgeDataModule(L.LightningDataModule):
    """Training slices of the training folds; whole cases of the held-out fold (curves only)."""

    def __init__(self, cfg: LgeDataConfig, icfg: LgeSegInferenceConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.icfg = icfg
        self.train_ids, self.heldout_ids = split_cases(cfg)
        if cfg.max_cases:
            self.train_ids = self.train_ids[: cfg.max_cases]
            self.heldout_ids = self.heldout_ids[: cfg.max_cases]
        self.train_ds: LgeSliceDataset | None = None
        self.val_ds: LgeCaseDataset | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.train_ds is None and stage in (None, "fit"):
            train = load_cases(self.cfg, self.train_ids)
            if not train:
                raise ConfigError("no training cases")
            self.train_ds = LgeSliceDataset(train, self.icfg, self.cfg.augment, self.cfg.infarct_oversample,
                                            self.cfg.patch_size, self.cfg.fg_fraction)
            logger.info("train: %d cases, %d slices (%d with infarct)", len(train), len(self.train_ds),
                        int((self.train_ds.weights > 1).sum()))
        if self.val_ds is None:
            held = load_cases(self.cfg, self.heldout_ids)
            self.val_ds = LgeCaseDataset(held, self.icfg)
            logger.info("held-out (curves only): %d cases", len(held))

    def train_dataloader(self) -> DataLoader:
        assert self.train_ds is not None
        n = self.cfg.samples_per_epoch or len(self.train_ds)
        sampler = WeightedRandomSampler(torch.from_numpy(self.train_ds.weights), num_samples=n, replacement=True)
        return DataLoader(self.train_ds, batch_size=self.cfg.batch_size, sampler=sampler,
                          num_workers=self.cfg.num_workers, drop_last=n > self.cfg.batch_size,
                          persistent_workers=self.cfg.num_workers > 0)

    def val_dataloader(self) -> DataLoader:
        assert self.val_ds is not None
        return DataLoader(self.val_ds, batch_size=1, shuffle=False, num_workers=0, collate_fn=_collate_one)
