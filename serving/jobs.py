"""Durable analysis jobs: rows in the database, claimed with a lease that a heartbeat renews.

A worker that dies (kill -9) stops renewing its lease; once the lease lapses any worker claims the job again. The
analysis writes into ``results/<job_id>`` atomically (replaced as a whole), and only the lease holder can mark the
job done, so a job completes exactly once and a re-run cannot duplicate its outputs.

Who runs the jobs is a setting (``MEDAI_API_JOB_BACKEND``): threads of the API process that poll this table
(``inprocess``, the embedded default), or ``medai worker`` processes on any host fed by procrastinate on the same
PostgreSQL (:mod:`serving.distributed`; the API then only defers). Either way this module's claim, lease, fence and
guarded completion decide what happens to a job; the engine only delivers ``execute(job_id)``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
import shutil
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
from sqlalchemy import and_, or_, select, update
from sqlalchemy.engine import Engine

from medai.errors import MedaiError
from serving import db

logger = logging.getLogger(__name__)

#: ``analyse(study_uid, work_dir, out_dir, progress, kinds) -> {output key: file name in out_dir}``; ``kinds`` is
#: the job's requested analysis kinds, or None for every applicable one.
AnalyseFn = Callable[..., dict[str, str]]
#: The ``kind`` column of a job that runs every applicable analysis.
ALL_KINDS = "all"


def encode_kinds(kinds: list[str] | None) -> str:
    """The ``kind`` column value of a job: comma-separated kinds, or :data:`ALL_KINDS`."""
    return ",".join(kinds) if kinds else ALL_KINDS


def decode_kinds(value: str) -> list[str] | None:
    """The requested kinds of a job (None: every applicable analysis)."""
    return None if not value or value == ALL_KINDS else value.split(",")

MAX_ATTEMPTS = 3


class JobStatus:
    """Job states."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


#: stages at which a running analysis checks its lease with the database at once (not only through the heartbeat):
#: before it replaces its result folder and before it stores SEG/SR, so a revoked job or a worker that lost its
#: lease publishes nothing
FENCE_STAGES = frozenset({"publishing", "storing results"})


#: the header that carries a callback's signature: ``t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + body>``
SIGNATURE_HEADER = "X-Medai-Signature"
#: callback delivery: attempts and the first backoff (doubled after each failure)
CALLBACK_ATTEMPTS = 5
CALLBACK_BACKOFF_S = 0.5


def sign_callback(secret: bytes, body: bytes, timestamp: int | None = None) -> str:
    """The :data:`SIGNATURE_HEADER` value for ``body`` (timestamped, so a receiver can refuse replays)."""
    ts = int(time.time() if timestamp is None else timestamp)
    mac = hmac.new(secret, f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={ts},v1={mac}"


def verify_callback(secret: bytes, body: bytes, header: str, tolerance_s: float = 300.0,
                    now: float | None = None) -> bool:
    """For receivers: whether ``header`` signs ``body`` with ``secret`` and is at most ``tolerance_s`` old."""
    try:
        parts = dict(p.split("=", 1) for p in header.split(","))
        ts = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - ts) > tolerance_s:
        return False
    return hmac.compare_digest(sign_callback(secret, body, ts), f"t={ts},v1={parts.get('v1', '')}")


def callback_allowed(url: str, allowed_hosts: list[str]) -> bool:
    """Whether ``url`` is http(s) to one of the allowed hosts."""
    p = urlparse(url)
    return p.scheme in ("http", "https") and bool(p.hostname) and p.hostname in set(allowed_hosts)


class LeaseLost(Exception):
    """Raised into a running analysis (at its next stage) when its worker no longer holds the job's lease."""


class JobRunner:
    """Claims and runs jobs in background threads of this process."""

    def __init__(self, engine: Engine, results_root: Path, analyse: AnalyseFn, *, lease_seconds: float = 60.0,
                 threads: int = 1, callback_hosts: list[str] | None = None, poll_seconds: float = 0.2,
                 callback_secret: bytes | None = None, callback_attempts: int = CALLBACK_ATTEMPTS,
                 callback_backoff: float = CALLBACK_BACKOFF_S, dispatcher: Any = None,
                 discard: Callable[[str], Any] | None = None) -> None:
        self.engine = engine
        self.results_root = Path(results_root)
        self.analyse = analyse
        self.lease = float(lease_seconds)
        self.n_threads = max(0, int(threads))
        self.callback_hosts = list(callback_hosts or [])
        self.callback_secret = callback_secret
        self.callback_attempts, self.callback_backoff = max(1, int(callback_attempts)), float(callback_backoff)
        self._deliveries: list[threading.Thread] = []
        #: the distributed engine's side (``defer(job_id)``, ``cancel(job_id)``), or None: in-process threads poll
        self.dispatcher = dispatcher
        #: removes what a revoked job stored outside its result folder (the store's derived SEG/SR rows)
        self.discard = discard
        self.poll = poll_seconds
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- API side ---------------------------------------------------------------------------------------------
    def submit(self, kinds: list[str] | None, study_uid: str, user: str, callback_url: str | None) -> dict[str, Any]:
        """Insert a queued job for the analyses ``kinds`` (None: every applicable one) and wake a worker."""
        now = time.time()
        row = dict(id=secrets.token_hex(12), kind=encode_kinds(kinds), study_uid=study_uid,
                   status=JobStatus.QUEUED, created=now,
                   updated=now, created_by=user, attempts=0, stage="queued", callback_url=callback_url, completions=0)
        with self.engine.begin() as conn:
            conn.execute(db.jobs.insert().values(**row))
        self._wake.set()
        self.dispatch(row["id"])
        return self.get(row["id"])

    def dispatch(self, job_id: str) -> bool:
        """Hand the job to the distributed engine (no-op in-process). A failure is logged, not raised: the row is
        committed, and a worker's sweep (:meth:`unattended`) defers it again."""
        if self.dispatcher is None:
            return True
        try:
            self.dispatcher.defer(job_id)
            return True
        except Exception:  # noqa: BLE001 -- the engine is briefly unreachable; the sweep re-defers the job
            logger.warning("job %s: could not be deferred now; a worker's sweep will", job_id, exc_info=True)
            return False

    def cancel(self, job_id: str) -> dict[str, Any] | None:
        """Revoke a queued or running job: it is marked cancelled at once; a running attempt stops at its next
        stage (its lease renewal fails) and publishes nothing. Returns the row, or None when it does not exist;
        a job that already ended is returned unchanged."""
        now = time.time()
        with self.engine.begin() as conn:
            res = conn.execute(update(db.jobs).where(
                db.jobs.c.id == job_id, db.jobs.c.status.in_([JobStatus.QUEUED, JobStatus.RUNNING])).values(
                status=JobStatus.CANCELLED, stage="cancelled", error_code="cancelled", lease_expires=None,
                error="the job was revoked before it finished", updated=now))
        if res.rowcount == 1:
            if self.dispatcher is not None:
                try:
                    self.dispatcher.cancel(job_id)
                except Exception:  # noqa: BLE001 -- a worker that still takes it finds it cancelled and skips it
                    logger.warning("job %s: the engine's copy could not be cancelled", job_id, exc_info=True)
            self._callback(job_id)
        return self.get(job_id)

    def unattended(self, grace_s: float) -> list[str]:
        """Jobs no worker is on: queued for more than ``grace_s``, or running under a lapsed lease (its worker
        died). The distributed sweep defers these again."""
        now = time.time()
        with self.engine.connect() as conn:
            rows = conn.execute(select(db.jobs.c.id).where(or_(
                and_(db.jobs.c.status == JobStatus.QUEUED, db.jobs.c.created < now - grace_s),
                and_(db.jobs.c.status == JobStatus.RUNNING, db.jobs.c.lease_expires < now))))
            return [r[0] for r in rows]

    def get(self, job_id: str) -> dict[str, Any] | None:
        """The job row (``files`` decoded), or None."""
        with self.engine.connect() as conn:
            r = conn.execute(select(db.jobs).where(db.jobs.c.id == job_id)).mappings().first()
        if r is None:
            return None
        out = dict(r)
        out["files"] = json.loads(out["files"]) if out["files"] else {}
        return out

    def result_dir(self, job_id: str) -> Path:
        """Where a job's outputs live."""
        return self.results_root / job_id

    # -- worker side ------------------------------------------------------------------------------------------
    def claim(self, job_id: str | None = None) -> dict[str, Any] | None:
        """Atomically take the oldest queued job (or job ``job_id``), or a running one whose lease lapsed."""
        now = time.time()
        claimable = or_(db.jobs.c.status == JobStatus.QUEUED,
                        and_(db.jobs.c.status == JobStatus.RUNNING, db.jobs.c.lease_expires < now))
        if job_id is not None:
            claimable = and_(db.jobs.c.id == job_id, claimable)
        with self.engine.begin() as conn:
            # PostgreSQL: rows another worker is claiming right now are skipped, not waited for (SQLite has no row
            # locks and ignores it: its writers are serialised anyway; the guarded UPDATE below decides either way)
            cand = conn.execute(select(db.jobs.c.id).where(claimable).order_by(db.jobs.c.created).limit(1)
                                .with_for_update(skip_locked=True)).first()
            if cand is None:
                return None
            res = conn.execute(update(db.jobs).where(db.jobs.c.id == cand[0], claimable).values(
                status=JobStatus.RUNNING, lease_owner=self.owner, lease_expires=now + self.lease,
                attempts=db.jobs.c.attempts + 1, updated=now, stage="claimed"))
            if res.rowcount != 1:
                return None
        return self.get(cand[0])

    def _renew(self, job_id: str, stage: str | None = None) -> bool:
        vals: dict[str, Any] = {"lease_expires": time.time() + self.lease, "updated": time.time()}
        if stage is not None:
            vals["stage"] = stage[:64]
        with self.engine.begin() as conn:
            res = conn.execute(update(db.jobs).where(db.jobs.c.id == job_id, db.jobs.c.lease_owner == self.owner,
                                                     db.jobs.c.status == JobStatus.RUNNING).values(**vals))
        return res.rowcount == 1

    def _finish(self, job_id: str, **vals: Any) -> bool:
        vals["updated"] = time.time()
        with self.engine.begin() as conn:
            res = conn.execute(update(db.jobs).where(db.jobs.c.id == job_id, db.jobs.c.lease_owner == self.owner,
                                                     db.jobs.c.status == JobStatus.RUNNING)
                               .values(lease_expires=None, completions=db.jobs.c.completions + 1, **vals))
        return res.rowcount == 1

    def execute(self, job_id: str, wait_for_lease: bool = True) -> str:
        """Run job ``job_id`` here if it needs running (the distributed engine's task). Idempotent: a job that
        ended is not run again, and one running under another worker's live lease is left to it (when
        ``wait_for_lease``, this waits for that lease first: a redelivery after a crash arrives before the dead
        worker's lease lapses). Returns what happened: ``ran``, ``ended``, ``held`` or ``missing``."""
        deadline = time.monotonic() + 2 * self.lease
        while True:
            job = self.claim(job_id)
            if job is not None:
                self.run_one(job)
                return "ran"
            row = self.get(job_id)
            if row is None:
                return "missing"
            if row["status"] not in (JobStatus.QUEUED, JobStatus.RUNNING):
                return "ended"
            left = (row["lease_expires"] or 0) - time.time()
            if not wait_for_lease or time.monotonic() + max(left, 0) > deadline:
                return "held"
            self._stop.wait(min(max(left, 0.05) + 0.05, self.lease))

    def run_one(self, job: dict[str, Any]) -> None:
        """Run a claimed job to the end (heartbeat while it runs)."""
        job_id = job["id"]
        if job["attempts"] > MAX_ATTEMPTS:
            self._finish(job_id, status=JobStatus.FAILED, error_code="too-many-attempts",
                         error=f"the job was started {job['attempts'] - 1} times without finishing; not retried")
            self._callback(job_id)
            return
        beat_stop = threading.Event()
        lost = threading.Event()
        stage = {"now": "started"}

        def beat() -> None:
            """Renew the lease every third of it; when it cannot (another worker took the job, or the database
            was unreachable for a whole lease), flag it lost: the analysis stops at its next stage."""
            last_ok = time.monotonic()
            while not beat_stop.wait(self.lease / 3):
                try:
                    if self._renew(job_id, stage["now"]):
                        last_ok = time.monotonic()
                        continue
                    logger.warning("job %s: lease no longer ours (another worker took it, or the job was revoked); "
                                   "stopping this attempt", job_id)
                except Exception:  # noqa: BLE001 -- database briefly unavailable: retried until the lease runs out
                    logger.warning("job %s: lease renewal failed", job_id, exc_info=True)
                    if time.monotonic() - last_ok < self.lease:
                        continue
                    logger.warning("job %s: no renewal for a whole lease; stopping this attempt", job_id)
                lost.set()
                return

        def progress(s: str) -> None:
            if lost.is_set() or (s in FENCE_STAGES and not self._renew(job_id, s)):
                lost.set()
                raise LeaseLost(f"job {job_id}: lease lost (or the job was revoked) at stage {s}")
            stage.update(now=s)

        hb = threading.Thread(target=beat, name=f"heartbeat-{job_id}", daemon=True)
        hb.start()
        for old in (self.results_root / ".work").glob(f"{job_id}-*"):  # an earlier attempt's (we hold the lease)
            if not old.name.removeprefix(f"{job_id}-").startswith("v"):
                shutil.rmtree(old, ignore_errors=True)
        work = self.work_dir(f"{job_id}-{secrets.token_hex(3)}")
        try:
            files = self.analyse(job["study_uid"], work, self.result_dir(job_id), progress,
                                 decode_kinds(job["kind"]))
            done = self._finish(job_id, status=JobStatus.SUCCEEDED, stage="done", files=json.dumps(files))
        except LeaseLost as exc:  # the new owner runs it; this attempt leaves nothing and marks nothing
            logger.warning("%s; stopped", exc)
            done = False
        except MedaiError as exc:
            done = self._finish(job_id, status=JobStatus.FAILED, stage="failed", error=exc.message,
                                error_code=exc.code)
        except Exception as exc:  # noqa: BLE001 -- recorded on the job; the server keeps running
            logger.exception("job %s failed", job_id)
            done = self._finish(job_id, status=JobStatus.FAILED, stage="failed", error_code="internal-error",
                                error=f"internal error ({type(exc).__name__}); see the server log")
        finally:
            beat_stop.set()
            shutil.rmtree(work, ignore_errors=True)
        if done:
            self._callback(job_id)
            return
        row = self.get(job_id)
        if row is not None and row["status"] == JobStatus.CANCELLED:  # revoked mid-run: keep none of its outputs
            logger.warning("job %s: revoked while it ran; its outputs are removed", job_id)
            shutil.rmtree(self.result_dir(job_id), ignore_errors=True)
            if self.discard is not None:
                self.discard(job_id)
        else:
            logger.warning("job %s: lease lost before completion; another worker owns it", job_id)

    def _callback(self, job_id: str) -> None:
        """Tell the job's ``callback_url`` it ended: signed, and retried with backoff in the background."""
        job = self.get(job_id)
        url = job and job.get("callback_url")
        if not url:
            return
        if not callback_allowed(url, self.callback_hosts):
            self._callback_status(job_id, "refused: host not allowed")
            return
        body = json.dumps({"job_id": job_id, "status": job["status"], "error_code": job.get("error_code")},
                          separators=(",", ":")).encode()
        t = threading.Thread(target=self._deliver, args=(job_id, url, body), name=f"callback-{job_id}", daemon=True)
        t.start()
        self._deliveries = [d for d in self._deliveries if d.is_alive()] + [t]  # bounded: finished ones dropped

    def _deliver(self, job_id: str, url: str, body: bytes) -> None:
        """POST ``body`` until a 2xx (or a 4xx other than 408/429, which a retry will not change)."""
        delay, status = self.callback_backoff, ""
        for attempt in range(1, self.callback_attempts + 1):
            headers = {"Content-Type": "application/json", "X-Medai-Delivery": f"{job_id}-{attempt}"}
            if self.callback_secret:
                headers[SIGNATURE_HEADER] = sign_callback(self.callback_secret, body)
            try:
                r = httpx.post(url, content=body, headers=headers, timeout=5.0)
                status = f"http {r.status_code}"
                final = r.is_success or (400 <= r.status_code < 500 and r.status_code not in (408, 429))
            except httpx.HTTPError as exc:
                status, final = f"error: {type(exc).__name__}", False
            self._callback_status(job_id, f"{status} (attempt {attempt} of {self.callback_attempts})")
            if final or attempt == self.callback_attempts or self._stop.wait(delay):
                return
            delay *= 2

    def _callback_status(self, job_id: str, status: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(db.jobs).where(db.jobs.c.id == job_id).values(callback_status=status[:64]))

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                job = self.claim()
            except Exception:  # noqa: BLE001 -- database briefly unavailable: retry
                logger.warning("job claim failed", exc_info=True)
                job = None
            if job is None:
                self._wake.wait(self.poll)
                self._wake.clear()
                continue
            self.run_one(job)

    def work_dir(self, name: str) -> Path:
        """A private scratch folder under ``results/.work`` (0700: it holds identified copies of a study)."""
        root = self.results_root / ".work"
        root.mkdir(parents=True, exist_ok=True)
        root.chmod(0o700)
        work = root / name
        work.mkdir(mode=0o700, exist_ok=True)
        work.chmod(0o700)
        return work

    def sweep_leftovers(self, correction_age_s: float = 600.0) -> int:
        """Remove scratch folders a crashed process left (identified copies): those of jobs that are not running
        under a live lease; a correction's (``<job>-v<n>``) once older than ``correction_age_s``. Returns how many."""
        root = self.results_root / ".work"
        if not root.is_dir():
            return 0
        now = time.time()
        with self.engine.connect() as conn:
            live = {r[0] for r in conn.execute(select(db.jobs.c.id).where(db.jobs.c.status == JobStatus.RUNNING,
                                                                          db.jobs.c.lease_expires > now))}
        n = 0
        for d in root.iterdir():
            job_id, _, tail = d.name.partition("-")
            if job_id in live:
                continue
            if tail.startswith("v") and now - d.stat().st_mtime < correction_age_s:
                continue
            shutil.rmtree(d, ignore_errors=True) if d.is_dir() else d.unlink(missing_ok=True)
            n += 1
        if n:
            logger.info("removed %d scratch folder(s) left by a crash under %s", n, root)
        return n

    def start(self) -> None:
        """Remove crash leftovers, then start the worker threads."""
        try:
            self.sweep_leftovers()
        except OSError:
            logger.warning("could not sweep %s", self.results_root / ".work", exc_info=True)
        for i in range(self.n_threads):
            t = threading.Thread(target=self._loop, name=f"job-worker-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the workers to stop after their current job."""
        self._stop.set()
        self._wake.set()
        for t in self._threads:
            t.join(timeout)
