"""The one adapter between medai's LPS domain types and the MONAI/NIfTI RAS world, plus invertible resampling.

Conventions:

* medai: arrays ``(Z, Y, X)`` with a ``(z, y, x, 1) -> (L, P, S, 1)`` affine (see :mod:`medai.domain.volume`).
* MONAI/NIfTI: arrays ``(X, Y, Z)`` (channel first when batched) with an ``(i, j, k, 1) -> (R, A, S, 1)`` affine.

Resampling follows the type: images are interpolated linearly, label maps always nearest-neighbour. Every
resampling step is a :class:`InplaneResample` that knows its inverse, so predictions are mapped back to the
source grid before anything is measured.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medai.domain.volume import LabelMap, Volume

#: LPS <-> RAS flips the first two patient axes (its own inverse).
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
#: Permutes array axes (z, y, x) <-> (x, y, z) in homogeneous index space (its own inverse).
_ZYX_TO_XYZ = np.array([[0, 0, 1, 0], [0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1]], dtype=float)


def lps_to_ras_affine(affine_zyx_lps: np.ndarray) -> np.ndarray:
    """Convert a medai affine to a NIfTI/MONAI affine.

    Args:
        affine_zyx_lps: ``(4, 4)`` mapping ``(z, y, x, 1)`` -> LPS mm.

    Returns:
        ``(4, 4)`` mapping ``(x, y, z, 1)`` (i.e. the array transposed to ``(X, Y, Z)``) -> RAS mm.
    """
    return LPS_TO_RAS @ np.asarray(affine_zyx_lps, dtype=float) @ _ZYX_TO_XYZ


def ras_to_lps_affine(affine_xyz_ras: np.ndarray) -> np.ndarray:
    """Inverse of :func:`lps_to_ras_affine`: ``(x, y, z, 1)`` -> RAS  to  ``(z, y, x, 1)`` -> LPS."""
    return LPS_TO_RAS @ np.asarray(affine_xyz_ras, dtype=float) @ _ZYX_TO_XYZ


def to_monai(volume: Volume) -> tuple[np.ndarray, np.ndarray]:
    """A volume as MONAI sees it.

    Args:
        volume: ``(Z, Y, X)`` or ``(T, Z, Y, X)`` volume in LPS.

    Returns:
        ``(array, affine)``: the array transposed to ``(X, Y, Z)`` (``(T, X, Y, Z)`` for cine: time stays first
        and acts as MONAI's channel axis) and the ``(i, j, k) -> RAS`` affine.
    """
    a = volume.array
    arr = np.transpose(a, (0, 3, 2, 1)) if volume.is_temporal else np.transpose(a, (2, 1, 0))
    return arr, lps_to_ras_affine(volume.affine)


def from_monai(array: np.ndarray, affine_ras: np.ndarray, like: Volume | None = None) -> Volume:
    """Inverse of :func:`to_monai`: an ``(X, Y, Z)`` (or ``(T, X, Y, Z)``) RAS array back into a medai Volume.

    Args:
        array: MONAI-ordered array.
        affine_ras: its ``(i, j, k) -> RAS`` affine.
        like: copy provenance (frame of reference, frame times, SOP UIDs) from this volume.
    """
    temporal = array.ndim == 4 and (like is not None and like.is_temporal)
    arr = np.transpose(array, (0, 3, 2, 1)) if temporal else np.transpose(array, (2, 1, 0))
    aff = ras_to_lps_affine(affine_ras)
    if like is None:
        return Volume(array=np.ascontiguousarray(arr), affine=aff)
    return Volume(
        array=np.ascontiguousarray(arr),
        affine=aff,
        frame_of_reference_uid=like.frame_of_reference_uid,
        frame_times_ms=like.frame_times_ms if temporal else None,
        source_series_uid=like.source_series_uid,
        source_sop_uids=like.source_sop_uids,
    )


@dataclass(frozen=True)
class InplaneResample:
    """In-plane (Y, X) resampling of a slice stack to a target pixel spacing, and its exact inverse.

    The grid follows ``align_corners=False`` semantics: output pixel ``j`` samples input coordinate
    ``(j + 0.5) * s - 0.5`` with ``s = in_size / out_size``, so the field of view (pixel edges) is preserved and
    the new affine is exact.

    Attributes:
        in_shape: ``(Y, X)`` of the source grid.
        out_shape: ``(Y, X)`` of the resampled grid.
    """

    in_shape: tuple[int, int]
    out_shape: tuple[int, int]

    @classmethod
    def to_spacing(cls, volume: Volume, target_mm: float | None) -> InplaneResample:
        """The resampling of ``volume``'s in-plane grid to ``target_mm`` (identity when None)."""
        _, ny, nx = volume.spatial_shape
        if target_mm is None:
            return cls((ny, nx), (ny, nx))
        _, dy, dx = volume.spacing
        out = (max(1, round(ny * dy / target_mm)), max(1, round(nx * dx / target_mm)))
        return cls((ny, nx), out)

    @property
    def is_identity(self) -> bool:
        """True when no resampling happens."""
        return self.in_shape == self.out_shape

    def scale(self) -> tuple[float, float]:
        """``in / out`` per axis (Y, X): the factor applied to the pixel spacing."""
        return self.in_shape[0] / self.out_shape[0], self.in_shape[1] / self.out_shape[1]

    def forward_affine(self, affine: np.ndarray) -> np.ndarray:
        """The ``(z, y, x) -> LPS`` affine of the resampled grid."""
        sy, sx = self.scale()
        a = np.asarray(affine, dtype=float).copy()
        a[:3, 3] = a[:3, 3] + a[:3, 1] * (0.5 * sy - 0.5) + a[:3, 2] * (0.5 * sx - 0.5)
        a[:3, 1] *= sy
        a[:3, 2] *= sx
        return a

    def _apply(self, array: np.ndarray, size: tuple[int, int], mode: str) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        if tuple(array.shape[-2:]) == size:
            return array
        lead = array.shape[:-2]
        x = torch.from_numpy(np.ascontiguousarray(array).reshape(-1, 1, *array.shape[-2:]))
        if mode == "nearest":
            y = F.interpolate(x.float(), size=size, mode="nearest-exact").to(x.dtype)
        else:
            y = F.interpolate(x.float(), size=size, mode="bilinear", align_corners=False)
        return y.reshape(*lead, *size).numpy()

    def image(self, array: np.ndarray) -> np.ndarray:
        """Resample an image ``(..., Y, X)`` linearly to :attr:`out_shape` (float32)."""
        return self._apply(np.asarray(array, dtype=np.float32), self.out_shape, "linear")

    def labels(self, array: np.ndarray) -> np.ndarray:
        """Resample a label array ``(..., Y, X)`` nearest-neighbour to :attr:`out_shape` (dtype kept)."""
        return self._apply(array, self.out_shape, "nearest")

    def invert_image(self, array: np.ndarray) -> np.ndarray:
        """Map an image-like array (e.g. class scores ``(..., C, Y, X)``) back to :attr:`in_shape`, linearly."""
        return self._apply(np.asarray(array, dtype=np.float32), self.in_shape, "linear")

    def invert_labels(self, array: np.ndarray) -> np.ndarray:
        """Map a label array back to :attr:`in_shape`, nearest-neighbour."""
        return self._apply(array, self.in_shape, "nearest")


def resample_volume(volume: Volume, target_mm: float) -> tuple[Volume, InplaneResample]:
    """Resample an image volume in-plane to ``target_mm`` pixels (linear); returns it and the invertible step."""
    step = InplaneResample.to_spacing(volume, target_mm)
    return Volume(
        array=step.image(volume.array),
        affine=step.forward_affine(volume.affine),
        frame_of_reference_uid=volume.frame_of_reference_uid,
        frame_times_ms=volume.frame_times_ms,
        source_series_uid=volume.source_series_uid,
        source_sop_uids=volume.source_sop_uids,
    ), step


def resample_labelmap(labelmap: LabelMap, target_mm: float) -> tuple[LabelMap, InplaneResample]:
    """Resample a label map in-plane to ``target_mm`` pixels (always nearest-neighbour)."""
    vol = labelmap.volume
    step = InplaneResample.to_spacing(vol, target_mm)
    out = Volume(
        array=step.labels(vol.array),
        affine=step.forward_affine(vol.affine),
        frame_of_reference_uid=vol.frame_of_reference_uid,
        frame_times_ms=vol.frame_times_ms,
        source_series_uid=vol.source_series_uid,
    )
    return LabelMap(volume=out, labels=labelmap.labels), step


def invert_labelmap(labelmap: LabelMap, step: InplaneResample, source: Volume) -> LabelMap:
    """Map a label map on a resampled grid back onto ``source``'s grid (nearest-neighbour, source geometry)."""
    arr = step.invert_labels(labelmap.volume.array)
    return LabelMap(volume=source.with_array(arr.astype(np.uint8)), labels=labelmap.labels)
