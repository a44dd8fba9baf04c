"""Study-level analyses as plug-ins (see :mod:`medai.analyses.base` for the contract).

The catalogue is the set of configs in ``configs/analyses/*.yaml`` (one per kind). Each config's ``kind`` names
its implementation: the module ``medai.analyses.<kind>`` (imported by that stable name, so no import path is
stored in a config), or a class registered in :data:`~medai.analyses.base.ANALYSES` by a ``medai.plugins`` entry
point for analyses that live outside medai.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import threading
from pathlib import Path

from medai.analyses.base import (
    ANALYSES,
    Analysis,
    AnalysisConfig,
    AnalysisResult,
    MeasurementSpec,
    ModelProvider,
    SegOutput,
    read_kind_config,
)
from medai.errors import ConfigError
from medai.settings import REPO_ROOT

logger = logging.getLogger(__name__)

#: Where the analysis configs live.
CONFIG_DIR = REPO_ROOT / "configs" / "analyses"

_lock = threading.Lock()
_catalogue: dict[Path, dict[str, Analysis]] = {}


def read_config(path: Path) -> AnalysisConfig:
    """Read and validate one ``configs/analyses/<kind>.yaml``.

    Raises:
        ConfigError: not YAML, invalid fields (each named), or a file name that differs from its ``kind``.
    """
    cfg: AnalysisConfig = read_kind_config(path, AnalysisConfig, "analysis config")
    return cfg


def _implementation(kind: str) -> type[Analysis]:
    module = f"{__name__}.{kind}"
    if importlib.util.find_spec(module) is not None:
        importlib.import_module(module)  # registers itself in ANALYSES
    return ANALYSES.get(kind)


def _register_measurements(cfg: AnalysisConfig) -> None:
    from medai.measurements.registry import MEASUREMENTS, MeasurementDef

    for spec in cfg.measurements:
        d = MeasurementDef(spec.name, spec.code, spec.unit, spec.segment)
        if spec.name in MEASUREMENTS:
            if MEASUREMENTS.get(spec.name) != d:
                raise ConfigError(f"configs/analyses/{cfg.kind}.yaml: measurement {spec.name!r} is already "
                                  "registered with another code, unit or segment")
            continue
        MEASUREMENTS.add(spec.name, d)


def catalogue(config_dir: Path | None = None) -> dict[str, Analysis]:
    """Every configured analysis, by kind, in run order (loaded once per folder).

    Raises:
        ConfigError: an invalid config, or a kind without an implementation.
    """
    folder = Path(config_dir or CONFIG_DIR)
    with _lock:
        if folder not in _catalogue:
            found: list[Analysis] = []
            for path in sorted(folder.glob("*.yaml")):
                cfg = read_config(path)
                _register_measurements(cfg)
                found.append(_implementation(cfg.kind)(cfg))
            found.sort(key=lambda a: (a.config.order, a.kind))
            _catalogue[folder] = {a.kind: a for a in found}
        return dict(_catalogue[folder])


def analysis_kinds(config_dir: Path | None = None) -> list[str]:
    """The configured analysis kinds in run order."""
    return list(catalogue(config_dir))


def get_analysis(kind: str, config_dir: Path | None = None) -> Analysis:
    """The analysis of ``kind`` (or of one of its aliases).

    Raises:
        ConfigError: unknown kind; the message lists the known kinds.
    """
    cat = catalogue(config_dir)
    if kind in cat:
        return cat[kind]
    for a in cat.values():
        if kind in a.config.aliases:
            return a
    raise ConfigError(f"unknown analysis {kind!r}; known analyses: {', '.join(cat) or 'none'}")


__all__ = [
    "ANALYSES",
    "CONFIG_DIR",
    "Analysis",
    "AnalysisConfig",
    "AnalysisResult",
    "MeasurementSpec",
    "ModelProvider",
    "SegOutput",
    "analysis_kinds",
    "catalogue",
    "get_analysis",
    "read_config",
]
