"""``medai serve`` and ``medai keys create/list/revoke`` (the decision-support API)."""

from __future__ import annotations

import typer

keys_app = typer.Typer(help="API keys of the decision-support service (stored hashed).", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add ``serve`` and ``keys`` to the root CLI."""
    app.command("serve")(serve)
    app.add_typer(keys_app, name="keys")


def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8000, help="TCP port."),
    workers: int = typer.Option(None, help="uvicorn worker processes (default MEDAI_API_WORKERS, 1)."),
) -> None:
    """Start the API (SQLite and local files under MEDAI_HOME unless MEDAI_API_* say otherwise)."""
    import uvicorn

    from serving.settings import ApiSettings

    n = workers or ApiSettings().workers
    typer.echo(f"medai API on http://{host}:{port} ({n} worker{'s' if n > 1 else ''}); OpenAPI at /docs")
    uvicorn.run("serving.app:create_app", factory=True, host=host, port=port, workers=n, log_level="warning")


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
