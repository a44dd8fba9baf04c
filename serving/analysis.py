"""The default analysis job: stored study -> de-identified working copy -> ``run_cine_analysis`` -> FHIR.

No model logic here: ingest, de-identification, analysis and renderings are the library's.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from serving.jobs import AnalyseFn
from serving.models import ModelRegistry
from serving.storage import StudyStore

CINE_MODEL = "heart_mr_cine_seg"


def make_cine_analyse(store: StudyStore, models: ModelRegistry, deidentify: bool = True) -> AnalyseFn:
    """The job function the runner calls for ``cine_cmr`` analyses."""

    def analyse(study_uid: str, work: Path, out_dir: Path, progress: Callable[[str], None]) -> dict[str, str]:
        from medai.cardiac.analysis import run_cine_analysis
        from medai.dicom.ingest import ingest

        src = work / "src"
        store.materialise(study_uid, src)
        if deidentify:
            from medai.dicom.deid import deidentify_path

            progress("de-identifying")
            deidentify_path(src, work / "deid")
            src = work / "deid"
        progress("ingest")
        res = ingest(src)
        study = max(res.studies, key=lambda s: sum(len(se.instances) for se in s.series))
        outs = run_cine_analysis(study, out_dir, predictor=models.get(CINE_MODEL), progress=progress)
        files = {k: p.name for k, p in outs.files.items()}
        files.update(write_fhir(outs.report, out_dir))
        derived = [(files[k], (out_dir / files[k]).read_bytes()) for k in ("seg", "sr") if k in files]
        store.store(derived, derived=True, source_job=out_dir.name)  # results are retrievable over QIDO/WADO too
        return files

    return analyse


def write_fhir(report, out_dir: Path) -> dict[str, str]:  # noqa: ANN001
    """Write ``fhir.json`` (validated R4 Bundle) beside the other renderings."""
    from medai.reports.fhir import report_bundle

    bundle = report_bundle(report)
    (out_dir / "fhir.json").write_text(json.dumps(bundle.model_dump(mode="json", exclude_none=True), indent=1))
    return {"fhir": "fhir.json"}
