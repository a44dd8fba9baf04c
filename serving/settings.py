"""API settings from the environment (``MEDAI_API_*``); embedded defaults need no configuration."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from medai.settings import get_settings


class ApiSettings(BaseSettings):
    """Settings of the decision-support service.

    Attributes:
        database_url: SQLAlchemy URL; default SQLite ``$MEDAI_HOME/api.db`` (PostgreSQL:
            ``postgresql+psycopg2://user:pass@host/db``). The schema is migrated (Alembic) at start-up.
        storage_root: content-addressed blobs and analysis results; default ``$MEDAI_HOME/api-store``.
        max_upload_bytes: request bodies above this are refused with 413 (bytes).
        retention_days: studies older than this are purged with their files (0 keeps them forever).
        workers: uvicorn worker processes for ``medai serve``.
        job_backend: who runs analysis jobs: ``inprocess`` (threads of each server process polling the jobs table;
            the embedded default) or ``procrastinate`` (``medai worker`` processes on any host, fed through
            procrastinate on the same PostgreSQL; the server only defers: :mod:`serving.distributed`).
        job_workers: in-process analysis threads per server process (``inprocess`` only).
        lease_seconds: a running job's lease; a job whose lease lapsed (crashed worker) is claimed again.
        callback_allowed_hosts: hosts that job callback URLs may point to (empty: callbacks refused).
        models: model references served (shipped names, folders or ``models:/<name>@<alias>``); default all shipped.
        preload_models: load every model in the lifespan (else on first use).
        reload_poll_seconds: re-resolve ``models:/`` aliases this often and swap in promoted versions (0: off).
        deidentify: analyses run on a de-identified working copy of the stored study.
        pacs_url: DICOMweb root of the hospital PACS (pull studies, push SEG/SR), e.g. ``http://pacs/dicom-web``.
        session_hours: a web-app session ends this long after sign-in.
        session_idle_minutes: ... or after this long without a request.
        trusted_proxies: addresses of reverse proxies whose ``X-Forwarded-For``/``-Proto`` are believed (the audit
            log's client address); empty: none, the socket peer is the client (a client cannot spoof its address).
        callback_secret: the key of the HMAC-SHA256 signature on job callbacks (``X-Medai-Signature``; receivers check
            it with :func:`serving.jobs.verify_callback`); unset: a random one kept in ``$MEDAI_HOME/callback.secret``
            (0600), created on first start.
        key_cache_seconds: an API key's principal is cached this long (a key revoked through another process or
            the CLI stops working within it; revoked through this server's API, at once); 0: a database read per call.
        cookie_secure: session cookies carry ``Secure`` (browsers still send them to http://localhost; turn off
            only behind a TLS-terminating proxy that rewrites nothing, never on a plain-http network).
    """

    model_config = SettingsConfigDict(env_prefix="MEDAI_API_", extra="ignore")

    database_url: str | None = None
    storage_root: Path | None = None
    max_upload_bytes: int = 2 * 1024**3
    retention_days: int = 0
    workers: int = 1
    job_backend: Literal["inprocess", "procrastinate"] = "inprocess"
    job_workers: int = 1
    lease_seconds: float = 60.0
    callback_allowed_hosts: list[str] = Field(default_factory=list)
    models: list[str] = Field(default_factory=list)
    preload_models: bool = False
    reload_poll_seconds: float = 0.0
    deidentify: bool = True
    pacs_url: str | None = None
    session_hours: float = 12.0
    session_idle_minutes: float = 60.0
    cookie_secure: bool = True
    trusted_proxies: list[str] = Field(default_factory=list)
    key_cache_seconds: float = 5.0
    callback_secret: SecretStr | None = None

    def db_url(self) -> str:
        """The database URL (SQLite under ``MEDAI_HOME`` unless set)."""
        if self.database_url:
            return self.database_url
        home = get_settings().home
        home.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{(home / 'api.db').resolve()}"

    def callback_key(self) -> bytes:
        """The callback signing key: :attr:`callback_secret`, else the key file (created, 0600, on first use)."""
        if self.callback_secret is not None and self.callback_secret.get_secret_value().strip():
            return self.callback_secret.get_secret_value().strip().encode()
        import os
        import secrets

        path = get_settings().home / "callback.secret"
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path.read_bytes().strip()
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
        return path.read_bytes().strip()

    def store(self) -> Path:
        """The storage root (created)."""
        root = self.storage_root or (get_settings().home / "api-store")
        root.mkdir(parents=True, exist_ok=True)
        return root
