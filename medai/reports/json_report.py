"""``report.json``: the versioned JSON rendering of a :class:`~medai.domain.prediction.Report`.

The document is the pydantic model dumped as JSON; its JSON Schema (generated from the model) is shipped as
``medai/reports/report.schema.json`` and a test keeps it current. Regenerate it after changing the domain types::

    python -m medai.reports.json_report

Each measurement is rendered as ``{code, name, value, unit, reference_range, flag}`` (plus ``method``, ``segment``
and ``frame``): ``code`` is a ``{value, scheme, meaning}`` triplet (LOINC/SNOMED CT/DCM or the local ``99MEDAI``),
``unit`` a UCUM ``{code, display}``, ``reference_range`` ``{low, high, population, source}`` or null, ``flag`` one
of ``normal | low | high | unknown``.

Versioning: ``schema_version`` is ``MAJOR.MINOR``. Readers accept any document of the same major version (minor
versions only add optional fields) and refuse other majors with an error that says which versions they read.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from medai.domain.prediction import REPORT_SCHEMA_VERSION, Report
from medai.errors import InputValidationError

if TYPE_CHECKING:
    from medai.domain.prediction import Prediction
    from medai.domain.study import Study

logger = logging.getLogger(__name__)

#: Where the generated JSON Schema of ``report.json`` lives.
SCHEMA_PATH = Path(__file__).with_name("report.schema.json")
SCHEMA_ID = "https://medai.invalid/schemas/report.schema.json"


def report_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of ``report.json``, generated from the :class:`Report` model."""
    schema = Report.model_json_schema(mode="serialization")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        **schema,
        "title": "medai Report",
        "description": (
            "One analysis result of medai (JSON rendering of medai.domain.prediction.Report). Measurements are "
            "coded at the source: code {value, scheme, meaning} (LOINC 'LN', SNOMED CT 'SCT', DICOM 'DCM' or local "
            "'99MEDAI'), value in the UCUM unit {code, display}, the published reference_range {low, high, "
            "population, source} and flag (normal|low|high|unknown). Label maps are not part of the JSON; they are "
            "rendered as DICOM SEG. Readers accept documents of the same major schema_version."
        ),
        "x-schema-version": REPORT_SCHEMA_VERSION,
    }


def schema_text() -> str:
    """The schema as the text stored in :data:`SCHEMA_PATH` (sorted keys, 2-space indent, trailing newline)."""
    return json.dumps(report_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_schema(path: Path = SCHEMA_PATH) -> Path:
    """(Re)write the shipped JSON Schema file."""
    path.write_text(schema_text(), encoding="utf-8")
    return path


def _major(version: str) -> int:
    try:
        return int(str(version).split(".")[0])
    except ValueError as exc:
        raise InputValidationError(
            f"schema_version {version!r} is not MAJOR.MINOR",
            details=[{"field": "schema_version", "problem": "format", "value": version}]) from exc


def write_json(
    report: Report,
    prediction: Prediction | None = None,
    study: Study | None = None,
    path: Path | str = "report.json",
) -> Path:
    """Write ``report.json`` (the renderer called by the analysis job with ``report, prediction, study, path``).

    Only the report is rendered: everything a reader needs is in it (the prediction's arrays go to DICOM SEG).

    Returns:
        ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(report.model_dump_json(indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    logger.info("wrote %s (%d measurements, %d flags)", path, len(report.measurements), len(report.flags))
    return path


def read_json(path: Path | str) -> Report:
    """Read and validate a ``report.json``.

    Raises:
        InputValidationError: not JSON, another major schema version, or fields that do not validate (the details
            name each field and problem).
    """
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputValidationError(f"{path} is not a readable JSON report: {exc}",
                                   details=[{"field": "file", "problem": "unreadable", "value": str(path)}]) from exc
    if not isinstance(doc, dict):
        raise InputValidationError(f"{path} holds a JSON {type(doc).__name__}, not a report object",
                                   details=[{"field": "document", "problem": "type"}])
    version = str(doc.get("schema_version", ""))
    if _major(version) != _major(REPORT_SCHEMA_VERSION):
        raise InputValidationError(
            f"{path} has report schema_version {version}; this medai reads {_major(REPORT_SCHEMA_VERSION)}.x "
            f"(current {REPORT_SCHEMA_VERSION}). Re-run the analysis with this version or read it with a matching one",
            details=[{"field": "schema_version", "problem": "unsupported major version", "value": version}])
    try:
        return Report.model_validate(doc)
    except ValidationError as exc:
        details = [{"field": ".".join(str(p) for p in e["loc"]), "problem": e["msg"]} for e in exc.errors()]
        raise InputValidationError(f"{path} is not a valid report: {len(details)} field error(s), first: "
                                   f"{details[0]['field']}: {details[0]['problem']}", details=details) from exc


if __name__ == "__main__":  # python -m medai.reports.json_report: regenerate the shipped schema
    logging.basicConfig(level=logging.INFO)
    logger.info("wrote %s", write_schema())


__all__ = ["SCHEMA_PATH", "read_json", "report_schema", "schema_text", "write_json", "write_schema"]
