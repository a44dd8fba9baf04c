"""``medai info``: what is in a folder, file, zip or gzipped DICOM (studies, series, geometry, problems)."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add the DICOM verbs to ``app``."""

    @app.command()
    def info(
        path: Path = typer.Argument(..., exists=True, help="DICOM file, folder (recursive), .zip or .dcm.gz"),
        as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
        rules: Path | None = typer.Option(None, "--rules", exists=True, dir_okay=False, help="series rules YAML"),
        show_skipped: int = typer.Option(20, "--show-skipped", help="how many skipped inputs to list (table view)"),
    ) -> None:
        """List the studies and series found under PATH, and the inputs skipped with the reason."""
        from rich.console import Console

        from medai.dicom.ingest import ingest
        from medai.dicom.summary import summarize

        err = Console(stderr=True)
        if as_json:
            result = ingest(path, rules=rules)
        else:
            with err.status("reading DICOM...") as status:
                result = ingest(path, rules=rules, progress=lambda n: status.update(f"reading DICOM... {n} inputs"))
        summary = summarize(result)
        if as_json:
            typer.echo(summary.model_dump_json(indent=2))
            return
        _print_tables(summary, show_skipped)


def _fmt_spacing(v: list[float] | None) -> str:
    return "x".join(f"{x:.3g}" for x in v) if v else "-"


def _print_tables(summary: object, show_skipped: int) -> None:
    from rich.console import Console
    from rich.table import Table

    from medai.dicom.summary import IngestSummary

    assert isinstance(summary, IngestSummary)
    console = Console()
    for st in summary.studies:
        who = ", ".join(
            x
            for x in (
                f"patient {st.patient_id}" if st.patient_id else "",
                st.patient_sex,
                st.patient_age,
                f"{st.patient_size_m:.2f} m" if st.patient_size_m else "",
                f"{st.patient_weight_kg:.0f} kg" if st.patient_weight_kg else "",
                f"date {st.study_date}" if st.study_date else "",
            )
            if x
        )
        table = Table(title=f"study {st.uid}" + (f" ({st.description})" if st.description else ""), caption=who)
        for col in (
            "#",
            "modality",
            "type",
            "description",
            "matrix",
            "slices",
            "phases",
            "frames",
            "pixel mm",
            "slice mm",
            "orientation",
            "problems",
        ):
            table.add_column(col, overflow="fold")
        for s in st.series:
            table.add_row(
                str(s.number if s.number is not None else "-"),
                s.modality,
                s.series_type,
                s.description,
                f"{s.rows}x{s.columns}" if s.rows else "-",
                str(s.n_slices),
                str(s.n_phases),
                str(s.n_frames),
                _fmt_spacing(s.pixel_spacing),
                f"{s.slice_spacing:.3g}" if s.slice_spacing else "-",
                s.orientation,
                "; ".join(s.problems) or "",
            )
        console.print(table)
        for p in st.problems:
            console.print(f"  [yellow]study problem:[/] {p}")
    if summary.skipped:
        skipped = Table(title=f"skipped inputs ({len(summary.skipped)})")
        skipped.add_column("input", overflow="fold")
        skipped.add_column("reason", overflow="fold")
        for p in summary.skipped[:show_skipped]:
            skipped.add_row(p.source, p.reason)
        if len(summary.skipped) > show_skipped:
            skipped.add_row(f"... and {len(summary.skipped) - show_skipped} more", "(use --json for all)")
        console.print(skipped)
