"""Recipe schema and loading for the dermatology flows (YAML + dotted ``key=value`` overrides)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, ValidationError

from medai.errors import ConfigError
from medai.settings import REPO_ROOT, find_data_dir
from pipelines.derm.data import AugmentConfig, SplitConfig


class ImageDataConfig(BaseModel):
    """Where the images come from.

    ``format: ham10000`` reads the HAM10000 release layout at ``root`` (default ``<data>/derm/ham10000``);
    ``format: csv`` reads a hospital's own cohort (``labels_csv`` with ``image``, ``label``, ``group`` columns and
    images under ``image_dir``).
    """

    format: Literal["ham10000", "csv"] = "ham10000"
    root: Path | None = None
    labels_csv: Path | None = None
    image_dir: Path | None = None
    class_names: list[str] | None = None
    image_size: int = Field(80, ge=32, le=512)
    image_type: Literal["dermoscopic", "clinical"] | None = Field(
        None, description="what the images are (default: dermoscopic for HAM10000, clinical for csv cohorts)"
    )
    metadata: bool = Field(False, description="fuse the patient metadata the cohort carries (age, sex, site...)")
    metadata_fields: list[str] | None = Field(None, description="subset of age, sex, site, skin_type (default all)")
    split: SplitConfig = Field(default_factory=SplitConfig)
    limit: int | None = Field(None, description="use only the first N images (smoke tests)")


class NetworkConfig(BaseModel):
    """A network from :data:`medai.registry.NETWORKS` and its keyword arguments."""

    network: str = "derm_resnet_small"
    params: dict[str, Any] = Field(default_factory=dict)
    init_from: str | None = Field(
        None,
        description="start from this package's weights (folder, name or models:/ URI) where shapes match: e.g. a "
        "hospital cohort fine-tuned from the shipped HAM10000 model; a new class list or metadata re-initialises "
        "only the layers that differ",
    )


class TrainerConfig(BaseModel):
    """Optimisation settings."""

    max_epochs: int = 24
    max_time_min: float | None = 45.0
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 5e-4
    warmup_epochs: float = 1.0
    imbalance: Literal["class_weighted_loss", "weighted_sampler", "logit_adjusted", "none"] = "class_weighted_loss"
    class_weight_power: float = Field(1.0, description="weights ~ (1/frequency)^power")
    sampler_power: float = Field(
        1.0, ge=0.0, le=1.0, description="weighted_sampler / logit_adjusted: draw images with p ~ count^-power"
    )
    logit_adjust_tau: float = Field(1.0, ge=0.0, description="logit_adjusted: logits + tau * log(sampled prior)")
    label_smoothing: float = 0.0
    meta_dropout: float = Field(0.25, ge=0.0, le=1.0, description="chance a metadata field is hidden in training")
    low_res_size: int | None = Field(
        None, ge=32, description="progressive resizing: train at this size until low_res_until, then full size"
    )
    low_res_until: float = Field(0.75, ge=0.0, le=1.0, description="fraction of training progress at low_res_size")
    channels_last: bool = True
    tta: Literal[1, 2, 4, 8] = Field(1, description="test-time views (flips, then 90-degree rotations)")
    accelerator: Literal["auto", "cpu", "gpu"] = "auto"
    precision: str = Field("32-true", description="Lightning precision (bf16-mixed on a GPU)")
    resume: bool = Field(True, description="continue from the work folder's last checkpoint of the same recipe")
    num_workers: int = 0
    num_threads: int = 1
    seed: int = 7
    limit_train_batches: int | float | None = None
    limit_val_batches: int | float | None = None


class OutputConfig(BaseModel):
    """Where the model package goes and how it is registered."""

    package_dir: Path = REPO_ROOT / "models" / "packages" / "skin_derm_lesion_cls"
    register_model: bool = True
    alias: str = "candidate"
    experiment: str = "skin_derm_lesion_cls"


class SkinLesionRecipe(BaseModel):
    """``configs/experiment/derm_*.yaml`` for ``task: skin_lesion_classification``."""

    task: Literal["skin_lesion_classification"] = "skin_lesion_classification"
    name: str = "skin_derm_lesion_cls"
    version: str = "1.0.0"
    data: ImageDataConfig = Field(default_factory=ImageDataConfig)
    model: NetworkConfig = Field(default_factory=NetworkConfig)
    trainer: TrainerConfig = Field(default_factory=TrainerConfig)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)

    def data_root(self) -> Path:
        """The HAM10000 folder (recipe ``data.root`` or ``<data dir>/derm/ham10000``)."""
        if self.data.root:
            return Path(self.data.root)
        d = find_data_dir()
        if d is None:
            raise ConfigError("no data.root in the recipe and no data dir found; set MEDAI_DATA_DIR or data.root")
        return d / "derm" / "ham10000"


def apply_overrides(raw: dict[str, Any], overrides: list[str] | None) -> dict[str, Any]:
    """Apply ``a.b.c=value`` overrides (values parsed as YAML) to a nested dict, in place; returns it."""
    for ov in overrides or []:
        if "=" not in ov:
            raise ConfigError(f"override {ov!r} is not key=value (e.g. trainer.max_epochs=2)")
        key, val = ov.split("=", 1)
        node = raw
        parts = key.strip().split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {ov!r}: {p} is not a section")
        node[parts[-1]] = yaml.safe_load(val)
    return raw


def load_yaml(path: str | Path, overrides: list[str] | None = None) -> dict[str, Any]:
    """Read a recipe YAML and apply overrides."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read recipe {path}: {exc}") from exc
    return apply_overrides(raw, overrides)


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> SkinLesionRecipe:
    """Validated :class:`SkinLesionRecipe` from YAML + overrides."""
    raw = load_yaml(path, overrides)
    try:
        return SkinLesionRecipe.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"invalid recipe {path}: {exc}") from exc
