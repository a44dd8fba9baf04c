"""Real short-axis slices (ACDC cine, EMIDEC LGE, Sunnybrook cine) split by patient, and simulated-artefact samples.

Held out, never trained or tuned on: the ACDC ``val`` split of ``splits.csv`` (20 patients), EMIDEC fold 0 of
:func:`medai.datasets.emidec.emidec_folds` (the LGE model's held-out fold) and the Sunnybrook patients that
:func:`heldout_sunnybrook` names (a hash split).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medai.datasets.base import split_by_patient
from medai.quality.preprocess import prepare_slices
from medai.quality.simulate import ARTEFACTS, corrupt

logger = logging.getLogger(__name__)

SOURCES = ("acdc", "emidec", "sunnybrook")


@dataclass
class RealSlice:
    """One real 2-D slice: its source dataset, patient, sequence (``cine`` / ``lge``) and pixels ``(Y, X)``."""

    source: str
    patient: str
    sequence: str
    image: np.ndarray


def heldout_sunnybrook(patients: Iterable[str]) -> set[str]:
    """The Sunnybrook patients held out (a salted hash split, ~40 %)."""
    split = split_by_patient(patients, fractions=(0.6, 0.4), names=("train", "heldout"), seed="medai-quality")
    return {p for p, s in split.items() if s == "heldout"}


def acdc_slices(root: Path, split: str) -> list[RealSlice]:
    """Every slice of the ED and ES frames of an ACDC split."""
    from medai.datasets.acdc import load_acdc_release

    return [RealSlice("acdc", c.patient_id, "cine", np.asarray(z, dtype=np.float32))
            for c in load_acdc_release(root, split=split) for z in c.image]


def emidec_slices(root: Path, heldout: bool) -> list[RealSlice]:
    """EMIDEC slices of the training folds (1-4) or of held-out fold 0."""
    from medai.datasets.emidec import emidec_case_ids, fold_split, load_emidec

    train, held = fold_split(emidec_case_ids(root), 0)
    return [RealSlice("emidec", c.patient_id, "lge", np.asarray(z, dtype=np.float32))
            for c in load_emidec(root, held if heldout else train) for z in c.image]


def sunnybrook_slices(root: Path, heldout: bool) -> list[RealSlice]:
    """Every image of the Sunnybrook DICOM folders of the training or held-out patients."""
    import pydicom

    folders = sorted(p for p in (Path(root) / "dicoms").iterdir() if p.is_dir())
    held = heldout_sunnybrook(p.name for p in folders)
    out = []
    for folder in folders:
        if (folder.name in held) != heldout:
            continue
        for f in sorted(folder.glob("*.dcm")):
            ds = pydicom.dcmread(f)
            out.append(RealSlice("sunnybrook", folder.name, "cine", ds.pixel_array.astype(np.float32)))
    return out


def real_slices(data_root: Path, heldout: bool, sources: Sequence[str] = SOURCES) -> list[RealSlice]:
    """The real slices of the training patients, or of the held-out ones, from ``data_root`` (``cardiac/``)."""
    data_root = Path(data_root)
    out: list[RealSlice] = []
    if "acdc" in sources:
        out += acdc_slices(data_root / "acdc", "val" if heldout else "train")
    if "emidec" in sources:
        out += emidec_slices(data_root / "emidec", heldout)
    if "sunnybrook" in sources:
        out += sunnybrook_slices(data_root / "sunnybrook", heldout)
    return out


@dataclass
class Samples:
    """Network-ready samples: ``x`` ``(N, 1, S, S)`` float16, ``presence`` / ``severity`` ``(N, K)`` float32."""

    x: Any
    presence: np.ndarray
    severity: np.ndarray
    patient: np.ndarray
    source: np.ndarray

    def __len__(self) -> int:
        return len(self.x)


def _make(args: tuple[np.ndarray, int, tuple[str, ...] | None, bool]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    img, seed, forced, raw = args
    rng = np.random.default_rng(seed)
    x, c = corrupt(img, rng, artefacts=forced)
    return (x if raw else prepare_slices([x])[0].astype(np.float16)), c.presence(), c.severity()


def make_samples(
    slices: Sequence[RealSlice], variants: int, seed: int, *, forced: Sequence[tuple[str, ...] | None] | None = None,
    workers: int = 2, raw: bool = False,
) -> Samples:
    """``variants`` simulated corruptions of each slice (seeded per slice and variant: reproducible).

    Args:
        forced: one entry per variant: the artefacts to apply (``()`` = clean), or None for a random draw.
        raw: keep the corrupted images as they are (``x`` is then a list of 2-D arrays of varying shapes, for
            evaluation through the predictor) instead of the network input.
    """
    jobs = []
    meta = []
    for i, s in enumerate(slices):
        for v in range(variants):
            f = None if forced is None else forced[v]
            jobs.append((s.image, seed * 1_000_003 + i * 101 + v, f if f is None else tuple(f), raw))
            meta.append((s.patient, s.source))
    if workers > 1:
        import multiprocessing

        # spawn, not fork: a forked child of a process that already ran torch's thread pool can deadlock
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            rows = list(pool.map(_make, jobs, chunksize=64))
    else:
        rows = [_make(j) for j in jobs]
    return Samples(
        x=[r[0] for r in rows] if raw else np.stack([r[0] for r in rows]), presence=np.stack([r[1] for r in rows]),
        severity=np.stack([r[2] for r in rows]), patient=np.array([m[0] for m in meta]),
        source=np.array([m[1] for m in meta]))


#: Held-out evaluation design: per slice, the clean image plus one variant per artefact class (fixed seed).
EVAL_VARIANTS: tuple[tuple[str, ...], ...] = ((),) + tuple((a,) for a in ARTEFACTS)
