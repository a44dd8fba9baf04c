"""The LGE short-axis scar segmentation predictor (registered as ``lge_sax_seg``), and its preprocessing.

``predict(study)``: select the LGE series -> build its ``(Z, Y, X)`` volume -> :meth:`LgeSegPredictor.segment_volume`
-> ``Prediction`` with ``label_maps["lge_sax"]``. No measurements here: the ``lge_scar`` analysis measures the
label map. Evaluation calls :meth:`LgeSegPredictor.segment_volume` on dataset volumes, so it runs the same code.

Preprocessing (shared with training, ``pipelines.lge``; parameters frozen in the package's ``inference.json``,
:class:`LgeSegInferenceConfig`), per slice:

1. resize the whole slice to ``canonical_size`` (bilinear, aspect ratio not kept), which is how the EMIDEC
   training slices were made (the third-party release resized every slice to 256 x 256; no spacing survives);
2. intensity normalisation per slice (``norm="slice"``, default: every EMIDEC slice was rescaled on its own) or per
   volume: clip to the ``[p_low, p_high]`` percentiles, then z-score (:func:`normalize_slices`);
3. optional 2.5-D context: the ``context`` neighbouring slices on each side as extra channels (edge slices
   repeated) (:func:`stack_context`);
4. the centred ``crop_size`` window of the canonical grid is fed to the network (EMIDEC slices are centred on the
   LV, whose bounding box lies inside the central 128 x 128 of the 256 grid in every case).

The network's class probabilities are put back on the canonical grid (background outside the crop), resampled
bilinearly to the source grid, then argmax -> label values -> :func:`medai.cardiac.lge_postprocess.clean_lge`.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field, model_validator

from medai.cardiac.lge_postprocess import MVO_POLICIES, clean_lge
from medai.cardiac.preprocess import NetworkSpec, export_network, load_network
from medai.domain.codes import Code
from medai.domain.prediction import Prediction, QualityFlag, Severity
from medai.domain.study import Series, SeriesType, Study
from medai.domain.volume import ANATOMICAL_STRUCTURE, LabelMap, SegmentLabel, Volume
from medai.errors import ConfigError, GeometryError, InputValidationError
from medai.geometry import InplaneResample
from medai.inference.predictor import Predictor
from medai.registry import PREDICTORS

logger = logging.getLogger(__name__)

#: Stable label names of the LGE segmentation and the values the shipped model emits (EMIDEC convention).
LGE_LABELS: dict[str, int] = {"lv": 1, "myo": 2, "infarct": 3, "mvo": 4}

MORPHOLOGICALLY_ABNORMAL = Code(value="49755003", scheme="SCT", meaning="Morphologically Abnormal Structure")

#: Default coded label table: name -> (category, property type, description, RGB). SNOMED CT where a concept
#: exists (DICOM CID 7150/7151); MVO has no SNOMED CT concept we could verify, so it is coded in the private
#: scheme 99MEDAI.
LGE_LABEL_CODES: dict[str, tuple[Code, Code, str, tuple[int, int, int]]] = {
    "lv": (ANATOMICAL_STRUCTURE, Code(value="87878005", scheme="SCT", meaning="Left ventricle"),
           "LV cavity (blood pool)", (220, 40, 40)),
    "myo": (ANATOMICAL_STRUCTURE, Code(value="74281007", scheme="SCT", meaning="Myocardium"),
            "healthy (remote) LV myocardium", (40, 180, 60)),
    "infarct": (MORPHOLOGICALLY_ABNORMAL, Code(value="22298006", scheme="SCT", meaning="Myocardial infarction"),
                "enhanced myocardial scar (infarct), MVO excluded", (250, 215, 30)),
    "mvo": (MORPHOLOGICALLY_ABNORMAL, Code(value="MVO", scheme="99MEDAI", meaning="Microvascular obstruction"),
            "no-reflow / persistent microvascular obstruction within the infarct", (150, 50, 210)),
}
#: Slices per forward pass.
CHUNK = 16


class LgeSegInferenceConfig(BaseModel):
    """``inference.json`` of an LGE segmentation package (frozen at training time).

    Attributes:
        network: registry name + constructor arguments (``in_channels`` must be ``1 + 2 * context``).
        spatial_dims: 2 (slice-wise).
        canonical_size: ``(Y, X)`` every slice is resized to first (the training data's grid).
        crop_size: ``(Y, X)`` centred window of the canonical grid the network sees (None: the whole grid).
        context: neighbouring slices on each side given as extra channels (0: plain 2-D).
        norm: ``"slice"`` or ``"volume"`` intensity normalisation.
        p_low / p_high: clipping percentiles before z-scoring.
        size_divisor: each side of the network input must be a multiple of this.
        labels: label name -> integer the network's argmax produces.
        mvo_policy: relabelling of MVO that touches no infarct (see :mod:`medai.cardiac.lge_postprocess`).
        tta: test-time flips whose softmax is averaged with the plain pass: ``"none"``, ``"x"`` (left-right),
            ``"xy"`` (left-right, up-down and both: 4 passes). Training flips both axes, so every view is one the
            network was trained on.
        weights: weights file inside the package.
    """

    network: NetworkSpec
    spatial_dims: int = 2
    canonical_size: tuple[int, int] = (256, 256)
    crop_size: tuple[int, int] | None = (128, 128)
    context: int = Field(default=0, ge=0, le=3)
    norm: Literal["slice", "volume"] = "slice"
    p_low: float = 1.0
    p_high: float = 99.0
    size_divisor: int = 16
    labels: dict[str, int] = Field(default_factory=lambda: dict(LGE_LABELS))
    mvo_policy: str = "infarct"
    tta: Literal["none", "x", "xy"] = "none"
    weights: str = "weights.pt"

    @model_validator(mode="after")
    def _check(self) -> LgeSegInferenceConfig:
        if self.spatial_dims != 2:
            raise ValueError("lge_sax_seg runs 2-D (slice-wise) networks only")
        if self.mvo_policy not in MVO_POLICIES:
            raise ValueError(f"mvo_policy must be one of {MVO_POLICIES}")
        size = self.crop_size or self.canonical_size
        if any(s % self.size_divisor for s in size):
            raise ValueError(f"network input {size} is not a multiple of size_divisor={self.size_divisor}")
        if self.crop_size and any(c > s for c, s in zip(self.crop_size, self.canonical_size, strict=True)):
            raise ValueError("crop_size must fit inside canonical_size")
        if set(self.labels) - set(LGE_LABELS):
            raise ValueError(f"unknown label names {sorted(set(self.labels) - set(LGE_LABELS))}")
        return self

    @property
    def in_channels(self) -> int:
        """Channels of the network input: the slice and its ``context`` neighbours on each side."""
        return 1 + 2 * self.context


def normalize_slices(array: np.ndarray, norm: str = "slice", p_low: float = 1.0, p_high: float = 99.0) -> np.ndarray:
    """Percentile clipping then z-scoring, per slice (``norm="slice"``) or over the whole volume.

    Args:
        array: ``(Z, Y, X)`` intensities (any numeric dtype).
        norm: ``"slice"`` or ``"volume"``.

    Returns:
        ``(Z, Y, X)`` float32.
    """
    from medai.cardiac.preprocess import normalize_intensity

    a = np.asarray(array, dtype=np.float32)
    if norm == "volume":
        return normalize_intensity(a, p_low, p_high)
    return np.stack([normalize_intensity(s, p_low, p_high) for s in a]) if len(a) else a


def stack_context(slices: np.ndarray, context: int) -> np.ndarray:
    """``(Z, Y, X)`` -> ``(Z, 1 + 2 * context, Y, X)``: each slice with its neighbours (edges repeated), in order
    ``z - context .. z + context`` (the slice itself in the middle channel)."""
    z = len(slices)
    idx = np.clip(np.arange(z)[:, None] + np.arange(-context, context + 1)[None], 0, max(z - 1, 0))
    return np.ascontiguousarray(slices[idx])


def crop_box(canonical: tuple[int, int], crop: tuple[int, int] | None) -> tuple[int, int, int, int]:
    """``(y0, y1, x0, x1)`` of the centred ``crop`` window in a ``canonical`` grid (the whole grid when None)."""
    h, w = canonical
    if crop is None:
        return 0, h, 0, w
    y0, x0 = (h - crop[0]) // 2, (w - crop[1]) // 2
    return y0, y0 + crop[0], x0, x0 + crop[1]


def canonical_slices(array: np.ndarray, cfg: LgeSegInferenceConfig) -> tuple[np.ndarray, InplaneResample]:
    """Steps 1-2 of the module docstring: ``(Z, Y, X)`` source -> ``(Z, H, W)`` normalised canonical grid.

    Returns:
        The normalised slices and the :class:`InplaneResample` (source -> canonical) that inverts them.
    """
    a = np.asarray(array, dtype=np.float32)
    step = InplaneResample((int(a.shape[-2]), int(a.shape[-1])), tuple(cfg.canonical_size))  # type: ignore[arg-type]
    return normalize_slices(step.image(a), cfg.norm, cfg.p_low, cfg.p_high), step


def label_table(
    cfg: LgeSegInferenceConfig, meta_labels: list[dict[str, Any]] | None = None
) -> tuple[SegmentLabel, ...]:
    """The coded segments of a package: codes/colours from ``metadata.json`` labels, else :data:`LGE_LABEL_CODES`."""
    by_name = {str(d.get("name")): d for d in (meta_labels or [])}
    out = []
    for name, value in sorted(cfg.labels.items(), key=lambda kv: kv[1]):
        category, prop, _, color = LGE_LABEL_CODES[name]
        d = by_name.get(name, {})
        code, cat = d.get("code"), d.get("category")
        if isinstance(code, dict) and {"value", "scheme", "meaning"} <= set(code):
            prop = Code(value=str(code["value"]), scheme=str(code["scheme"]), meaning=str(code["meaning"]))
        if isinstance(cat, dict) and {"value", "scheme", "meaning"} <= set(cat):
            category = Code(value=str(cat["value"]), scheme=str(cat["scheme"]), meaning=str(cat["meaning"]))
        rgb = tuple(int(c) for c in (d.get("color") or color))
        out.append(SegmentLabel(int(value), name, category, prop, rgb))  # type: ignore[arg-type]
    return tuple(out)


def metadata_labels(labels: dict[str, int]) -> list[dict[str, Any]]:
    """The ``labels`` list of ``metadata.json`` (value, name, SNOMED/99MEDAI code, category, description, colour)."""
    out = []
    for name, value in sorted(labels.items(), key=lambda kv: kv[1]):
        category, prop, desc, color = LGE_LABEL_CODES[name]
        out.append({"value": value, "name": name, "code": prop.model_dump(), "category": category.model_dump(),
                    "description": desc, "color": list(color)})
    return out


@PREDICTORS.register("lge_sax_seg")
class LgeSegPredictor(Predictor):
    """LGE short-axis segmentation: LV cavity, healthy myocardium, infarct (scar) and MVO."""

    input_kind = "study"

    def load(self, device: str = "cpu", runtime: str | None = None, **kwargs: Any) -> None:
        """Read ``inference.json`` and the network (its ONNX export or the registered torch network, by ``runtime``,
        default ``MEDAI_RUNTIME``: :mod:`medai.inference.compiled`)."""
        import torch

        from medai.inference import compiled

        cfg_path = self.package_dir / "inference.json"
        if not cfg_path.is_file():
            raise ConfigError(f"{self.package_dir} has no inference.json; it is not an LGE segmentation package")
        try:
            self.config = LgeSegInferenceConfig.model_validate_json(cfg_path.read_text())
        except ValueError as exc:
            raise ConfigError(f"invalid {cfg_path}: {exc}") from exc
        if int(self.config.network.params.get("in_channels", 1)) != self.config.in_channels:  # type: ignore
            raise ConfigError(f"{cfg_path}: network in_channels={self.config.network.params.get('in_channels')} "
                              f"but context={self.config.context} needs {self.config.in_channels}")
        self.device = torch.device(device)
        self.net = load_network(self.package_dir, self.config.network, self.config.spatial_dims, self.config.weights,
                                device, runtime=runtime)
        self.runtime = compiled.runtime_of(self.net)
        self.labels = label_table(self.config, self.metadata.labels)

    def export_onnx(self) -> list[Path]:
        """``weights.onnx`` at the network's input size (the crop, or the canonical grid), batch dynamic."""
        c = self.config
        size = c.crop_size or c.canonical_size
        return [export_network(self.package_dir, c.network, 2, c.weights, (2, c.in_channels, *size), None)]

    # ------------------------------------------------------------------------------------------------------------
    def segment_volume(
        self, volume: Volume, *, postprocess: bool = True, timings: dict[str, float] | None = None
    ) -> LabelMap:
        """Segment a ``(Z, Y, X)`` LGE stack; the result is in the source geometry.

        Args:
            volume: ``(Z, Y, X)`` float image volume of any in-plane size (LPS affine; spacing is not used, the
                model works on the canonical grid like its training data).
            postprocess: apply :func:`medai.cardiac.lge_postprocess.clean_lge` (False: the network's argmax).
            timings: filled with ``preprocessing`` / ``inference`` / ``postprocessing`` seconds when given.

        Returns:
            :class:`LabelMap`: ``(Z, Y, X)`` uint8 in the input's geometry; values 0 background, ``lv``, ``myo``
            (healthy myocardium), ``infarct``, ``mvo`` as in :attr:`labels`.
        """
        cfg = self.config
        arr = np.asarray(volume.array)
        if volume.is_temporal or arr.ndim != 3 or min(arr.shape) < 1:
            raise InputValidationError(
                f"expected a grey-level (Z, Y, X) LGE volume, got shape {arr.shape}",
                details=[{"field": "volume", "problem": "shape", "value": list(arr.shape)}])
        t0 = time.perf_counter()
        canon, step = canonical_slices(arr, cfg)
        x = stack_context(canon, cfg.context)
        y0, y1, x0, x1 = crop_box(cfg.canonical_size, cfg.crop_size)
        x = x[..., y0:y1, x0:x1]
        t1 = time.perf_counter()
        prob = self._probabilities(x)  # (Z, K, h, w) on the crop
        full = np.zeros((len(prob), prob.shape[1], *cfg.canonical_size), dtype=np.float32)
        full[:, 0] = 1.0
        full[:, :, y0:y1, x0:x1] = prob
        if not step.is_identity:
            full = step.invert_image(full)
        values = np.zeros(prob.shape[1], dtype=np.uint8)
        for v in cfg.labels.values():
            if 0 < v < prob.shape[1]:
                values[v] = v
        raw = values[full.argmax(1)]
        t2 = time.perf_counter()
        lab = clean_lge(raw, cfg.labels, cfg.mvo_policy) if postprocess else raw
        t3 = time.perf_counter()
        if timings is not None:
            for k, dt in (("preprocessing", t1 - t0), ("inference", t2 - t1), ("postprocessing", t3 - t2)):
                timings[k] = timings.get(k, 0.0) + dt
        return LabelMap(volume=volume.with_array(lab.astype(np.uint8)), labels=self.labels)

    def _probabilities(self, x: np.ndarray) -> np.ndarray:
        """``(N, C, h, w)`` network input -> ``(N, K, h, w)`` float32 softmax probabilities (mean over TTA views)."""
        import torch

        views: list[tuple[int, ...]] = [()]
        if self.config.tta in ("x", "xy"):
            views.append((-1,))
        if self.config.tta == "xy":
            views += [(-2,), (-2, -1)]
        out = []
        with torch.inference_mode():
            for i in range(0, len(x), CHUNK):
                t = torch.from_numpy(np.ascontiguousarray(x[i : i + CHUNK], dtype=np.float32)).to(self.device)
                total = torch.zeros(())
                for dims in views:
                    prob = torch.softmax(self.net(t.flip(dims) if dims else t).float(), dim=1)
                    total = total + (prob.flip(dims) if dims else prob)
                out.append((total / len(views)).cpu().numpy())
        return np.concatenate(out)

    # ------------------------------------------------------------------------------------------------------------
    def predict(self, inputs: Study) -> Prediction:
        """Segment the LGE short-axis series of a study.

        Raises:
            SeriesSelectionError: the study has no LGE series (the message lists what it has).
            GeometryError: the LGE series has inconsistent geometry.

        Returns:
            :class:`Prediction` with ``label_maps["lge_sax"]`` (``(Z, Y, X)`` in source geometry), input flags,
            and extras ``image`` (the LGE :class:`Volume`), ``series_uids`` and ``timings_s`` per stage.
        """
        from medai.dicom.classify import select_series

        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        series, volume = self._lge_volume(select_series(inputs, SeriesType.LGE))
        timings["volume"] = time.perf_counter() - t0
        labelmap = self.segment_volume(volume, timings=timings)
        flags = [QualityFlag(code="input_warning", severity=Severity.INFO, message=w) for w in volume.warnings]
        return Prediction(
            model=self.ref,
            label_maps={"lge_sax": labelmap},
            flags=flags,
            extras={"image": volume, "series_uids": [s.SeriesInstanceUID for s in series], "timings_s": timings},
        )

    @staticmethod
    def _lge_volume(candidates: list[Series]) -> tuple[list[Series], Volume]:
        """The LGE stack: all candidate series as one stack when they form one, else the largest series."""
        from medai.dicom.volumes import build_volume

        if len(candidates) > 1:
            try:
                return candidates, build_volume(candidates)
            except GeometryError as exc:
                logger.info("the %d LGE series do not form one stack (%s); using the largest", len(candidates), exc)
        best = max(candidates, key=len)
        return [best], build_volume(best)


def load_default(ref: str | Path = "heart_mr_lge_seg", **kwargs: Any) -> LgeSegPredictor:
    """The LGE predictor of a package reference (default: the shipped ``heart_mr_lge_seg``)."""
    pred = Predictor.from_package(ref, **kwargs)
    if not isinstance(pred, LgeSegPredictor):
        raise ConfigError(f"{ref} is a {pred.metadata.predictor} package, not an lge_sax_seg one")
    return pred
