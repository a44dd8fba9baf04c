"""ACDC patients as diagnosis inputs, and their feature table (segmented once per segmentation model, cached).

:func:`acdc_patients` reads the official release layout (``patientNNN/Info.cfg`` + ED/ES frames; the test set's
folders without ``_gt`` masks work too) into :class:`DxCase` objects: the ED and ES volumes at their true spacing,
height and weight, and the group when ``Info.cfg`` has one. :func:`feature_table` segments each case with the cine
predictor (``CineSegPredictor.segment_volume`` on the stacked ED/ES frames, as :meth:`CineDxPredictor.predict_volumes`
does) and measures :func:`medai.cardiac.dx_features.cine_dx_features`. No ground-truth mask is read unless
``source="reference"`` asks for features of the reference labels (a comparison, never an input of evaluation).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medai.cardiac.dx_features import cine_dx_features, feature_names
from medai.cardiac.dx_predictor import stack_ed_es
from medai.domain.volume import LabelMap, Volume
from medai.errors import ConfigError
from medai.measurements.cardiac import PatientInfo

logger = logging.getLogger(__name__)


@dataclass
class DxCase:
    """One ACDC patient: ED/ES image volumes, patient info, group (None when unknown) and reference masks."""

    patient_id: str
    ed: Volume
    es: Volume
    patient: PatientInfo
    group: str | None
    reference: np.ndarray | None  # (2, Z, Y, X) uint8 ED/ES reference labels, ACDC convention, or None


def read_dx_case(folder: Path) -> DxCase:
    """One official-layout patient folder as a :class:`DxCase`."""
    from medai.datasets.acdc import read_acdc_patient, read_info_cfg

    ed_case, es_case = read_acdc_patient(folder)
    meta = ed_case.meta
    height = meta.get("height_cm")
    weight = meta.get("weight_kg")
    info = read_info_cfg(Path(folder) / "Info.cfg")
    patient = PatientInfo(height_m=float(height) / 100.0 if height else None,
                          weight_kg=float(weight) if weight else None)
    ref = None
    if ed_case.label is not None and es_case.label is not None:
        ref = np.stack([ed_case.label, es_case.label])
    return DxCase(patient_id=ed_case.patient_id, ed=ed_case.to_volume(), es=es_case.to_volume(), patient=patient,
                  group=info.get("Group") or None, reference=ref)


def acdc_patient_dirs(root: Path, split: str | None = None, patients: Iterable[str] | None = None) -> list[Path]:
    """Patient folders of an official-layout ACDC folder (release root, ``training/`` or one patient folder)."""
    from medai.datasets.acdc import _patient_dirs, acdc_split_patients

    root = Path(root)
    if (root / "Info.cfg").is_file():
        return [root]
    dirs = _patient_dirs(root)
    if not dirs:
        raise ConfigError(f"no patientNNN/Info.cfg folders in {root}; expected the official ACDC layout")
    if split is not None:
        keep = set(acdc_split_patients(root, split))
        dirs = [d for d in dirs if d.name in keep]
    if patients is not None:
        keep = set(patients)
        dirs = [d for d in dirs if d.name in keep]
    if not dirs:
        raise ConfigError(f"no patient of {root} matches split={split!r} patients={patients!r}")
    return dirs


def reference_labelmap(case: DxCase, labels: Any) -> LabelMap:
    """The reference ED/ES masks of a case as a two-frame label map (labels: the cine predictor's table)."""
    if case.reference is None:
        raise ConfigError(f"{case.patient_id} has no reference masks")
    vol = stack_ed_es(case.ed, case.es)
    return LabelMap(volume=vol.with_array(case.reference.astype(np.uint8)), labels=labels)


def case_features(seg_predictor: Any, case: DxCase, source: str = "model") -> dict[str, float]:
    """Diagnosis features of one case from the model's segmentation (``source="model"``) or the reference."""
    if source == "reference":
        lm = reference_labelmap(case, seg_predictor.labels)
    else:
        lm = seg_predictor.segment_volume(stack_ed_es(case.ed, case.es))
    return cine_dx_features(lm, 0, 1, case.patient)


def _cache_key(seg_predictor: Any, dirs: list[Path], source: str) -> str:
    h = hashlib.sha256()
    h.update(f"{seg_predictor.metadata.name}:{seg_predictor.metadata.version}:{source}:v1".encode())
    w = seg_predictor.package_dir / "weights.pt"
    if w.is_file():
        h.update(str(w.stat().st_size).encode() + str(w.stat().st_mtime_ns).encode())
    cfg = getattr(seg_predictor, "config", None)  # how the weights are run (e.g. test-time augmentation)
    if cfg is not None and hasattr(cfg, "model_dump_json"):
        h.update(cfg.model_dump_json().encode())
    for d in dirs:
        h.update(str(d.resolve()).encode())
    return h.hexdigest()[:16]


def feature_table(
    seg_predictor: Any,
    root: Path,
    *,
    split: str | None = None,
    patients: Iterable[str] | None = None,
    source: str = "model",
    cache_dir: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """One row per patient: ``patient``, ``group``, then :func:`feature_names` columns.

    Args:
        seg_predictor: a loaded cine segmentation predictor.
        root: official-layout ACDC folder.
        split / patients: selection (see :func:`acdc_patient_dirs`).
        source: ``"model"`` (segmentation by ``seg_predictor``) or ``"reference"`` (the ``_gt`` masks).
        cache_dir: when given, the table is cached there (keyed by model version, weights and folders).
        progress: called with one line per patient.
    """
    dirs = acdc_patient_dirs(root, split, patients)
    cache = None
    if cache_dir is not None:
        cache = Path(cache_dir) / f"acdc_dx_features_{_cache_key(seg_predictor, dirs, source)}.csv"
        if cache.is_file():
            return pd.read_csv(cache)
    rows = []
    t0 = time.perf_counter()
    for i, d in enumerate(dirs):
        case = read_dx_case(d)
        feats = case_features(seg_predictor, case, source)
        rows.append({"patient": case.patient_id, "group": case.group, **feats})
        if progress is not None:
            progress(f"features {i + 1}/{len(dirs)} {case.patient_id} ({time.perf_counter() - t0:.0f} s)")
    df = pd.DataFrame(rows, columns=["patient", "group", *feature_names()])
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp")
        df.to_csv(tmp, index=False)
        tmp.replace(cache)
    return df
