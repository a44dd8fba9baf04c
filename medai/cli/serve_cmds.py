"""``medai serve``, ``medai keys create/list/revoke`` (machines) and ``medai users create/list/passwd/disable``
(people who sign in to the web app)."""

from __future__ import annotations

import typer

keys_app = typer.Typer(help="API keys of the decision-support service (stored hashed).", no_args_is_help=True)
users_app = typer.Typer(help="People who sign in to the web app (argon2id password hashes).", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add ``serve`` and ``keys`` to the root CLI."""
    app.command("serve")(serve)
    app.command("worker")(worker)
    app.add_typer(keys_app, name="keys")
    app.add_typer(users_app, name="users")


def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8000, help="TCP port."),
    workers: int = typer.Option(None, help="uvicorn worker processes (default MEDAI_API_WORKERS, 1)."),
) -> None:
    """Start the API (SQLite and local files under MEDAI_HOME unless MEDAI_API_* say otherwise)."""
    import uvicorn

    from serving.settings import ApiSettings

    settings = ApiSettings()
    n = workers or settings.workers
    typer.echo(f"medai on http://{host}:{port} ({n} worker{'s' if n > 1 else ''}): web app at /ui/, "
               "OpenAPI at /docs")
    # X-Forwarded-For only from configured proxies (MEDAI_API_TRUSTED_PROXIES): otherwise any client could write
    # another address into the audit log
    proxies = settings.trusted_proxies
    import os

    os.umask(0o077)  # stores, results and scratch copies readable by the service account only
    uvicorn.run("serving.app:create_app", factory=True, host=host, port=port, workers=n, log_level="warning",
                proxy_headers=bool(proxies), forwarded_allow_ips=",".join(proxies) if proxies else None)


def worker(
    concurrency: int = typer.Option(1, min=1, help="Analyses run at once by this process."),
    name: str = typer.Option(None, help="Worker name shown in procrastinate's tables (default: its own)."),
) -> None:
    """Run analysis jobs for the servers (MEDAI_API_JOB_BACKEND=procrastinate, on the PostgreSQL of
    MEDAI_API_DATABASE_URL, with results under MEDAI_API_STORAGE_ROOT: a path every host mounts). Start as many
    as you like, on any host; stop with Ctrl-C or SIGTERM (the running job finishes or is redelivered)."""
    import logging
    import os

    from medai.errors import MedaiError
    from serving.distributed import serve_worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.umask(0o077)  # like `medai serve`: results and scratch copies readable by the service account only
    try:
        serve_worker(concurrency=concurrency, name=name)
    except MedaiError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(2) from exc


def _engine():  # noqa: ANN202
    from serving.db import make_engine
    from serving.settings import ApiSettings

    return make_engine(ApiSettings().db_url())


@keys_app.command("create")
def keys_create(role: str = typer.Option(..., help="clinician, data_scientist, hospital_system or admin."),
                name: str = typer.Option("", help="Who or what the key is for.")) -> None:
    """Create a key and print it once (only its hash is stored)."""
    from serving.auth import Role, create_key

    try:
        r = Role(role)
    except ValueError:
        raise typer.BadParameter(f"role must be one of {', '.join(x.value for x in Role)}") from None
    key_id, key = create_key(_engine(), r, name)
    typer.echo(f"id {key_id} role {r.value}")
    typer.echo(key)
    typer.echo("store this key now: it cannot be shown again", err=True)


@keys_app.command("list")
def keys_list() -> None:
    """List keys (id, role, name, created, revoked); never the keys themselves."""
    from datetime import UTC, datetime

    from rich.console import Console
    from rich.table import Table

    from serving.auth import list_keys

    t = Table("id", "role", "name", "created", "revoked")
    fmt = lambda ts: datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds") if ts else ""  # noqa: E731
    for k in list_keys(_engine()):
        t.add_row(k["id"], k["role"], k["name"], fmt(k["created"]), fmt(k["revoked"]))
    Console().print(t)


@keys_app.command("revoke")
def keys_revoke(key_id: str = typer.Argument(..., help="The key id from `medai keys list`.")) -> None:
    """Revoke a key."""
    from serving.auth import revoke_key

    if not revoke_key(_engine(), key_id):
        typer.echo(f"no active key {key_id}", err=True)
        raise typer.Exit(1)
    typer.echo(f"revoked {key_id}")


def _password(stdin: bool) -> str:
    import sys

    if stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return typer.prompt("password", hide_input=True, confirmation_prompt=True)


@users_app.command("create")
def users_create(username: str = typer.Argument(..., help="Sign-in name (lower-case letters, digits, . _ -)."),
                 role: str = typer.Option(..., help="clinician, data_scientist, hospital_system or admin."),
                 name: str = typer.Option("", help="Display name, e.g. 'Dr Jane Doe' (shown as the signer)."),
                 password_stdin: bool = typer.Option(False, "--password-stdin",
                                                     help="Read the password from the first line of stdin.")) -> None:
    """Create a web-app user (the password is asked twice unless --password-stdin)."""
    from serving.users import UserError, create_user

    try:
        create_user(_engine(), username, _password(password_stdin), role, name)
    except UserError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"user {username} ({role}) created; sign in at /ui/")


@users_app.command("list")
def users_list() -> None:
    """List users (name, role, created, disabled); never the password hashes."""
    from datetime import UTC, datetime

    from rich.console import Console
    from rich.table import Table

    from serving.users import list_users

    t = Table("user", "name", "role", "created", "disabled")
    fmt = lambda ts: datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds") if ts else ""  # noqa: E731
    for u in list_users(_engine()):
        t.add_row(u["username"], u["display_name"], u["role"], fmt(u["created"]), fmt(u["disabled"]))
    Console().print(t)


@users_app.command("passwd")
def users_passwd(username: str = typer.Argument(...),
                 password_stdin: bool = typer.Option(False, "--password-stdin")) -> None:
    """Set a user's password (ends their sessions)."""
    from serving.users import UserError, set_password

    try:
        set_password(_engine(), username, _password(password_stdin))
    except UserError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"password of {username} changed")


@users_app.command("disable")
def users_disable(username: str = typer.Argument(...)) -> None:
    """Disable a user (ends their sessions; the audit trail keeps their name)."""
    from serving.users import disable_user

    if not disable_user(_engine(), username):
        typer.echo(f"no active user {username}", err=True)
        raise typer.Exit(1)
    typer.echo(f"disabled {username}")
