"""Coded measurements: the registry of measurement kinds, reference ranges and the cine CMR calculators."""

from __future__ import annotations

from medai.measurements.cardiac import (
    MYOCARDIAL_DENSITY_G_PER_ML,
    PatientInfo,
    by_name,
    function_measurements,
    make_measurement,
    patient_info,
    volume_curves,
)
from medai.measurements.reference import reference_range
from medai.measurements.registry import MEASUREMENTS, MeasurementDef, measurement_def
from medai.measurements.wall_thickness import wall_thickness_by_segment, wall_thickness_measurements

__all__ = [
    "MEASUREMENTS",
    "MYOCARDIAL_DENSITY_G_PER_ML",
    "MeasurementDef",
    "PatientInfo",
    "by_name",
    "function_measurements",
    "make_measurement",
    "measurement_def",
    "patient_info",
    "reference_range",
    "volume_curves",
    "wall_thickness_by_segment",
    "wall_thickness_measurements",
]
