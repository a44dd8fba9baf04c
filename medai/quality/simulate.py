"""Realistic MR artefacts on real short-axis slices, for training and evaluating the artefact model.

Motion is simulated in k-space as per-line translation along a respiratory trace (:func:`motion`); ghosting
and spikes in k-space with TorchIO (``RandomGhosting``, ``RandomSpike``); noise is Rician (complex Gaussian,
magnitude); low contrast is a smooth receive-coil bias field
(``RandomBiasField``) with a flattened tissue contrast; wrap-around is a fold-over of a reduced phase-encoding
field of view. Every artefact is drawn at a strength ``s`` in ``[0, 1]`` (its *severity*), which scales the
transform's parameters; the simulation is seeded, so an evaluation run is reproducible.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: The artefact classes of ``heart_mr_quality`` (the model's output order); "good" is the absence of all four.
ARTEFACTS: tuple[str, ...] = ("motion", "ghosting", "spike_noise", "low_contrast")
#: Weakest strength drawn when an artefact is present (below it an artefact is hard to see even for a reader).
MIN_STRENGTH = 0.3


@dataclass(frozen=True)
class Corruption:
    """What was applied to one slice: artefact name -> strength in ``[0, 1]`` (absent = 0)."""

    strengths: dict[str, float]

    def presence(self) -> np.ndarray:
        """``(len(ARTEFACTS),)`` float32, 1 where the artefact was applied."""
        return np.array([1.0 if self.strengths.get(a, 0.0) > 0 else 0.0 for a in ARTEFACTS], dtype=np.float32)

    def severity(self) -> np.ndarray:
        """``(len(ARTEFACTS),)`` float32 strengths (0 = absent)."""
        return np.array([float(self.strengths.get(a, 0.0)) for a in ARTEFACTS], dtype=np.float32)


def _scale01(img: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(img, [0.5, 99.5])
    return np.clip((img - lo) / max(hi - lo, 1e-6), 0.0, None).astype(np.float32)


def _tio(img: np.ndarray, transform: object) -> np.ndarray:
    import torch
    import torchio as tio

    t = tio.ScalarImage(tensor=torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32))[None, :, :, None])
    out = transform(t)  # type: ignore[operator]
    return np.abs(out.data[0, :, :, 0].numpy()).astype(np.float32)


def motion(img: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    """Breathing / patient motion during the acquisition: each phase-encoding line is acquired at another position.

    The displacement follows a respiratory trace (1-5 cycles over the acquisition, random phase, irregular
    amplitude) plus drift; a translation is a linear phase ramp in k-space, so this is exact for rigid in-plane
    translation. It gives the ghosting along phase encoding and the blurring of real free-breathing scans.
    (TorchIO's ``RandomMotion`` on one 2-D slice mostly re-poses the whole image, since the k-space centre comes
    from one pose: a rotated but clean image, not an artefact a reader would see.)
    """
    ny, nx = img.shape
    pe_axis = int(rng.integers(0, 2))
    n_pe = img.shape[pe_axis]
    t = np.arange(n_pe) / n_pe
    amp = (1.5 + 6.5 * s) * (1 + 0.3 * rng.standard_normal())
    cycles = rng.uniform(1.0, 5.0)
    trace = amp * np.sin(2 * np.pi * cycles * t + rng.uniform(0, 2 * np.pi)) + s * rng.uniform(-3, 3) * t
    direction = rng.uniform(0, 2 * np.pi)
    dy, dx = trace * np.sin(direction), trace * np.cos(direction)
    order = rng.permutation(n_pe) if rng.random() < 0.2 else np.fft.ifftshift(np.arange(n_pe))  # centric or linear
    k = np.fft.fftshift(np.fft.fft2(img))
    ky = (np.arange(ny) - ny // 2)[:, None] / ny
    kx = (np.arange(nx) - nx // 2)[None, :] / nx
    # the line acquired at time t gets that time's displacement
    line_dy = np.empty(n_pe)
    line_dx = np.empty(n_pe)
    line_dy[order] = dy
    line_dx[order] = dx
    if pe_axis == 0:
        phase = ky * line_dy[:, None] + kx * line_dx[:, None]
    else:
        phase = ky * line_dy[None, :] + kx * line_dx[None, :]
    return np.abs(np.fft.ifft2(np.fft.ifftshift(k * np.exp(-2j * np.pi * phase)))).astype(np.float32)


def ghosting(img: np.ndarray, s: float, rng: np.random.Generator, allow_wrap: bool = True) -> np.ndarray:
    """Ghosts along the phase-encoding axis (periodic motion, e.g. cardiac/respiratory), or wrap-around.

    ``allow_wrap=False`` keeps the image's shape (no wrap-around), for studies whose labels must still match.
    """
    import torchio as tio

    if allow_wrap and rng.random() < 0.35:
        return wrap(img, s, rng)
    axis = int(rng.integers(0, 2))
    return _tio(img, tio.RandomGhosting(num_ghosts=(2, 4 + int(6 * s)), axes=(axis,),
                                        intensity=(0.25 + 0.55 * s, 0.3 + 0.7 * s), restore=0.02))


def wrap(img: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    """Aliasing: the phase-encoding field of view is cut to ``1 - 0.35 s`` of the object and the rest folds in."""
    axis = int(rng.integers(0, 2))
    a = np.moveaxis(img, axis, 0)
    n = a.shape[0]
    fov = max(8, int(round(n * (0.9 - 0.3 * s))))
    start = (n - fov) // 2
    out = a[start : start + fov].copy()
    above, below = a[:start], a[start + fov :]
    # signal outside the reduced FOV lands at the opposite edge (modulo the FOV), as in a Cartesian acquisition
    if len(above):
        out[fov - len(above) :] += above[-fov:] if len(above) > fov else above
    if len(below):
        out[: len(below)] += below[:fov] if len(below) > fov else below
    return np.moveaxis(out, 0, axis)


def spike_noise(img: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    """A k-space spike (herringbone), or Rician noise of low SNR."""
    import torchio as tio

    if rng.random() < 0.5:
        return _tio(img, tio.RandomSpike(num_spikes=(1, 1 + int(2 * s)), intensity=(0.15 + 0.35 * s, 0.2 + 0.5 * s)))
    sigma = (0.06 + 0.16 * s) * float(np.percentile(img, 99))
    re = img + rng.normal(0, sigma, img.shape)
    im = rng.normal(0, sigma, img.shape)
    return np.sqrt(re**2 + im**2).astype(np.float32)


def low_contrast(img: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    """Poor tissue contrast: flattened blood/myocardium contrast under a smooth coil-sensitivity bias field."""
    import torchio as tio
    from scipy.ndimage import gaussian_filter

    x = _scale01(img)
    gamma = 1.0 - 0.6 * s  # < 1 lifts dark tissue towards the bright blood pool
    x = np.clip(x, 0, 1) ** gamma
    x = 0.35 * s + (1 - 0.35 * s) * x  # raised floor: less dynamic range
    x = gaussian_filter(x, sigma=0.3 + 1.2 * s)
    return _tio(x, tio.RandomBiasField(coefficients=(0.1 + 0.15 * s, 0.15 + 0.25 * s), order=3))


def apply(img: np.ndarray, name: str, s: float, rng: np.random.Generator, allow_wrap: bool = True) -> np.ndarray:
    """Apply artefact ``name`` at strength ``s`` to the 2-D magnitude image ``img`` ``(Y, X)``."""
    if name == "motion":
        return motion(img, s, rng)
    if name == "ghosting":
        return ghosting(img, s, rng, allow_wrap)
    if name == "spike_noise":
        return spike_noise(img, s, rng)
    if name == "low_contrast":
        return low_contrast(img, s, rng)
    raise ValueError(f"unknown artefact {name!r}; known: {', '.join(ARTEFACTS)}")


def corrupt(
    img: np.ndarray,
    rng: np.random.Generator,
    *,
    artefacts: Sequence[str] | None = None,
    p_clean: float = 0.4,
    p_double: float = 0.15,
    strength: float | None = None,
    allow_wrap: bool = True,
) -> tuple[np.ndarray, Corruption]:
    """A random corruption of a 2-D slice: clean with ``p_clean``, else one (or, with ``p_double``, two) artefacts.

    Args:
        img: ``(Y, X)`` magnitude image (any scale).
        rng: the generator (TorchIO's own draws are seeded from it, so the result is reproducible).
        artefacts: force these artefacts (each at a random strength) instead of a random draw; ``()`` = clean.
        strength: use this strength instead of a random one.
        allow_wrap: False keeps the shape (see :func:`ghosting`).

    Returns:
        the corrupted image (float32; the wrap-around artefact shortens one axis) and what was applied.
    """
    import torch

    torch.manual_seed(int(rng.integers(0, 2**31 - 1)))
    if artefacts is None:
        if rng.random() < p_clean:
            chosen: list[str] = []
        else:
            k = 2 if rng.random() < p_double else 1
            chosen = list(rng.choice(ARTEFACTS, size=k, replace=False))
    else:
        chosen = list(artefacts)
    x = _scale01(np.asarray(img, dtype=np.float32))
    strengths: dict[str, float] = {}
    for name in chosen:
        s = float(rng.uniform(MIN_STRENGTH, 1.0)) if strength is None else float(strength)
        x = apply(x, name, s, rng, allow_wrap)
        strengths[name] = s
    return x, Corruption(strengths)


def corrupt_dicom_files(paths: Sequence[object], name: str, strength: float, seed: int = 0,
                        share: float = 1.0) -> int:
    """Rewrite single-frame grey-level DICOM files in place with artefact ``name`` simulated on their pixels.

    For checking the quality gate on a known-bad study (tests, demos). The stored value range is kept (values are
    rescaled to the original maximum and clipped to the pixel type). Returns how many files were changed.

    Args:
        paths: the files.
        name: one of :data:`ARTEFACTS` (wrap-around is not used: the image size is kept).
        strength: in ``[0, 1]``.
        share: probability that a given file is corrupted.
    """
    import pydicom
    import torch

    rng = np.random.default_rng(seed)
    changed = 0
    for p in paths:
        if rng.random() >= share:
            continue
        ds = pydicom.dcmread(p)
        arr = ds.pixel_array
        if arr.ndim != 2:
            raise ValueError(f"{p}: only single-frame grey-level images are supported, got shape {arr.shape}")
        torch.manual_seed(int(rng.integers(0, 2**31 - 1)))
        x = apply(_scale01(arr.astype(np.float32)), name, strength, rng, allow_wrap=False)
        hi = float(np.percentile(arr, 99.5)) or 1.0
        info = np.iinfo(arr.dtype) if np.issubdtype(arr.dtype, np.integer) else None
        out = np.clip(x * hi, info.min if info else None, info.max if info else None).astype(arr.dtype)
        ds.PixelData = out.tobytes()
        ds.save_as(p)
        changed += 1
    return changed
