"""Coded measurements with units, reference ranges and flags."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from medai.domain.codes import Code, Unit


class Flag(StrEnum):
    """Interpretation of a value against its reference range (HL7 v2 table 0078 letters in FHIR renderings)."""

    NORMAL = "normal"
    LOW = "low"
    HIGH = "high"
    UNKNOWN = "unknown"


class ReferenceRange(BaseModel):
    """A published reference interval.

    Attributes:
        low / high: bounds in the measurement's unit (either may be open).
        population: who it applies to, e.g. ``"adult male"``.
        source: citation of the published range.
    """

    model_config = ConfigDict(frozen=True)

    low: float | None = None
    high: float | None = None
    population: str = "adult"
    source: str = ""

    def flag(self, value: float) -> Flag:
        """Flag ``value`` against this range."""
        if self.low is not None and value < self.low:
            return Flag.LOW
        if self.high is not None and value > self.high:
            return Flag.HIGH
        return Flag.NORMAL


class Measurement(BaseModel):
    """One measurement, coded at the source.

    Attributes:
        code: what was measured (LOINC/SNOMED/DCM code).
        name: short stable name, e.g. ``"lv_ef"``.
        value: the value in ``unit``.
        unit: UCUM unit.
        method: how it was derived, e.g. ``"summation of discs"``.
        segment: the label-map segment it derives from (``"lv"``), if any.
        frame: ``"ED"``, ``"ES"`` or a frame index, when time-specific.
        method_code: the coded method (e.g. ``n-SD threshold above remote myocardium``), when one applies.
        parameters: the method's parameters by name (``{"n_sd": 5}``), never written into ``name``.
        aha_segment: the AHA 17-segment model segment (1-17) the value refers to, when regional.
        reference_range: the published normal interval, when one applies.
        flag: interpretation against ``reference_range``.
        review: codes of the quality findings that put this value under review (empty: none).
    """

    model_config = ConfigDict(frozen=True)

    code: Code
    name: str
    value: float
    unit: Unit
    method: str = ""
    segment: str | None = None
    frame: str | None = None
    method_code: Code | None = None
    parameters: dict[str, float | int | str] = Field(default_factory=dict)
    aha_segment: int | None = None
    reference_range: ReferenceRange | None = None
    flag: Flag = Flag.UNKNOWN
    review: list[str] = Field(default_factory=list)
