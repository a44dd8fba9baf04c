"""Run the study's analyses and render ONE study report: ``report.json`` (a section per analysis), one DICOM SEG
per analysed series, one DICOM SR (TID 1500, measurement groups per analysis), one PDF (a page per analysis) and
a FHIR R4 Bundle.

Used by ``medai analyze``, the API's job runner and the benches alike. Files are written into a private
temporary sibling of ``out_dir`` that is renamed onto it at the very end, so a failed run never leaves a
half-written result.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import json
import logging
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medai.analyses import Analysis, AnalysisResult, ModelProvider, catalogue, get_analysis
from medai.analyses.base import Correction
from medai.domain.prediction import Prediction, QualityFlag, QualityStatus, Report, Review, Severity
from medai.domain.study import Study
from medai.errors import MedaiError, SeriesSelectionError
from medai.libwarnings import Caught, capture

if TYPE_CHECKING:
    from medai.inference.predictor import Predictor

logger = logging.getLogger(__name__)


@dataclass
class StudyOutputs:
    """What a study analysis produced.

    Attributes:
        report: the study report every file renders.
        results: one :class:`AnalysisResult` per analysis that ran (in run order).
        files: output key (``json``, ``sr``, ``pdf``, ``fhir``, and one per SEG: ``seg``, ``seg_lge``...) -> path.
        timings_s: seconds per stage (study level: ``ingest`` when given, ``rendering``; and each analysis' own).
        render_errors: renderer -> error message for renderers that failed (also flagged in the report).
    """

    report: Report
    results: list[AnalysisResult]
    files: dict[str, Path] = field(default_factory=dict)
    timings_s: dict[str, float] = field(default_factory=dict)
    render_errors: dict[str, str] = field(default_factory=dict)

    @property
    def prediction(self) -> Prediction:
        """The first analysis' prediction (single-analysis callers)."""
        return self.results[0].prediction

    def result(self, kind: str) -> AnalysisResult | None:
        """The result of analysis ``kind``, or None when it did not run."""
        return next((r for r in self.results if r.kind == kind), None)


def package_provider(overrides: Mapping[str, Predictor] | None = None) -> ModelProvider:
    """A model provider over ``Predictor.from_package`` that loads each reference once.

    Args:
        overrides: already loaded predictors by reference (package name as named in the analysis configs, or the
            loaded package's metadata name); they win over loading.
    """
    from medai.inference.predictor import Predictor

    cache: dict[str, Predictor] = {}
    lock = threading.Lock()
    given = dict(overrides or {})

    def provide(ref: str) -> Predictor:
        if ref in given:
            return given[ref]
        with lock:
            if ref not in cache:
                cache[ref] = Predictor.from_package(ref)
            return cache[ref]

    return provide


def describe_series(study: Study) -> str:
    """``#3 MR 'LGE_PSIR_SAX' (lge, 8 instances); ...`` for error messages."""
    return "; ".join(
        f"#{s.SeriesNumber if s.SeriesNumber is not None else '?'} {s.Modality} {s.SeriesDescription!r} "
        f"({s.series_type.value}, {len(s)} instances)" for s in study.series) or "no series"


def select_analyses(study: Study, kinds: Sequence[str] | None = None, config_dir: Path | None = None) -> list[Analysis]:
    """The analyses to run: ``kinds`` (each must apply), or every configured analysis whose series are present.

    Raises:
        ConfigError: an unknown kind (the message lists the known ones).
        SeriesSelectionError: a requested analysis lacks its series, or none applies; the message names the
            series the study has and what each analysis needs.
    """
    if kinds:
        chosen: list[Analysis] = []
        for k in kinds:
            a = get_analysis(k, config_dir)
            if a not in chosen:
                chosen.append(a)
        chosen = _with_requirements(chosen, config_dir)
        for a in chosen:
            missing = a.missing_series(study)
            if missing:
                raise SeriesSelectionError(
                    f"Analysis {a.kind} needs a {' and a '.join(t.value for t in missing)} series; study "
                    f"{study.StudyInstanceUID} has: {describe_series(study)}. Send a study that contains one, or "
                    "pass a rules file that classifies your series (configs/series/rules.yaml shows the format).",
                    details={"analysis": a.kind, "missing": [t.value for t in missing],
                             "series": [s.series_type.value for s in study.series]})
        return _order(chosen)
    cat = catalogue(config_dir)
    chosen = [a for a in cat.values() if a.applicable(study)]
    if not chosen:
        needs = "; ".join(f"{a.kind} needs {' + '.join(t.value for t in a.config.series)}" for a in cat.values())
        raise SeriesSelectionError(
            f"No analysis applies to study {study.StudyInstanceUID}: it has {describe_series(study)}. {needs}. "
            "Send a study with one of those series, or pass a rules file that classifies your series "
            "(configs/series/rules.yaml shows the format).",
            details={"series": [s.series_type.value for s in study.series],
                     "analyses": {a.kind: [t.value for t in a.config.series] for a in cat.values()}})
    return _order(chosen)


def _with_requirements(chosen: list[Analysis], config_dir: Path | None) -> list[Analysis]:
    """``chosen`` plus every analysis they (transitively) require."""
    out = list(chosen)
    queue = list(chosen)
    while queue:
        for kind in queue.pop().config.requires:
            dep = get_analysis(kind, config_dir)
            if dep not in out:
                out.append(dep)
                queue.append(dep)
    return out


def _order(analyses: Sequence[Analysis]) -> list[Analysis]:
    """Analyses sorted by ``order``, each after the analyses it requires (its config's ``requires``)."""
    from medai.errors import ConfigError

    pending = sorted(analyses, key=lambda a: (a.config.order, a.kind))
    done: list[Analysis] = []
    while pending:
        kinds = {a.kind for a in done}
        ready = next((a for a in pending if all(k in kinds or k not in {b.kind for b in pending}
                                                 for k in a.config.requires)), None)
        if ready is None:
            raise ConfigError("analysis configs require each other in a cycle: "
                              + ", ".join(f"{a.kind} -> {a.config.requires}" for a in pending))
        pending.remove(ready)
        done.append(ready)
    return done


def _study_date(study: Study) -> Any:
    from datetime import datetime

    raw = (study.StudyDate or "").strip()
    try:
        return datetime.strptime(raw[:8], "%Y%m%d").date() if raw else None
    except ValueError:
        return None


def compose_report(study: Study, results: Sequence[AnalysisResult], study_flags: Sequence[QualityFlag] = ()) -> Report:
    """The study report: one section per result; top-level measurements/flags/models/series are their union.

    With a single section the top-level ``summary`` repeats that section's summary (what 1.0 readers expect).
    """
    models, series, measurements, flags, classes = [], [], [], list(study_flags), []
    seen_series: set[str] = set()
    for r in results:
        s = r.section
        models += [m for m in s.models if m not in models]
        for row in s.series:
            if row.get("series_instance_uid") not in seen_series:
                seen_series.add(str(row.get("series_instance_uid")))
                series.append(row)
        measurements += s.measurements
        flags += s.flags
        classes += s.classes
    summary: dict[str, Any] = dict(results[0].section.summary) if len(results) == 1 else {}
    summary["analyses"] = [r.kind for r in results]
    reasons = [f"{r.section.title}: {f.message}" for r in results if r.section.quality is not None
               and r.section.quality.status != QualityStatus.PASS for f in r.section.quality.findings]
    return Report(
        report_id=str(uuid.uuid4()),
        study_instance_uid=study.StudyInstanceUID,
        patient_id=study.PatientID,
        patient_sex=study.PatientSex or "",
        study_date=_study_date(study),
        models=models,
        series=series,
        measurements=measurements,
        flags=flags,
        classes=classes,
        summary=summary,
        sections=[r.section for r in results],
        review=Review(required=bool(reasons), reasons=reasons),
    )


def _publish(tmp: Path, out_dir: Path) -> None:
    """Move the finished ``tmp`` folder onto ``out_dir`` (an existing result is replaced only at the very end)."""
    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}.old-{uuid.uuid4().hex[:8]}")
        out_dir.rename(old)
        tmp.rename(out_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(out_dir)


def _write_segs_and_sr(study: Study, report: Report, results: Sequence[AnalysisResult],
                       analyses: Mapping[str, Analysis], tmp: Path, files: dict[str, Path],
                       attempt: Callable[[str, Callable[[], Any]], bool]) -> None:
    """One SEG per analysed series, then the study SR that references them (each through ``attempt``)."""
    from medai.reports.seg import write_seg
    from medai.reports.sr import SrPart, write_study_sr

    parts: list[SrPart] = []
    for r in results:
        seg_path: Path | None = None
        role = None
        for out in analyses[r.kind].seg_outputs(r):
            path = tmp / out.file
            if attempt(Path(out.file).stem, lambda p=path, o=out, pr=r.prediction: write_seg(report, pr, study, p,
                                                                                              role=o.role)):
                files[Path(out.file).stem] = path
                r.section.files["seg"] = out.file
                seg_path, role = path, out.role
        parts.append(SrPart(section=r.section, prediction=r.prediction, seg=seg_path, role=role,
                            measurements=analyses[r.kind].sr_measurements(r.section)))
    if attempt("sr", lambda: write_study_sr(report, study, tmp / "sr.dcm", parts)):
        files["sr"] = tmp / "sr.dcm"


def _render(study: Study, report: Report, results: Sequence[AnalysisResult], analyses: Mapping[str, Analysis],
            tmp: Path) -> tuple[dict[str, Path], dict[str, str]]:
    from medai.reports import pdf as pdf_kit

    files: dict[str, Path] = {}
    errors: dict[str, str] = {}

    def attempt(name: str, fn: Callable[[], Any]) -> bool:
        try:
            fn()
            return True
        except Exception as exc:  # a renderer failure must not lose the measurements: flagged, JSON still written
            logger.exception("%s renderer failed", name)
            errors[name] = f"{type(exc).__name__}: {exc}"
            return False

    # the PDF's figures (matplotlib's object API, no pyplot state) are drawn in a thread while the SEG and SR are
    # built: their zlib/PNG/Agg work releases the GIL
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="figures") as pool:
        fig_jobs = {r.kind: pool.submit(contextvars.copy_context().run, analyses[r.kind].figures, r)
                    for r in results}
        _write_segs_and_sr(study, report, results, analyses, tmp, files, attempt)
        figures: dict[str, dict[str, bytes]] = {}
        for r in results:
            try:
                figures[r.kind] = fig_jobs[r.kind].result()
            except Exception as exc:  # noqa: BLE001 -- figures are optional; flagged below
                logger.exception("figures of %s failed", r.kind)
                errors[f"figures_{r.kind}"] = f"{type(exc).__name__}: {exc}"
                figures[r.kind] = {}
    pages = [pdf_kit.PdfPage(section=r.section, analysis=analyses[r.kind], figures=figures[r.kind]) for r in results]
    if attempt("pdf", lambda: pdf_kit.write_study_pdf(report, pages, tmp / "report.pdf")):
        files["pdf"] = tmp / "report.pdf"
    if attempt("fhir", lambda: _write_fhir(report, tmp / "fhir.json")):
        files["fhir"] = tmp / "fhir.json"
    maps = {r.kind: r.prediction.label_maps for r in results if r.prediction.label_maps}
    if maps:
        from medai.reports.labelmaps import write_labelmaps

        extras = {r.kind: {k: r.section.summary.get(k) for k in ("ed_frame", "es_frame") if k in r.section.summary}
                  for r in results}
        if attempt("labels", lambda: write_labelmaps(maps, tmp / "labels.npz", extras)):
            files["labels"] = tmp / "labels.npz"
    for name, msg in errors.items():
        report.flags.append(QualityFlag(code=f"render_{name}_failed", severity=Severity.WARNING,
                                        message=f"the {name} rendering was not written: {msg}"))
    return files, errors


def _write_fhir(report: Report, path: Path) -> None:
    from medai.reports.fhir import report_bundle

    bundle = report_bundle(report)
    path.write_text(json.dumps(bundle.model_dump(mode="json", exclude_none=True), indent=1))


def run_study_analyses(
    study: Study,
    out_dir: Path,
    *,
    kinds: Sequence[str] | None = None,
    models: ModelProvider | None = None,
    progress: Callable[[str], None] | None = None,
    extra_timings: dict[str, float] | None = None,
    config_dir: Path | None = None,
    step_dir: Path | None = None,
    corrections: Mapping[str, Correction] | None = None,
) -> StudyOutputs:
    """Run the analyses of ``study`` and write the study report files into ``out_dir``.

    Args:
        study: an ingested, classified study.
        out_dir: output folder (created; an existing one is replaced atomically when the run succeeds).
        kinds: analyses to run (each must apply); default: every configured analysis whose series are present.
            An explicitly requested analysis that fails fails the run; an automatically chosen one that fails is
            reported as an error flag while the others still report (unless all fail).
        models: how analyses get their predictors; default: :func:`package_provider`.
        progress: called with each stage name as it starts (``"<kind>"`` when an analysis starts, then its
            own stages: ``preprocessing``, ``inference``...; ``rendering`` at the end).
        extra_timings: stage timings measured by the caller (e.g. ``ingest``), recorded in the report.
        config_dir: analysis configs folder (default ``configs/analyses``).
        step_dir: step configs folder (default ``configs/steps``): the steps (the quality gate) that wrap every
            analysis; a step that refuses an analysis (unusable images) counts as that analysis failing.
        corrections: ``kind -> Correction``: a reader's corrected label maps; those analyses are measured on them
            by :meth:`Analysis.remeasure` (no inference), the others run as usual. The steps still wrap them (the
            images have not changed: the quality gate judges them and the coverage again), and see
            ``AnalysisResult.corrected``.

    Returns:
        :class:`StudyOutputs`.

    Raises:
        SeriesSelectionError: no analysis applies, or a requested one lacks its series (the message lists the
            study's series).
        MedaiError: a requested analysis failed (nothing is written).
    """
    with capture() as caught:  # pydicom/highdicom warnings become the report's INFO flags, not terminal noise
        return _run_study_analyses(study, Path(out_dir), kinds, models, progress, extra_timings, config_dir,
                                   step_dir, corrections, caught)


def _run_study_analyses(study: Study, out_dir: Path, kinds: Sequence[str] | None, models: ModelProvider | None,
                        progress: Callable[[str], None] | None, extra_timings: dict[str, float] | None,
                        config_dir: Path | None, step_dir: Path | None,
                        corrections: Mapping[str, Correction] | None, caught: Caught) -> StudyOutputs:
    def tell(stage: str) -> None:
        if progress is not None:
            progress(stage)

    from medai.analyses.steps import steps as configured_steps

    analyses = select_analyses(study, kinds, config_dir)
    wrappers = configured_steps(step_dir)
    provider = models or package_provider()
    results: list[AnalysisResult] = []
    study_flags: list[QualityFlag] = []
    failures: list[MedaiError] = []
    timings = dict(extra_timings or {})
    for a in analyses:
        tell(a.kind)
        t0 = time.perf_counter()
        try:
            prior = {r.kind: r for r in results}
            states = [(st, st.before(a, study, provider, tell)) for st in wrappers]
            if corrections and a.kind in corrections:
                res = a.remeasure(study, corrections[a.kind], provider, tell, prior=prior)
                res.corrected = True
            else:
                res = a.run(study, provider, tell, prior=prior)
            for st, state in states:
                st.after(a, res, state, provider, tell)
        except MedaiError as exc:
            if kinds:
                raise
            logger.warning("analysis %s failed: %s", a.kind, exc.message)
            failures.append(exc)
            study_flags.append(QualityFlag(code=f"analysis_{a.kind}_failed", severity=Severity.ERROR,
                                           message=f"{a.config.title} could not run: {exc.message}"))
            continue
        res.timings_s.setdefault("total", time.perf_counter() - t0)
        res.section.summary.setdefault("timings_s", res.timings_s)
        results.append(res)
        for k, v in res.timings_s.items():
            if k != "total":
                timings[k] = timings.get(k, 0.0) + v
    if not results:
        raise failures[0]
    report = compose_report(study, results, study_flags)
    lib_flags = caught.flags()  # ingest and analysis so far: they reach the SR and PDF too
    report.flags.extend(lib_flags)
    by_kind = {a.kind: a for a in analyses}
    tell("rendering")
    t0 = time.perf_counter()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)  # mkdtemp makes it private; the published folder gets the usual permissions
    try:
        files, errors = _render(study, report, results, by_kind, tmp)
        timings["rendering"] = time.perf_counter() - t0
        report.summary["timings_s"] = timings
        report.flags = [f for f in report.flags if f not in lib_flags] + caught.flags()  # and rendering's
        if len(caught):
            report.summary["library_warnings"] = caught.items()
            caught.log(study.StudyInstanceUID)
        from medai.reports.json_report import write_json

        write_json(report, path=tmp / "report.json")  # last: it records every stage's time
        files["json"] = tmp / "report.json"
        tell("publishing")  # a job runner's fence: a worker that lost its lease stops before replacing out_dir
        _publish(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    files = {k: out_dir / p.name for k, p in files.items()}
    return StudyOutputs(report=report, results=results, files=files, timings_s=timings, render_errors=errors)
