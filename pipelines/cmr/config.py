"""Recipe schema of cine segmentation training (``configs/experiment/cmr_seg_*.yaml``).

A recipe is YAML validated by :class:`CmrSegRecipe`. ``trainer.preset`` names a file of ``configs/trainer/``
(``cpu``, ``gpu``, ``ddp``...) whose fields are the defaults of the recipe's own ``trainer`` fields. Dotted
overrides (``trainer.max_epochs=2``, ``data.batch_size=8``) are applied to the raw YAML before validation; values
are parsed as YAML scalars (``true``, ``3``, ``1e-3``, ``[128,128]``).
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from medai.cardiac.preprocess import CINE_LABELS, NetworkSpec, TtaMode
from medai.errors import ConfigError
from medai.settings import REPO_ROOT

TRAINER_PRESETS_DIR = REPO_ROOT / "configs" / "trainer"


class DataFormat(StrEnum):
    """Supported training data layouts."""

    ACDC_H5 = "acdc-h5"
    ACDC = "acdc"
    MANIFEST = "manifest"
    SYNTHETIC = "synthetic"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AugmentConfig(_Strict):
    """Training augmentation (MONAI). Short-axis orientation varies between scanners, so flips/rotations are on."""

    rotate: bool = True
    flip: bool = True
    zoom: tuple[float, float] = (0.8, 1.25)
    intensity_scale: float = 0.15
    intensity_shift: float = 0.15
    gamma: tuple[float, float] = (0.7, 1.5)
    noise_std: float = 0.05
    prob: float = 0.8


class DataConfig(_Strict):
    """Where the data is and how batches are made.

    Paths are absolute, or relative to the real-data root (``medai.settings.find_data_dir()``). What ``train`` and
    ``val`` name depends on ``format``:

    * ``acdc`` with ``root`` (the official release: ``root/training/patientNNN/``, ``root/splits.csv``): split
      names of ``splits.csv`` (``train``, ``val``);
    * ``acdc`` without ``root``: folders of official-layout patient folders (every patient in each);
    * ``acdc-h5``: folders of ``patientNNN_frameXX.h5`` files (each folder is a split);
    * ``manifest``: unused (the manifest's ``split`` column, ``train``/``val``, selects).

    ``fold`` (official release with ``root`` only) replaces the ``splits.csv`` split by a cross-validation fold:
    fold ``k`` of :func:`medai.datasets.acdc.acdc_folds` over every patient of the release (train and val alike)
    is held out and never trained on. It is validated on as curves only: no checkpoint selection and no early
    stopping; the package gets the last epoch's weights (:mod:`pipelines.cmr.cv`).
    """

    format: DataFormat = DataFormat.ACDC
    root: str | None = Field(default="cardiac/acdc", description="format acdc: the release root holding splits.csv")
    train: str = "train"
    val: str = "val"
    manifest: str | None = None
    max_cases: int | None = Field(default=None, description="use only the first N cases per split (smoke tests)")
    fold: int | None = Field(default=None, ge=0, description="hold out this cross-validation fold of every patient "
                             "of the release (train and val of splits.csv); None: the train/val split")
    n_folds: int = Field(default=5, ge=2, description="folds of the cross-validation (with fold)")
    resample: bool = Field(
        default=True,
        description="resample in-plane to model.target_spacing_mm, as the predictor does, when the data has a "
        "spacing (cases without one, such as ACDC HDF5, are used on their grid as-is)",
    )
    patch_size: tuple[int, int] = (128, 128)
    pos_fraction: float = Field(default=0.5, ge=0.0, le=1.0, description="share of patches centred on foreground")
    batch_size: int = 16
    val_batch_slices: int = 32
    num_workers: int = 1
    samples_per_epoch: int | None = Field(default=None, description="None: one pass over all training slices")
    augment: AugmentConfig = Field(default_factory=AugmentConfig)

    @model_validator(mode="after")
    def _fold_needs_the_release(self) -> DataConfig:
        if self.fold is None:
            return self
        if self.format != DataFormat.ACDC or self.root is None:
            raise ValueError("data.fold needs the official ACDC release (data.format acdc with data.root)")
        if self.fold >= self.n_folds:
            raise ValueError(f"data.fold={self.fold} but data.n_folds={self.n_folds} (folds are 0..{self.n_folds - 1})")
        return self


class ModelConfig(_Strict):
    """The network (registry name + arguments) and the inference contract frozen into the package."""

    network: NetworkSpec = Field(
        default_factory=lambda: NetworkSpec(
            name="unet2d",
            params={"in_channels": 1, "out_channels": 4, "channels": [16, 32, 64, 128, 256], "num_res_units": 2},
        )
    )
    spatial_dims: int = Field(default=2, ge=2, le=2, description="the cine pipeline trains slice-wise (2-D)")
    labels: dict[str, int] = Field(default_factory=lambda: dict(CINE_LABELS))
    target_spacing_mm: float = 1.5
    size_divisor: int = 32
    tta: TtaMode = Field(
        default="none", description="test-time augmentation of the measured frames (inference.json tta): 'flip' "
        "averages the logits over the 4 flips of each slice, 'd8' those and their transposes; an inference "
        "setting, so a CV run with --skip-existing applies it to the fold packages it reuses")


class OptimConfig(_Strict):
    """AdamW with linear warm-up then cosine decay (per epoch)."""

    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_epochs: int = 2
    min_lr_ratio: float = 0.02
    lambda_dice: float = 1.0
    lambda_ce: float = 1.0


class TrainerConfig(_Strict):
    """Lightning ``Trainer`` settings (see ``configs/trainer/``)."""

    preset: str | None = None
    accelerator: str = "cpu"
    devices: int | str = 1
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32-true"
    max_epochs: int = 100
    max_time_minutes: float | None = None
    check_val_every_n_epoch: int = 2
    limit_train_batches: float | int | None = None
    limit_val_batches: float | int | None = None
    fast_dev_run: bool | int = False
    num_threads: int | None = 2
    early_stopping_patience: int = 12
    deterministic: bool = False
    enable_progress_bar: bool = False


class PackageConfig(_Strict):
    """Where the exported model package goes and how it is registered."""

    name: str = "heart_mr_cine_seg"
    version: str = "1.0.0"
    out_dir: str | None = Field(default=None, description="None: <MEDAI_HOME>/packages/<name>/<run id>")
    register_model: bool = True
    alias: str = "candidate"
    fp16: bool = False


class CmrSegRecipe(_Strict):
    """A cine segmentation training recipe."""

    task: str = "cmr_segmentation"
    name: str = "cmr_seg_2d"
    seed: int = 42
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    trainer: TrainerConfig = Field(default_factory=TrainerConfig)
    package: PackageConfig = Field(default_factory=PackageConfig)


def _parse_value(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply dotted ``key.sub=value`` overrides to a nested dict (in place, also returned)."""
    for ov in overrides:
        if "=" not in ov:
            raise ConfigError(f"override {ov!r} must look like key.sub=value")
        key, value = ov.split("=", 1)
        parts = key.strip().split(".")
        node = raw
        for p in parts[:-1]:
            nxt = node.setdefault(p, {})
            if not isinstance(nxt, dict):
                raise ConfigError(f"override {ov!r}: {p!r} is not a section")
            node = nxt
        node[parts[-1]] = _parse_value(value)
    return raw


def load_trainer_preset(name: str) -> dict[str, Any]:
    """The fields of ``configs/trainer/<name>.yaml``."""
    path = TRAINER_PRESETS_DIR / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in TRAINER_PRESETS_DIR.glob("*.yaml"))) or "none"
        raise ConfigError(f"unknown trainer preset {name!r}; known: {known}")
    return yaml.safe_load(path.read_text()) or {}


R = TypeVar("R", bound=BaseModel)


def validate_recipe(cls: type[R], raw: dict[str, Any], overrides: list[str] | None, what: str) -> R:
    """Validate a raw recipe dict as ``cls`` (dotted overrides applied, trainer preset merged).

    Raises:
        ConfigError: the recipe does not validate (``what`` names the kind of recipe in the message).
    """
    raw = apply_overrides(dict(raw), list(overrides or []))
    trainer = dict(raw.get("trainer") or {})
    if trainer.get("preset"):
        trainer = {**load_trainer_preset(str(trainer["preset"])), **trainer}
    raw["trainer"] = trainer
    try:
        return cls.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"invalid {what} recipe: {exc}") from exc


def read_recipe(cls: type[R], path: Path, overrides: list[str] | None, what: str) -> R:
    """Read a recipe file, then :func:`validate_recipe`."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read recipe {path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must hold a mapping")
    return validate_recipe(cls, raw, overrides, what)


def build_recipe(raw: dict[str, Any], overrides: list[str] | None = None) -> CmrSegRecipe:
    """Validate a raw recipe dict (overrides applied, trainer preset merged)."""
    return validate_recipe(CmrSegRecipe, raw, overrides, "cine segmentation")


def load_recipe(path: Path, overrides: list[str] | None = None) -> CmrSegRecipe:
    """Read, override and validate a recipe file."""
    return read_recipe(CmrSegRecipe, path, overrides, "cine segmentation")
