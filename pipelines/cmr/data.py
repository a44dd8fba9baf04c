"""LightningDataModule of cine segmentation: 2-D slices of labelled ED/ES volumes.

Training items are random ``patch_size`` crops of single slices (foreground-biased), augmented with MONAI
(rotation, flips, zoom 0.8-1.25, intensity scale/shift, gamma, Gaussian noise). Validation items are whole
volumes (``(Z, Y, X)``) so the module can compute 3-D Dice/HD95 per case. As at inference
(:meth:`medai.cardiac.predictor.CineSegPredictor.segment_volume`), cases with a known spacing (the official ACDC
release, NIfTI/DICOM manifests) are first resampled in-plane to the model's ``target_spacing_mm``
(:func:`resample_case`, the same :class:`medai.geometry.InplaneResample`); cases without one (ACDC HDF5, synthetic)
are used on their grid as-is, like ``segment_volume(resample=False)``. Intensities are then normalised per volume
with :func:`medai.cardiac.preprocess.normalize_intensity`, exactly as at inference.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from medai.cardiac.preprocess import normalize_intensity
from medai.datasets.base import CardiacPhase, SegCase
from medai.errors import ConfigError
from medai.geometry import InplaneResample
from medai.settings import find_data_dir
from pipelines.cmr.config import AugmentConfig, DataConfig, DataFormat

logger = logging.getLogger(__name__)


def resolve_data_path(path: str) -> Path:
    """An absolute path, or a path relative to the real-data root."""
    p = Path(path)
    if p.is_absolute() or p.exists():
        return p
    root = find_data_dir()
    if root is None:
        raise ConfigError(f"data path {path!r} is relative but no data root was found; set MEDAI_DATA_DIR")
    return root / p


def synthetic_cases(n: int, shape: tuple[int, int, int] = (4, 96, 96), seed: int = 0) -> list[SegCase]:
    """Synthetic short-axis-like volumes (LV disc, myocardial ring, RV crescent) for smoke tests.

    Returns:
        ``n`` cases with ``(Z, Y, X)`` float32 images and uint8 labels (rv=1, myo=2, lv=3).
    """
    rng = np.random.default_rng(seed)
    z, h, w = shape
    yy, xx = np.mgrid[:h, :w]
    cases = []
    for i in range(n):
        img = rng.normal(0.2, 0.05, shape).astype(np.float32)
        lab = np.zeros(shape, np.uint8)
        cy, cx = h / 2 + rng.uniform(-5, 5), w / 2 + rng.uniform(-5, 5)
        r = rng.uniform(0.12, 0.18) * min(h, w)
        d = np.hypot(yy - cy, xx - cx)
        drv = np.hypot(yy - cy, xx - (cx - 1.6 * r))
        for k in range(z):
            lab[k][drv < 1.3 * r] = 1
            lab[k][d < 1.4 * r] = 2
            lab[k][d < r] = 3
        img[lab == 3] += 0.7
        img[lab == 1] += 0.6
        img[lab == 2] += 0.1
        phase = CardiacPhase.ED if i % 2 == 0 else CardiacPhase.ES
        cases.append(SegCase(f"synth{i:03d}_{phase.value}", f"synth{i:03d}", img, lab, phase))
    return cases


def _load_acdc(cfg: DataConfig, split: str) -> list[SegCase]:
    """ACDC cases of one split: a ``splits.csv`` split of the release ``root``, or a folder (HDF5 / patient folders)."""
    from medai.datasets.acdc import acdc_split_patients, load_acdc, load_acdc_h5

    name = cfg.train if split == "train" else cfg.val
    if cfg.format == DataFormat.ACDC_H5:
        return load_acdc_h5(resolve_data_path(name))
    if cfg.root is None:
        return load_acdc(resolve_data_path(name))
    root = resolve_data_path(cfg.root)
    if cfg.fold is not None:  # a cross-validation fold of every patient: held out (val) or the others (train)
        folds = fold_patients(cfg)
        keep = [p for p, k in folds.items() if (k == cfg.fold) == (split == "val")]
        if cfg.max_cases:
            keep = keep[: math.ceil(cfg.max_cases / 2)]
        return load_acdc(root, patients=keep)
    patients = None
    if cfg.max_cases:  # read only the patients needed (two cases, ED and ES, each)
        patients = acdc_split_patients(root, name)[: math.ceil(cfg.max_cases / 2)]
    return load_acdc(root, split=name, patients=patients)


def fold_patients(cfg: DataConfig) -> dict[str, int]:
    """Patient id -> cross-validation fold of the recipe's ACDC release (:func:`medai.datasets.acdc.acdc_folds`)."""
    from medai.datasets.acdc import acdc_folds

    if cfg.root is None:
        raise ConfigError("data.fold needs data.root (the official ACDC release)")
    return acdc_folds(resolve_data_path(cfg.root), cfg.n_folds)


def resample_case(case: SegCase, target_spacing_mm: float) -> SegCase:
    """A case resampled in-plane to ``target_spacing_mm`` (image linear, label nearest), as the predictor does.

    Args:
        case: ``(Z, Y, X)`` image and label; unchanged when it has no spacing (``spacing_mm`` None).
        target_spacing_mm: in-plane pixel size of the model (mm).

    Returns:
        A new case on the ``(Z, Y', X')`` grid with its spacing and LPS affine updated (``meta["source_shape"]``
        and ``meta["source_spacing_mm"]`` keep the originals), or ``case`` itself when no resampling is needed.
    """
    if case.spacing_mm is None:
        return case
    vol = case.to_volume()
    step = InplaneResample.to_spacing(vol, target_spacing_mm)
    if step.is_identity:
        return case
    sy, sx = step.scale()
    dz, dy, dx = case.spacing_mm
    return dataclasses.replace(
        case,
        image=step.image(case.image),
        label=None if case.label is None else step.labels(case.label),
        spacing_mm=(dz, dy * sy, dx * sx),
        affine=step.forward_affine(vol.affine),
        meta={**case.meta, "source_shape": tuple(case.image.shape), "source_spacing_mm": case.spacing_mm},
    )


def load_cases(cfg: DataConfig, split: str, target_spacing_mm: float | None = None) -> list[SegCase]:
    """Labelled cases of one split (``"train"`` or ``"val"``) for the recipe's data format.

    Args:
        cfg: the recipe's data section.
        split: ``"train"`` or ``"val"``.
        target_spacing_mm: the model's in-plane spacing; cases with a spacing are resampled to it when
            ``cfg.resample`` (None: no resampling).
    """
    if cfg.format == DataFormat.SYNTHETIC:
        cases = synthetic_cases(cfg.max_cases or 4, seed=0 if split == "train" else 1)
    elif cfg.format in (DataFormat.ACDC_H5, DataFormat.ACDC):
        cases = _load_acdc(cfg, split)
    elif cfg.format == DataFormat.MANIFEST:
        from medai.datasets.manifest import load_manifest_cases

        if not cfg.manifest:
            raise ConfigError("data.format=manifest needs data.manifest (a CSV or JSON file)")
        cases = load_manifest_cases(resolve_data_path(cfg.manifest), split=split)
    else:  # pragma: no cover - pydantic restricts the enum
        raise ConfigError(f"unknown data format {cfg.format}")
    cases = [c for c in cases if c.label is not None]
    if cfg.max_cases:
        cases = cases[: cfg.max_cases]
    if not cases:
        raise ConfigError(f"no labelled cases for split {split!r} ({cfg.format})")
    if cfg.resample and target_spacing_mm is not None:
        cases = [resample_case(c, target_spacing_mm) for c in cases]
        n = sum(c.spacing_mm is None for c in cases)
        if n:
            logger.info("%s: %d of %d cases have no spacing and are used on their grid as-is", split, n, len(cases))
    return cases


def _augment_slice(
    img: torch.Tensor, lab: torch.Tensor, fg: np.ndarray, patch: tuple[int, int], aug: AugmentConfig,
    rng: np.random.Generator, pos_fraction: float = 0.75,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One augmented training patch from a slice, in a single ``grid_sample`` (fast on CPU).

    The patch is centred on a random foreground pixel (``pos_fraction`` of the time) or a random pixel, then
    rotated (any angle), zoomed (``aug.zoom``, per axis), flipped; intensities get scale/shift, gamma and noise.

    Args:
        img: ``(H, W)`` float32, normalised.
        lab: ``(H, W)`` label map.
        fg: ``(N, 2)`` foreground (row, col) coordinates of the slice.
        patch: output ``(h, w)``.

    Returns:
        ``(1, h, w)`` float32 image and ``(1, h, w)`` int64 label.
    """
    h, w = img.shape
    if len(fg) and rng.random() < pos_fraction:
        cy, cx = fg[rng.integers(len(fg))]
    else:
        cy, cx = rng.uniform(0, h - 1), rng.uniform(0, w - 1)
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
    off = np.stack([oy.ravel(), ox.ravel()])  # (2, N) (dy, dx) in output pixels
    src = a @ off + np.array([[cy], [cx]])  # input (row, col)
    gx = (2 * src[1] + 1) / w - 1
    gy = (2 * src[0] + 1) / h - 1
    grid = torch.from_numpy(np.stack([gx, gy], -1).reshape(1, ph, pw, 2).astype(np.float32))
    out_img = F.grid_sample(img[None, None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)[0]
    out_lab = F.grid_sample(lab[None, None].float(), grid, mode="nearest", padding_mode="zeros", align_corners=False)[0]
    if rng.random() < aug.prob:
        out_img = out_img * (1 + rng.uniform(-aug.intensity_scale, aug.intensity_scale))
        out_img = out_img + rng.uniform(-aug.intensity_shift, aug.intensity_shift)
    if rng.random() < 0.3:
        lo_v, hi_v = out_img.min(), out_img.max()
        rng_v = float(hi_v - lo_v) + 1e-6
        out_img = ((out_img - lo_v) / rng_v) ** rng.uniform(*aug.gamma) * rng_v + lo_v
    if rng.random() < 0.3:
        out_img = out_img + torch.randn_like(out_img) * rng.uniform(0, aug.noise_std)
    return out_img.float(), out_lab.long()


class SliceDataset(Dataset):
    """Augmented 2-D training slices: items ``{"image": (1, h, w) float32, "label": (1, h, w) int64}``."""

    def __init__(self, cases: list[SegCase], patch: tuple[int, int], aug: AugmentConfig, length: int | None = None,
                 pos_fraction: float = 0.5):
        self.pos_fraction = pos_fraction
        self.slices: list[tuple[torch.Tensor, torch.Tensor, np.ndarray]] = []
        for c in cases:
            img = normalize_intensity(c.image)
            assert c.label is not None
            for z in range(img.shape[0]) if c.label_slices is None else c.label_slices:
                lab = c.label[z].astype(np.int64)
                fg = np.argwhere(lab > 0)
                self.slices.append((torch.from_numpy(img[z].copy()), torch.from_numpy(lab), fg))
        self.length = length or len(self.slices)
        self.patch = tuple(patch)
        self.aug = aug
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
        return self.length

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        img, lab, fg = self.slices[i % len(self.slices)]
        x, y = _augment_slice(img, lab, fg, self.patch, self.aug, self._generator(),  # type: ignore[arg-type]
                              self.pos_fraction)
        return {"image": x, "label": y}


class VolumeDataset(Dataset):
    """Whole validation volumes: ``{"image": (Z, Y, X) float32, "label": (Z, Y, X) int64, "case_id", "phase",
    "spacing"}`` (``spacing``: ``(dz, dy, dx)`` mm of the volume's grid, or None when unknown)."""

    def __init__(self, cases: list[SegCase]):
        self.cases = cases

    def __len__(self) -> int:
        return len(self.cases)

    def __getitem__(self, i: int) -> dict[str, Any]:
        c = self.cases[i]
        assert c.label is not None
        return {
            "image": torch.from_numpy(normalize_intensity(c.image)),
            "label": torch.from_numpy(c.label.astype(np.int64)),
            "case_id": c.case_id,
            "phase": c.phase.value,
            "spacing": c.spacing_mm,
        }


def _collate_one(batch: list[dict[str, Any]]) -> dict[str, Any]:
    return batch[0]


class CineSegDataModule(L.LightningDataModule):
    """Slices of the training split; whole volumes of the validation (model selection) split.

    Args:
        cfg: the recipe's data section.
        target_spacing_mm: the model's in-plane spacing (``model.target_spacing_mm``); cases with a spacing are
            resampled to it (``cfg.resample``), as the predictor resamples at inference. None: no resampling.
    """

    def __init__(self, cfg: DataConfig, target_spacing_mm: float | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.target_spacing_mm = target_spacing_mm
        self.train_ds: SliceDataset | None = None
        self.val_ds: VolumeDataset | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.train_ds is None and stage in (None, "fit"):
            train = load_cases(self.cfg, "train", self.target_spacing_mm)
            self.train_ds = SliceDataset(train, self.cfg.patch_size, self.cfg.augment, self.cfg.samples_per_epoch,
                                         self.cfg.pos_fraction)
            logger.info("train: %d cases, %d slices", len(train), len(self.train_ds.slices))
        if self.val_ds is None:
            val = load_cases(self.cfg, "val", self.target_spacing_mm)
            self.val_ds = VolumeDataset(val)
            logger.info("val: %d cases", len(val))

    def train_dataloader(self) -> DataLoader:
        assert self.train_ds is not None
        return DataLoader(
            self.train_ds, batch_size=self.cfg.batch_size, shuffle=True, num_workers=self.cfg.num_workers,
            drop_last=len(self.train_ds) > self.cfg.batch_size, persistent_workers=self.cfg.num_workers > 0,
        )

    def val_dataloader(self) -> DataLoader:
        assert self.val_ds is not None
        return DataLoader(self.val_ds, batch_size=1, shuffle=False, num_workers=0, collate_fn=_collate_one)
