"""Serial comparison of one patient's analyses (treatment response, cardio-oncology).

* :mod:`medai.serial.timeline` -- the timeline of EF, volumes, mass and scar over study dates, each change set
  against published scan-rescan variability (``medai compare``, ``GET /v1/patients/{id}/timeline``);
* :mod:`medai.serial.variability` -- the variability table (``configs/serial/variability.yaml``) and the minimal
  detectable change;
* :mod:`medai.serial.ctrcd` -- cancer-therapy-related cardiac dysfunction by the 2022 ESC guideline;
* :mod:`medai.serial.plot` -- the timeline PNG (imports matplotlib when called).
"""

from __future__ import annotations

from medai.serial.ctrcd import CtrcdFinding, CtrcdGrade, classify_ctrcd
from medai.serial.timeline import (
    AnalysisInput,
    Change,
    ChangeVerdict,
    ComparisonKind,
    DateSource,
    MeasurementTrack,
    Timeline,
    TimelinePoint,
    build_timeline,
    collect_report_paths,
    compare_paths,
    load_analysis,
    write_timeline,
)
from medai.serial.variability import TrackedMeasurement, VariabilityTable, default_variability, read_variability

__all__ = [
    "AnalysisInput", "Change", "ChangeVerdict", "ComparisonKind", "CtrcdFinding", "CtrcdGrade", "DateSource",
    "MeasurementTrack", "Timeline", "TimelinePoint", "TrackedMeasurement", "VariabilityTable", "build_timeline",
    "classify_ctrcd", "collect_report_paths", "compare_paths", "default_variability", "load_analysis",
    "read_variability", "write_timeline",
]
