"""Domain types that flow end to end: Study/Series/Instance, Volume, LabelMap, Measurement, Prediction, Report."""

from __future__ import annotations

from medai.domain.codes import UCUM, Code, Unit
from medai.domain.measurement import Flag, Measurement, ReferenceRange
from medai.domain.prediction import (
    ClassProbability,
    Contribution,
    ModelRef,
    Prediction,
    QualityFlag,
    Report,
    RiskEstimate,
    Severity,
)
from medai.domain.study import IngestProblem, IngestResult, Instance, Series, SeriesType, Study
from medai.domain.volume import ANATOMICAL_STRUCTURE, LabelMap, SegmentLabel, Volume, affine_from_dicom

__all__ = [
    "ANATOMICAL_STRUCTURE",
    "UCUM",
    "ClassProbability",
    "Code",
    "Contribution",
    "Flag",
    "IngestProblem",
    "IngestResult",
    "Instance",
    "LabelMap",
    "Measurement",
    "ModelRef",
    "Prediction",
    "QualityFlag",
    "ReferenceRange",
    "Report",
    "RiskEstimate",
    "SegmentLabel",
    "Series",
    "SeriesType",
    "Severity",
    "Study",
    "Unit",
    "Volume",
    "affine_from_dicom",
]
