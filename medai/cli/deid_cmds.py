"""``medai deid IN OUT``: write a de-identified copy of DICOM files, folders or zip archives."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add the ``deid`` command to the root app."""

    @app.command("deid")
    def deid(
        src: Path = typer.Argument(..., help="DICOM file, folder (searched recursively) or zip archive."),
        dst: Path = typer.Argument(..., help="Output folder (must not exist or be empty)."),
        mapping: Path | None = typer.Option(
            None,
            "--mapping",
            help="Site-local JSON file receiving the re-identification mapping (never inside OUT).",
        ),
        secret_file: Path | None = typer.Option(
            None,
            "--secret-file",
            help="File holding the site secret (default: MEDAI_DEID_SECRET, else a key file under MEDAI_HOME).",
        ),
    ) -> None:
        """De-identify DICOM (PS3.15 basic profile, modified dates): keyed pseudonyms, consistent UIDs.

        Pixel data are not altered: images flagged for burned-in annotation must be reviewed before release.
        """
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
        from rich.table import Table

        from medai.dicom.deid import deidentify_path, load_site_secret
        from medai.errors import MedaiError

        console = Console()
        err = Console(stderr=True, soft_wrap=True)
        try:
            secret = load_site_secret(secret_file)
            with Progress(
                TextColumn("[bold]de-identifying"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=err,
                transient=True,
            ) as bar:
                task = bar.add_task("deid", total=None)

                def on_progress(done: int, total: int, _name: str) -> None:
                    bar.update(task, completed=done, total=total)

                report = deidentify_path(src, dst, secret=secret, mapping_path=mapping, progress=on_progress)
        except MedaiError as exc:
            err.print(f"[bold red]error:[/] {exc.message}")
            raise typer.Exit(2) from exc

        console.print(f"[bold green]{len(report.written)}[/] files written to {report.output_dir}")
        console.print(f"profile: {report.profile}")
        if report.mapping_path is not None:
            console.print(f"re-identification mapping (keep it at the site): {report.mapping_path}")
        if report.skipped:
            table = Table(title=f"{len(report.skipped)} skipped", title_justify="left")
            table.add_column("input")
            table.add_column("reason")
            for skip in report.skipped:
                table.add_row(skip.source, skip.reason)
            console.print(table)
        counts: dict[str, int] = {}
        for record in report.written:
            for code in {flag.code.value for flag in record.flags}:
                counts[code] = counts.get(code, 0) + 1
        if counts:
            table = Table(title="flags (pixel data were NOT altered)", title_justify="left")
            table.add_column("flag")
            table.add_column("files", justify="right")
            for code, n in sorted(counts.items()):
                table.add_row(code, str(n))
            console.print(table)
        if report.burned_in:
            console.print(
                f"[bold yellow]warning:[/] {len(report.burned_in)} image(s) may carry burned-in identifying text; "
                "review the pixels before releasing the data:"
            )
            for record in report.burned_in:
                console.print(f"  {record.output}")
