"""Registered steps that wrap every analysis (the quality gate first): an analysis never calls them itself.

A step kind is one module ``medai/analyses/steps/<kind>.py`` registering a :class:`Step` subclass in
:data:`STEPS`, plus one config ``configs/steps/<kind>.yaml`` (:class:`StepConfig`). For each analysis the runner
calls every step's :meth:`Step.before` (in ``order``) before :meth:`Analysis.run`, and its :meth:`Step.after` on
the result; a step may refuse the analysis by raising a :class:`~medai.errors.MedaiError`.
"""

from __future__ import annotations

import importlib
import importlib.util
import threading
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from medai.analyses.base import Analysis, AnalysisResult, ModelProvider, Progress, read_kind_config
from medai.domain.study import Study
from medai.registry import Registry
from medai.settings import REPO_ROOT

#: Where the step configs live.
CONFIG_DIR = REPO_ROOT / "configs" / "steps"


class StepConfig(BaseModel):
    """``configs/steps/<kind>.yaml``: kind (= module name), title, order, model packages by role, parameters."""

    model_config = ConfigDict(extra="forbid")

    kind: str = Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=32)
    title: str
    order: int = 100
    enabled: bool = True
    models: dict[str, str] = Field(default_factory=dict)
    params: dict[str, Any] = Field(default_factory=dict)


class Step(ABC):
    """Base class of the steps that wrap every analysis."""

    def __init__(self, config: StepConfig) -> None:
        self.config = config

    @property
    def kind(self) -> str:
        """The registry name."""
        return self.config.kind

    @abstractmethod
    def before(self, analysis: Analysis, study: Study, models: ModelProvider, progress: Progress) -> Any:
        """Run before ``analysis``; the returned state is handed to :meth:`after`.

        Raises:
            MedaiError: the analysis must not run (the message says why and what to do).
        """

    @abstractmethod
    def after(self, analysis: Analysis, result: AnalysisResult, state: Any, models: ModelProvider,
              progress: Progress) -> None:
        """Amend ``result`` (its section's flags, measurements, quality) after the analysis ran."""


#: Step classes by kind.
STEPS: Registry[type[Step]] = Registry("analysis step")

_lock = threading.Lock()
_catalogue: dict[Path, list[Step]] = {}


def read_step_config(path: Path) -> StepConfig:
    """Read and validate one step config (the file is named after its kind)."""
    cfg: StepConfig = read_kind_config(path, StepConfig, "step config")
    return cfg


def steps(config_dir: Path | None = None) -> list[Step]:
    """The enabled steps in order (configs loaded once per folder)."""
    folder = Path(config_dir or CONFIG_DIR)
    with _lock:
        if folder not in _catalogue:
            found = []
            for path in sorted(folder.glob("*.yaml")):
                cfg = read_step_config(path)
                module = f"{__name__}.{cfg.kind}"
                if importlib.util.find_spec(module) is not None:
                    importlib.import_module(module)
                if cfg.enabled:
                    found.append(STEPS.get(cfg.kind)(cfg))
            found.sort(key=lambda s: (s.config.order, s.kind))
            _catalogue[folder] = found
        return list(_catalogue[folder])


__all__ = ["CONFIG_DIR", "STEPS", "Step", "StepConfig", "read_step_config", "steps"]
