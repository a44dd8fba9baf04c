"""The analysis job: stored study -> de-identified working copy -> every requested (or applicable) registered
analysis through :func:`medai.analyses.runner.run_study_analyses` -> one study report (JSON, SEGs, SR, PDF, FHIR).

No model logic here and no analysis named: ingest, de-identification, analyses and renderings are the library's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from medai.domain.study import Study
from medai.errors import SeriesSelectionError
from serving.jobs import AnalyseFn
from serving.models import ModelRegistry
from serving.storage import StudyStore

logger = logging.getLogger(__name__)


def prepare_study(store: StudyStore, study_uid: str, work: Path, deidentify: bool,
                  progress: Callable[[str], None]) -> Study:
    """The stored study as an ingested :class:`Study`: materialised into ``work``, de-identified when asked (basic
    profile with modified dates and the Retain Patient Characteristics Option: the analyses need sex, age, height
    and weight for sex-specific reference ranges and BSA-indexed values)."""
    from medai.dicom.ingest import ingest

    src = work / "src"
    store.materialise(study_uid, src)
    if deidentify:
        from medai.dicom.deid import deidentify_path

        progress("de-identifying")
        deidentify_path(src, work / "deid", retain_patient_characteristics=True)
        src = work / "deid"
    progress("ingest")
    res = ingest(src)
    if not res.studies:
        raise SeriesSelectionError(f"stored study {study_uid} holds no readable DICOM images")
    if len(res.studies) > 1:  # the store materialises one study; a split one is analysed where it is largest
        logger.warning("study %s materialised as %d studies; analysing the largest", study_uid, len(res.studies))
    return max(res.studies, key=lambda s: sum(len(se.instances) for se in s.series))


def store_derived(store: StudyStore, out_dir: Path, files: dict[str, str], source: str) -> None:
    """Keep a result's SEG(s) and SR in the store too (retrievable over QIDO/WADO); ``source`` names the result."""
    derived = [(name, (out_dir / name).read_bytes()) for k, name in files.items() if k == "sr" or k.startswith("seg")]
    store.store(derived, derived=True, source_job=source)


def original_uids(store: StudyStore, study_uid: str, deidentify: bool) -> dict[str, str]:
    """Working-copy SOP Instance UID -> the stored (original) one, for laying results over the stored images."""
    rows = [r for r in store.instances(study_uid) if not r["derived"]]
    if not deidentify:
        return {r["sop_uid"]: r["sop_uid"] for r in rows}
    from medai.dicom.deid import Deidentifier, load_site_secret

    deid = Deidentifier(load_site_secret())
    return {deid.remap_uid(r["sop_uid"]): r["sop_uid"] for r in rows}


def make_study_analyse(store: StudyStore, models: ModelRegistry, deidentify: bool = True) -> AnalyseFn:
    """The job function the runner calls: ``analyse(study_uid, work, out_dir, progress, kinds)``."""

    def analyse(study_uid: str, work: Path, out_dir: Path, progress: Callable[[str], None],
                kinds: Sequence[str] | None = None) -> dict[str, str]:
        from medai.analyses.runner import run_study_analyses
        from medai.libwarnings import capture

        with capture():  # ingest's library warnings join the report's flags (and this job's log), not stderr
            study = prepare_study(store, study_uid, work, deidentify, progress)
            outs = run_study_analyses(study, out_dir, kinds=list(kinds) if kinds else None, models=models.get,
                                      progress=progress)
        files = {k: p.name for k, p in outs.files.items()}
        progress("storing results")  # fence: a revoked job or a lost lease stores no SEG/SR
        store_derived(store, out_dir, files, out_dir.name)
        return files

    return analyse
