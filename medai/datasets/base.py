"""The case type shared by every dataset adapter, and patient-level splitting."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from medai.domain.volume import Volume


class CardiacPhase(StrEnum):
    """Cardiac phase of a labelled frame."""

    ED = "ED"
    ES = "ES"
    OTHER = "other"


@dataclass(frozen=True, eq=False)
class SegCase:
    """One labelled (or unlabelled) image volume of a segmentation dataset.

    Attributes:
        case_id: unique id, e.g. ``"patient001_ED"``.
        patient_id: the patient; splits are made on this, never on cases.
        image: ``(Z, Y, X)`` float32 intensities (dataset units; normalisation happens in the pipeline).
        label: ``(Z, Y, X)`` uint8 label map in the dataset's label convention, or None when unlabelled.
        phase: cardiac phase of the frame.
        spacing_mm: ``(dz, dy, dx)`` in mm, or None when the source lost it (ACDC HDF5).
        affine: ``(4, 4)`` ``(z, y, x, 1)`` -> LPS mm when known.
        labels: label name -> integer in :attr:`label`.
        label_slices: for sparsely annotated data, the z indices that carry a reference label (None = all).
        meta: free-form extras (diagnosis group, height, weight, site, source paths).
    """

    case_id: str
    patient_id: str
    image: np.ndarray
    label: np.ndarray | None = None
    phase: CardiacPhase = CardiacPhase.OTHER
    spacing_mm: tuple[float, float, float] | None = None
    affine: np.ndarray | None = None
    labels: dict[str, int] = field(default_factory=dict)
    label_slices: tuple[int, ...] | None = None
    meta: dict[str, object] = field(default_factory=dict)

    def to_volume(self) -> Volume:
        """The image as a :class:`Volume` (unit spacing, identity orientation when the geometry is unknown)."""
        if self.affine is not None:
            aff = np.asarray(self.affine, dtype=float)
        else:
            aff = np.diag([*(self.spacing_mm or (1.0, 1.0, 1.0)), 1.0])
            aff = aff[[2, 1, 0, 3]]  # columns (z, y, x) -> rows (L, P, S): x->L, y->P, z->S
        return Volume(array=np.asarray(self.image, dtype=np.float32), affine=aff)


def split_by_patient(
    patient_ids: Iterable[str], fractions: Sequence[float] = (0.8, 0.2), names: Sequence[str] = ("train", "val"),
    seed: str = "medai",
) -> dict[str, str]:
    """Deterministic patient-level split by hashing ids (stable when patients are added).

    Args:
        patient_ids: the patients.
        fractions: fraction per split, summing to 1.
        names: split names, same length as ``fractions``.
        seed: salt of the hash.

    Returns:
        patient id -> split name.
    """
    if len(fractions) != len(names) or abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError("fractions must sum to 1 and match names")
    bounds = np.cumsum(fractions)
    out: dict[str, str] = {}
    for pid in sorted(set(patient_ids)):
        h = int(hashlib.sha256(f"{seed}:{pid}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
        idx = int(np.searchsorted(bounds, h, side="right"))
        out[pid] = names[min(idx, len(names) - 1)]
    return out
