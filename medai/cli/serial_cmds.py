"""``medai compare``: serial comparison of one patient's analyses (timeline JSON, PNG and a table)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

_VERDICT_STYLE = {"significant_increase": "bold", "significant_decrease": "bold", "within_variability": "dim",
                  "no_reference": "dim"}
_VERDICT_TEXT = {"significant_increase": "significant increase", "significant_decrease": "significant decrease",
                 "within_variability": "within variability", "no_reference": "no variability figure"}


def _print(timeline: Any, json_path: Path, png_path: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    from medai.serial import ComparisonKind

    con = Console()
    pts = timeline.points
    table = Table(title=f"Serial comparison - patient {timeline.patient_id or '(mixed)'} - {len(pts)} analyses")
    table.add_column("measurement")
    table.add_column("unit")
    for p in pts:
        table.add_column(f"{p.study_datetime.date()}" + (" *" if p.date_source == "analysis_time" else ""),
                         justify="right")
    table.add_column("last change (MDC)")
    if len(pts) > 2:
        table.add_column("baseline -> latest (MDC)")
    kinds = [ComparisonKind.CONSECUTIVE] + ([ComparisonKind.BASELINE_LATEST] if len(pts) > 2 else [])
    for t in timeline.tracks:
        row = [t.label, t.unit.display or t.unit.code]
        row += ["" if v is None else f"{v:.1f}" for v in t.values]
        for kind in kinds:
            changes = timeline.changes_of(t.name, kind)
            if not changes:
                row.append("")
                continue
            c = changes[-1]
            mdc = f" (+/-{c.mdc:.1f})" if c.mdc is not None else ""
            text = f"{c.delta:+.1f}{mdc} {_VERDICT_TEXT[c.verdict]}" + (" [review]" if c.under_review else "")
            row.append(f"[{_VERDICT_STYLE[c.verdict]}]{text}[/]")
        table.add_row(*row)
    con.print(table)
    if any(p.date_source == "analysis_time" for p in pts):
        con.print("* study date unknown: placed at the time of the analysis")
    for f in timeline.ctrcd:
        colour = {"error": "red", "warning": "yellow"}.get(str(f.severity), "dim")
        con.print(f"[{colour}]CTRCD[/] analysis {f.index} vs baseline: {f.code}: {f.message}")
    for f in timeline.flags:
        colour = {"error": "red", "warning": "yellow"}.get(str(f.severity), "dim")
        con.print(f"[{colour}]{f.severity}[/] {f.code}: {f.message}")
    con.print(f"[dim]{timeline.method}[/]")
    con.print(f"timeline: {json_path}")
    con.print(f"picture: {png_path}")
    con.print("[dim]Research use only. Not a medical device.[/]")


def register(app: typer.Typer) -> None:
    """Add ``compare`` to ``app``."""

    @app.command()
    def compare(
        reports: list[Path] = typer.Argument(..., help="report.json files or result folders of medai analyze (a "
                                             "folder of result folders works too); two or more analyses"),
        out: Path = typer.Option(Path("timeline.json"), "--out", help="timeline JSON; the PNG is written next to it"),
        patient: str | None = typer.Option(None, "--patient", help="compare only this patient's reports (the "
                                           "patient_id in report.json); others are left out"),
        allow_mixed: bool = typer.Option(False, "--allow-mixed-patients", help="compare reports of different "
                                         "patient ids as one patient (same person under several identifiers)"),
        biomarker_rise: bool | None = typer.Option(None, "--biomarker-rise/--no-biomarker-rise", help="a new rise "
                                                   "in cardiac biomarkers at the latest study (CTRCD grading; "
                                                   "default: unknown)"),
    ) -> None:
        """Serial comparison: EF, volumes, mass and scar over study dates, each change against published CMR
        scan-rescan variability, and cancer-therapy-related cardiac dysfunction by the 2022 ESC guideline."""
        from medai.serial import compare_paths, write_timeline
        from medai.serial.plot import timeline_png

        timeline = compare_paths(reports, patient_id=patient, allow_mixed_patients=allow_mixed,
                                 biomarker_rise=biomarker_rise)
        json_path = write_timeline(timeline, out)
        png_path = json_path.with_suffix(".png")
        timeline_png(timeline, png_path)
        _print(timeline, json_path, png_path)
