"""The published CMR scan-rescan variability a serial change is set against (``configs/serial/variability.yaml``).

Minimal detectable change (95 %): ``MDC95 = z * SD_diff = z * sqrt(2) * Sw`` with ``z = 1.96``, ``Sw`` the
within-subject SD and ``SD_diff = sqrt(2) * Sw`` the SD of the differences between two scans of one subject. A
table entry gives ``SD_diff`` either as an interstudy coefficient of variability (``cv_pct``: SD of the
differences over the mean, as Grothues et al. 2002/2004 define it, so ``SD_diff = cv_pct / 100 * mean`` of the two
values compared) or as Bland-Altman limits of agreement (``limits_of_agreement = z * SD_diff``, in the
measurement's unit). The sources are cited in the YAML file.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from medai.errors import ConfigError
from medai.settings import REPO_ROOT

#: The shipped table.
VARIABILITY_PATH = REPO_ROOT / "configs" / "serial" / "variability.yaml"


class TrackedMeasurement(BaseModel):
    """One measurement a timeline follows, and its published scan-rescan variability (when one is tabulated).

    Attributes:
        label: short display name (``LVEF``).
        method_code: code value of the method whose value is followed when a report holds several (LGE:
            ``LGE-MODEL``); None: the value without a method code (or the only one).
        cv_pct: interstudy coefficient of variability, SD of the differences over the mean (percent).
        limits_of_agreement: scan-rescan 95 % limits of agreement (+/- z * SD of differences), measurement unit.
        published: the published figure in words (a range when ``cv_pct`` is its midpoint).
        source: key of the citation in :attr:`VariabilityTable.sources`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    label: str
    method_code: str | None = None
    cv_pct: float | None = Field(None, gt=0)
    limits_of_agreement: float | None = Field(None, gt=0)
    published: str = ""
    source: str | None = None

    @model_validator(mode="after")
    def _one_form(self) -> TrackedMeasurement:
        if self.cv_pct is not None and self.limits_of_agreement is not None:
            raise ValueError("give cv_pct or limits_of_agreement, not both")
        if self.has_reference and not self.source:
            raise ValueError("a variability figure needs its source")
        return self

    @property
    def has_reference(self) -> bool:
        """Whether a published variability figure is tabulated."""
        return self.cv_pct is not None or self.limits_of_agreement is not None

    def sd_diff(self, before: float, after: float, z: float = 1.96) -> float | None:
        """SD of scan-rescan differences at these values (measurement unit); None without a figure."""
        if self.cv_pct is not None:
            return self.cv_pct / 100.0 * abs(before + after) / 2.0
        if self.limits_of_agreement is not None:
            return self.limits_of_agreement / z
        return None

    def mdc(self, before: float, after: float, z: float = 1.96) -> float | None:
        """Minimal detectable change ``z * SD_diff`` (= ``z * sqrt(2) * Sw``) in the measurement unit."""
        sd = self.sd_diff(before, after, z)
        return None if sd is None else z * sd


class VariabilityTable(BaseModel):
    """``configs/serial/variability.yaml``: z, citations, and the tracked measurements in display order."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    z: float = Field(1.96, gt=0)
    sources: dict[str, str] = Field(default_factory=dict)
    measurements: dict[str, TrackedMeasurement]

    @model_validator(mode="after")
    def _sources_exist(self) -> VariabilityTable:
        missing = sorted({m.source for m in self.measurements.values() if m.source and m.source not in self.sources})
        if missing:
            raise ValueError(f"sources not listed under 'sources': {missing}")
        return self

    def citation(self, name: str) -> str:
        """The full citation of measurement ``name``'s figure ('' when none)."""
        m = self.measurements.get(name)
        return self.sources.get(m.source or "", "") if m is not None else ""


def read_variability(path: Path | str) -> VariabilityTable:
    """Read and validate a variability table.

    Raises:
        ConfigError: not readable YAML, or fields that do not validate (each named).
    """
    import yaml

    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path} is not readable YAML: {exc}") from exc
    try:
        return VariabilityTable.model_validate(doc)
    except ValidationError as exc:
        errs = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"{path} is not a valid variability table: {errs}") from exc


@lru_cache(maxsize=1)
def default_variability() -> VariabilityTable:
    """The shipped table (read once)."""
    return read_variability(VARIABILITY_PATH)


__all__ = ["VARIABILITY_PATH", "TrackedMeasurement", "VariabilityTable", "default_variability", "read_variability"]
