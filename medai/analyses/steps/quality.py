"""``quality``: the image-quality gate every analysis passes through (config ``configs/steps/quality.yaml``).

Before an analysis runs, the artefact CNN of ``heart_mr_quality`` scores the slices of each series type it reads
that the gate can judge (cine and LGE short-axis). A series group whose slices are almost all affected is
unusable: the analysis is refused with :class:`~medai.errors.ImageQualityError`. After it ran, the gate adds the
LV coverage and the predicted Dice per structure of its segmentation, then writes a
:class:`~medai.domain.prediction.QualityAssessment` into the section: below the configured thresholds the status
is "review", each finding says why, and the measurements it affects carry its code in ``review``. A version
measured on a reader's corrected segmentation is judged the same way, without the predicted Dice (which estimates
the model's contours).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from medai.analyses.base import Analysis, AnalysisResult, ModelProvider, Progress
from medai.analyses.steps import STEPS, Step, StepConfig
from medai.domain.prediction import (
    ArtefactScore,
    QualityAssessment,
    QualityFinding,
    QualityFlag,
    QualityStatus,
    SeriesQuality,
    Severity,
    worst,
)
from medai.domain.study import SeriesType, Study
from medai.errors import ConfigError, ImageQualityError, ModelNotFoundError

logger = logging.getLogger(__name__)

#: Rule-based coverage flags of the cine predictor that the coverage model replaces when it judged coverage.
_RULE_COVERAGE_FLAGS = {"basal_coverage_missing", "apical_coverage_missing"}
_ARTEFACT_WORDS = {"motion": "motion / breathing artefact", "ghosting": "ghosting or wrap-around",
                   "spike_noise": "spike or noise", "low_contrast": "low contrast"}


class QualityParams(BaseModel):
    """``params`` of ``configs/steps/quality.yaml`` (see the comments there)."""

    model_config = ConfigDict(extra="forbid")

    series: list[SeriesType] = Field(default_factory=lambda: [SeriesType.CINE_SAX, SeriesType.LGE])
    max_slices: int = Field(48, ge=1, le=10_000)
    min_matrix: int = Field(96, ge=8, le=4096)
    slice_threshold: float = Field(0.5, gt=0, lt=1)
    review_share: float = Field(0.25, gt=0, le=1)
    unusable_share: float = Field(0.9, gt=0, le=1)
    coverage_series: list[SeriesType] = Field(default_factory=lambda: [SeriesType.CINE_SAX])
    coverage_threshold: float | None = Field(None, gt=0, lt=1)
    seg_quality_series: list[SeriesType] = Field(default_factory=lambda: [SeriesType.CINE_SAX])
    min_predicted_dice: dict[str, float] = Field(default_factory=lambda: {"lv": 0.85, "myo": 0.8, "rv": 0.8})


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


@STEPS.register("quality")
class QualityGate(Step):
    """The image-quality gate."""

    def __init__(self, config: StepConfig) -> None:
        super().__init__(config)
        try:
            self.params = QualityParams.model_validate(config.params)
        except ValueError as exc:
            raise ConfigError(f"configs/steps/quality.yaml: invalid params: {exc}") from exc
        if "quality" not in config.models:
            raise ConfigError("configs/steps/quality.yaml must name the quality model: models: {quality: ...}")

    def _types(self, analysis: Analysis) -> list[SeriesType]:
        if analysis.config.requires:  # derived from other analyses' results: their inputs were judged
            return []
        return [t for t in analysis.config.series if t in self.params.series]

    # -- before ----------------------------------------------------------------------------------------------------
    def before(self, analysis: Analysis, study: Study, models: ModelProvider, progress: Progress) -> Any:
        types = self._types(analysis)
        if not types:
            return None
        progress("quality")
        t0 = time.perf_counter()
        from medai.quality.predictor import QualityPredictor

        ref = self.config.models["quality"]
        try:
            qp = models(ref)
        except ModelNotFoundError as exc:  # not served here: the results are reported, but flagged unassessed
            logger.warning("quality gate skipped for %s: %s", analysis.kind, exc.message)
            return {"missing": exc.message}
        if not isinstance(qp, QualityPredictor):
            return {"missing": f"{ref} is served by a {type(qp).__name__}, not a quality model"}
        p = self.params
        groups: list[SeriesQuality] = []
        for t in types:
            series = study.series_of_type(t)
            if not series:
                continue  # the analysis reports the missing series itself
            sizes = [min(int(i.get("Rows") or 0), int(i.get("Columns") or 0)) for s in series for i in s.instances]
            if sizes and min(sizes) < p.min_matrix:  # outside what the model was trained on: not judged
                groups.append(SeriesQuality(series_type=t.value, series_instance_uids=[s.SeriesInstanceUID
                                                                                        for s in series],
                                            n_slices=0, good_share=0.0, status=QualityStatus.REVIEW))
                continue
            per = max(1, p.max_slices // len(series))
            scores = [qp.score_series(s, limit=per) for s in series]
            pres = np.concatenate([s.presence for s in scores])
            sev = np.concatenate([s.severity for s in scores])
            hit = pres > p.slice_threshold
            arts = {}
            for k, name in enumerate(scores[0].artefacts):
                sel = hit[:, k]
                arts[name] = ArtefactScore(share=round(float(sel.mean()), 4), max_probability=round(float(
                    pres[:, k].max()), 4), severity=round(float(sev[sel, k].mean()) if sel.any() else 0.0, 4))
            affected = float(hit.any(1).mean())
            status = (QualityStatus.UNUSABLE if affected >= p.unusable_share
                      else QualityStatus.REVIEW if affected >= p.review_share else QualityStatus.PASS)
            groups.append(SeriesQuality(series_type=t.value, series_instance_uids=[s.SeriesInstanceUID for s in series],
                                        n_slices=len(pres), good_share=round(1 - affected, 4), artefacts=arts,
                                        status=status))
        bad = [g for g in groups if g.status == QualityStatus.UNUSABLE]
        if bad:
            desc = "; ".join(f"{g.series_type}: {_pct(1 - g.good_share)} of {g.n_slices} slices show "
                             f"{self._artefact_text(g)}" for g in bad)
            raise ImageQualityError(
                f"{analysis.config.title} was not run: the images are unusable ({desc}). Repeat the acquisition "
                "(breath-hold, shimming, field of view), or send the study with a better series.",
                details={"analysis": analysis.kind, "series": [g.model_dump(mode="json") for g in bad]})
        names = list(qp.config.artefacts)
        per_class = [max((g.artefacts[n].max_probability for g in groups if n in g.artefacts), default=0.0)
                     for n in names] if groups else [0.0] * len(names)
        return {"groups": groups, "artefacts": per_class, "seconds": time.perf_counter() - t0, "predictor": qp}

    @staticmethod
    def _images(result: AnalysisResult, frames: list[int], shape: tuple[int, ...]
                ) -> tuple[np.ndarray, np.ndarray | None] | None:
        """The ED and ES image stacks behind the label map (the prediction's ``image`` extra), for the end-slice
        coverage CNN; None when the analysis kept no image on the label map's grid."""
        img = result.prediction.extras.get("image")
        arr = getattr(img, "array", None)
        if arr is None or arr.shape != shape:
            return None
        if arr.ndim == 3:
            return arr, None
        return arr[frames[0]], (arr[frames[1]] if len(frames) > 1 else None)

    @staticmethod
    def _artefact_text(g: SeriesQuality) -> str:
        names = sorted(g.artefacts, key=lambda n: -g.artefacts[n].share)
        return ", ".join(f"{_ARTEFACT_WORDS.get(n, n)} ({_pct(g.artefacts[n].share)})" for n in names
                         if g.artefacts[n].share > 0) or "artefacts"

    # -- after -----------------------------------------------------------------------------------------------------
    def after(self, analysis: Analysis, result: AnalysisResult, state: Any, models: ModelProvider,
              progress: Progress) -> None:
        if state is None:
            return
        if "missing" in state:
            msg = (f"Image quality was not assessed ({state['missing']}): review the images before using the "
                   "values, or serve the quality model.")
            section = result.section
            section.quality = QualityAssessment(status=QualityStatus.REVIEW, findings=[QualityFinding(
                code="quality_not_assessed", message=msg)])
            section.flags.append(QualityFlag(code="quality_not_assessed", severity=Severity.WARNING, message=msg))
            return
        t0 = time.perf_counter()
        qp = state["predictor"]  # the one before() checked
        p = self.params
        section = result.section
        findings: list[QualityFinding] = []
        all_names = [m.name for m in section.measurements]
        for g in state["groups"]:
            if g.n_slices == 0:
                findings.append(QualityFinding(
                    code=f"image_quality_not_assessed_{g.series_type}",
                    message=f"The {g.series_type} images are smaller than the {p.min_matrix} pixels the quality "
                    "model was trained on, so their quality was not assessed: check them before using the values.",
                    measurements=all_names))
            elif g.status != QualityStatus.PASS:
                findings.append(QualityFinding(
                    code=f"image_artefacts_{g.series_type}",
                    message=f"{_pct(1 - g.good_share)} of the {g.n_slices} {g.series_type} slices scored show "
                    f"{self._artefact_text(g)}: check the images before using the values.",
                    measurements=all_names))
        coverage = None
        from_images = False
        predicted: dict[str, float] = {}
        types = set(self._types(analysis))
        lm = next(iter(result.prediction.label_maps.values()), None)
        if lm is not None:
            from medai.quality.features import Structures

            names = {lab.name: lab.value for lab in lm.labels}
            if "lv" in names and "myo" in names:
                s = Structures(lv=names["lv"], myo=names["myo"], rv=names.get("rv"))
                frames = self._frames(result)
                arr = lm.volume.array
                spacing = tuple(float(v) for v in lm.volume.spacing)[-3:]
                stats = result.prediction.extras.get("seg_slice_stats")
                if types & set(p.coverage_series):
                    ed = arr[frames[0]] if lm.volume.is_temporal else arr
                    es = arr[frames[1]] if lm.volume.is_temporal and len(frames) > 1 else None
                    images = self._images(result, frames, arr.shape)
                    coverage = qp.coverage(ed, s, es, spacing, images=images)
                    from_images = images is not None
                if types & set(p.seg_quality_series) and not result.corrected:  # a reader's contours: no estimate
                    per_frame = []
                    for f in frames:
                        a = arr[f] if lm.volume.is_temporal else arr
                        st = None if stats is None else (stats[f] if stats.ndim == 4 else stats)
                        per_frame.append(qp.predicted_dice(
                            a, spacing, st, s, {k: v for k, v in names.items() if k in p.min_predicted_dice},
                            state["artefacts"]))
                    for k in per_frame[0] if per_frame else []:
                        predicted[k] = round(float(np.mean([d[k] for d in per_frame if k in d])), 4)
        if coverage is not None:
            section.flags = [f for f in section.flags if f.code not in _RULE_COVERAGE_FLAGS]
            vol_names = [m.name for m in section.measurements if m.segment in ("lv", "myo", "rv")]
            for end, where in (("basal", "the mitral valve plane"), ("apical", "the apex")):
                if coverage[end] >= qp.coverage_threshold(end, p.coverage_threshold, from_images):
                    findings.append(QualityFinding(
                        code=f"{end}_coverage_missing",
                        message=f"{end.capitalize()} LV slices are likely missing (probability {coverage[end]:.2f}): "
                        f"the stack may not reach {where}, so volumes, EF and mass may be wrong. Check coverage.",
                        measurements=vol_names))
        for k, d in predicted.items():
            lim = p.min_predicted_dice.get(k)
            if lim is not None and d < lim:
                affected = [m.name for m in section.measurements if m.segment == k]
                findings.append(QualityFinding(
                    code=f"segmentation_quality_{k}",
                    message=f"The {k.upper()} segmentation is predicted to score Dice {d:.2f} against a reader "
                    f"(below {lim:.2f}): review and correct the {k.upper()} contours before using its values.",
                    measurements=affected))
        status = worst([g.status for g in state["groups"]] + [f.status for f in findings])
        section.quality = QualityAssessment(
            model=qp.ref, status=status, findings=findings, series=state["groups"], coverage=coverage,
            predicted_dice=predicted, thresholds=p.model_dump(mode="json"), reader_corrected=result.corrected)
        marks: dict[str, list[str]] = {}
        for f in findings:
            for n in f.measurements:
                marks.setdefault(n, []).append(f.code)
            section.flags.append(QualityFlag(code=f.code, severity=Severity.WARNING, message=f.message))
        if marks:
            section.measurements = [m.model_copy(update={"review": sorted({*m.review, *marks[m.name]})})
                                    if m.name in marks else m for m in section.measurements]
            result.prediction.measurements = list(section.measurements)
        result.timings_s["quality"] = state["seconds"] + time.perf_counter() - t0

    @staticmethod
    def _frames(result: AnalysisResult) -> list[int]:
        ex = result.prediction.extras
        frames = [ex.get("ed_frame"), ex.get("es_frame")]
        return [int(f) for f in frames if f is not None] or [0]
