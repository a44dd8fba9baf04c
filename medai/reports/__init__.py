"""Renderings of one :class:`~medai.domain.prediction.Report`: JSON, DICOM SEG, DICOM SR, PDF and pictures.

Every renderer has the same interface, ``render(report, prediction, study, path) -> Path``, and is listed in
:data:`RENDERERS` under a stable kind with its file name. :func:`render_all` writes them all in dependency order
(the SR references the SEG; ``report.json`` comes last). The analysis job (:mod:`medai.cardiac.analysis`) calls
the same functions one by one so that one failing renderer is flagged without losing the others.

Modules (imported lazily: highdicom, reportlab and matplotlib load only when their renderer runs):

* :mod:`medai.reports.json_report` -- ``report.json`` and its JSON Schema (``report.schema.json``);
* :mod:`medai.reports.seg` -- ``seg.dcm``, DICOM SEG of the ED/ES label maps referencing the source images;
* :mod:`medai.reports.sr` -- ``sr.dcm``, DICOM SR TID 1500 measurement report referencing the SEG;
* :mod:`medai.reports.pdf` -- ``report.pdf`` and ``figures/*.png`` (overlays, volume curve, bullseye);
* :mod:`medai.reports.overlay`, :mod:`medai.reports.plots` -- the pictures.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from medai.domain.prediction import Prediction, Report
    from medai.domain.study import Study

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RendererSpec:
    """One renderer: output file name and ``module:function`` (imported when used)."""

    filename: str
    module: str
    function: str

    def load(self) -> Callable[..., Path]:
        """The renderer function."""
        return getattr(importlib.import_module(self.module), self.function)  # type: ignore[no-any-return]


#: Output kind -> renderer, in the order :func:`render_all` runs them (SEG before the SR that references it).
RENDERERS: dict[str, RendererSpec] = {
    "seg": RendererSpec("seg.dcm", "medai.reports.seg", "write_seg"),
    "sr": RendererSpec("sr.dcm", "medai.reports.sr", "write_sr"),
    "pdf": RendererSpec("report.pdf", "medai.reports.pdf", "write_pdf"),
    "json": RendererSpec("report.json", "medai.reports.json_report", "write_json"),
}


def render_all(
    report: Report,
    prediction: Prediction | None,
    study: Study | None,
    out_dir: Path | str,
    *,
    kinds: tuple[str, ...] | None = None,
) -> dict[str, Path]:
    """Write every rendering of ``report`` into ``out_dir``.

    Args:
        report: the report.
        prediction: the prediction it came from (label maps for SEG and overlays); None renders JSON and PDF only.
        study: the source study (its instances are the images SEG and SR reference).
        out_dir: output folder (created).
        kinds: subset of :data:`RENDERERS` to run (default: all that the inputs allow).

    Returns:
        kind -> written path (``figures`` -> the folder of PNG figures when the PDF wrote any).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if kinds is None:
        kinds = tuple(RENDERERS) if (prediction is not None and study is not None) else ("pdf", "json")
    files: dict[str, Path] = {}
    for kind, spec in RENDERERS.items():
        if kind not in kinds:
            continue
        fn = spec.load()
        files[kind] = fn(report=report, prediction=prediction, study=study, path=out_dir / spec.filename)
        logger.debug("rendered %s -> %s", kind, files[kind])
    if "pdf" in files and (out_dir / "figures").is_dir():
        files["figures"] = out_dir / "figures"
    return files


def __getattr__(name: str) -> Any:  # convenience: medai.reports.write_seg etc. without importing highdicom eagerly
    for spec in RENDERERS.values():
        if spec.function == name:
            return spec.load()
    raise AttributeError(f"module 'medai.reports' has no attribute {name!r}")


__all__ = ["RENDERERS", "RendererSpec", "render_all"]
