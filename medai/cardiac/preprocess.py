"""The cine short-axis preprocessing shared by training (``pipelines.cmr``) and inference (the Predictor).

Training and inference must see identical inputs, so both call these functions with the parameters frozen in the
model package's ``inference.json`` (:class:`CineSegInferenceConfig`).

Per 2-D slice (``(Y, X)``), the model sees:

1. in-plane resampling to ``target_spacing_mm`` (:class:`medai.geometry.InplaneResample`), in training too
   (``pipelines.cmr.data.resample_case``) whenever the data has a spacing, as the official ACDC NIfTI release
   has; data without one (the ACDC HDF5 copy) is taken as-is, with zoom augmentation covering ACDC's range;
2. intensity normalisation per *volume* (all slices and frames of one series): clip to the
   ``[p_low, p_high]`` percentiles, then z-score (:func:`normalize_intensity`);
3. zero padding so that each side is a multiple of ``size_divisor`` (:func:`pad_to_divisor`), undone on output.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field

from medai.percentiles import percentiles

#: A test-time augmentation mode (:data:`TTA_MODES`).
TtaMode = Literal["none", "flip", "d8"]
#: Test-time augmentations: per mode, ``(flipped axes, transposed)`` of each pass. Flips and the in-plane
#: transpose are their own inverses, so a pass's output is mapped back by transposing, then flipping.
TTA_MODES: dict[str, tuple[tuple[tuple[int, ...], bool], ...]] = {
    "none": (((), False),),
    "flip": (((), False), ((-1,), False), ((-2,), False), ((-2, -1), False)),
    "d8": (((), False), ((-1,), False), ((-2,), False), ((-2, -1), False),
           ((), True), ((-1,), True), ((-2,), True), ((-2, -1), True)),
}

#: Stable label names of the cine segmentation and the values the shipped model emits (ACDC convention).
CINE_LABELS: dict[str, int] = {"rv": 1, "myo": 2, "lv": 3}


class NetworkSpec(BaseModel):
    """A network by registry name and constructor arguments (see :data:`medai.registry.NETWORKS`)."""

    name: str
    params: dict[str, object] = Field(default_factory=dict)


def build_network(package_dir: Path, spec: NetworkSpec, spatial_dims: int, weights: str) -> Any:
    """The registered torch network of ``spec`` with a package's weights loaded (float32, eval mode, CPU).

    Raises:
        ConfigError: the weights file is missing.
    """
    import torch

    from medai.errors import ConfigError
    from medai.registry import NETWORKS

    params = dict(spec.params)
    params.setdefault("spatial_dims", spatial_dims)
    net = NETWORKS.get(spec.name)(**params)
    path = Path(package_dir) / weights
    if not path.is_file():
        raise ConfigError(f"{package_dir} lacks its weights file {weights}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    net.load_state_dict({k: (v.float() if v.is_floating_point() else v) for k, v in state.items()})  # type: ignore
    return net.eval()  # type: ignore[attr-defined]


def load_network(package_dir: Path, spec: NetworkSpec, spatial_dims: int, weights: str, device: str = "cpu", *,
                 runtime: str | None = None, precision: str = "float32", preferred: str = "torch") -> Any:
    """A package's network, ready to call: its ONNX export under ONNX Runtime when the runtime says so
    (:func:`medai.inference.compiled.resolve_runtime`; ``runtime`` defaults to ``MEDAI_RUNTIME``, and ``auto`` means
    the predictor's ``preferred`` runtime), else the registered torch network with the weights (float32, eval mode,
    on ``device``). Either is called with a float32 tensor and returns logits.

    Raises:
        ConfigError: the weights file is missing, or ``runtime="onnx"`` and the package has no current export.
    """
    from medai.inference import compiled

    mode = compiled.resolve_runtime(runtime, preferred=preferred, device=device, precision=precision)
    if mode != "torch":
        net = compiled.load_onnx(Path(package_dir), weights, _signature(spec, spatial_dims), required=mode == "onnx")
        if net is not None:
            return net
    import torch

    return build_network(package_dir, spec, spatial_dims, weights).to(torch.device(device))


def export_network(package_dir: Path, spec: NetworkSpec, spatial_dims: int, weights: str,
                   example_shape: tuple[int, ...], spatial_divisor: int | None) -> Path:
    """Export a package's network to ONNX beside its weights (:func:`medai.inference.compiled.export_onnx`)."""
    from medai.inference import compiled

    net = build_network(package_dir, spec, spatial_dims, weights)
    return compiled.export_onnx(net, Path(package_dir), weights, _signature(spec, spatial_dims), example_shape,
                                spatial_divisor)


def _signature(spec: NetworkSpec, spatial_dims: int) -> str:
    """The spec an export is stamped with and checked against (:func:`medai.inference.compiled.network_signature`)."""
    from medai.inference import compiled

    return compiled.network_signature(spec.name, {"spatial_dims": spatial_dims, **spec.params})


class CineSegInferenceConfig(BaseModel):
    """``inference.json`` of a cine segmentation package (frozen at training time).

    Attributes:
        network: registry name + constructor arguments.
        spatial_dims: 2 (slice-wise) or 3.
        target_spacing_mm: in-plane spacing the model expects (mm).
        p_low / p_high: percentiles for intensity clipping before z-scoring.
        size_divisor: pad each in-plane side to a multiple of this.
        labels: label name -> integer the network's argmax produces.
        weights: weights file inside the package.
        tta: test-time augmentation of the frames that are measured (:data:`TTA_MODES`): the class logits are
            averaged over ``"flip"`` (the 4 flips of the slice) or ``"d8"`` (those and their transposes: the 8
            symmetries of the square). ``"none"`` runs the network once. Set by the recipe's
            ``model.tta``; packages written before it existed have none.
    """

    network: NetworkSpec
    spatial_dims: int = 2
    target_spacing_mm: float = 1.5
    p_low: float = 1.0
    p_high: float = 99.0
    size_divisor: int = 32
    labels: dict[str, int] = Field(default_factory=lambda: dict(CINE_LABELS))
    weights: str = "weights.pt"
    tta: TtaMode = "none"


def normalize_intensity(array: np.ndarray, p_low: float = 1.0, p_high: float = 99.0) -> np.ndarray:
    """Clip to percentiles and z-score over the whole array.

    Args:
        array: any shape, any numeric dtype (one series: ``(Z, Y, X)`` or ``(T, Z, Y, X)``).
        p_low, p_high: clipping percentiles.

    Returns:
        float32 array of the same shape, zero mean and unit variance inside the clipped range.
    """
    a = np.asarray(array, dtype=np.float32)
    lo, hi = percentiles(a, [p_low, p_high])
    a = np.clip(a, lo, hi)
    std = float(a.std())
    return ((a - float(a.mean())) / (std if std > 1e-6 else 1.0)).astype(np.float32)


def pad_to_divisor(image: np.ndarray, divisor: int) -> tuple[np.ndarray, tuple[slice, slice]]:
    """Zero-pad the last two axes to multiples of ``divisor`` (centred).

    Args:
        image: ``(..., Y, X)`` array.
        divisor: e.g. 32 for a 5-level U-Net.

    Returns:
        The padded array and the ``(slice_y, slice_x)`` that crops it back to the input size.
    """
    y, x = image.shape[-2:]
    py = (-y) % divisor
    px = (-x) % divisor
    before_y, before_x = py // 2, px // 2
    pad = [(0, 0)] * (image.ndim - 2) + [(before_y, py - before_y), (before_x, px - before_x)]
    return np.pad(image, pad), (slice(before_y, before_y + y), slice(before_x, before_x + x))
