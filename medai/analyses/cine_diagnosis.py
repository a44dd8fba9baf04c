"""``cine_diagnosis``: 5-class diagnosis suggestion from the cine function analysis (ACDC groups).

prior ``cine_function`` result (label map, ED/ES frames) + PatientSize/PatientWeight ->
:class:`~medai.cardiac.dx_predictor.CineDxPredictor` (features by modality, fused classifier) -> a report section
with the calibrated class probabilities (coded, SNOMED CT where a concept exists), the modalities used and how much
each contributed, and the features that drove the suggestion. It reads no image itself: the quality gate judged the
cine it derives from, and a cine section that needs review makes this one need review too.
Config: ``configs/analyses/cine_diagnosis.yaml``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from medai.analyses.base import ANALYSES, Analysis, AnalysisResult, ModelProvider, Progress
from medai.domain.prediction import QualityFlag, QualityStatus, ReportSection, Severity
from medai.domain.study import Study
from medai.errors import ConfigError, SeriesSelectionError

SOURCE = "cine_function"


class DiagnosisParams(BaseModel):
    """``params`` of ``configs/analyses/cine_diagnosis.yaml``."""

    model_config = ConfigDict(extra="forbid")

    top_features: int = Field(8, ge=1, le=50)
    review_below: float = Field(0.6, ge=0.0, le=1.0)


@ANALYSES.register("cine_diagnosis")
class CineDiagnosis(Analysis):
    """Diagnosis suggestion from the cine segmentation."""

    def _params(self) -> DiagnosisParams:
        try:
            return DiagnosisParams.model_validate(self.config.params)
        except ValueError as exc:
            raise ConfigError(f"configs/analyses/{self.kind}.yaml: invalid params: {exc}") from exc

    def run(self, study: Study, models: ModelProvider, progress: Progress,
            prior: Mapping[str, AnalysisResult] | None = None) -> AnalysisResult:
        from medai.cardiac.dx_predictor import CineDxPredictor
        from medai.measurements import patient_info

        params = self._params()
        cine = (prior or {}).get(SOURCE)
        if cine is None or "cine_sax" not in cine.prediction.label_maps:
            raise SeriesSelectionError(
                f"{self.config.title} needs the {SOURCE} analysis of the same study, which did not run or gave no "
                "segmentation; run both (medai analyze runs them together) on a study with a cine short-axis stack.",
                details={"analysis": self.kind, "requires": SOURCE})
        predictor = self.model("dx", models)
        if not isinstance(predictor, CineDxPredictor):
            raise ConfigError(f"{self.config.models['dx']} is a {predictor.metadata.predictor} package, not cine_dx")
        progress("diagnosis")
        ex = cine.prediction.extras
        labelmap = cine.prediction.label_maps["cine_sax"]
        pred = predictor.predict_cine(labelmap, int(ex["ed_frame"]), int(ex["es_frame"]), patient_info(study))
        flags: list[QualityFlag] = list(pred.flags)
        seg_model = cine.prediction.model
        if seg_model.name != predictor.config.seg_model:
            flags.append(QualityFlag(
                code="dx_segmentation_model_differs", severity=Severity.WARNING,
                message=f"The diagnosis model was trained on {predictor.config.seg_model} features; this cine was "
                        f"segmented by {seg_model.name} {seg_model.version}."))
        top = max(pred.classes, key=lambda c: c.probability)
        if top.probability < params.review_below:
            flags.append(QualityFlag(
                code="dx_uncertain", severity=Severity.WARNING,
                message=f"Most probable class {top.name} has probability {top.probability:.2f} "
                        f"(< {params.review_below:.2f}): an uncertain suggestion."))
        q = cine.section.quality
        if q is not None and q.status != QualityStatus.PASS:
            flags.append(QualityFlag(
                code="dx_input_needs_review", severity=Severity.WARNING,
                message=f"The cine segmentation this suggestion is built on needs review ({q.status.value}): "
                        "check it before using the diagnosis."))
        attributions = dict(list(pred.extras["feature_attributions"].items())[: params.top_features])
        by_name = {c.name: c for c in predictor.config.classes}
        summary: dict[str, Any] = {
            "analysis": "cine_diagnosis",
            "predicted_class": top.name,
            "predicted_display": by_name[top.name].display if top.name in by_name else top.name,
            "probability": top.probability,
            "estimator": pred.extras["estimator"],
            "modalities_used": pred.extras["modalities_used"],
            "modalities_missing": [m for m in predictor.config.modalities if m not in pred.extras["modalities_used"]],
            "modality_contributions": pred.extras["modality_contributions"],
            "feature_attributions": attributions,
            "attribution_method": pred.extras["attribution_method"],
            "features": pred.extras["features"],
            "segmentation_model": {"name": seg_model.name, "version": seg_model.version},
            "decision_support": "a suggestion for the reporting cardiologist, not a diagnosis",
        }
        if "modality_weights" in pred.extras:
            summary["modality_weights"] = pred.extras["modality_weights"]
        section = ReportSection(kind=self.kind, title=self.config.title, models=[pred.model],
                                series=cine.section.series,
                                flags=flags, classes=list(pred.classes), summary=summary)
        return AnalysisResult(kind=self.kind, section=section, prediction=pred)

    def pdf_story(self, section: ReportSection, figures: dict[str, bytes], kit: Any) -> list[Any]:
        return kit.diagnosis_story(section)
