"""Report versions: version 1 is an analysis job's own result; a reader's correction of a label map adds a version
measured again by the library's own code (:func:`medai.analyses.runner.run_study_analyses` with
``label_overrides``) and rendered again (JSON, SEG, SR, PDF, FHIR); signing locks the report.

Every version lives in its own folder (``results/<job>/`` for 1, ``results/<job>/versions/<n>/`` after), written
atomically by the runner; rows in ``report_versions`` say who made and who signed each. Nothing is overwritten:
the signed SR and PDF are new files beside the draft ones.
"""

from __future__ import annotations

import base64
import json
import shutil
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import and_, select, update
from sqlalchemy.exc import IntegrityError

from medai.errors import InputValidationError
from serving import db
from serving.analysis import original_uids, prepare_study, store_derived
from serving.auth import Principal
from serving.jobs import JobRunner, decode_kinds
from serving.models import ModelRegistry
from serving.problems import ApiProblem
from serving.storage import StudyStore

_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def _lock(job_id: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(job_id, threading.Lock())


class Versions:
    """The versions of analysis reports."""

    def __init__(self, jobs: JobRunner, store: StudyStore, models: ModelRegistry, deidentify: bool) -> None:
        self.jobs, self.store, self.models, self.deidentify = jobs, store, models, deidentify
        self.engine = jobs.engine

    # -- reading ---------------------------------------------------------------------------------------------------
    def job(self, job_id: str) -> dict[str, Any]:
        """A succeeded job (404/409 problems otherwise)."""
        job = self.jobs.get(job_id)
        if job is None:
            raise ApiProblem(404, "job-not-found", f"no analysis job {job_id}")
        if job["status"] != "succeeded":
            raise ApiProblem(409, "job-not-finished", f"job {job_id} is {job['status']}; poll it until it succeeded")
        return job

    def rows(self, job_id: str) -> list[dict[str, Any]]:
        """Every version of the job's report, oldest first (version 1 is created on first sight)."""
        job = self.job(job_id)
        t = db.report_versions
        with self.engine.begin() as conn:
            rows = [dict(r) for r in conn.execute(select(t).where(t.c.job_id == job_id).order_by(t.c.version))
                    .mappings()]
            if not rows:
                first = dict(job_id=job_id, version=1, parent=None, created=job["updated"],
                             created_by=job["created_by"], folder="", files=json.dumps(job["files"]), edits=None,
                             signed_by=None, signed_name=None, signed_at=None)
                try:
                    conn.execute(t.insert().values(**first))
                except IntegrityError:  # created concurrently
                    pass
                rows = [first]
        for r in rows:
            r["files"] = json.loads(r["files"])
            r["edits"] = json.loads(r["edits"]) if r["edits"] else None
        return rows

    def row(self, job_id: str, version: int | None = None) -> dict[str, Any]:
        """One version (default: the latest)."""
        rows = self.rows(job_id)
        if version is None:
            return rows[-1]
        for r in rows:
            if r["version"] == version:
                return r
        raise ApiProblem(404, "version-not-found", f"job {job_id} has versions {[r['version'] for r in rows]}, "
                         f"not {version}")

    def _identity(self, job_id: str) -> dict[str, str]:
        """The identity of the job's stored original study (the analysis may have run on a de-identified copy)."""
        from sqlalchemy import select

        from serving.reid import original_identity

        with self.engine.connect() as conn:
            study_uid = conn.execute(select(db.jobs.c.study_uid).where(db.jobs.c.id == job_id)).scalar()
        return original_identity(self.store, study_uid) if study_uid else {}

    def folder(self, row: dict[str, Any]) -> Path:
        """The folder holding a version's files."""
        return self.jobs.result_dir(row["job_id"]) / row["folder"]

    def file(self, row: dict[str, Any], kind: str) -> Path:
        """One file of a version (404 problem when it has none of that kind)."""
        name = row["files"].get(kind)
        if name is None:
            raise ApiProblem(404, "result-not-found", f"version {row['version']} has no {kind!r} result; it has: "
                             + ", ".join(sorted(row["files"])))
        return self.folder(row) / name

    def report(self, row: dict[str, Any]) -> dict[str, Any]:
        """The version's ``report.json`` as a dict."""
        return json.loads(self.file(row, "json").read_text())

    def source_map(self, job: dict[str, Any]) -> dict[str, str]:
        """Working-copy SOP UID -> stored SOP UID of the job's study."""
        return original_uids(self.store, job["study_uid"], self.deidentify)

    # -- correcting ------------------------------------------------------------------------------------------------
    def correct(self, job_id: str, base: int, kind: str, role: str, planes: list[dict[str, Any]], who: Principal,
                progress: Callable[[str], None] | None = None) -> dict[str, Any]:
        """A new version from ``base`` with whole label planes replaced and every measurement recomputed.

        Args:
            planes: ``{"index": [t, z], "data": base64 of the plane's uint8 label values, row-major}`` each.

        Raises:
            ApiProblem: 409 when the report is signed or ``base`` is not the latest version; 422 for planes that
                do not fit the label map.
        """
        from medai.analyses.base import Correction
        from medai.analyses.runner import run_study_analyses
        from medai.reports.labelmaps import apply_planes, read_labelmap, read_meta

        job = self.job(job_id)
        with _lock(job_id):
            rows = self.rows(job_id)
            signed = [r["version"] for r in rows if r["signed_at"]]
            if signed:
                raise ApiProblem(409, "report-signed", f"version {signed[-1]} of this report is signed, which locks "
                                 "it; corrections are no longer accepted")
            latest = rows[-1]
            if base != latest["version"]:
                raise ApiProblem(409, "version-conflict", f"version {latest['version']} is newer than {base}; "
                                 "reload the report and correct the latest version")
            labels_path = self.file(latest, "labels")
            try:
                lm = read_labelmap(labels_path, kind, role)
                arr = lm.volume.array
                decoded = []
                for p in planes:
                    idx = tuple(int(i) for i in p["index"])
                    raw = np.frombuffer(base64.b64decode(p["data"], validate=True), dtype=np.uint8)
                    if raw.size != arr.shape[-2] * arr.shape[-1]:
                        raise InputValidationError(f"plane {list(idx)} has {raw.size} values; a plane has "
                                                   f"{arr.shape[-2]}x{arr.shape[-1]}")
                    decoded.append((idx, raw.reshape(arr.shape[-2:])))
                new, changes = apply_planes(arr, decoded, {0, *(lab.value for lab in lm.labels)})
            except (KeyError, ValueError, TypeError) as exc:
                raise ApiProblem(422, "bad-correction", f"the correction cannot be read: {exc}; send planes as "
                                 "{index: [t, z], data: base64 uint8}") from None
            lm = type(lm)(volume=type(lm.volume)(array=new, affine=lm.volume.affine,
                                                 frame_of_reference_uid=lm.volume.frame_of_reference_uid,
                                                 frame_times_ms=lm.volume.frame_times_ms,
                                                 source_series_uid=lm.volume.source_series_uid,
                                                 source_sop_uids=lm.volume.source_sop_uids), labels=lm.labels)
            version = latest["version"] + 1
            folder = f"versions/{version}"
            out_dir = self.jobs.result_dir(job_id) / folder
            work = self.jobs.work_dir(f"{job_id}-v{version}")
            tell = progress or (lambda _s: None)
            try:
                study = prepare_study(self.store, job["study_uid"], work, self.deidentify, tell)
                kinds = decode_kinds(job["kind"]) or list(read_meta(labels_path)["kinds"])
                report = self.report(latest)
                ran = [s["kind"] for s in report.get("sections", [])]
                extras = read_meta(labels_path)["kinds"].get(kind, {}).get("extras", {})
                outs = run_study_analyses(study, out_dir, kinds=ran or kinds, models=self.models.get, progress=tell,
                                          corrections={kind: Correction({role: lm}, extras)})
            finally:
                shutil.rmtree(work, ignore_errors=True)
            files = {k: p.name for k, p in outs.files.items()}
            edits = {"kind": kind, "role": role, "base": base, "planes": changes}
            row = dict(job_id=job_id, version=version, parent=base, created=time.time(), created_by=who.user,
                       folder=folder, files=json.dumps(files), edits=json.dumps(edits), signed_by=None,
                       signed_name=None, signed_at=None)
            with self.engine.begin() as conn:
                conn.execute(db.report_versions.insert().values(**row))
            store_derived(self.store, out_dir, files, f"{job_id}.v{version}")
        return self.row(job_id, version)

    # -- signing ---------------------------------------------------------------------------------------------------
    def sign(self, job_id: str, version: int, who: Principal, organization: str) -> dict[str, Any]:
        """Sign a version: a VERIFIED SR (verifying observer and time), a PDF that shows the signer, a final FHIR
        bundle; the report is locked from then on.

        Raises:
            ApiProblem: 409 when any version is already signed or ``version`` is not the latest.
        """
        from medai.reports.signoff import sign_pdf, verify_sr

        with _lock(job_id):
            rows = self.rows(job_id)
            signed = [r["version"] for r in rows if r["signed_at"]]
            if signed:
                raise ApiProblem(409, "report-signed", f"version {signed[-1]} is already signed")
            row = self.row(job_id, version)
            if version != rows[-1]["version"]:
                raise ApiProblem(409, "version-conflict", f"sign the latest version ({rows[-1]['version']})")
            when = datetime.now(UTC)
            folder = self.folder(row)
            files = dict(row["files"])
            if "sr" in files:
                verify_sr(folder / files["sr"], folder / "sr_signed.dcm", observer_name=who.name,
                          organization=organization, when=when, observer_id=who.user)
                files["sr_draft"], files["sr"] = files["sr"], "sr_signed.dcm"
            patient = self._identity(job_id)  # signing releases the report: it names the real patient
            if "pdf" in files:
                sign_pdf(folder / files["pdf"], folder / "report_signed.pdf", signer=who.name, role=who.role.value,
                         when=when, version=version, patient=patient)
                files["pdf_draft"], files["pdf"] = files["pdf"], "report_signed.pdf"
            if "fhir" in files:
                _final_fhir(folder / files["fhir"], folder / "fhir_signed.json", who, when, patient)
                files["fhir_draft"], files["fhir"] = files["fhir"], "fhir_signed.json"
            t = db.report_versions
            with self.engine.begin() as conn:
                conn.execute(update(t).where(and_(t.c.job_id == job_id, t.c.version == version))
                             .values(files=json.dumps(files), signed_by=who.user, signed_name=who.name,
                                     signed_at=when.timestamp()))
            store_derived(self.store, folder, {k: v for k, v in files.items() if k in ("sr",) or
                                               (k.startswith("seg") and not k.endswith("_draft"))},
                          f"{job_id}.v{version}")
        return self.row(job_id, version)


def _final_fhir(src: Path, dst: Path, who: Principal, when: datetime,
                patient: dict[str, str] | None = None) -> None:
    """The bundle with the DiagnosticReport and Observations final, the signer as results interpreter; with
    ``patient`` (the stored original's identity), every subject that names the pseudonym names the patient."""
    doc = json.loads(src.read_text())
    subject = None
    if patient and patient.get("Patient ID"):
        subject = {"identifier": {"system": "urn:medai:site-patient-id", "value": patient["Patient ID"]}}
        if patient.get("Patient"):
            subject["display"] = patient["Patient"]
    for e in doc.get("entry", []):
        res = e.get("resource", {})
        ident = (res.get("subject") or {}).get("identifier") or {}
        if subject is not None and ident.get("system") == "urn:medai:pseudonym":
            res["subject"] = subject
        if res.get("resourceType") in ("DiagnosticReport", "Observation") and res.get("status") == "preliminary":
            res["status"] = "final"
        if res.get("resourceType") == "DiagnosticReport":
            res["resultsInterpreter"] = [{"display": who.name}]
            res["issued"] = when.isoformat()
    from medai.fileio import atomic_write

    atomic_write(dst, lambda fh: fh.write(json.dumps(doc, indent=1).encode()))
