"""Model outputs: predictions, risk estimates, quality flags and the report they render into."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from medai.domain.measurement import Measurement
from medai.domain.volume import LabelMap


class Severity(StrEnum):
    """How much a quality flag matters."""

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class QualityFlag(BaseModel):
    """A flagged problem with input or result (never silent).

    Attributes:
        code: stable identifier, e.g. ``"ef_implausible"``, ``"basal_coverage_missing"``.
        severity: how much it matters.
        message: what was found and what to do.
    """

    code: str
    severity: Severity = Severity.WARNING
    message: str


class ModelRef(BaseModel):
    """Which model produced a result: registry name, version, and where it was loaded from."""

    name: str
    version: str
    source: str = ""


class ClassProbability(BaseModel):
    """Probability of one class of a classifier (calibrated where the model says so)."""

    name: str
    code: dict[str, str] | None = None
    probability: float


class Contribution(BaseModel):
    """Contribution of one input factor to a patient's prediction (signed, in the model's risk scale)."""

    factor: str
    value: Any = None
    contribution: float


class RiskEstimate(BaseModel):
    """A risk model's answer for one patient.

    Attributes:
        model: the model that produced it.
        outcome: what is predicted, e.g. ``"death"``.
        risk_score: the model's risk score (higher = worse).
        horizons: horizon (in ``time_unit``) -> cumulative probability of the event by then.
        survival_times / survival: the survival curve S(t) at ``survival_times``.
        risk_group: e.g. ``"low"``, ``"intermediate"``, ``"high"``.
        contributions: top contributing factors for this patient.
    """

    model: ModelRef
    outcome: str
    time_unit: str = "d"
    risk_score: float
    horizons: dict[str, float] = Field(default_factory=dict)
    survival_times: list[float] = Field(default_factory=list)
    survival: list[float] = Field(default_factory=list)
    risk_group: str | None = None
    contributions: list[Contribution] = Field(default_factory=list)


@dataclass
class Prediction:
    """What ``Predictor.predict`` returns: everything a model derived from one input.

    Attributes:
        model: the producing model.
        label_maps: segmentations in the *source* geometry, keyed by a role (``"cine_sax"``).
        measurements: coded measurements.
        flags: quality flags.
        classes: class probabilities (classifiers).
        risks: risk estimates (risk models).
        extras: other typed artefacts keyed by name (e.g. ``"volume_curve"``, ``"saliency"``), documented by
            the predictor that fills them.
    """

    model: ModelRef
    label_maps: dict[str, LabelMap] = field(default_factory=dict)
    measurements: list[Measurement] = field(default_factory=list)
    flags: list[QualityFlag] = field(default_factory=list)
    classes: list[ClassProbability] = field(default_factory=list)
    risks: list[RiskEstimate] = field(default_factory=list)
    extras: dict[str, Any] = field(default_factory=dict)


REPORT_SCHEMA_VERSION = "1.4"


class QualityStatus(StrEnum):
    """The quality gate's verdict: results usable as they are, usable after a reader's review, or not at all."""

    PASS = "pass"
    REVIEW = "review"
    UNUSABLE = "unusable"


def worst(statuses: list[QualityStatus]) -> QualityStatus:
    """The most severe of ``statuses`` (PASS when empty)."""
    order = [QualityStatus.PASS, QualityStatus.REVIEW, QualityStatus.UNUSABLE]
    return max(statuses, key=order.index, default=QualityStatus.PASS)


class ArtefactScore(BaseModel):
    """One artefact class over the scored slices of a series group.

    Attributes:
        share: fraction of scored slices whose probability exceeds the slice threshold.
        max_probability: highest probability over the slices.
        severity: mean predicted severity (0-1) over the flagged slices (0 when none).
    """

    share: float
    max_probability: float
    severity: float = 0.0


class SeriesQuality(BaseModel):
    """The artefact assessment of the series of one type that an analysis reads.

    Attributes:
        series_type: e.g. ``cine_sax``.
        series_instance_uids: the series assessed (a cine stack may be one series per slice).
        n_slices: slices (images) scored.
        good_share: fraction of scored slices with no artefact above the threshold.
        artefacts: artefact class -> :class:`ArtefactScore`.
        status: verdict on this series group.
    """

    series_type: str
    series_instance_uids: list[str] = Field(default_factory=list)
    n_slices: int = 0
    good_share: float = 1.0
    artefacts: dict[str, ArtefactScore] = Field(default_factory=dict)
    status: QualityStatus = QualityStatus.PASS


class QualityFinding(BaseModel):
    """One reason for review: stable code, message, and the measurements it puts under review."""

    code: str
    message: str
    status: QualityStatus = QualityStatus.REVIEW
    measurements: list[str] = Field(default_factory=list)


class QualityAssessment(BaseModel):
    """What the quality gate found for one analysis.

    Attributes:
        model: the quality model used.
        status: the verdict (the worst of the series and findings).
        findings: reasons for review (empty when ``status`` is PASS).
        series: artefact assessment per series group.
        coverage: probability that basal / apical LV slices are missing (None: not assessed).
        predicted_dice: structure -> predicted Dice of the segmentation against a reader (no ground truth used).
        thresholds: the configured thresholds the verdict used.
        reader_corrected: the segmentation judged is a reader's correction: the images and the coverage are judged
            as usual, and there is no predicted Dice (it estimates how a reader would score the model's contours).
    """

    model: ModelRef | None = None
    status: QualityStatus = QualityStatus.PASS
    findings: list[QualityFinding] = Field(default_factory=list)
    series: list[SeriesQuality] = Field(default_factory=list)
    coverage: dict[str, float] | None = None
    predicted_dice: dict[str, float] = Field(default_factory=dict)
    thresholds: dict[str, Any] = Field(default_factory=dict)
    reader_corrected: bool = False


class Review(BaseModel):
    """Whether the report must be reviewed before its values are used, and why (one line per finding)."""

    required: bool = False
    reasons: list[str] = Field(default_factory=list)


class ReportSection(BaseModel):
    """The part of a study report that one analysis produced (one per analysis kind that ran).

    Attributes:
        kind: the analysis' registry name (``cine_function``, ``lge_scar``).
        title: human-readable title (PDF page heading).
        models: the models the analysis used.
        series: the series it analysed (UID, number, modality, description, type, instances).
        measurements: its coded measurements.
        flags: its quality flags.
        summary: analysis-specific, JSON-serialisable details (phases, curves, per-method tables...).
        files: output kind -> file name of the renderings specific to this analysis (its SEG).
        quality: the quality gate's assessment of this analysis (None when it was not assessed).
        classes: class probabilities of a classification analysis (diagnosis), each with its coded concept.
    """

    kind: str
    title: str = ""
    models: list[ModelRef] = Field(default_factory=list)
    series: list[dict[str, Any]] = Field(default_factory=list)
    measurements: list[Measurement] = Field(default_factory=list)
    flags: list[QualityFlag] = Field(default_factory=list)
    summary: dict[str, Any] = Field(default_factory=dict)
    files: dict[str, str] = Field(default_factory=dict)
    quality: QualityAssessment | None = None
    classes: list[ClassProbability] = Field(default_factory=list)


class Report(BaseModel):
    """The one report that JSON, DICOM SEG/SR, PDF and FHIR render.

    Array-bearing artefacts (label maps) are not part of the JSON; they are rendered as DICOM SEG. A study report
    holds one :class:`ReportSection` per analysis that ran (``sections``); the top-level ``measurements``,
    ``flags``, ``models`` and ``series`` are their union (plus study-level flags), so single-purpose readers
    keep working. ``review`` says whether the quality gate asks for a reader's review before the values are used.
    ``study_date`` is the analysed study's StudyDate (shifted with the other dates when de-identified; None when the
    writer did not record it, schema < 1.3) -- what serial comparison orders analyses by.
    """

    schema_version: str = REPORT_SCHEMA_VERSION
    report_id: str
    created: datetime = Field(default_factory=lambda: datetime.now(UTC))
    study_instance_uid: str = ""
    study_date: date | None = None
    patient_id: str = ""
    patient_sex: str = ""
    models: list[ModelRef] = Field(default_factory=list)
    series: list[dict[str, Any]] = Field(default_factory=list)
    measurements: list[Measurement] = Field(default_factory=list)
    flags: list[QualityFlag] = Field(default_factory=list)
    classes: list[ClassProbability] = Field(default_factory=list)
    risks: list[RiskEstimate] = Field(default_factory=list)
    summary: dict[str, Any] = Field(default_factory=dict)
    sections: list[ReportSection] = Field(default_factory=list)
    review: Review = Field(default_factory=Review)

    def section(self, kind: str) -> ReportSection | None:
        """The section of analysis ``kind``, or None when that analysis did not run."""
        return next((s for s in self.sections if s.kind == kind), None)
