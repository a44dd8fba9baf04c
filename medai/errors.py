"""The documented error types of medai.

Every error a user can cause (bad file, bad config, bad patient factors) is a subclass of :class:`MedaiError` and
carries a message that says what was wrong and what to do. The API maps them onto RFC 7807 problem documents.
"""

from __future__ import annotations

from typing import Any


class MedaiError(Exception):
    """Base class of every user-facing medai error.

    Args:
        message: What was wrong and what to do about it.
        details: Machine-readable details (e.g. one entry per invalid field).
    """

    #: Short, stable identifier used in API problem documents (``type`` suffix).
    code: str = "medai-error"
    #: HTTP status the API answers with.
    http_status: int = 400

    def __init__(self, message: str, details: list[dict[str, Any]] | dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class DicomError(MedaiError):
    """A DICOM file or series could not be read or does not meet the requirements."""

    code = "dicom-error"
    http_status = 422


class IngestError(DicomError):
    """Nothing usable could be ingested (no DICOM at all, conflicting duplicates, archive problems)."""

    code = "ingest-error"


class GeometryError(DicomError):
    """A series has inconsistent geometry (orientation, spacing, sizes) and cannot form a volume."""

    code = "geometry-error"


class SeriesSelectionError(DicomError):
    """The study does not contain a series the requested analysis needs (e.g. no cine short-axis)."""

    code = "series-selection-error"


class ImageQualityError(DicomError):
    """The images are unusable for the analysis (the quality gate passed no series)."""

    code = "image-quality-unusable"


class ConfigError(MedaiError):
    """A YAML recipe, model package or setting is invalid."""

    code = "config-error"
    http_status = 422


class ModelNotFoundError(MedaiError):
    """A model name, alias or package path does not resolve to a model."""

    code = "model-not-found"
    http_status = 404


class InputValidationError(MedaiError):
    """Patient factors, images or other model inputs fail the model's input contract.

    ``details`` lists one entry per offending field: ``{"field", "problem", "value"}``.
    """

    code = "input-validation-error"
    http_status = 422
