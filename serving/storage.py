"""Durable, content-addressed storage of DICOM instances with metadata rows.

A blob is written to a temporary file, fsynced and renamed to ``blobs/<sha[:2]>/<sha256>`` (idempotent: the same
content lands on the same name); the instance rows that reference blobs are then inserted in one transaction, so a
crash leaves either no rows or rows whose blobs are already durable.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import shutil
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.errors import InvalidDicomError
from sqlalchemy import delete, select
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine

from medai.dicom.ingest import IngestLimits, unpack_upload
from medai.fileio import atomic_write
from serving import db

logger = logging.getLogger(__name__)


@dataclass
class StoredInstance:
    """One stored instance (UIDs, class, sha256 of its bytes)."""

    sop_uid: str
    study_uid: str
    series_uid: str
    sop_class_uid: str
    sha256: str
    size: int


@dataclass
class StoreOutcome:
    """Result of storing a batch: stored instances and refused inputs (name, reason)."""

    stored: list[StoredInstance]
    failed: list[tuple[str, str]]


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class BlobStore:
    """Content-addressed files under ``root/blobs``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.blobs = self.root / "blobs"
        self.blobs.mkdir(parents=True, exist_ok=True)

    def path(self, sha: str) -> Path:
        """Where the blob with this sha256 lives."""
        return self.blobs / sha[:2] / sha

    def put_file(self, path: Path) -> tuple[str, int]:
        """Store the file ``path`` durably by moving it into place (it must be on the store's filesystem, e.g. a
        scratch folder under the root); returns ``(sha256, size)``. Hashed in chunks: never read whole."""
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
        sha, size = h.hexdigest(), path.stat().st_size
        dst = self.path(sha)
        if dst.exists():  # the same content is already durable: nothing to write or sync
            path.unlink(missing_ok=True)
            return sha, size
        with open(path, "rb") as fh:
            os.fsync(fh.fileno())
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, dst)
        _fsync_dir(dst.parent)
        return sha, size

    def put(self, data: bytes) -> tuple[str, int]:
        """Store ``data`` durably; returns ``(sha256, size)``."""
        sha = hashlib.sha256(data).hexdigest()
        dst = self.path(sha)
        if dst.exists():
            return sha, len(data)
        atomic_write(dst, lambda fh: fh.write(data))
        _fsync_dir(dst.parent)
        return sha, len(data)


def unpacked_uploads(files: Iterable[tuple[str, BinaryIO]], scratch: Path, limits: IngestLimits,
                     skipped: list[tuple[str, str]]) -> Iterator[tuple[str, Path]]:
    """Uploaded files as DICOM candidates on disk, one at a time (zips unpacked within ``limits`` through the
    library's :func:`medai.dicom.ingest.unpack_upload`); what was skipped is appended to ``skipped`` with why."""
    for name, fh in files:
        for source, path, why in unpack_upload(fh, name, scratch, limits):
            if path is None:
                skipped.append((source, why))
            else:
                yield source, path


def _header(data: bytes | Path) -> pydicom.Dataset:
    return pydicom.dcmread(data if isinstance(data, Path) else io.BytesIO(data), stop_before_pixels=True, force=False)


class StudyStore:
    """Stores instances (blobs + rows) and reads them back."""

    def __init__(self, engine: Engine, root: Path) -> None:
        self.engine = engine
        self.root = Path(root)
        self.blobs = BlobStore(self.root)

    def store(self, parts: Iterable[tuple[str, bytes | Path]], user: str = "", derived: bool = False,
              source_job: str | None = None) -> StoreOutcome:
        """Store DICOM instances (bytes, or files on the store's filesystem, which are moved in); non-DICOM parts
        are refused with a reason (never silently).

        ``source_job``: the job whose results these are; its earlier results are replaced in the same transaction,
        so a re-run job (after a crash) never leaves duplicate SEG/SR instances.
        """
        stored: list[StoredInstance] = []
        rows: list[dict] = []
        infos: dict[str, dict] = {}
        failed: list[tuple[str, str]] = []
        now = time.time()
        for name, data in parts:
            try:
                ds = _header(data)
                study, series, sop = str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID)
            except (InvalidDicomError, AttributeError, ValueError, TypeError, OSError, EOFError) as exc:
                why = f"not a DICOM instance with Study/Series/SOP Instance UIDs ({type(exc).__name__})"
                failed.append((name, why))
                continue
            problem = pixel_data_problem(data)
            if problem:
                failed.append((name, problem))
                continue
            sha, size = self.blobs.put_file(data) if isinstance(data, Path) else self.blobs.put(data)
            if not derived and study not in infos:
                infos[study] = header_info(study, ds)
            stored.append(StoredInstance(sop, study, series, str(getattr(ds, "SOPClassUID", "")), sha, size))
            rows.append(dict(sop_uid=sop, study_uid=study, series_uid=series, sop_class_uid=stored[-1].sop_class_uid,
                             modality=str(getattr(ds, "Modality", "")), series_number=_int(ds, "SeriesNumber"),
                             instance_number=_int(ds, "InstanceNumber"), sha256=sha, size=size, created=now,
                             derived=int(derived), source_job=source_job))
        if rows:
            with self.engine.begin() as conn:  # all rows of a request in one transaction
                if source_job is not None:
                    conn.execute(delete(db.instances).where(db.instances.c.source_job == source_job))
                for study in sorted({r["study_uid"] for r in rows}):
                    ins = _upsert(self.engine, db.studies).values(study_uid=study, created=now, created_by=user)
                    conn.execute(ins.on_conflict_do_nothing(index_elements=["study_uid"]))
                for info in infos.values():
                    ins = _upsert(self.engine, db.study_info).values(**info)
                    conn.execute(ins.on_conflict_do_nothing(index_elements=["study_uid"]))
                # a re-sent instance replaces its row (same UID -> latest content). An upsert, in UID order: uploads
                # of the same study at once (now stored in worker threads) neither collide on the key nor deadlock
                latest = {r["sop_uid"]: r for r in rows}
                for uid in sorted(latest):
                    r = latest[uid]
                    ins = _upsert(self.engine, db.instances).values(**r)
                    conn.execute(ins.on_conflict_do_update(index_elements=["sop_uid"],
                                                           set_={k: v for k, v in r.items() if k != "sop_uid"}))
        return StoreOutcome(stored, failed)

    def instances(self, study_uid: str | None = None, series_uid: str | None = None) -> list[dict]:
        """Instance rows, optionally of one study / series."""
        q = select(db.instances)
        if study_uid is not None:
            q = q.where(db.instances.c.study_uid == study_uid)
        if series_uid is not None:
            q = q.where(db.instances.c.series_uid == series_uid)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(q.order_by(db.instances.c.series_uid,
                                                              db.instances.c.instance_number)).mappings()]

    def studies(self) -> list[dict]:
        """Study rows."""
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(select(db.studies).order_by(db.studies.c.created)).mappings()]

    def study_infos(self) -> dict[str, dict]:
        """Worklist columns of every study (read from a stored header for studies stored before they existed)."""
        with self.engine.connect() as conn:
            have = {r["study_uid"]: dict(r) for r in conn.execute(select(db.study_info)).mappings()}
            missing = [r[0] for r in conn.execute(select(db.studies.c.study_uid)) if r[0] not in have]
        for uid in missing:
            first = next((r for r in self.instances(uid) if not r["derived"]), None)
            if first is None:
                continue
            try:
                info = header_info(uid, pydicom.dcmread(self.blobs.path(first["sha256"]), stop_before_pixels=True))
            except (InvalidDicomError, OSError, ValueError):
                continue
            with self.engine.begin() as conn:
                conn.execute(_upsert(self.engine, db.study_info).values(**info)
                             .on_conflict_do_nothing(index_elements=["study_uid"]))
            have[uid] = info
        return have

    def has_study(self, study_uid: str) -> bool:
        """Whether the study is stored."""
        with self.engine.connect() as conn:
            return conn.execute(select(db.studies.c.study_uid).where(db.studies.c.study_uid == study_uid)).first() \
                is not None

    def materialise(self, study_uid: str, dst: Path, include_derived: bool = False) -> int:
        """Copy a study's instances into ``dst`` (one file per instance); returns the count."""
        dst.mkdir(parents=True, exist_ok=True)
        n = 0
        for r in self.instances(study_uid):
            if r["derived"] and not include_derived:
                continue
            shutil.copyfile(self.blobs.path(r["sha256"]), dst / f"{r['sop_uid']}.dcm")
            n += 1
        return n

    def sweep_uploads(self, max_age_s: float = 3600.0) -> int:
        """Remove upload scratch folders (``.upload-*``: identified copies of a study being unpacked) that a killed
        process left, once older than ``max_age_s`` (younger ones may belong to an upload in flight in another
        process). Returns how many went."""
        now, n = time.time(), 0
        for d in self.root.glob(".upload-*"):
            try:
                if now - d.stat().st_mtime > max_age_s:
                    shutil.rmtree(d, ignore_errors=True)
                    n += 1
            except OSError:
                continue
        if n:
            logger.info("removed %d upload scratch folder(s) left by a crash under %s", n, self.root)
        return n

    def discard_job(self, job_id: str) -> int:
        """Remove the derived instances (SEG/SR) a job stored: a revoked job's results are not kept. Returns how
        many rows went (their blobs stay while another row references the same content)."""
        with self.engine.begin() as conn:
            shas = {r[0] for r in conn.execute(select(db.instances.c.sha256)
                                               .where(db.instances.c.source_job == job_id))}
            n = conn.execute(delete(db.instances).where(db.instances.c.source_job == job_id)).rowcount
            still = {r[0] for r in conn.execute(select(db.instances.c.sha256).where(db.instances.c.sha256.in_(shas)))}
        for sha in shas - still:
            self.blobs.path(sha).unlink(missing_ok=True)
        return int(n or 0)

    def purge_older_than(self, days: int) -> int:
        """Retention: delete studies (rows, and blobs no longer referenced) stored more than ``days`` ago."""
        if days <= 0:
            return 0
        cutoff = time.time() - days * 86400
        with self.engine.begin() as conn:
            old = [r[0] for r in conn.execute(select(db.studies.c.study_uid).where(db.studies.c.created < cutoff))]
            shas = {r[0] for r in conn.execute(select(db.instances.c.sha256)
                                               .where(db.instances.c.study_uid.in_(old)))}
            conn.execute(delete(db.instances).where(db.instances.c.study_uid.in_(old)))
            conn.execute(delete(db.studies).where(db.studies.c.study_uid.in_(old)))
            still = {r[0] for r in conn.execute(select(db.instances.c.sha256).where(db.instances.c.sha256.in_(shas)))}
        for sha in shas - still:
            self.blobs.path(sha).unlink(missing_ok=True)
        return len(old)


def pixel_data_problem(data: bytes | Path) -> str | None:
    """Why an instance's native pixel data cannot be whole (shorter than Rows x Columns x frames x samples x bits),
    or None. Encapsulated (compressed) pixel data is checked by its codec on decode, not here. The pixel data is
    not read: its element's length is compared."""
    try:
        ds = pydicom.dcmread(data if isinstance(data, Path) else io.BytesIO(data), defer_size="1 KB")
        if "PixelData" not in ds or ds.file_meta.TransferSyntaxUID.is_compressed:
            return None
        rows, cols = int(ds.Rows), int(ds.Columns)
        frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
        samples, bits = int(getattr(ds, "SamplesPerPixel", 1) or 1), int(ds.BitsAllocated)
        expected = (rows * cols * frames * samples * bits + 7) // 8
        elem = ds.get_item("PixelData", keep_deferred=True)
        if isinstance(elem, RawDataElement) and elem.value is None:  # deferred: what the file really holds
            total = data.stat().st_size if isinstance(data, Path) else len(data)
            have = min(elem.length, total - elem.value_tell)
        else:
            have = len(ds.PixelData)
    except (AttributeError, ValueError, TypeError, KeyError, OSError, EOFError, InvalidDicomError):
        return None  # not this check's business: unreadable headers are refused elsewhere
    if have < expected:
        return (f"pixel data is {have} bytes; {rows}x{cols}x{frames} frame(s) of {samples} sample(s) at {bits} bits "
                f"need {expected}: the file is truncated; send it again")
    return None


def header_info(study_uid: str, ds: pydicom.Dataset) -> dict:
    """The worklist columns of a study from one of its headers."""
    def text(kw: str, n: int) -> str:
        return str(getattr(ds, kw, "") or "")[:n]

    return dict(study_uid=study_uid, patient_id=text("PatientID", 64), patient_name=text("PatientName", 200),
                patient_sex=text("PatientSex", 16), study_date=text("StudyDate", 16),
                description=text("StudyDescription", 200), accession=text("AccessionNumber", 64),
                study_time=text("StudyTime", 16), birth_date=text("PatientBirthDate", 16),
                referring=text("ReferringPhysicianName", 200), study_id=text("StudyID", 16))


def _int(ds: pydicom.Dataset, kw: str) -> int | None:
    try:
        v = getattr(ds, kw, None)
        return int(v) if v not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _upsert(engine: Engine, table):  # noqa: ANN001, ANN202
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)
    return sqlite_insert(table)
