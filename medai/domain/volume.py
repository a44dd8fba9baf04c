"""Image volumes and label maps in DICOM patient coordinates (LPS).

Conventions (the one geometry convention of medai):

* arrays are indexed ``(Z, Y, X)`` = (slice, row, column), or ``(T, Z, Y, X)`` for cine with a leading time axis;
* :attr:`Volume.affine` is a 4x4 matrix mapping homogeneous voxel indices ``(z, y, x, 1)`` (array order) to
  DICOM patient coordinates ``(x_L, y_P, z_S, 1)`` in mm (LPS);
* conversion to the MONAI/NIfTI RAS world happens only in :mod:`medai.geometry`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from medai.domain.codes import Code


def affine_from_dicom(
    position: Sequence[float], orientation: Sequence[float], pixel_spacing: Sequence[float],
    slice_vector: Sequence[float],
) -> np.ndarray:
    """Build the (z, y, x) -> LPS affine from DICOM geometry.

    Args:
        position: ImagePositionPatient of the first slice (mm, LPS).
        orientation: ImageOrientationPatient (row direction cosines, then column direction cosines).
        pixel_spacing: PixelSpacing ``(row spacing, column spacing)`` in mm.
        slice_vector: displacement between consecutive slices (mm, LPS), i.e. normal * slice spacing.

    Returns:
        ``(4, 4)`` float64 affine mapping ``(z, y, x, 1)`` -> ``(L, P, S, 1)``.
    """
    row_cos = np.asarray(orientation[:3], dtype=float)  # direction of increasing column index (x)
    col_cos = np.asarray(orientation[3:6], dtype=float)  # direction of increasing row index (y)
    aff = np.eye(4)
    aff[:3, 0] = np.asarray(slice_vector, dtype=float)
    aff[:3, 1] = col_cos * float(pixel_spacing[0])
    aff[:3, 2] = row_cos * float(pixel_spacing[1])
    aff[:3, 3] = np.asarray(position, dtype=float)
    return aff


@dataclass(frozen=True, eq=False)
class Volume:
    """An image volume with its geometry.

    Attributes:
        array: ``(Z, Y, X)`` or ``(T, Z, Y, X)`` pixel data (float32 for images, rescale slope/intercept applied;
            colour images carry a trailing channel axis ``(..., 3)``).
        affine: ``(4, 4)`` float64, ``(z, y, x, 1)`` voxel index -> LPS mm.
        frame_of_reference_uid: DICOM FrameOfReferenceUID the affine refers to ("" when unknown).
        frame_times_ms: for temporal volumes, the time of each frame (ms from the R wave), length ``T``.
        source_series_uid: SeriesInstanceUID(s) of the source, for provenance.
        source_sop_uids: SOPInstanceUIDs per (t, z) (or per z) for referencing the source images in SEG/SR.
    """

    array: np.ndarray
    affine: np.ndarray
    frame_of_reference_uid: str = ""
    frame_times_ms: tuple[float, ...] | None = None
    source_series_uid: str = ""
    source_sop_uids: tuple[tuple[str, ...], ...] | None = None
    warnings: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        aff = np.asarray(self.affine, dtype=float)
        if aff.shape != (4, 4):
            raise ValueError(f"affine must be 4x4, got {aff.shape}")
        object.__setattr__(self, "affine", aff)
        if self.frame_times_ms is not None and self.array.ndim >= 4 and len(self.frame_times_ms) != self.array.shape[0]:
            raise ValueError("frame_times_ms must have one entry per frame")

    @property
    def is_temporal(self) -> bool:
        """True when the array has a leading time axis (cine)."""
        return self.frame_times_ms is not None

    @property
    def spatial_shape(self) -> tuple[int, int, int]:
        """``(Z, Y, X)`` shape of one frame."""
        off = 1 if self.is_temporal else 0
        return tuple(int(s) for s in self.array.shape[off : off + 3])  # type: ignore[return-value]

    @property
    def n_frames(self) -> int:
        """Number of time frames (1 for a static volume)."""
        return int(self.array.shape[0]) if self.is_temporal else 1

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel spacing ``(dz, dy, dx)`` in mm (lengths of the affine's columns)."""
        return tuple(float(np.linalg.norm(self.affine[:3, i])) for i in range(3))  # type: ignore[return-value]

    @property
    def voxel_volume_ml(self) -> float:
        """Volume of one voxel in mL (|det| of the affine's 3x3 part, mm³ / 1000)."""
        return abs(float(np.linalg.det(self.affine[:3, :3]))) / 1000.0

    def frame(self, t: int) -> Volume:
        """The static volume at frame ``t`` (``self`` when not temporal)."""
        if not self.is_temporal:
            return self
        sops = (self.source_sop_uids[t],) if self.source_sop_uids is not None else None
        return replace(self, array=self.array[t], frame_times_ms=None, source_sop_uids=sops)

    def index_to_lps(self, zyx: np.ndarray) -> np.ndarray:
        """Map ``(N, 3)`` voxel indices (z, y, x) to ``(N, 3)`` LPS mm."""
        zyx = np.atleast_2d(np.asarray(zyx, dtype=float))
        return zyx @ self.affine[:3, :3].T + self.affine[:3, 3]

    def with_array(self, array: np.ndarray) -> Volume:
        """A copy with the same geometry and a new array of the same spatial shape."""
        return replace(self, array=array)


@dataclass(frozen=True)
class SegmentLabel:
    """One coded segment of a label map.

    Attributes:
        value: Integer stored in the label map array for this segment (never used outside the label table).
        name: Short stable name, e.g. ``"lv"``, ``"myo"``, ``"rv"``.
        property_category: DICOM SEG segmented property category (e.g. SCT 91723000 "Anatomical structure").
        property_type: DICOM SEG segmented property type (e.g. SCT 87878005 "Left ventricle myocardium").
        color: RGB 0-255 for overlays and SEG recommended display colour.
    """

    value: int
    name: str
    property_category: Code
    property_type: Code
    color: tuple[int, int, int] = (255, 0, 0)


ANATOMICAL_STRUCTURE = Code(value="91723000", scheme="SCT", meaning="Anatomical Structure")


@dataclass(frozen=True, eq=False)
class LabelMap:
    """A segmentation: an integer :class:`Volume` plus its coded label table.

    A label map is always resampled nearest-neighbour (see :mod:`medai.geometry`).

    Attributes:
        volume: ``(Z, Y, X)`` or ``(T, Z, Y, X)`` uint8 array with geometry.
        labels: the segments; label value 0 is background and is not listed.
    """

    volume: Volume
    labels: tuple[SegmentLabel, ...]

    def __post_init__(self) -> None:
        values = [lab.value for lab in self.labels]
        if 0 in values or len(set(values)) != len(values):
            raise ValueError("label values must be unique and non-zero")

    def label(self, name: str) -> SegmentLabel:
        """The segment called ``name``."""
        for lab in self.labels:
            if lab.name == name:
                return lab
        raise KeyError(f"no segment {name!r}; have {[lab.name for lab in self.labels]}")

    def mask(self, name: str) -> np.ndarray:
        """Boolean mask of segment ``name`` (same shape as the array)."""
        return self.volume.array == self.label(name).value

    def volume_ml(self, name: str, t: int | None = None) -> float:
        """Volume of segment ``name`` in mL (at frame ``t`` for temporal maps)."""
        m = self.mask(name)
        if t is not None:
            m = m[t]
        return float(m.sum()) * self.volume.voxel_volume_ml
