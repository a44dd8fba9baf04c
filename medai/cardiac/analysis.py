"""``run_cine_analysis``: the one cine CMR analysis job, called by ``medai analyze`` and by the API.

study -> cine SAX selection -> :class:`~medai.cardiac.predictor.CineSegPredictor` (segmentation, ED/ES,
measurements, quality flags) -> :class:`~medai.domain.prediction.Report` -> renderers (``report.json``,
``seg.dcm``, ``sr.dcm``, ``report.pdf`` from :mod:`medai.reports`). Files are written into a temporary sibling
folder that is renamed onto ``out_dir`` at the end, so a failed run never leaves a half-written result.
"""

from __future__ import annotations

import importlib
import logging
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medai.cardiac.predictor import CineSegPredictor
from medai.domain.prediction import Prediction, QualityFlag, Report, Severity
from medai.domain.study import Study
from medai.inference.predictor import Predictor

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "heart_mr_cine_seg"
#: Stage names reported in timings and to ``progress`` (in order).
STAGES = ("preprocessing", "inference", "postprocessing", "measurement", "rendering")


@dataclass
class AnalysisOutputs:
    """What an analysis produced.

    Attributes:
        report: the report every file renders.
        prediction: the predictor's output (label maps in source geometry, extras).
        files: output kind (``json``, ``seg``, ``sr``, ``pdf``) -> path inside ``out_dir``.
        timings_s: seconds per stage (``volume``, ``preprocessing``, ``inference``, ``postprocessing``,
            ``measurement``, ``rendering``; ``ingest`` when the caller adds it).
        render_errors: renderer name -> error message for renderers that failed (also flagged in the report).
    """

    report: Report
    prediction: Prediction
    files: dict[str, Path] = field(default_factory=dict)
    timings_s: dict[str, float] = field(default_factory=dict)
    render_errors: dict[str, str] = field(default_factory=dict)


def build_report(study: Study, prediction: Prediction) -> Report:
    """The :class:`Report` of a cine prediction (measurements, flags, curves and provenance; no arrays)."""
    ex = prediction.extras
    uids = set(ex.get("series_uids", []))
    series = [
        {"series_instance_uid": s.SeriesInstanceUID, "series_number": s.SeriesNumber, "modality": s.Modality,
         "series_description": s.SeriesDescription, "series_type": s.series_type.value, "n_instances": len(s)}
        for s in study.series if s.SeriesInstanceUID in uids
    ]
    img = ex.get("image")
    summary: dict[str, Any] = {
        "analysis": "cine_sax_function",
        "ed_frame": ex.get("ed_frame"),
        "es_frame": ex.get("es_frame"),
        "phase_source": ex.get("phase_source"),
        "volume_curve": ex.get("volume_curve"),
        "wall_thickness_mm": {str(k): v for k, v in (ex.get("wall_thickness_mm") or {}).items()},
        "wall_thickness_model": "AHA 16-segment (Cerqueira et al., Circulation 2002)",
        "timings_s": ex.get("timings_s"),
    }
    if img is not None:
        summary["cine_shape_tzyx"] = list(img.array.shape)
        summary["spacing_mm_zyx"] = [round(s, 4) for s in img.spacing]
    return Report(
        report_id=str(uuid.uuid4()),
        study_instance_uid=study.StudyInstanceUID,
        patient_id=study.PatientID,
        patient_sex=study.PatientSex or "",
        models=[prediction.model],
        series=series,
        measurements=list(prediction.measurements),
        flags=list(prediction.flags),
        summary=summary,
    )


def _renderers() -> dict[str, tuple[str, Callable[..., Any] | None]]:
    """Output kind -> (file name, renderer or None when :mod:`medai.reports` lacks it)."""
    wanted = {
        "json": ("report.json", "medai.reports.json_report", "write_json"),
        "seg": ("seg.dcm", "medai.reports.seg", "write_seg"),
        "sr": ("sr.dcm", "medai.reports.sr", "write_sr"),
        "pdf": ("report.pdf", "medai.reports.pdf", "write_pdf"),
    }
    out: dict[str, tuple[str, Callable[..., Any] | None]] = {}
    for kind, (fname, module, func) in wanted.items():
        try:
            fn = getattr(importlib.import_module(module), func, None)
        except ImportError:
            fn = None
        out[kind] = (fname, fn)
    return out


def _render(report: Report, prediction: Prediction, study: Study, tmp: Path) -> tuple[dict[str, Path], dict[str, str]]:
    files: dict[str, Path] = {}
    errors: dict[str, str] = {}
    renderers = _renderers()
    # DICOM SEG first: the SR references it
    for kind in ("seg", "sr", "pdf"):
        fname, fn = renderers[kind]
        if fn is None:
            errors[kind] = "renderer not available in this installation"
            continue
        try:
            fn(report=report, prediction=prediction, study=study, path=tmp / fname)
            files[kind] = tmp / fname
        except Exception as exc:  # a renderer failure must not lose the measurements: flagged, JSON still written
            logger.exception("%s renderer failed", kind)
            errors[kind] = f"{type(exc).__name__}: {exc}"
    for kind, msg in errors.items():
        report.flags.append(QualityFlag(code=f"render_{kind}_failed", severity=Severity.WARNING,
                                        message=f"{renderers[kind][0]} was not written: {msg}"))
    return files, errors


def _write_json(report: Report, prediction: Prediction, study: Study, tmp: Path) -> Path:
    fname, fn = _renderers()["json"]
    path = tmp / fname
    if fn is not None:
        fn(report=report, prediction=prediction, study=study, path=path)
    else:
        path.write_text(report.model_dump_json(indent=2))
    return path


def _publish(tmp: Path, out_dir: Path) -> None:
    """Move the finished ``tmp`` folder onto ``out_dir`` (an existing result is replaced only at the very end)."""
    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}.old-{uuid.uuid4().hex[:8]}")
        out_dir.rename(old)
        tmp.rename(out_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(out_dir)


def run_cine_analysis(
    study: Study,
    out_dir: Path,
    predictor: Predictor | None = None,
    *,
    progress: Callable[[str], None] | None = None,
    extra_timings: dict[str, float] | None = None,
) -> AnalysisOutputs:
    """Analyse the cine SAX series of ``study`` and write the report files into ``out_dir``.

    Args:
        study: an ingested, classified study.
        out_dir: output folder (created; an existing one is replaced atomically when the run succeeds).
        predictor: a loaded cine predictor; default: the shipped ``heart_mr_cine_seg`` package.
        progress: called with each stage name (:data:`STAGES`) as it starts.
        extra_timings: stage timings measured by the caller (e.g. ``ingest``), recorded in the report.

    Returns:
        :class:`AnalysisOutputs` (report, prediction, files inside ``out_dir``, timings per stage).

    Raises:
        SeriesSelectionError: no cine short-axis series (the message lists the study's series).
        GeometryError: the cine series has inconsistent geometry.
        ModelNotFoundError: no predictor given and the default package is missing.
    """
    out_dir = Path(out_dir)

    def tell(stage: str) -> None:
        if progress is not None:
            progress(stage)

    if predictor is None:
        tell("loading model")
        predictor = Predictor.from_package(DEFAULT_MODEL)
    tell("preprocessing")
    if isinstance(predictor, CineSegPredictor):
        prediction = predictor.predict(study, progress=tell)
    else:
        prediction = predictor.predict(study)
    timings = {**(extra_timings or {}), **prediction.extras.get("timings_s", {})}
    report = build_report(study, prediction)
    tell("rendering")
    t0 = time.perf_counter()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)  # mkdtemp makes it private; the published folder gets the usual permissions
    try:
        files, errors = _render(report, prediction, study, tmp)
        timings["rendering"] = time.perf_counter() - t0
        report.summary["timings_s"] = timings
        files["json"] = _write_json(report, prediction, study, tmp)  # last: it records every stage's time
        _publish(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    files = {k: out_dir / p.name for k, p in files.items()}
    return AnalysisOutputs(report=report, prediction=prediction, files=files, timings_s=timings, render_errors=errors)
