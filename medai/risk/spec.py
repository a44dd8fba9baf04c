"""Typed feature specifications of risk cohorts and validation of patient factors.

A :class:`CohortSpec` is the input contract of a risk model: one :class:`FeatureSpec` per factor (name, type, UCUM
unit, allowed range or categories, missing codes, description). It validates one patient's factors
(:meth:`CohortSpec.validate_factors`) or a whole table (:meth:`CohortSpec.validate_frame`) and raises
:class:`medai.errors.InputValidationError` whose ``details`` list *each* offending field; nothing is silently
coerced.
"""

from __future__ import annotations

import functools
import logging
import math
from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from medai.errors import InputValidationError

logger = logging.getLogger(__name__)

_TRUE = {"y", "yes", "true", "1", "t"}
_FALSE = {"n", "no", "false", "0", "f"}


class FeatureType(StrEnum):
    """Closed vocabulary of factor types."""

    NUMERIC = "numeric"
    INTEGER = "integer"
    BINARY = "binary"
    CATEGORICAL = "categorical"


class Problem(StrEnum):
    """Closed vocabulary of validation problems (``details[i]["problem"]``)."""

    MISSING_REQUIRED = "missing_required"
    WRONG_TYPE = "wrong_type"
    OUT_OF_RANGE = "out_of_range"
    UNKNOWN_CATEGORY = "unknown_category"
    UNKNOWN_COLUMN = "unknown_column"


class FeatureSpec(BaseModel):
    """One patient factor.

    Attributes:
        name: column / key name.
        type: numeric, integer, binary (0/1; accepts Y/N, yes/no, true/false) or categorical.
        unit: UCUM unit of numeric factors (``"a"`` years, ``"mm[Hg]"``, ``"h"``, ``"%"``, ``"mg/dL"``), or None.
        minimum / maximum: inclusive allowed range of numeric factors.
        categories: allowed values of categorical factors.
        missing_codes: values meaning "unknown" (mapped to missing, then imputed by the model).
        required: whether a prediction needs it (optional factors are imputed when absent).
        description: what it is, and when it is measured.
    """

    name: str
    type: FeatureType
    unit: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    categories: list[str] | None = None
    missing_codes: list[Any] = Field(default_factory=list)
    required: bool = False
    description: str = ""

    def json_schema(self) -> dict[str, Any]:
        """JSON Schema fragment of this factor."""
        s: dict[str, Any] = {"description": self.description + (f" [{self.unit}]" if self.unit else "")}
        if self.type in (FeatureType.NUMERIC, FeatureType.INTEGER):
            s["type"] = ["number", "null"] if self.type == FeatureType.NUMERIC else ["integer", "null"]
            if self.minimum is not None:
                s["minimum"] = self.minimum
            if self.maximum is not None:
                s["maximum"] = self.maximum
        elif self.type == FeatureType.BINARY:
            s["type"] = ["integer", "boolean", "string", "null"]
            s["enum"] = [0, 1, True, False, "Y", "N", "yes", "no", None]
        else:
            s["type"] = ["string", "null"]
            s["enum"] = [*(self.categories or []), None]
        if self.unit:
            s["x-unit"] = self.unit
        return s

    def clean(self, value: Any) -> tuple[Any, dict[str, Any] | None]:
        """Return ``(clean value, problem or None)``; missing values and missing codes become ``None``.

        Numeric factors come back as float, binary as 0.0/1.0, categorical as str.
        """
        if value is None or (isinstance(value, float) and math.isnan(value)) or value == "":
            return None, None
        if value in self.missing_codes or (isinstance(value, str) and value in [str(c) for c in self.missing_codes]):
            return None, None
        if self.type in (FeatureType.NUMERIC, FeatureType.INTEGER):
            if isinstance(value, bool):
                return None, self._problem(Problem.WRONG_TYPE, value, f"expected a number ({self.unit or 'no unit'})")
            try:
                v = float(value)
            except (TypeError, ValueError):
                return None, self._problem(Problem.WRONG_TYPE, value, f"expected a number ({self.unit or 'no unit'})")
            if not math.isfinite(v):
                return None, self._problem(Problem.WRONG_TYPE, value, "expected a finite number")
            if self.type == FeatureType.INTEGER and v != int(v):
                return None, self._problem(Problem.WRONG_TYPE, value, "expected a whole number")
            lo = -math.inf if self.minimum is None else self.minimum
            hi = math.inf if self.maximum is None else self.maximum
            if not lo <= v <= hi:
                return None, self._problem(
                    Problem.OUT_OF_RANGE, value, f"allowed range is [{self.minimum}, {self.maximum}] {self.unit or ''}"
                )
            return v, None
        if self.type == FeatureType.BINARY:
            if isinstance(value, bool):
                return float(value), None
            if isinstance(value, int | float | np.integer | np.floating) and float(value) in (0.0, 1.0):
                return float(value), None
            s = str(value).strip().lower()
            if s in _TRUE:
                return 1.0, None
            if s in _FALSE:
                return 0.0, None
            return None, self._problem(Problem.WRONG_TYPE, value, "expected 0/1, true/false or Y/N")
        s = str(value).strip()
        if isinstance(value, float) and value.is_integer():
            s = str(int(value))
        if self.categories is not None and s not in self.categories:
            return None, self._problem(Problem.UNKNOWN_CATEGORY, value, f"allowed values: {', '.join(self.categories)}")
        return s, None

    def _problem(self, problem: Problem, value: Any, hint: str) -> dict[str, Any]:
        return {"field": self.name, "problem": str(problem), "value": _jsonable(value), "message": hint}


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return repr(value)


class CohortSpec(BaseModel):
    """The factors of a cohort (a model's input contract).

    Attributes:
        name: cohort name (``ist``, ``zigong``...).
        description: what the cohort is.
        features: the factors, in model column order.
        citation / licence: of the source data.
    """

    name: str
    description: str = ""
    features: list[FeatureSpec]
    citation: str = ""
    licence: str = ""

    @functools.cached_property
    def names(self) -> list[str]:
        """Factor names in column order (computed once: a spec is not changed after it is built)."""
        return [f.name for f in self.features]

    def feature(self, name: str) -> FeatureSpec:
        """The spec of factor ``name``."""
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(name)

    @property
    def numeric(self) -> list[str]:
        """Numeric, integer and binary factors (modelled as numbers)."""
        return [f.name for f in self.features if f.type != FeatureType.CATEGORICAL]

    @property
    def categorical(self) -> list[str]:
        """Categorical factors (one-hot encoded by the models)."""
        return [f.name for f in self.features if f.type == FeatureType.CATEGORICAL]

    def json_schema(self) -> dict[str, Any]:
        """JSON Schema (draft 2020-12) of one patient's factors."""
        return {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": f"{self.name} patient factors",
            "description": self.description,
            "type": "object",
            "properties": {f.name: f.json_schema() for f in self.features},
            "required": [f.name for f in self.features if f.required],
            "additionalProperties": False,
        }

    def validate_factors(self, factors: dict[str, Any]) -> dict[str, Any]:
        """Validate one patient's factors.

        Args:
            factors: factor name -> value; absent optional factors are allowed (imputed by the model).

        Returns:
            Clean values for every factor of the spec (``None`` for missing).

        Raises:
            InputValidationError: ``details`` has one entry per offending field (missing required, wrong type,
                out of range, unknown category, unknown key).
        """
        if not isinstance(factors, dict):
            raise InputValidationError(
                f"patient factors must be a JSON object of factor -> value, got {type(factors).__name__}",
                [{"field": "", "problem": str(Problem.WRONG_TYPE), "value": _jsonable(factors), "message": "object"}],
            )
        problems: list[dict[str, Any]] = []
        known = set(self.names)
        for key in factors:
            if key not in known:
                problems.append(
                    {
                        "field": key,
                        "problem": str(Problem.UNKNOWN_COLUMN),
                        "value": _jsonable(factors[key]),
                        "message": f"not a factor of {self.name}; known factors: {', '.join(self.names)}",
                    }
                )
        clean: dict[str, Any] = {}
        for f in self.features:
            v, prob = f.clean(factors.get(f.name))
            if prob:
                problems.append(prob)
            elif v is None and f.required:
                problems.append(
                    {
                        "field": f.name,
                        "problem": str(Problem.MISSING_REQUIRED),
                        "value": _jsonable(factors.get(f.name)),
                        "message": f"required factor ({f.description or f.type})",
                    }
                )
            clean[f.name] = v
        if problems:
            raise InputValidationError(_summary(self.name, problems), problems)
        return clean

    def validate_frame(
        self, df: pd.DataFrame, *, allow_extra: bool = True, max_rows: int = 5, errors: str = "raise"
    ) -> pd.DataFrame:
        """Validate and clean a table of patients (one row each).

        Args:
            df: raw table holding (at least) the spec's columns.
            allow_extra: when False, columns not in the spec are reported as ``unknown_column``.
            max_rows: how many offending row indices to quote per field.
            errors: ``"raise"`` (default) raises on any problem; ``"report"`` sets offending cells to missing,
                logs a warning per field and stores the problems in ``out.attrs["problems"]`` (used by the
                adapters of development data, whose known data-entry errors are reported with the run).

        Returns:
            A frame with exactly the spec's columns (float for numeric/binary, object str for categorical,
            NaN/None for missing) and the same index.

        Raises:
            InputValidationError: one entry per offending column (missing column, wrong type, out of range, unknown
                category), quoting the first offending rows.
        """
        problems: list[dict[str, Any]] = []
        if not allow_extra:
            for c in df.columns:
                if c not in self.names:
                    problems.append(
                        {
                            "field": str(c),
                            "problem": str(Problem.UNKNOWN_COLUMN),
                            "value": None,
                            "message": "not in spec",
                        }
                    )
        out = pd.DataFrame(index=df.index)
        for f in self.features:
            if f.name not in df.columns:
                if f.required:
                    problems.append(
                        {
                            "field": f.name,
                            "problem": str(Problem.MISSING_REQUIRED),
                            "value": None,
                            "message": "column absent",
                        }
                    )
                out[f.name] = pd.Series(
                    np.nan, index=df.index, dtype=float if f.type != FeatureType.CATEGORICAL else object
                )
                continue
            col = df[f.name]
            cache: dict[Any, tuple[Any, dict[str, Any] | None]] = {}
            vals: list[Any] = []
            bad: dict[str, list[Any]] = {}
            for idx, raw in zip(df.index, col.tolist(), strict=True):
                key = ("nan",) if isinstance(raw, float) and math.isnan(raw) else raw
                if key not in cache:
                    cache[key] = f.clean(raw)
                v, prob = cache[key]
                if prob:
                    bad.setdefault(prob["problem"], []).append((idx, prob["value"], prob["message"]))
                vals.append(v)
            for prob_name, rows in bad.items():
                problems.append(
                    {
                        "field": f.name,
                        "problem": prob_name,
                        "value": [r[1] for r in rows[:max_rows]],
                        "rows": [_jsonable(r[0]) for r in rows[:max_rows]],
                        "n_rows": len(rows),
                        "message": rows[0][2],
                    }
                )
            if f.type == FeatureType.CATEGORICAL:
                out[f.name] = pd.Series([np.nan if v is None else v for v in vals], index=df.index, dtype=object)
            else:
                out[f.name] = pd.Series([np.nan if v is None else v for v in vals], index=df.index, dtype=float)
        if problems and errors == "raise":
            raise InputValidationError(_summary(self.name, problems), problems)
        for p in problems:
            logger.warning(
                "%s: %s %s in %s row(s), set to missing: %s",
                self.name,
                p["field"],
                p["problem"],
                p.get("n_rows", "all"),
                p["message"],
            )
        out.attrs["problems"] = problems
        return out

    def to_frame(self, rows: list[dict[str, Any]]) -> pd.DataFrame:
        """Clean factor dicts (from :meth:`validate_factors`) -> model input frame in spec column order."""
        df = pd.DataFrame(rows, columns=self.names)
        for f in self.features:
            if f.type == FeatureType.CATEGORICAL:
                df[f.name] = df[f.name].astype(object).where(df[f.name].notna(), np.nan)
            else:
                df[f.name] = pd.to_numeric(df[f.name], errors="coerce").astype(float)
        return df


def _summary(cohort: str, problems: list[dict[str, Any]]) -> str:
    parts = [f"{p['field']} ({p['problem']}: {p['message']})" for p in problems[:12]]
    more = f" and {len(problems) - 12} more" if len(problems) > 12 else ""
    return (
        f"{len(problems)} invalid patient factor(s) for the {cohort} model: "
        + "; ".join(parts)
        + more
        + ". Fix these fields (see the model's input schema) and retry."
    )
