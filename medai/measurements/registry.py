"""The measurement registry: stable names -> code, UCUM unit and meaning.

Codes: LOINC where a LOINC code exists for the concept and is used in DICOM PS3.16 cardiac measurement context
groups (EF 10230-1, LV end-diastolic / end-systolic volume, LV mass, cardiac output, heart rate, BSA), SNOMED CT
for stroke volume; concepts without an established code (RV volumes, indexed values, AHA segment wall thickness)
carry local codes in the private scheme ``99MEDAI`` with a full meaning, so renderers never invent codes.
"""

from __future__ import annotations

from dataclasses import dataclass

from medai.domain.codes import UCUM, Code, Unit
from medai.registry import Registry


@dataclass(frozen=True)
class MeasurementDef:
    """Definition of one measurement kind.

    Attributes:
        name: stable registry name (``lv_ef``).
        code: the coded concept.
        unit: UCUM unit of its values.
        segment: the label-map segment it derives from, when any.
    """

    name: str
    code: Code
    unit: Unit
    segment: str | None = None


#: Registry of measurement kinds by stable name.
MEASUREMENTS: Registry[MeasurementDef] = Registry("measurement")


def _add(name: str, value: str, scheme: str, meaning: str, unit: Unit, segment: str | None = None) -> None:
    MEASUREMENTS.add(name, MeasurementDef(name, Code(value=value, scheme=scheme, meaning=meaning), unit, segment))


_add("lv_edv", "18026-3", "LN", "Left ventricular end-diastolic volume", UCUM.ML, "lv")
_add("lv_esv", "18148-5", "LN", "Left ventricular end-systolic volume", UCUM.ML, "lv")
_add("lv_sv", "90096001", "SCT", "Left ventricular stroke volume", UCUM.ML, "lv")
_add("lv_ef", "10230-1", "LN", "Left ventricular Ejection fraction", UCUM.PERCENT, "lv")
_add("lv_mass", "18087-5", "LN", "Left ventricular mass", UCUM.GRAM, "myo")
_add("lv_co", "8741-1", "LN", "Left ventricular cardiac output", UCUM.L_PER_MIN, "lv")
_add("heart_rate", "8867-4", "LN", "Heart rate", UCUM.PER_MIN)
_add("bsa", "8277-6", "LN", "Body surface area", Unit(code="m2", display="m²"))
_add("rv_edv", "RVEDV", "99MEDAI", "Right ventricular end-diastolic volume", UCUM.ML, "rv")
_add("rv_esv", "RVESV", "99MEDAI", "Right ventricular end-systolic volume", UCUM.ML, "rv")
_add("rv_sv", "RVSV", "99MEDAI", "Right ventricular stroke volume", UCUM.ML, "rv")
_add("rv_ef", "RVEF", "99MEDAI", "Right ventricular ejection fraction", UCUM.PERCENT, "rv")
_add("lv_edvi", "LVEDVI", "99MEDAI", "Left ventricular end-diastolic volume indexed to BSA", UCUM.ML_PER_M2, "lv")
_add("lv_esvi", "LVESVI", "99MEDAI", "Left ventricular end-systolic volume indexed to BSA", UCUM.ML_PER_M2, "lv")
_add("lv_svi", "LVSVI", "99MEDAI", "Left ventricular stroke volume indexed to BSA", UCUM.ML_PER_M2, "lv")
_add("lv_massi", "LVMI", "99MEDAI", "Left ventricular mass indexed to BSA", UCUM.G_PER_M2, "myo")
_add("lv_ci", "LVCI", "99MEDAI", "Left ventricular cardiac index", UCUM.L_PER_MIN_PER_M2, "lv")
_add("rv_edvi", "RVEDVI", "99MEDAI", "Right ventricular end-diastolic volume indexed to BSA", UCUM.ML_PER_M2, "rv")
_add("rv_esvi", "RVESVI", "99MEDAI", "Right ventricular end-systolic volume indexed to BSA", UCUM.ML_PER_M2, "rv")
for _seg in range(1, 17):
    _add(f"lv_wall_thickness_aha{_seg}", f"LVWT{_seg}", "99MEDAI",
         f"Left ventricular end-diastolic wall thickness, AHA segment {_seg}", UCUM.MM, "myo")


def measurement_def(name: str) -> MeasurementDef:
    """The definition registered as ``name`` (raises ModelNotFoundError listing the names when unknown)."""
    return MEASUREMENTS.get(name)
