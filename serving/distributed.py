"""Analysis jobs on a distributed task engine: procrastinate on the PostgreSQL that already holds medai's tables.

Why procrastinate (and not Celery or Dramatiq): the jobs table, its leases and the results' rows already live in
PostgreSQL, so a second broker (Redis, RabbitMQ) would be one more service to run, secure and back up, and its
queue could disagree with the database. procrastinate queues in the same database (``FOR UPDATE SKIP LOCKED``,
``LISTEN/NOTIFY`` to wake workers), keeps worker heartbeats, and is a kept library. The embedded default stays
in-process on SQLite (``MEDAI_API_JOB_BACKEND=inprocess``).

The division of labour:

- The API inserts the job row (:meth:`serving.jobs.JobRunner.submit`) and defers the task
  ``medai.analysis(job_id)`` with ``queueing_lock=job_id`` (at most one waiting delivery per job).
- ``medai worker`` processes, on this host or others, run the task: :meth:`~serving.jobs.JobRunner.execute` claims
  the job under a lease, heartbeats, fences its publication and completes it only while it holds the lease. The
  task returns, and procrastinate records it done, only after the result is committed (acknowledgement after
  commit); a re-delivered job that already ended is not run again (idempotent completion).
- Each worker sweeps every few seconds: procrastinate jobs of workers whose heartbeat stopped (``kill -9``) are put
  back to ``todo``, and medai jobs no worker is on (queued but never delivered, or running under a lapsed lease)
  are deferred again. ``DELETE /v1/analyses/{id}`` revokes: the row is cancelled, the waiting delivery too, and a
  running attempt stops at its next stage because its lease renewal fails.
- Studies and results live under ``MEDAI_API_STORAGE_ROOT``: a path every API and worker host mounts (NFS, a
  cluster filesystem); results are published by an atomic rename.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Engine, make_url

from medai.errors import ConfigError

logger = logging.getLogger(__name__)

TASK = "medai.analysis"
QUEUE = "medai-analyses"
#: finished procrastinate deliveries are deleted after this many hours (medai's jobs table is the record)
KEEP_DELIVERIES_H = 168
#: serialises schema creation when several processes start at once (any fixed 64-bit number)
SCHEMA_LOCK = 7_413_902_117


def require_postgres(database_url: str) -> str:
    """The libpq connection string of a PostgreSQL SQLAlchemy URL; a clear error for anything else."""
    url = make_url(database_url)
    if url.get_backend_name() != "postgresql":
        raise ConfigError(
            f"MEDAI_API_JOB_BACKEND=procrastinate needs PostgreSQL, but MEDAI_API_DATABASE_URL is "
            f"{url.get_backend_name()}: set MEDAI_API_DATABASE_URL=postgresql://user:pass@host/db, or use "
            "MEDAI_API_JOB_BACKEND=inprocess (the embedded default)")
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def _procrastinate() -> Any:
    try:
        import procrastinate
    except ImportError as exc:  # pragma: no cover -- an install without the extra
        raise ConfigError("the distributed job backend needs procrastinate and psycopg 3: "
                          "pip install 'medai[distributed]'") from exc
    return procrastinate


def make_app(database_url: str) -> Any:
    """A procrastinate ``App`` on medai's PostgreSQL (not opened)."""
    procrastinate = _procrastinate()
    return procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=require_postgres(database_url)))


def ensure_schema(engine: Engine) -> None:
    """Create procrastinate's tables once (under an advisory lock, so concurrent starts do not race)."""
    from procrastinate.schema import SchemaManager

    with engine.begin() as conn:
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": SCHEMA_LOCK})
        if conn.execute(text("SELECT to_regclass('procrastinate_jobs')")).scalar() is None:
            logger.info("creating procrastinate's schema")
            with conn.connection.dbapi_connection.cursor() as cur:  # no parameters: its '%' are literal
                cur.execute(SchemaManager.get_schema())


def deliveries(engine: Engine, job_id: str, statuses: tuple[str, ...] = ("todo", "doing")) -> list[int]:
    """The procrastinate deliveries of job ``job_id`` in ``statuses`` (its queueing lock is the job id)."""
    with engine.connect() as conn:
        return [int(r[0]) for r in conn.execute(
            text("SELECT id FROM procrastinate_jobs WHERE task_name = :t AND queueing_lock = :l "
                 "AND status::text = ANY(:s)"), {"t": TASK, "l": job_id, "s": list(statuses)})]


class Dispatcher:
    """The API side of the engine: defer and cancel ``medai.analysis`` deliveries (synchronous calls)."""

    def __init__(self, engine: Engine, database_url: str) -> None:
        self.app = make_app(database_url)  # first: a clear error when the extra is not installed
        ensure_schema(engine)
        self.engine = engine
        self.app.open()

    def defer(self, job_id: str) -> int | None:
        """Queue one delivery of job ``job_id``; None when one is already waiting (its queueing lock)."""
        from procrastinate.exceptions import AlreadyEnqueued

        try:
            return self.app.configure_task(TASK, queue=QUEUE, queueing_lock=job_id).defer(job_id=job_id)
        except AlreadyEnqueued:
            return None

    def cancel(self, job_id: str) -> int:
        """Cancel the waiting deliveries of job ``job_id`` (running ones stop through their lease). Returns how
        many were cancelled."""
        return sum(bool(self.app.job_manager.cancel_job_by_id(i)) for i in deliveries(self.engine, job_id, ("todo",)))

    def close(self) -> None:
        """Close the engine's connection pool."""
        self.app.close()


def run_worker(runner: Any, database_url: str, *, concurrency: int = 1, sweep_seconds: float | None = None,
               name: str | None = None) -> None:
    """Run a worker until SIGINT/SIGTERM: ``medai.analysis`` tasks executed by ``runner``
    (a :class:`serving.jobs.JobRunner` with no threads of its own), plus the sweep described in the module
    docstring every ``sweep_seconds`` (default: a third of the lease)."""
    app = make_app(database_url)
    ensure_schema(runner.engine)
    lease = float(runner.lease)
    sweep = sweep_seconds or max(lease / 3, 0.5)

    @app.task(name=TASK, queue=QUEUE, pass_context=True)
    def analysis(context: Any, job_id: str) -> str:
        outcome = runner.execute(job_id)
        logger.info("job %s: %s (delivery %s)", job_id, outcome, context.job.id)
        return outcome

    async def sweeper() -> None:
        pruned = 0.0
        while True:
            await asyncio.sleep(sweep)
            try:
                await _sweep(app, runner, lease)
                if time.monotonic() - pruned > 3600:  # finished deliveries are kept a week (the jobs table stays)
                    await app.job_manager.delete_old_jobs(nb_hours=KEEP_DELIVERIES_H, queue=QUEUE,
                                                          include_failed=True, include_cancelled=True,
                                                          include_aborted=True)
                    pruned = time.monotonic()
            except Exception:  # noqa: BLE001 -- database briefly unavailable: the next sweep tries again
                logger.warning("sweep failed", exc_info=True)

    async def main() -> None:
        async with app.open_async():
            task = asyncio.create_task(sweeper())
            try:
                await app.run_worker_async(queues=[QUEUE], concurrency=concurrency, name=name,
                                           update_heartbeat_interval=max(lease / 4, 0.25),
                                           stalled_worker_timeout=lease, fetch_job_polling_interval=sweep)
            finally:
                task.cancel()

    runner.sweep_leftovers()
    asyncio.run(main())


async def _sweep(app: Any, runner: Any, lease: float) -> None:
    """Re-deliver what a dead worker held and what was never delivered."""
    from procrastinate.exceptions import AlreadyEnqueued
    from procrastinate.jobs import Status

    for job in await app.job_manager.get_stalled_jobs(task_name=TASK, seconds_since_heartbeat=lease):
        try:
            await app.job_manager.retry_job(job)
            logger.warning("delivery %s of job %s: its worker stopped; delivered again", job.id,
                           job.task_kwargs.get("job_id"))
        except Exception:  # noqa: BLE001 -- e.g. another delivery of that job is already waiting: drop this one
            await app.job_manager.finish_job_by_id_async(job.id, status=Status.FAILED, delete_job=False)
    for job_id in await asyncio.to_thread(runner.unattended, lease):
        if not await asyncio.to_thread(deliveries, runner.engine, job_id):
            logger.warning("job %s: no worker is on it; deferred again", job_id)
            with contextlib.suppress(AlreadyEnqueued):
                await app.configure_task(TASK, queue=QUEUE, queueing_lock=job_id).defer_async(job_id=job_id)


def serve_worker(settings: Any = None, *, models: Any = None, analyse_factory: Any = None, concurrency: int = 1,
                 name: str | None = None) -> None:
    """``medai worker``: the analysis jobs of ``settings`` (default ``MEDAI_API_*``) run in this process through
    procrastinate, with the same models, storage and analysis function a server would use."""
    from serving.analysis import make_study_analyse
    from serving.app import make_runner
    from serving.db import make_engine
    from serving.models import ModelRegistry
    from serving.settings import ApiSettings
    from serving.storage import StudyStore

    settings = settings or ApiSettings()
    if settings.job_backend != "procrastinate":
        raise ConfigError("medai worker runs the distributed backend: set MEDAI_API_JOB_BACKEND=procrastinate "
                          "(and MEDAI_API_DATABASE_URL to the PostgreSQL the servers use); with the in-process "
                          "backend `medai serve` runs the jobs itself")
    require_postgres(settings.db_url())
    engine = make_engine(settings.db_url())
    store = StudyStore(engine, settings.store())
    registry = models or ModelRegistry(settings.models)
    fn = (analyse_factory(store, registry, settings) if analyse_factory is not None
          else make_study_analyse(store, registry, settings.deidentify))
    runner = make_runner(settings, engine, store, fn, worker=True)
    logger.info("worker %s: queue %s, %d at a time, lease %.0f s, storage %s", runner.owner, QUEUE, concurrency,
                runner.lease, settings.store())
    try:
        run_worker(runner, settings.db_url(), concurrency=concurrency, name=name)
    finally:
        engine.dispose()

