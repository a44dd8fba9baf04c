"""``cine_function``: cine short-axis ventricular function (LV/RV volumes, EF, mass, wall thickness).

study -> cine SAX selection -> :class:`~medai.cardiac.predictor.CineSegPredictor` (segmentation, ED/ES, coded
measurements, quality flags) -> a report section with the phases, the volume curve and the AHA wall thickness.
Config: ``configs/analyses/cine_function.yaml``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from medai.analyses.base import ANALYSES, Analysis, AnalysisResult, Correction, ModelProvider, Progress
from medai.domain.prediction import Prediction, ReportSection
from medai.domain.study import SeriesType, Study

_WALL_PREFIX = "lv_wall_thickness_aha"


def series_rows(study: Study, uids: set[str]) -> list[dict[str, Any]]:
    """The report's description of the analysed series."""
    return [
        {"series_instance_uid": s.SeriesInstanceUID, "series_number": s.SeriesNumber, "modality": s.Modality,
         "series_description": s.SeriesDescription, "series_type": s.series_type.value, "n_instances": len(s)}
        for s in study.series if s.SeriesInstanceUID in uids
    ]


@ANALYSES.register("cine_function")
class CineFunction(Analysis):
    """Cine CMR ventricular function."""

    def run(self, study: Study, models: ModelProvider, progress: Progress,
            prior: Mapping[str, AnalysisResult] | None = None) -> AnalysisResult:
        from medai.cardiac.predictor import CineSegPredictor

        predictor = self.model("seg", models)
        progress("preprocessing")
        if isinstance(predictor, CineSegPredictor):
            prediction = predictor.predict(study, progress=progress)
        else:
            prediction = predictor.predict(study)
        return self.result(study, prediction)

    def remeasure(self, study: Study, correction: Correction, models: ModelProvider, progress: Progress,
                  prior: Mapping[str, AnalysisResult] | None = None) -> AnalysisResult:
        """Phases, measurements and flags of a corrected ``cine_sax`` label map, by the predictor's own
        :meth:`~medai.cardiac.predictor.CineSegPredictor.measure` (the model is not run). The ED/ES frames of the
        corrected version stay those given in ``correction.params`` (``ed_frame``, ``es_frame``): a correction of
        the ED contour must not move ED to another frame behind the reader's back."""
        from medai.cardiac.predictor import CineSegPredictor
        from medai.dicom.classify import select_series
        from medai.dicom.volumes import build_cine
        from medai.domain.prediction import QualityFlag, Severity
        from medai.domain.volume import LabelMap, Volume
        from medai.errors import InputValidationError

        predictor = self.model("seg", models)
        label_maps = correction.label_maps
        if not isinstance(predictor, CineSegPredictor) or "cine_sax" not in label_maps:
            raise InputValidationError("a cine correction needs the cine_sax label map and a cine_sax_seg model")
        progress("measurement")
        series = select_series(study, SeriesType.CINE_SAX)
        volume = build_cine(series if len(series) > 1 else series[0])
        edited: LabelMap = label_maps["cine_sax"]
        if edited.volume.array.shape != volume.array.shape:
            raise InputValidationError(f"the corrected label map is {list(edited.volume.array.shape)}; the cine is "
                                       f"{list(volume.array.shape)}")
        lm = LabelMap(volume=Volume(array=edited.volume.array.astype("uint8"), affine=volume.affine,
                                    frame_of_reference_uid=volume.frame_of_reference_uid,
                                    frame_times_ms=volume.frame_times_ms, source_series_uid=volume.source_series_uid,
                                    source_sop_uids=volume.source_sop_uids), labels=edited.labels)
        ed, es = correction.params.get("ed_frame"), correction.params.get("es_frame")
        prediction = predictor.measure(study, series, volume, lm, {},
                                       phases=(int(ed), int(es)) if ed is not None and es is not None else None)
        prediction.flags.append(QualityFlag(code="reader_corrected", severity=Severity.INFO,
                                            message="measured on a segmentation corrected by a reader"))
        return self.result(study, prediction)

    def result(self, study: Study, prediction: Prediction) -> AnalysisResult:
        """The section of a cine prediction (measurements, flags, phases, curve, wall thickness; no arrays)."""
        ex = prediction.extras
        img = ex.get("image")
        summary: dict[str, Any] = {
            "analysis": "cine_sax_function",
            "ed_frame": ex.get("ed_frame"),
            "es_frame": ex.get("es_frame"),
            "phase_source": ex.get("phase_source"),
            "volume_curve": ex.get("volume_curve"),
            "wall_thickness_mm": {str(k): v for k, v in (ex.get("wall_thickness_mm") or {}).items()},
            "wall_thickness_model": "AHA 16-segment (Cerqueira et al., Circulation 2002)",
        }
        if img is not None:
            summary["cine_shape_tzyx"] = list(img.array.shape)
            summary["spacing_mm_zyx"] = [round(s, 4) for s in img.spacing]
        section = ReportSection(
            kind=self.kind, title=self.config.title, models=[prediction.model],
            series=series_rows(study, set(ex.get("series_uids", []))),
            measurements=list(prediction.measurements), flags=list(prediction.flags), summary=summary)
        return AnalysisResult(kind=self.kind, section=section, prediction=prediction,
                              timings_s=dict(ex.get("timings_s") or {}))

    # -- renderings ------------------------------------------------------------------------------------------------
    def figures(self, result: AnalysisResult) -> dict[str, bytes]:
        from medai.reports.pdf import report_figures

        return report_figures(result.section, result.prediction)

    def table_measurements(self, section: ReportSection) -> list[Any]:
        return [m for m in section.measurements if not m.name.startswith(_WALL_PREFIX)]

    def pdf_story(self, section: ReportSection, figures: dict[str, bytes], kit: Any) -> list[Any]:
        return kit.cine_story(section, figures)
