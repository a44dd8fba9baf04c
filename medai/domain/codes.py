"""Coded concepts (DICOM/SNOMED/LOINC codes, UCUM units) used by measurements, labels and reports."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Code(BaseModel):
    """A coded concept, as a DICOM ``(CodeValue, CodingSchemeDesignator, CodeMeaning)`` triplet.

    Attributes:
        value: Code value, e.g. ``"10230-1"``.
        scheme: Coding scheme designator: ``"LN"`` (LOINC), ``"SCT"`` (SNOMED CT), ``"DCM"``, ``"UCUM"``, ``"99MEDAI"``.
        meaning: Human-readable meaning, e.g. ``"Left ventricular Ejection fraction"``.
    """

    model_config = ConfigDict(frozen=True)

    value: str
    scheme: str
    meaning: str

    def __str__(self) -> str:
        return f"({self.value}, {self.scheme}, {self.meaning!r})"


class Unit(BaseModel):
    """A UCUM unit: ``code`` is the UCUM expression (``"mL"``, ``"%"``, ``"mL/m2"``), ``display`` for people."""

    model_config = ConfigDict(frozen=True)

    code: str
    display: str = ""

    def __str__(self) -> str:
        return self.display or self.code


class UCUM:
    """Frequently used UCUM units."""

    ML = Unit(code="mL", display="mL")
    ML_PER_M2 = Unit(code="mL/m2", display="mL/m²")
    PERCENT = Unit(code="%", display="%")
    GRAM = Unit(code="g", display="g")
    G_PER_M2 = Unit(code="g/m2", display="g/m²")
    MM = Unit(code="mm", display="mm")
    CM2 = Unit(code="cm2", display="cm²")
    L_PER_MIN = Unit(code="L/min", display="L/min")
    L_PER_MIN_PER_M2 = Unit(code="L/min/m2", display="L/min/m²")
    PER_MIN = Unit(code="/min", display="beats/min")
    MS = Unit(code="ms", display="ms")
    PROBABILITY = Unit(code="1", display="probability")
    DAY = Unit(code="d", display="days")
    MONTH = Unit(code="mo", display="months")
