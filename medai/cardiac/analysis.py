"""``run_cine_analysis``: the cine function analysis alone (kept for callers of wave 1; new code calls
:func:`medai.analyses.runner.run_study_analyses`, which runs every applicable analysis into one study report).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from medai.analyses.runner import StudyOutputs, compose_report, package_provider, run_study_analyses
from medai.domain.prediction import Prediction, Report
from medai.domain.study import Study
from medai.inference.predictor import Predictor

KIND = "cine_function"
DEFAULT_MODEL = "heart_mr_cine_seg"
#: Stage names reported to ``progress`` (in order).
STAGES = ("preprocessing", "inference", "postprocessing", "measurement", "rendering")
#: What :func:`run_cine_analysis` returns.
AnalysisOutputs = StudyOutputs


def _analysis():  # noqa: ANN202
    from medai.analyses import get_analysis

    return get_analysis(KIND)


def build_report(study: Study, prediction: Prediction) -> Report:
    """The single-section :class:`Report` of a cine prediction (measurements, flags, curves; no arrays)."""
    return compose_report(study, [_analysis().result(study, prediction)])


def run_cine_analysis(
    study: Study,
    out_dir: Path,
    predictor: Predictor | None = None,
    *,
    progress: Callable[[str], None] | None = None,
    extra_timings: dict[str, float] | None = None,
) -> StudyOutputs:
    """Analyse the cine SAX series of ``study`` alone and write the report files into ``out_dir``.

    Args:
        study: an ingested, classified study.
        out_dir: output folder (replaced atomically when the run succeeds).
        predictor: a loaded cine predictor; default: the package named in ``configs/analyses/cine_function.yaml``.
        progress: called with each stage name as it starts.
        extra_timings: stage timings measured by the caller (e.g. ``ingest``), recorded in the report.

    Raises:
        SeriesSelectionError: no cine short-axis series (the message lists the study's series).
    """
    overrides = {_analysis().config.models["seg"]: predictor} if predictor is not None else None
    return run_study_analyses(study, Path(out_dir), kinds=[KIND], models=package_provider(overrides),
                              progress=progress, extra_timings=extra_timings)
