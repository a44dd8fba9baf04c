"""``medai analyze`` (every registered analysis of a study) and ``medai demo`` (the same on a generated phantom)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer


@contextmanager
def _one_shot_runtime() -> Iterator[None]:
    """A one-shot command loads every model for one study, so loading counts as much as a pass: unless the user
    chose (``MEDAI_RUNTIME``), every network that has an ONNX export runs on ONNX Runtime while it runs
    (``fast-start``: no ``monai`` import, 2.5 s; :mod:`medai.inference.compiled`). Restored afterwards (the command
    may run inside a longer process, as in tests)."""
    import os

    from medai.settings import get_settings

    if "MEDAI_RUNTIME" in os.environ:
        yield
        return
    os.environ["MEDAI_RUNTIME"] = "fast-start"
    get_settings.cache_clear()
    try:
        yield
    finally:
        os.environ.pop("MEDAI_RUNTIME", None)
        get_settings.cache_clear()


def _analyze(source: Path, out: Path, model: str | None, study_uid: str | None = None,
             kinds: list[str] | None = None) -> Any:
    import time

    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from medai.analyses import catalogue, get_analysis
    from medai.analyses.runner import package_provider, run_study_analyses, select_analyses
    from medai.dicom.ingest import ingest
    from medai.errors import SeriesSelectionError
    from medai.libwarnings import capture

    console = Console()
    with capture(), Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console,
                  transient=True) as bar:
        task = bar.add_task("ingesting DICOM", total=None)
        t0 = time.perf_counter()
        result = ingest(source)
        t_ingest = time.perf_counter() - t0
        studies = result.studies
        if study_uid:
            studies = [s for s in studies if s.StudyInstanceUID == study_uid]
        if not studies:
            raise SeriesSelectionError(f"{source} holds no DICOM study{' ' + study_uid if study_uid else ''}")
        wanted = [get_analysis(k) for k in kinds] if kinds else list(catalogue().values())
        candidates = [s for s in studies if any(a.applicable(s) for a in wanted)]
        if not candidates:
            select_analyses(studies[0], kinds)  # raises with the list of series and what each analysis needs
        if len(candidates) > 1:
            console.print(f"[yellow]{len(candidates)} studies could be analysed; analysing "
                          f"{candidates[0].StudyInstanceUID} (use --study to choose)[/]")
        study = candidates[0]
        overrides = {}
        if model:
            from medai.inference.predictor import Predictor

            bar.update(task, description=f"loading model {model}")
            pred = Predictor.from_package(model)
            names = {pred.metadata.name}
            chosen = select_analyses(study, kinds)
            if not any(pred.metadata.name in a.config.models.values() for a in chosen) and len(chosen) == 1:
                names = set(chosen[0].config.models.values())  # --model replaces the one analysis' model
            overrides = dict.fromkeys(names, pred)

        def stage(name: str) -> None:
            bar.update(task, description=name)

        outputs = run_study_analyses(study, out, kinds=kinds, models=package_provider(overrides), progress=stage,
                                     extra_timings={"ingest": t_ingest})
    for section in outputs.report.sections:
        if section.classes:  # a classification (diagnosis) section: its probabilities, not a measurement table
            ranked = sorted(section.classes, key=lambda c: -c.probability)
            used = ", ".join(section.summary.get("modalities_used", []))
            console.print(f"[bold]{section.title}[/]: suggested [bold]{ranked[0].name}[/] "
                          f"({section.summary.get('predicted_display', '')}) p={ranked[0].probability:.2f}; "
                          + ", ".join(f"{c.name} {c.probability:.2f}" for c in ranked[1:]) + f" [dim](from {used})[/]")
            continue
        table = Table(title=f"{section.title} - {study.PatientID or study.StudyInstanceUID}")
        for col in ("measurement", "method", "value", "unit", "reference", "flag"):
            table.add_column(col)
        for m in get_analysis(section.kind).table_measurements(section):
            rr = m.reference_range
            ref = f"{rr.low:g}-{rr.high:g}" if rr is not None and rr.low is not None and rr.high is not None else ""
            style = "" if m.flag in ("normal", "unknown") else "bold red"
            method = ""
            if m.method_code is not None:
                method = m.method_code.meaning + "".join(f" {k}={v}" for k, v in sorted(m.parameters.items()))
            table.add_row(m.code.meaning, method, f"{m.value:.1f}", m.unit.display or m.unit.code, ref,
                          f"[{style}]{m.flag}[/]" if style else str(m.flag))
        console.print(table)
    from medai.libwarnings import is_library_flag

    for f in outputs.report.flags:
        if is_library_flag(f.code):
            continue
        colour = {"error": "red", "warning": "yellow"}.get(str(f.severity), "dim")
        console.print(f"[{colour}]{f.severity}[/] {f.code}: {f.message}")
    lib = outputs.report.summary.get("library_warnings", [])
    if lib:  # one line here; each distinct message is an INFO flag in report.json (and a log line with -v)
        console.print(f"[dim]info[/] {sum(d['count'] for d in lib)} warnings from "
                      f"{'/'.join(sorted({d['library'] for d in lib}))} about the source files "
                      f"({len(lib)} distinct; listed in report.json library_warnings)")
    for section in outputs.report.sections:
        q = section.quality
        if q is not None:
            extra = ", ".join(f"{k} predicted Dice {v:.2f}" for k, v in q.predicted_dice.items())
            console.print(f"image quality ({section.kind}): {q.status.value}" + (f"; {extra}" if extra else ""))
    if outputs.report.review.required:
        console.print("[bold red]REVIEW REQUIRED[/]: " + " | ".join(outputs.report.review.reasons))
    t = outputs.timings_s
    stages = ("ingest", "quality", "volume", "preprocessing", "inference", "postprocessing", "measurement",
              "rendering")
    console.print("timings: " + ", ".join(f"{k} {t[k]:.2f}s" for k in stages if k in t))
    for kind, path in outputs.files.items():
        console.print(f"{kind}: {path}")
    return outputs


def register(app: typer.Typer) -> None:
    """Add ``analyze`` and ``demo`` to ``app``."""

    @app.command()
    def analyze(
        study: Path = typer.Argument(..., exists=True, help="DICOM study: folder, file or zip"),
        out: Path = typer.Option(..., "--out", help="output folder (report.json, seg.dcm, sr.dcm, report.pdf)"),
        model: str | None = typer.Option(None, "--model", help="package folder, shipped name or models:/name@alias"),
        study_uid: str | None = typer.Option(None, "--study", help="StudyInstanceUID when the input holds several"),
        analysis: list[str] = typer.Option(None, "--analysis", help="run only this analysis kind (repeatable); "
                                           "default: every registered analysis whose series are present"),
    ) -> None:
        """Run every registered analysis whose series the study has (cine function, LGE scar...) into ONE study
        report: report.json (a section per analysis), a SEG per analysed series, one SR, one PDF, FHIR."""
        with _one_shot_runtime():
            _analyze(study, out, model, study_uid, list(analysis or []) or None)

    @app.command()
    def demo(
        out: Path = typer.Option(Path("medai-demo"), "--out", help="output folder"),
        model: str | None = typer.Option(None, "--model", help="package to use instead of the shipped default"),
        phenotype: str | None = typer.Option(None, "--phenotype", help="the median heart of an ACDC group (NOR, "
                                             "DCM, HCM, MINF, RV) instead of the default normal heart"),
    ) -> None:
        """Generate a synthetic cine CMR study (known truth) and analyse it, end to end."""
        from rich.console import Console

        from medai.dicom.phantoms import PHENOTYPES, make_cine_sax_study
        from medai.errors import ConfigError

        group = phenotype.upper() if phenotype else None
        if group is not None and group not in PHENOTYPES:
            raise ConfigError(f"unknown phenotype {phenotype!r}; choose one of {', '.join(PHENOTYPES)}")
        size = 192 if group else 128  # a dilated heart needs the wider field of view
        study_dir = out / "phantom_study"
        phantom = make_cine_sax_study(study_dir, rows=size, cols=size, n_slices=10, n_phases=20, phenotype=group)
        tr = phantom.truth
        if group:
            Console().print(f"phantom of the median heart of ACDC's {group} group (pipelines/dx/phenotypes.py)")
        Console().print(f"phantom study written to {study_dir} ({len(phantom.paths)} images); truth: LV EDV "
                        f"{tr.lv_edv_ml:.1f} mL, ESV {tr.lv_esv_ml:.1f} mL, EF {tr.lv_ef_pct:.1f}%, mass "
                        f"{tr.lv_mass_g:.1f} g")  # type: ignore[union-attr]
        with _one_shot_runtime():
            outputs = _analyze(study_dir, out / "analysis", model)
        got = {m.name: m.value for m in outputs.report.measurements}
        rows = [("LV EDV (mL)", "lv_edv", tr.lv_edv_ml), ("LV ESV (mL)", "lv_esv", tr.lv_esv_ml),
                ("LV EF (%)", "lv_ef", tr.lv_ef_pct), ("LV mass (g)", "lv_mass", tr.lv_mass_g),
                ("RV EDV (mL)", "rv_edv", tr.rv_edv_ml), ("RV EF (%)", "rv_ef", tr.rv_ef_pct)]  # type: ignore[union-attr]
        Console().print("model vs phantom truth: " + "; ".join(
            f"{label} {got[k]:.1f} vs {v:.1f}" for label, k, v in rows if k in got))
