"""The app factory: ``create_app(settings)``; models, database and job workers live in the lifespan."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy.engine import Engine
from starlette.types import ASGIApp, Receive, Scope, Send

from medai import __version__
from serving import problems
from serving.analysis import make_study_analyse
from serving.auth import KeyCache
from serving.db import make_engine
from serving.jobs import AnalyseFn, JobRunner
from serving.models import ModelRegistry
from serving.routers import (
    admin,
    analyses,
    dicomweb,
    docs,
    health,
    pacs,
    patients,
    reports,
    risk,
    session,
    studies,
    ui,
    worklist,
)
from serving.routers import models as models_router
from serving.settings import ApiSettings
from serving.storage import StudyStore

logger = logging.getLogger(__name__)


class BodyTooLarge(Exception):
    """The request body exceeded the configured limit."""


class BodyLimit:
    """ASGI middleware: refuse bodies over ``limit`` bytes with 413 (by Content-Length, or while streaming)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        try:
            declared = int(headers.get(b"content-length", b"0") or 0)
        except ValueError:
            declared = 0
        if declared > self.limit:
            await self._refuse(scope, receive, send)
            return
        seen = 0
        started = False

        async def counting() -> dict:
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.limit:
                    raise BodyTooLarge
            return msg

        async def tracking_send(msg: dict) -> None:
            nonlocal started
            if msg["type"] == "http.response.start":
                started = True
            await send(msg)

        try:
            await self.app(scope, counting, tracking_send)
        except BodyTooLarge:
            if not started:
                await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        resp = problems.problem(413, "payload-too-large", f"the request body exceeds {self.limit} bytes "
                                "(MEDAI_API_MAX_UPLOAD_BYTES); split the upload")
        await resp(scope, receive, send)


def make_runner(settings: ApiSettings, engine: Engine, store: StudyStore, analyse: AnalyseFn,
                worker: bool = False) -> JobRunner:
    """The job runner of a server (``worker=False``) or of ``medai worker``: in-process threads, or, with
    ``job_backend=procrastinate``, none (a server defers to the engine; a worker's tasks call ``execute``)."""
    distributed = settings.job_backend == "procrastinate"
    dispatcher = None
    if distributed and not worker:
        from serving.distributed import Dispatcher

        dispatcher = Dispatcher(engine, settings.db_url())
    return JobRunner(engine, settings.store() / "results", analyse, lease_seconds=settings.lease_seconds,
                     threads=0 if distributed else settings.job_workers,
                     callback_hosts=settings.callback_allowed_hosts, callback_secret=settings.callback_key(),
                     dispatcher=dispatcher, discard=store.discard_job)


def create_app(settings: ApiSettings | None = None, *, models: ModelRegistry | None = None,
               analyse_factory: Callable[[StudyStore, ModelRegistry, ApiSettings], AnalyseFn] | None = None) -> FastAPI:
    """Build the API.

    Args:
        settings: API settings (default: from ``MEDAI_API_*``).
        models: the served models (default: ``settings.models`` or every shipped package).
        analyse_factory: builds the analysis job function from the store, models and settings (default: every
            registered analysis through the library, :func:`serving.analysis.make_study_analyse`).
    """
    settings = settings or ApiSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from medai.runtime import tune_allocator

        tune_allocator()  # also when served by uvicorn directly rather than `medai serve`
        engine = make_engine(settings.db_url())
        root = settings.store()
        store = StudyStore(engine, root)
        registry = models or ModelRegistry(settings.models)
        if settings.preload_models:
            registry.preload()
        if analyse_factory is not None:
            fn = analyse_factory(store, registry, settings)
        else:
            fn = make_study_analyse(store, registry, settings.deidentify)
        runner = make_runner(settings, engine, store, fn)
        app.state.settings, app.state.engine, app.state.store = settings, engine, store
        app.state.models, app.state.jobs = registry, runner
        app.state.key_cache = KeyCache(settings.key_cache_seconds)
        store.sweep_uploads()  # identified scratch a killed upload left
        purged = store.purge_older_than(settings.retention_days)
        if purged:
            logger.info("retention: purged %d studies", purged)
        runner.start()
        stop = threading.Event()
        if settings.reload_poll_seconds > 0:
            def poll() -> None:
                while not stop.wait(settings.reload_poll_seconds):
                    registry.poll_aliases()

            threading.Thread(target=poll, name="alias-poll", daemon=True).start()
        try:
            yield
        finally:
            stop.set()
            runner.stop()
            if runner.dispatcher is not None:
                runner.dispatcher.close()
            engine.dispose()

    app = FastAPI(
        title="medai decision-support API", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
        description="CMR study analyses (every registered analysis: cine function, LGE scar...) and risk models. "
                    "Research use only; not a medical device. "
                    "Authenticate with an API key (X-API-Key or Authorization: Bearer); the web app at /ui/ signs "
                    "users in with a session cookie (POST /v1/session) and sends X-CSRF-Token. Errors are RFC 7807 "
                    "problem+json documents.",
    )
    problems.install(app)
    build_openapi = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            app.openapi_schema = problems.document_problems(build_openapi())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    docs.install(app)  # /docs: Swagger UI from local files (no CDN); no ReDoc
    # routes are matched in order: the high-rate machine endpoints (risk, predict) first
    for r in (risk, models_router, health, session, worklist, studies, dicomweb, analyses, reports, patients, pacs,
              admin):
        app.include_router(r.router)
    ui.install(app)  # the clinician web app at /ui/ (static files, same origin, nothing from the internet)
    app.add_middleware(BodyLimit, limit=settings.max_upload_bytes)
    return app
