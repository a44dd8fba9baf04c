"""The analysis plug-in contract: :class:`Analysis`, its :class:`AnalysisConfig` and the :data:`ANALYSES` registry.

An analysis kind (``cine_function``, ``lge_scar``; later ``echo_function``, ``cta_coronary``, ``diagnosis``) is one
module ``medai/analyses/<kind>.py`` that registers a subclass of :class:`Analysis` under its kind, plus one config
``configs/analyses/<kind>.yaml`` (:class:`AnalysisConfig`): the series types it needs (from
``configs/series/rules.yaml``), its model packages by role, the measurements it produces (registered in
:data:`medai.measurements.registry.MEASUREMENTS` when they are not yet), its output files and its parameters.

``medai analyze``, the API's job runner and ``POST /v1/analyses`` iterate the registry through
:func:`medai.analyses.runner.run_study_analyses`; none of them names an analysis.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from medai.domain.codes import Code, Unit
from medai.domain.prediction import Prediction, ReportSection
from medai.domain.study import SeriesType, Study
from medai.registry import Registry

if TYPE_CHECKING:
    from medai.inference.predictor import Predictor

logger = logging.getLogger(__name__)

#: ``provider(package_ref) -> loaded Predictor``: how an analysis gets its models (CLI: a cache over
#: ``Predictor.from_package``; API: the served model registry).
ModelProvider = Callable[[str], "Predictor"]
#: Called with a stage name as an analysis proceeds.
Progress = Callable[[str], None]


class MeasurementSpec(BaseModel):
    """A measurement an analysis produces: stable name, coded concept, UCUM unit, label-map segment."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    code: Code
    unit: Unit
    segment: str | None = None


class AnalysisConfig(BaseModel):
    """``configs/analyses/<kind>.yaml``.

    Attributes:
        kind: stable registry name; also the module ``medai/analyses/<kind>.py`` that implements it.
        title: heading of its report section and PDF page.
        order: analyses run and render in ascending order.
        aliases: older names accepted for this kind (e.g. the API's ``cine_cmr``).
        series: series types it needs (all must be present for it to apply).
        requires: analysis kinds whose results it consumes (run before it, passed to :meth:`Analysis.run` as
            ``prior``; selecting it selects them). A derived analysis (diagnosis from the cine segmentation) reads
            no image of its own, so the quality gate judges its inputs, not it.
        models: model package reference by role (``seg: heart_mr_cine_seg``).
        outputs: output kind -> file name of the renderings specific to this analysis (``seg: seg.dcm``).
        measurements: measurements it produces that are not registered yet (tables are data).
        params: analysis parameters (validated by the analysis itself).
    """

    model_config = ConfigDict(extra="forbid")

    kind: str = Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=32)
    title: str
    order: int = 100
    aliases: list[str] = Field(default_factory=list)
    series: list[SeriesType] = Field(min_length=1)
    requires: list[str] = Field(default_factory=list)
    models: dict[str, str] = Field(default_factory=dict)
    outputs: dict[str, str] = Field(default_factory=dict)
    measurements: list[MeasurementSpec] = Field(default_factory=list)
    params: dict[str, Any] = Field(default_factory=dict)


@dataclass
class SegOutput:
    """One DICOM SEG an analysis writes: file name, which label map of the prediction, which frames (cine)."""

    file: str
    role: str


@dataclass
class Correction:
    """A reader's correction of an analysis: its label maps (``role -> LabelMap`` in the source geometry) and the
    choices the reader kept (``params``: e.g. ``{"ed_frame": 0, "es_frame": 7}``, the phases measured)."""

    label_maps: Mapping[str, Any]
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class AnalysisResult:
    """What one analysis produced: its report section and the prediction behind it (label maps, image, extras)."""

    kind: str
    section: ReportSection
    prediction: Prediction
    timings_s: dict[str, float] = field(default_factory=dict)
    corrected: bool = False  # measured on a reader's corrected label maps (:meth:`Analysis.remeasure`)


class Analysis(ABC):
    """Base class of every analysis plug-in.

    Subclasses implement :meth:`run`; they may override :meth:`seg_outputs`, :meth:`figures` and
    :meth:`pdf_story` to change how their section renders (the defaults write one SEG per label map named in
    ``config.outputs``, no figures, and a measurement table with the section's flags).
    """

    def __init__(self, config: AnalysisConfig) -> None:
        self.config = config

    @property
    def kind(self) -> str:
        """The registry name."""
        return self.config.kind

    def missing_series(self, study: Study) -> list[SeriesType]:
        """The needed series types the study lacks."""
        present = {s.series_type for s in study.series}
        return [t for t in self.config.series if t not in present]

    def applicable(self, study: Study) -> bool:
        """Whether every series type the analysis needs is present."""
        return not self.missing_series(study)

    def model(self, role: str, models: ModelProvider) -> Predictor:
        """The loaded predictor of the model configured for ``role``."""
        from medai.errors import ConfigError

        if role not in self.config.models:
            raise ConfigError(f"configs/analyses/{self.kind}.yaml names no model for role {role!r}; "
                              f"it names: {', '.join(self.config.models) or 'none'}")
        return models(self.config.models[role])

    @abstractmethod
    def run(self, study: Study, models: ModelProvider, progress: Progress,
            prior: Mapping[str, AnalysisResult] | None = None) -> AnalysisResult:
        """Analyse ``study`` (series selection, prediction, measurements, flags) and return the section.

        ``prior`` holds the results of the analyses that ran before this one in the same study run (by kind); an
        analysis that ``requires`` others reads them there.

        Raises:
            SeriesSelectionError: a needed series is missing or unusable (the message names the series present).
        """

    def remeasure(self, study: Study, correction: Correction, models: ModelProvider, progress: Progress,
                  prior: Mapping[str, AnalysisResult] | None = None) -> AnalysisResult:
        """Measure a reader's corrected label maps by the same code that measures the model's, with no inference.
        Analyses whose segmentation a reader may not correct keep this default, which refuses.

        Raises:
            InputValidationError: this analysis takes no corrections, or the maps do not fit the study.
        """
        from medai.errors import InputValidationError

        raise InputValidationError(f"analysis {self.kind} does not take corrected segmentations")

    # -- renderings ------------------------------------------------------------------------------------------------
    def seg_outputs(self, result: AnalysisResult) -> list[SegOutput]:
        """The SEGs to write: ``config.outputs["seg"]`` for the prediction's label map (first one)."""
        name = self.config.outputs.get("seg")
        roles = list(result.prediction.label_maps)
        if not name or not roles:
            return []
        return [SegOutput(file=name, role=roles[0])]

    def figures(self, result: AnalysisResult) -> dict[str, bytes]:
        """PNG figures of the section by name (saved under ``figures/`` and shown on its PDF page)."""
        return {}

    def pdf_story(self, section: ReportSection, figures: dict[str, bytes], kit: Any) -> list[Any]:
        """reportlab flowables of the section's PDF page after the measurement table and the flags.

        Args:
            section: the section to render.
            figures: this section's figures (:meth:`figures`).
            kit: :mod:`medai.reports.pdf` (styles and building blocks: ``kit.image``, ``kit.styles()``...).
        """
        return []

    def table_measurements(self, section: ReportSection) -> list[Any]:
        """The measurements shown in the section's PDF table (default: all)."""
        return list(section.measurements)

    def sr_measurements(self, section: ReportSection) -> list[Any]:
        """The measurements rendered into the study SR (default: all; JSON and FHIR always carry all)."""
        return list(section.measurements)


def read_kind_config(path: Any, model: Any, what: str) -> Any:
    """Read and validate a ``configs/<area>/<kind>.yaml`` into pydantic ``model`` (which has a ``kind`` field).

    Raises:
        ConfigError: not YAML, invalid fields (each named), or a file name that differs from its ``kind``.
    """
    from pathlib import Path

    import yaml
    from pydantic import ValidationError

    from medai.errors import ConfigError

    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path} is not readable YAML: {exc}") from exc
    try:
        cfg = model.model_validate(doc)
    except ValidationError as exc:
        errs = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"{path} is not a valid {what}: {errs}") from exc
    if Path(path).stem != cfg.kind:
        raise ConfigError(f"{path} declares kind {cfg.kind!r}; name the file {cfg.kind}.yaml")
    return cfg


#: Analysis classes by kind (filled by ``medai/analyses/<kind>.py`` modules and ``medai.plugins`` entry points).
ANALYSES: Registry[type[Analysis]] = Registry("analysis")
