"""Recipe schema of LGE scar segmentation training (``configs/experiment/lge_seg_*.yaml``).

Validated by :class:`LgeSegRecipe`. Trainer presets (``configs/trainer/``) and dotted overrides
(``data.fold=3``, ``trainer.max_epochs=2``) work as for the cine recipes (:mod:`pipelines.cmr.config`).

``data.fold`` selects the held-out fold of the case-level, N/P-stratified folds of
:func:`medai.datasets.emidec.emidec_folds`; its cases are never trained on (``null``: train on every case).
There is no checkpoint selection: the weights of the last epoch are exported (as nnU-Net does), and the held-out
fold's Dice is logged during training as a curve only.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from medai.cardiac.lge_predictor import LGE_LABELS, LgeSegInferenceConfig
from medai.cardiac.preprocess import NetworkSpec
from medai.datasets.emidec import FOLD_SEED, N_FOLDS
from pipelines.cmr.config import (
    AugmentConfig,
    OptimConfig,
    PackageConfig,
    TrainerConfig,
    read_recipe,
    validate_recipe,
)


class LgeDataFormat(StrEnum):
    """Supported training data layouts."""

    EMIDEC = "emidec"
    SYNTHETIC = "synthetic"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LgeAugmentConfig(AugmentConfig):
    """MONAI-style augmentation of the cine recipe (rotation, flips, zoom, intensity), plus crop jitter."""

    zoom: tuple[float, float] = (0.85, 1.2)
    jitter_px: float = Field(default=12.0, ge=0, description="random shift of the crop centre (canonical pixels)")


class LgeDataConfig(_Strict):
    """Where the data is, which fold is held out, and how batches are made.

    ``root`` is absolute, or relative to the real-data root (``medai.settings.find_data_dir()``).
    """

    format: LgeDataFormat = LgeDataFormat.EMIDEC
    root: str = "cardiac/emidec"
    fold: int | None = Field(default=0, ge=0, description="held-out fold (never trained on); None: train on all")
    n_folds: int = Field(default=N_FOLDS, ge=2)
    fold_seed: int = FOLD_SEED
    exclude_folds: list[int] = Field(default_factory=list, description="folds used neither to train nor to monitor")
    max_cases: int | None = Field(default=None, description="use only the first N cases per split (smoke tests)")
    batch_size: int = 16
    num_workers: int = 0
    samples_per_epoch: int | None = Field(default=None, description="None: as many as training slices")
    infarct_oversample: float = Field(default=2.0, ge=1.0, description="sampling weight of slices with infarct/MVO")
    patch_size: tuple[int, int] | None = Field(
        default=None, description="training patch (canonical pixels); None: the network window (model.crop_size)")
    fg_fraction: float = Field(default=0.5, ge=0.0, le=1.0,
                               description="share of training patches centred on a random heart pixel "
                               "(the others on the network window's centre), both jittered")
    augment: LgeAugmentConfig = Field(default_factory=LgeAugmentConfig)

    @model_validator(mode="after")
    def _check(self) -> LgeDataConfig:
        if self.fold is not None and self.fold >= self.n_folds:
            raise ValueError(f"data.fold={self.fold} must be below data.n_folds={self.n_folds}")
        if self.fold is not None and self.fold in self.exclude_folds:
            raise ValueError("the held-out fold cannot also be excluded")
        return self


class LgeModelConfig(_Strict):
    """The network and the inference contract frozen into ``inference.json`` (:class:`LgeSegInferenceConfig`)."""

    network: NetworkSpec = Field(
        default_factory=lambda: NetworkSpec(
            name="unet2d",
            params={"in_channels": 1, "out_channels": 5, "channels": [16, 32, 64, 128, 256], "num_res_units": 2},
        )
    )
    spatial_dims: int = Field(default=2, ge=2, le=2, description="slice-wise (2-D or 2.5-D) only")
    canonical_size: tuple[int, int] = (256, 256)
    crop_size: tuple[int, int] | None = (128, 128)
    context: int = Field(default=0, ge=0, le=3, description="neighbour slices per side as channels (2.5-D)")
    norm: Literal["slice", "volume"] = "slice"
    p_low: float = 1.0
    p_high: float = 99.0
    size_divisor: int = 16
    labels: dict[str, int] = Field(default_factory=lambda: dict(LGE_LABELS))
    mvo_policy: str = "infarct"
    tta: Literal["none", "x", "xy"] = Field(default="none", description="test-time flips averaged at inference")

    @model_validator(mode="after")
    def _check(self) -> LgeModelConfig:
        params = self.network.params
        want = 1 + 2 * self.context
        if int(params.get("in_channels", want)) != want:  # type: ignore[call-overload]
            raise ValueError(f"network in_channels={params.get('in_channels')} but context={self.context} needs {want}")
        if int(params.get("out_channels", 0)) != max(self.labels.values()) + 1:  # type: ignore[call-overload]
            raise ValueError(f"network out_channels must be {max(self.labels.values()) + 1} (background + labels)")
        self.inference_config()  # the frozen contract must validate too
        return self

    def inference_config(self) -> LgeSegInferenceConfig:
        """The ``inference.json`` of this model."""
        return LgeSegInferenceConfig.model_validate(self.model_dump())  # same field names; weights keep their default


class LgeOptimConfig(OptimConfig):
    """AdamW + warm-up + cosine (as the cine recipe); Dice computed over the whole batch (nnU-Net "batch dice")."""

    batch_dice: bool = True


class LgeTrainerConfig(TrainerConfig):
    """Lightning settings; no early stopping and no checkpoint selection (last-epoch weights are exported)."""

    max_epochs: int = 60
    check_val_every_n_epoch: int = 5


class LgePackageConfig(PackageConfig):
    """Where the exported package goes and how it is registered."""

    name: str = "heart_mr_lge_seg"


class LgeSegRecipe(_Strict):
    """An LGE scar segmentation training recipe."""

    task: str = "lge_segmentation"
    name: str = "lge_seg_2d"
    seed: int = 42
    data: LgeDataConfig = Field(default_factory=LgeDataConfig)
    model: LgeModelConfig = Field(default_factory=LgeModelConfig)
    optim: LgeOptimConfig = Field(default_factory=LgeOptimConfig)
    trainer: LgeTrainerConfig = Field(default_factory=LgeTrainerConfig)
    package: LgePackageConfig = Field(default_factory=LgePackageConfig)


def build_recipe(raw: dict[str, Any], overrides: list[str] | None = None) -> LgeSegRecipe:
    """Validate a raw recipe dict (overrides applied, trainer preset merged)."""
    return validate_recipe(LgeSegRecipe, raw, overrides, "LGE segmentation")


def load_recipe(path: Path, overrides: list[str] | None = None) -> LgeSegRecipe:
    """Read, override and validate a recipe file."""
    return read_recipe(LgeSegRecipe, path, overrides, "LGE segmentation")
