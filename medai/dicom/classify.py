"""Series classification by rules kept as data (``configs/series/rules.yaml``), overridable by a user file.

Each series is described by header-only :class:`SeriesFeatures` (modality, SOP class, descriptions, ImageType,
number of slices and phases, orientation relative to the body axes, contrast, gating, inversion recovery); the
first rule whose conditions all hold gives :attr:`Series.series_type`. A study-level step then recognises short-axis
stacks stored as one series per slice (several single-slice cine series, parallel, at different positions).

:func:`select_series` is what analyses call: it returns the series of a type or raises
:class:`~medai.errors.SeriesSelectionError` naming what the study does have.
"""

from __future__ import annotations

import logging
import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from medai.dicom.frames import analyze_layout, frame_records, is_enhanced
from medai.dicom.tags import get_float, get_int, get_str, get_strs
from medai.domain.study import Series, SeriesType, Study
from medai.errors import ConfigError, SeriesSelectionError
from medai.settings import REPO_ROOT

logger = logging.getLogger(__name__)

DEFAULT_RULES = REPO_ROOT / "configs" / "series" / "rules.yaml"
Orientation = Literal["axial", "coronal", "sagittal", "oblique", "unknown"]
CINE_TYPES = (SeriesType.CINE_SAX, SeriesType.CINE_2CH, SeriesType.CINE_3CH, SeriesType.CINE_4CH, SeriesType.CINE_LAX)


class Match(BaseModel):
    """Conditions of one rule; all given conditions must hold (see ``configs/series/rules.yaml``)."""

    model_config = ConfigDict(extra="forbid")

    modality: list[str] | None = None
    sop_class_uid: list[str] | None = None
    description: str | None = None
    not_description: str | None = None
    image_type_any: list[str] | None = None
    image_type_all: list[str] | None = None
    min_phases: int | None = Field(default=None, ge=0)
    max_phases: int | None = Field(default=None, ge=0)
    min_declared_phases: int | None = Field(default=None, ge=0)
    min_slices: int | None = Field(default=None, ge=0)
    max_slices: int | None = Field(default=None, ge=0)
    orientation: list[Orientation] | None = None
    contrast: bool | None = None
    cardiac_gated: bool | None = None
    inversion_recovery: bool | None = None
    multiframe: bool | None = None

    @field_validator("description", "not_description")
    @classmethod
    def _regex(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(v)
            except re.error as exc:
                raise ValueError(f"invalid regular expression {v!r}: {exc}") from exc
        return v


class Rule(BaseModel):
    """A named rule: when ``match`` holds, the series is ``series_type``."""

    model_config = ConfigDict(extra="forbid")

    name: str
    series_type: SeriesType
    match: Match


class RuleSet(BaseModel):
    """A rules file. A user file's rules are tried before the defaults, or replace them when ``replace``."""

    model_config = ConfigDict(extra="forbid")

    version: int = 1
    replace: bool = False
    rules: list[Rule]
    #: at least this many parallel single-slice cine series at distinct positions form a short-axis stack
    stack_min_series: int = Field(default=3, ge=2)


class SeriesFeatures(BaseModel):
    """What the rules look at, read from the headers of one series."""

    modality: str
    sop_class_uid: str
    description: str
    image_type: list[str]
    n_instances: int
    n_frames: int
    n_slices: int
    n_phases: int
    declared_phases: int | None
    orientation: Orientation
    contrast: bool
    cardiac_gated: bool
    inversion_recovery: bool
    multiframe: bool


def series_features(series: Series) -> SeriesFeatures:
    """Header-only features of ``series`` (no pixel decoding)."""
    ds = series.instances[0].dataset if series.instances else None
    texts = []
    for kw in ("SeriesDescription", "ProtocolName", "SequenceName"):
        texts.append(get_str(ds, kw))
    records = frame_records(series)
    layout = analyze_layout(records)
    image_types: list[str] = []
    for inst in series.instances[:50]:
        for v in get_strs(inst.dataset, "ImageType"):
            if v not in image_types:
                image_types.append(v)
    scanning = get_strs(ds, "ScanningSequence")
    gated = (
        get_float(ds, "TriggerTime") is not None
        or (get_float(ds, "CardiacNumberOfImages") or 0) > 1
        or (bool(series.instances) and is_enhanced(series.instances[0]) and any(r.time_ms is not None for r in records))
        or get_str(ds, "CardiacSynchronizationTechnique") not in ("", "NONE")
    )
    return SeriesFeatures(
        modality=series.Modality or get_str(ds, "Modality").upper(),
        sop_class_uid=series.instances[0].SOPClassUID if series.instances else "",
        description=" | ".join(t for t in texts if t),
        image_type=image_types,
        n_instances=len(series.instances),
        n_frames=len(records),
        n_slices=layout.n_slices,
        n_phases=layout.n_phases,
        declared_phases=get_int(ds, "CardiacNumberOfImages"),
        orientation=layout.orientation,  # type: ignore[arg-type]
        contrast=bool(get_str(ds, "ContrastBolusAgent")),
        cardiac_gated=bool(gated),
        inversion_recovery=get_float(ds, "InversionTime") is not None or "IR" in scanning,
        multiframe=any((get_float(i.dataset, "NumberOfFrames") or 1) > 1 for i in series.instances[:5]),
    )


def rule_matches(match: Match, f: SeriesFeatures) -> bool:
    """True when every condition given in ``match`` holds for the features ``f``."""
    if match.modality is not None and f.modality.upper() not in {m.upper() for m in match.modality}:
        return False
    if match.sop_class_uid is not None and f.sop_class_uid not in match.sop_class_uid:
        return False
    if match.description is not None and not re.search(match.description, f.description, re.IGNORECASE):
        return False
    if match.not_description is not None and re.search(match.not_description, f.description, re.IGNORECASE):
        return False
    types = {t.upper() for t in f.image_type}
    if match.image_type_any is not None and not types & {t.upper() for t in match.image_type_any}:
        return False
    if match.image_type_all is not None and not {t.upper() for t in match.image_type_all} <= types:
        return False
    checks = [
        (match.min_phases, lambda v: f.n_phases >= v),
        (match.max_phases, lambda v: f.n_phases <= v),
        (match.min_declared_phases, lambda v: (f.declared_phases or 0) >= v),
        (match.min_slices, lambda v: f.n_slices >= v),
        (match.max_slices, lambda v: f.n_slices <= v),
        (match.orientation, lambda v: f.orientation in v),
        (match.contrast, lambda v: f.contrast == v),
        (match.cardiac_gated, lambda v: f.cardiac_gated == v),
        (match.inversion_recovery, lambda v: f.inversion_recovery == v),
        (match.multiframe, lambda v: f.multiframe == v),
    ]
    return all(cond is None or test(cond) for cond, test in checks)


def _read_rules(path: Path) -> RuleSet:
    try:
        data = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"series rules file {path} not found; pass an existing YAML file") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"series rules file {path} is not valid YAML: {exc}") from exc
    try:
        return RuleSet.model_validate(data)
    except ValidationError as exc:
        details = [{"field": ".".join(str(x) for x in e["loc"]), "problem": e["msg"]} for e in exc.errors()]
        raise ConfigError(f"series rules file {path} is invalid: {exc}", details=details) from exc


@lru_cache(maxsize=8)
def _default_rules() -> RuleSet:
    return _read_rules(DEFAULT_RULES)


def load_rules(user_file: Path | None = None) -> RuleSet:
    """The default rules, with a user file's rules tried first (or replacing them when it says ``replace: true``).

    Raises:
        ConfigError: a rules file is missing, not YAML, or does not follow the schema.
    """
    default = _default_rules()
    if user_file is None:
        return default
    user = _read_rules(Path(user_file))
    if user.replace:
        return user
    return RuleSet(version=user.version, rules=[*user.rules, *default.rules], stack_min_series=user.stack_min_series)


def classify_series(series: Series, rules: RuleSet | None = None) -> SeriesType:
    """Classify one series (sets and returns :attr:`Series.series_type`)."""
    rules = rules or load_rules()
    if not series.instances:
        series.series_type = SeriesType.UNKNOWN
        return series.series_type
    try:
        f = series_features(series)
    except Exception as exc:  # a damaged header must not stop the study
        logger.warning("classification features of series %s failed", series.SeriesInstanceUID, exc_info=True)
        series.problems.append(f"could not read classification features: {type(exc).__name__}: {exc}")
        series.series_type = SeriesType.UNKNOWN
        return series.series_type
    for rule in rules.rules:
        if rule_matches(rule.match, f):
            logger.debug("series %s matched rule %s", series.SeriesInstanceUID, rule.name)
            series.series_type = rule.series_type
            if rule.series_type in CINE_TYPES and f.declared_phases and f.n_phases < f.declared_phases:
                note = (
                    f"holds {f.n_phases} of the {f.declared_phases} cardiac phases it declares (CardiacNumberOfImages)"
                    " per slice: an incomplete cine (e.g. only the contoured ED/ES frames)"
                )
                if note not in series.problems:
                    series.problems.append(note)
            return series.series_type
    series.series_type = SeriesType.UNKNOWN
    return series.series_type


def _stack_single_slice_cines(study: Study, min_series: int) -> None:
    """Recognise a short-axis stack stored as one series per slice.

    Single-slice cine MR series (typed cine LAX by geometry, or untyped) that are parallel and lie at distinct
    positions, at least ``min_series`` of them, are a short-axis stack: they become ``cine_sax``.
    """
    candidates = []
    for s in study.series:
        if s.Modality != "MR" or s.series_type not in (SeriesType.CINE_LAX, SeriesType.MR_OTHER, SeriesType.UNKNOWN):
            continue
        desc = " ".join(get_str(s.instances[0].dataset, k) for k in ("SeriesDescription", "ProtocolName"))
        if re.search(r"lax|long.?axis|2.?ch|3.?ch|4.?ch|lvot", desc, re.IGNORECASE):
            continue
        layout = analyze_layout(frame_records(s))
        if layout.n_slices == 1 and layout.n_phases >= 5 and layout.normal is not None:
            candidates.append((s, layout))
    groups: list[list[tuple[Series, object]]] = []
    for s, lay in candidates:
        for g in groups:
            ref = g[0][1]
            if abs(abs(float(np.dot(ref.normal, lay.normal))) - 1.0) < 1e-3:  # type: ignore[attr-defined]
                g.append((s, lay))
                break
        else:
            groups.append([(s, lay)])
    for g in groups:
        ref = g[0][1]
        positions = {round(float(np.dot(lay.grid[0][0].ipp, ref.normal)), 1) for _, lay in g}  # type: ignore[attr-defined]
        if len(g) >= min_series and len(positions) >= min_series:
            for s, _ in g:
                s.series_type = SeriesType.CINE_SAX


def classify_study(study: Study, rules: RuleSet | None = None) -> Study:
    """Classify every series of ``study`` in place (and return it)."""
    rules = rules or load_rules()
    for series in study.series:
        classify_series(series, rules)
    _stack_single_slice_cines(study, rules.stack_min_series)
    return study


def select_series(study: Study, *types: SeriesType) -> list[Series]:
    """The series of ``study`` with one of ``types`` (in study order).

    Raises:
        SeriesSelectionError: none found; the message names the series the study has.
    """
    found = study.series_of_type(*types)
    if found:
        return found
    have = ", ".join(
        f"#{s.SeriesNumber if s.SeriesNumber is not None else '?'} {s.Modality} {s.SeriesDescription!r} "
        f"({s.series_type.value}, {len(s)} instances)"
        for s in study.series
    )
    wanted = " or ".join(t.value for t in types)
    raise SeriesSelectionError(
        f"Study {study.StudyInstanceUID} has no {wanted} series. It has: {have or 'no series'}. "
        "Send a study that contains one, or pass a rules file that classifies your series "
        "(configs/series/rules.yaml shows the format).",
        details={"wanted": [t.value for t in types], "series": [s.series_type.value for s in study.series]},
    )
