"""The ``medai`` command line: a thin typer layer over library functions.

This package is the one place that ties the floors together (it may import ``pipelines`` and ``serving``), and
always lazily inside the command functions, so ``medai --version`` stays fast. Each area owns one module here:

* :mod:`medai.cli.dicom_cmds` -- ``info``
* :mod:`medai.cli.deid_cmds` -- ``deid``
* :mod:`medai.cli.cmr_cmds` -- ``analyze``, ``demo``
* :mod:`medai.cli.ml_cmds` -- ``train``, ``evaluate`` (dispatch to ``pipelines``), ``models``
* :mod:`medai.cli.risk_cmds` -- ``predict-risk``
* :mod:`medai.cli.derm_cmds` -- ``classify-skin``
* :mod:`medai.cli.serve_cmds` -- ``serve``, ``keys``
* :mod:`medai.cli.serial_cmds` -- ``compare``
"""

from __future__ import annotations

import importlib
import logging
import sys

import typer

from medai import __version__
from medai.errors import MedaiError

app = typer.Typer(
    name="medai",
    help="medai: cardiovascular and dermatology AI. Research use only; not a medical device.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

_AREAS = ("dicom_cmds", "deid_cmds", "cmr_cmds", "ml_cmds", "risk_cmds", "derm_cmds", "serve_cmds", "serial_cmds")


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"medai {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version_callback, is_eager=True, help="Show version."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug messages."),
) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")


for _area in _AREAS:
    try:
        _mod = importlib.import_module(f"medai.cli.{_area}")
    except ModuleNotFoundError as exc:  # an area not yet built
        if exc.name is None or not f"medai.cli.{_area}".startswith(exc.name):
            raise
        continue
    _mod.register(app)


def main() -> None:
    """Console entry point: turns :class:`MedaiError` into a clear message and exit code 2."""
    from medai.runtime import tune_allocator

    tune_allocator()  # MEDAI_MMAP_THRESHOLD: freed image-sized arrays go back to the system (off by default)
    try:
        app()
    except MedaiError as exc:
        from rich.console import Console

        Console(stderr=True).print(f"[bold red]error:[/] {exc.message}")
        sys.exit(2)
