"""Model packages: self-describing folders (weights + frozen inference config + labels + metadata.json).

Layout of a package folder::

    metadata.json      # ModelMetadata below (name, version, predictor, intended use, contract, data, metrics...)
    inference.json     # the frozen inference config the predictor reads (schema owned by the predictor)
    weights.pt | model.skops | ...   # artefacts named in metadata.files
    MODEL_CARD.md      # the human-readable model card

Packages are registered in MLflow as ``<anatomy>_<modality>_<task>`` and loaded by path, by shipped name, or by
``models:/<name>@<alias>`` (see :func:`resolve_package`).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from medai.errors import ConfigError, ModelNotFoundError
from medai.settings import get_settings

logger = logging.getLogger(__name__)

METADATA_FILE = "metadata.json"


class TrainingData(BaseModel):
    """Where the weights came from."""

    name: str
    description: str = ""
    licence: str = ""
    n_cases: int | None = None
    citation: str = ""


class ModelMetadata(BaseModel):
    """``metadata.json`` of a model package.

    Attributes:
        name: registry name ``<anatomy>_<modality>_<task>``, e.g. ``heart_mr_cine_seg``.
        version: package version (semantic, or the MLflow model version).
        predictor: name in :data:`medai.registry.PREDICTORS` that loads and runs this package.
        task: what the model does, e.g. ``"segmentation"``, ``"survival"``, ``"classification"``.
        intended_use: intended use statement (research use only unless cleared).
        input_contract / output_contract: free-form but documented descriptions of inputs and outputs.
        labels: coded labels (segments or classes) as dicts.
        training_data: data and licence of the weights.
        metrics: held-out metrics, keyed ``stage/name[/label]``.
        mlflow_run_id: the run that produced it, when tracked.
        files: artefact files of the package, relative to it.
        licence: licence of the weights.
    """

    name: str
    version: str
    predictor: str
    task: str
    description: str = ""
    intended_use: str = "Research use only. Not a medical device."
    input_contract: dict[str, Any] = Field(default_factory=dict)
    output_contract: dict[str, Any] = Field(default_factory=dict)
    labels: list[dict[str, Any]] = Field(default_factory=list)
    training_data: list[TrainingData] = Field(default_factory=list)
    metrics: dict[str, float] = Field(default_factory=dict)
    mlflow_run_id: str | None = None
    files: list[str] = Field(default_factory=list)
    licence: str = ""
    created: str = ""
    hardware: str = ""
    reproduce: str = ""


def read_metadata(path: Path) -> ModelMetadata:
    """Read and validate ``metadata.json`` of the package at ``path``.

    Raises:
        ModelNotFoundError: the folder or its metadata file is missing.
        ConfigError: the metadata does not match :class:`ModelMetadata`.
    """
    meta_path = Path(path) / METADATA_FILE
    if not meta_path.is_file():
        raise ModelNotFoundError(f"{path} is not a model package: {METADATA_FILE} is missing")
    try:
        return ModelMetadata.model_validate(json.loads(meta_path.read_text()))
    except (ValidationError, json.JSONDecodeError) as exc:
        raise ConfigError(f"invalid {meta_path}: {exc}") from exc


def write_metadata(path: Path, meta: ModelMetadata) -> Path:
    """Write ``metadata.json`` into ``path`` (created if needed)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    out = path / METADATA_FILE
    out.write_text(meta.model_dump_json(indent=2))
    return out


def shipped_packages() -> dict[str, Path]:
    """Shipped default packages by name (``models/packages/<name>/metadata.json``)."""
    root = get_settings().packages_dir
    if not root.is_dir():
        return {}
    return {p.parent.name: p.parent for p in sorted(root.glob(f"*/{METADATA_FILE}"))}


def resolve_package(ref: str | Path) -> Path:
    """Resolve a model reference to a local package folder.

    ``ref`` may be a folder path, a shipped package name (``heart_mr_cine_seg``), or an MLflow registry URI
    ``models:/<name>@<alias>`` / ``models:/<name>/<version>`` (downloaded with MLflow, imported lazily so the core
    does not depend on it at import time).
    """
    s = str(ref)
    if s.startswith("models:/"):
        return _download_registered(s)
    p = Path(s)
    if p.is_dir():
        return p
    shipped = shipped_packages()
    if s in shipped:
        return shipped[s]
    raise ModelNotFoundError(
        f"model {s!r} is neither a package folder, a shipped model ({', '.join(shipped) or 'none'}) "
        "nor a models:/<name>@<alias> URI"
    )


def _download_registered(uri: str) -> Path:
    from medai.inference.mlflow_registry import download

    return download(uri)  # once per registered version (versions are immutable)
