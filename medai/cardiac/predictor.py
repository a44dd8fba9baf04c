"""The cine short-axis segmentation predictor (registered as ``cine_sax_seg``).

``predict(study)``: select the cine SAX series -> build the 4-D cine ``(T, Z, Y, X)`` -> :meth:`segment_volume`
(resample in-plane to the model's spacing, normalise, segment every slice of every frame, map class scores back
to the source grid, 3-D consistency cleaning) -> LV/RV volume curves -> the ED/ES candidate frames (near the curve's
extremes, :func:`~medai.cardiac.phases.phase_candidates`) segmented again under the package's test-time augmentation
(:meth:`refine_frames`; ``inference.json`` ``tta``) -> ED/ES among them -> coded measurements -> quality flags.
Evaluation calls :meth:`segment_volume` directly on dataset volumes, so it runs the same code.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from medai.cardiac.phases import CardiacPhases, declared_phases, phase_candidates, select_phases
from medai.cardiac.postprocess import apply_basal_ring_rule, clean_cine
from medai.cardiac.preprocess import (
    TTA_MODES,
    CineSegInferenceConfig,
    export_network,
    load_network,
    normalize_intensity,
    pad_to_divisor,
)
from medai.cardiac.quality import curve_flags, input_flags, result_flags
from medai.domain.codes import Code
from medai.domain.prediction import Prediction, QualityFlag, Severity
from medai.domain.study import Series, SeriesType, Study
from medai.domain.volume import ANATOMICAL_STRUCTURE, LabelMap, SegmentLabel, Volume
from medai.errors import ConfigError, InputValidationError
from medai.geometry import InplaneResample
from medai.inference.predictor import Predictor
from medai.registry import PREDICTORS

logger = logging.getLogger(__name__)

#: Fallback coded label table when a package's metadata lists no labels (SNOMED CT, DICOM CID 7151/7152).
DEFAULT_LABEL_CODES: dict[str, tuple[str, str, tuple[int, int, int]]] = {
    "lv": ("87878005", "Left ventricle", (220, 40, 40)),
    "myo": ("74281007", "Myocardium", (40, 180, 60)),
    "rv": ("53085002", "Right ventricle", (40, 90, 230)),
}
#: Slices per forward pass (at most; see :data:`PASS_PIXELS`).
CHUNK = 24
#: Pixels per forward pass at most: the network's activations grow with them (24 slices of a 240x240 field of
#: view took 150 MB; 24 heart crops of 144x144, 19 MB). 200k against 600k: the peak RSS of a warm SCD0000101
#: analysis falls by about a third at the same speed and labels (bench/cine_pass_memory.py).
PASS_PIXELS = 200_000
#: Slices whose class scores are mapped back to the source grid at once (full-grid float32 scores are large).
MAP_CHUNK = 8
#: Margin (mm) around the heart's bounding box in frame 0 within which the other frames are segmented.
ROI_MARGIN_MM = 30.0


def _label_table(cfg: CineSegInferenceConfig, meta_labels: list[dict[str, Any]]) -> tuple[SegmentLabel, ...]:
    by_name = {str(d.get("name")): d for d in meta_labels}
    out = []
    for name, value in sorted(cfg.labels.items(), key=lambda kv: kv[1]):
        d = by_name.get(name, {})
        code = d.get("code")
        if isinstance(code, dict) and {"value", "scheme", "meaning"} <= set(code):
            prop = Code(value=str(code["value"]), scheme=str(code["scheme"]), meaning=str(code["meaning"]))
        else:
            v, meaning, _ = DEFAULT_LABEL_CODES.get(name, ("", name, (255, 0, 0)))
            prop = Code(value=v or name, scheme="SCT" if v else "99MEDAI", meaning=meaning)
        color = tuple(d.get("color") or DEFAULT_LABEL_CODES.get(name, ("", "", (255, 0, 0)))[2])
        out.append(SegmentLabel(int(value), name, ANATOMICAL_STRUCTURE, prop, color))  # type: ignore[arg-type]
    return tuple(out)


def argmax_classes(prob: np.ndarray) -> np.ndarray:
    """``prob.argmax(1)`` for ``(N, C, ...)`` scores with few classes, as C-1 whole-slab comparisons (about 5x
    faster than numpy's and torch's argmax over a non-last axis); the first maximum wins ties, as there. uint8
    indices (an eighth of numpy's intp) for up to 256 classes."""
    best = prob[:, 0].copy()
    idx = np.zeros(best.shape, dtype=np.uint8 if prob.shape[1] <= 256 else np.intp)
    for c in range(1, prob.shape[1]):
        better = prob[:, c] > best
        idx[better] = c
        np.maximum(best, prob[:, c], out=best)
    return idx


@PREDICTORS.register("cine_sax_seg")
class CineSegPredictor(Predictor):
    """Cine SAX segmentation (LV blood pool, LV myocardium, RV blood pool) and function analysis."""

    input_kind = "study"

    #: the network's arithmetic: ``"float32"`` (the reference) or ``"bfloat16"`` (CPU autocast: about 2x faster
    #: where the CPU has native bf16 (AVX512-BF16/AMX); labels may differ at a few boundary pixels, so
    #: ``bench/cmr_analyze.py`` checks ACDC val Dice against float32)
    precision: str = "float32"
    #: ``"onnx"`` (ONNX Runtime, the package's export) or ``"torch"``: set by :meth:`load`
    runtime: str = "torch"

    def load(self, device: str = "cpu", precision: str | None = None, runtime: str | None = None, **kwargs: Any
             ) -> None:
        """Read ``inference.json`` and the network: the package's ONNX export under ONNX Runtime, or the registered
        torch network in eval mode, channels-last (the same arithmetic as contiguous NCHW, about 25% faster on CPU
        convolutions than NCHW under torch).

        ``precision``: ``"float32"`` or ``"bfloat16"``; default ``MEDAI_PRECISION`` (float32).
        ``runtime``: ``"auto"``, ``"torch"`` or ``"onnx"`` (:mod:`medai.inference.compiled`); default
        ``MEDAI_RUNTIME`` (auto)."""
        import torch

        from medai.inference import compiled

        if precision is None:
            from medai.settings import get_settings

            precision = get_settings().precision
        if precision not in ("float32", "bfloat16"):
            raise ConfigError(f"precision {precision!r} (MEDAI_PRECISION): use float32 or bfloat16")
        self.precision = precision

        cfg_path = self.package_dir / "inference.json"
        if not cfg_path.is_file():
            raise ConfigError(f"{self.package_dir} has no inference.json; it is not a cine segmentation package")
        try:
            self.config = CineSegInferenceConfig.model_validate_json(cfg_path.read_text())
        except ValueError as exc:
            raise ConfigError(f"invalid {cfg_path}: {exc}") from exc
        if self.config.spatial_dims != 2:
            raise ConfigError(f"{cfg_path}: spatial_dims={self.config.spatial_dims}; cine_sax_seg runs 2-D "
                              "(slice-wise) networks only")
        self.device = torch.device(device)
        self.net = load_network(self.package_dir, self.config.network, self.config.spatial_dims, self.config.weights,
                                device, runtime=runtime, precision=precision)
        self.runtime = compiled.runtime_of(self.net)
        if self.runtime == "torch":
            self.net = self.net.to(memory_format=torch.channels_last)
        self.labels = _label_table(self.config, self.metadata.labels)

    def export_onnx(self) -> list[Path]:
        """``weights.onnx``: batch and in-plane size dynamic (multiples of ``size_divisor``)."""
        d = self.config.size_divisor
        return [export_network(self.package_dir, self.config.network, 2, self.config.weights,
                               (2, int(self.config.network.params.get("in_channels", 1)), 7 * d, 6 * d), d)]

    # ------------------------------------------------------------------------------------------------------------
    def segment_volume(
        self,
        volume: Volume,
        *,
        resample: bool = True,
        postprocess: bool = True,
        roi: bool = True,
        timings: dict[str, float] | None = None,
        progress: Callable[[str], None] | None = None,
        uncertainty: dict[str, np.ndarray] | None = None,
        tta: bool | None = None,
    ) -> LabelMap:
        """Segment a ``(Z, Y, X)`` or ``(T, Z, Y, X)`` image volume; the result is in the source geometry.

        Args:
            volume: image volume (float, LPS). Spacing comes from its affine.
            resample: resample in-plane to the model's ``target_spacing_mm`` (False when the spacing is unknown,
                e.g. ACDC HDF5, where the model sees the grid as-is like in training).
            postprocess: apply the 3-D consistency cleaning and the SCMR basal-slice rule
                (:mod:`medai.cardiac.postprocess`).
            roi: for cine volumes, segment frame 0 on the whole field of view, then the other frames inside the
                heart's bounding box plus :data:`ROI_MARGIN_MM` (class scores outside count as background). The
                heart moves by far less than the margin over a cycle; this cuts inference ~3x on a chest FOV.
            timings: filled with ``preprocessing`` / ``inference`` / ``postprocessing`` seconds when given.
            progress: called with ``"inference"`` / ``"postprocessing"`` as those stages start.
            uncertainty: when given, filled with ``"slice_stats"``: ``(T, Z, C, 3)`` float32 per-slice sums of the
                class probabilities (:func:`medai.quality.uncertainty.slice_stats`), for the quality gate.
            tta: average the package's test-time augmentation (``inference.json`` ``tta``) over every frame; None:
                when the package has one. :meth:`predict` segments a whole cine without it, then re-segments only
                the ED/ES candidate frames with it (:meth:`refine_frames`) and picks the measured ED and ES among
                them.

        Returns:
            :class:`LabelMap` with ``volume.array`` uint8 of the input's shape and geometry.
        """
        cfg = self.config
        arr = np.asarray(volume.array)
        temporal = volume.is_temporal
        if arr.ndim != (4 if temporal else 3):
            raise InputValidationError(
                f"expected a grey-level {'(T, Z, Y, X)' if temporal else '(Z, Y, X)'} volume, got shape {arr.shape}",
                details=[{"field": "volume", "problem": "shape", "value": list(arr.shape)}])
        frames = arr if temporal else arr[None]
        n_t, n_z, ny, nx = frames.shape
        mode = cfg.tta if tta is None or tta else "none"
        t0 = time.perf_counter()
        step = InplaneResample.to_spacing(volume, cfg.target_spacing_mm if resample else None)
        prep_s = 0.0

        def prepared(ts: range) -> np.ndarray:
            """Frames ``ts`` resampled and normalised, as ``(len(ts) * Z, Y', X')`` slices. Per frame, as in
            training (each ED/ES volume is normalised on its own), and only a forward pass's worth at a time: a
            whole prepared copy of the 4-D study would double the analysis' memory."""
            nonlocal prep_s
            t = time.perf_counter()
            x = np.concatenate([normalize_intensity(step.image(frames[i]), cfg.p_low, cfg.p_high) for i in ts])
            prep_s += time.perf_counter() - t
            return x

        first = prepared(range(1))
        if progress is not None:
            progress("inference")
        out = np.empty((n_t, n_z, ny, nx), dtype=np.uint8)
        stats: list[np.ndarray] | None = [] if uncertainty is not None else None
        out[0] = self._segment_slices(first, step, None, stats, mode)
        del first
        box = self._roi(out[0], step) if (roi and n_t > 1) else None
        per = max(1, CHUNK // n_z)  # frames per forward pass
        for a in range(1, n_t, per):
            ts = range(a, min(n_t, a + per))
            out[ts.start : ts.stop] = self._segment_slices(prepared(ts), step, box, stats, mode).reshape(
                len(ts), n_z, ny, nx)
        t1 = t0 + prep_s
        if uncertainty is not None and stats:
            all_stats = np.concatenate(stats)
            uncertainty["slice_stats"] = all_stats.reshape(n_t, n_z, *all_stats.shape[1:])
        t2 = time.perf_counter()
        if progress is not None:
            progress("postprocessing")
        if postprocess:  # in place: no second 4-D label map at the analysis' peak
            apply_basal_ring_rule(clean_cine(out, cfg.labels, inplace=True), cfg.labels, inplace=True)
        lab = out
        t3 = time.perf_counter()
        if timings is not None:
            timings["preprocessing"] = timings.get("preprocessing", 0.0) + (t1 - t0)
            timings["inference"] = timings.get("inference", 0.0) + (t2 - t1)
            timings["postprocessing"] = timings.get("postprocessing", 0.0) + (t3 - t2)
        return LabelMap(volume=volume.with_array(lab if temporal else lab[0]), labels=self.labels)

    def refine_frames(self, volume: Volume, labelmap: LabelMap, frames: tuple[int, ...],
                      timings: dict[str, float] | None = None) -> LabelMap:
        """``labelmap`` (of the cine ``volume``) with ``frames`` segmented again under the package's test-time
        augmentation, inside the heart's region as the other frames are (:data:`ROI_MARGIN_MM`), then cleaned as
        in :meth:`segment_volume`. The label map is returned as it is when the package has no augmentation."""
        cfg = self.config
        ts = sorted({int(t) for t in frames})
        arr = np.asarray(volume.array)
        if cfg.tta == "none" or arr.ndim != 4 or not ts:
            return labelmap
        t0 = time.perf_counter()
        step = InplaneResample.to_spacing(volume, cfg.target_spacing_mm)
        x = np.concatenate([normalize_intensity(step.image(arr[t]), cfg.p_low, cfg.p_high) for t in ts])
        t1 = time.perf_counter()
        box = self._roi(labelmap.volume.array[0], step)
        n_z = arr.shape[1]
        seg = self._segment_slices(x, step, box, None, cfg.tta).reshape(len(ts), n_z, *arr.shape[2:])
        t2 = time.perf_counter()
        out = np.array(labelmap.volume.array, copy=True)
        out[ts] = apply_basal_ring_rule(clean_cine(seg, cfg.labels, inplace=True), cfg.labels, inplace=True)
        if timings is not None:
            timings["preprocessing"] = timings.get("preprocessing", 0.0) + (t1 - t0)
            timings["inference"] = timings.get("inference", 0.0) + (t2 - t1)
            timings["postprocessing"] = timings.get("postprocessing", 0.0) + (time.perf_counter() - t2)
        return LabelMap(volume=labelmap.volume.with_array(out), labels=labelmap.labels)

    def _roi(self, labels: np.ndarray, step: InplaneResample) -> tuple[int, int, int, int] | None:
        """Bounding box ``(y0, y1, x0, x1)`` on the resampled grid around the heart in ``labels`` (source grid)."""
        from medai.cardiac.postprocess import largest_component

        fg = largest_component(labels > 0)
        if not fg.any():
            return None
        yx = np.argwhere(fg.any(axis=0))
        sy, sx = step.scale()
        (ay, ax), (by, bx) = yx.min(0), yx.max(0)
        spacing = self.config.target_spacing_mm
        m = ROI_MARGIN_MM / spacing
        h, w = step.out_shape
        div = self.config.size_divisor

        def span(lo: float, hi: float, size: int) -> tuple[int, int]:
            a, b = max(0, int(np.floor(lo - m))), min(size, int(np.ceil(hi + m)) + 1)
            length = min(size, int(np.ceil((b - a) / div) * div))  # a multiple of the divisor: no padding
            a = min(max(0, (a + b - length) // 2), size - length)
            return a, a + length

        y0, y1 = span((ay + 0.5) / sy - 0.5, (by + 0.5) / sy - 0.5, h)
        x0, x1 = span((ax + 0.5) / sx - 0.5, (bx + 0.5) / sx - 0.5, w)
        if (y1 - y0) * (x1 - x0) > 0.6 * h * w:
            return None
        return y0, y1, x0, x1

    def _logits(self, t: Any, flips: tuple[int, ...] = (), transpose: bool = False) -> Any:
        """Class logits ``(N, C, Y, X)`` (float32) of a padded ``(N, 1, Y, X)`` batch, seen flipped along ``flips``
        and then transposed in-plane, mapped back to the batch's orientation (:data:`TTA_MODES`)."""
        import torch

        x = t.flip(flips) if flips else t
        if transpose:
            x = x.transpose(-1, -2)
        if self.runtime == "torch":
            x = x.contiguous(memory_format=torch.channels_last)
        y = self.net(x).float()
        if transpose:
            y = y.transpose(-1, -2)
        if flips:
            y = y.flip(flips)
        return y

    def _segment_slices(
        self, slices: np.ndarray, step: InplaneResample, box: tuple[int, int, int, int] | None,
        stats: list[np.ndarray] | None = None, tta: str = "none",
    ) -> np.ndarray:
        """``(N, Y', X')`` normalised slices on the model grid -> ``(N, Y, X)`` uint8 labels on the source grid.

        ``stats``, when given, gets one ``(n, C, 3)`` array of probability sums per chunk (on the model grid), of
        the plain pass. ``tta``: a :data:`TTA_MODES` key; the labels are the argmax of the logits averaged over its
        passes.
        """
        import torch

        n = len(slices)
        ny, nx = step.in_shape
        out = np.empty((n, ny, nx), dtype=np.uint8)
        values = None
        h, w = (box[1] - box[0], box[3] - box[2]) if box is not None else slices.shape[-2:]
        chunk = max(1, min(CHUNK, PASS_PIXELS // (h * w)))  # a full field of view takes fewer slices per pass
        for i in range(0, n, chunk):
            x = slices[i : i + chunk]
            if box is not None:
                x = x[:, box[0] : box[1], box[2] : box[3]]
            padded, (sy, sx) = pad_to_divisor(x, self.config.size_divisor)
            with torch.inference_mode(), torch.autocast(self.device.type, dtype=torch.bfloat16,
                                                        enabled=self.precision == "bfloat16"):
                t = torch.from_numpy(np.ascontiguousarray(padded[:, None])).to(self.device)
                logits = self._logits(t)[:, :, sy, sx]
                prob_t = torch.softmax(logits, dim=1)
                if stats is not None:  # the plain pass's: the quality gate was fitted on those
                    from medai.quality.uncertainty import slice_stats

                    stats.append(slice_stats(prob_t))
                passes = TTA_MODES[tta][1:]
                if passes:  # the mean of the passes' logits (their probabilities' normalised geometric mean)
                    logits = logits.clone()
                    for flips, transpose in passes:
                        logits += self._logits(t, flips, transpose)[:, :, sy, sx]
                    prob_t = torch.softmax(logits / (len(passes) + 1), dim=1)
                prob = prob_t.cpu().numpy()
            if values is None:
                values = np.zeros(prob.shape[1], dtype=np.uint8)
                for v in self.config.labels.values():
                    if 0 < v < prob.shape[1]:
                        values[v] = v
            for j in range(0, len(x), MAP_CHUNK):  # back to the source grid a few slices at a time (memory)
                part = prob[j : j + MAP_CHUNK]
                if box is not None:
                    full = np.zeros((len(part), part.shape[1], *step.out_shape), dtype=np.float32)
                    full[:, 0] = 1.0
                    full[:, :, box[0] : box[1], box[2] : box[3]] = part
                    part = full
                if not step.is_identity:
                    part = step.invert_image(part)
                out[i + j : i + j + len(part)] = values[argmax_classes(part)]
        return out

    # ------------------------------------------------------------------------------------------------------------
    def predict(self, inputs: Study, *, progress: Callable[[str], None] | None = None) -> Prediction:
        """Analyse the cine SAX series of a study.

        Raises:
            SeriesSelectionError: the study has no cine short-axis series (the message lists what it has).
            GeometryError: the cine series has inconsistent geometry.

        Returns:
            :class:`Prediction` with ``label_maps["cine_sax"]`` (``(T, Z, Y, X)`` in source geometry),
            coded measurements, quality flags and extras: ``image`` (the cine :class:`Volume`), ``volume_curve``
            (``times_ms``, ``lv_ml``, ``myo_ml``, ``rv_ml``), ``ed_frame``, ``es_frame``, ``phase_source``,
            ``wall_thickness_mm`` (AHA segment -> mm), ``series_uids``, ``timings_s`` per stage, and
            ``seg_slice_stats`` ``(T, Z, C, 3)`` (channel ``c`` = label value ``c``) for the segmentation-quality
            estimate.
        """
        from medai.dicom.classify import select_series
        from medai.dicom.volumes import build_cine

        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        series = select_series(inputs, SeriesType.CINE_SAX)
        volume = build_cine(series if len(series) > 1 else series[0])
        timings["volume"] = time.perf_counter() - t0
        if volume.array.ndim != 4:
            raise InputValidationError(
                f"the cine series gave a {volume.array.shape} array, not a grey-level (T, Z, Y, X) stack",
                details=[{"field": "series", "problem": "shape", "value": list(volume.array.shape)}])
        unc: dict[str, np.ndarray] = {}
        labelmap = self.segment_volume(volume, timings=timings, progress=progress, uncertainty=unc, tta=False)
        chosen = None
        if self.config.tta != "none":  # the ED/ES candidates again, under the test-time augmentation
            from medai.measurements import volume_curves

            declared = declared_phases(series, volume.source_sop_uids)
            ed_c, es_c = phase_candidates(volume_curves(labelmap)["lv_ml"], declared)
            labelmap = self.refine_frames(volume, labelmap, (*ed_c, *es_c), timings)
            chosen = select_phases(volume_curves(labelmap)["lv_ml"], declared, among=(ed_c, es_c))
        if progress is not None:
            progress("measurement")
        pred = self.measure(inputs, series, volume, labelmap, timings, chosen=chosen)
        if "slice_stats" in unc:
            pred.extras["seg_slice_stats"] = unc["slice_stats"]
        return pred

    def measure(
        self, study: Study, series: list[Series], volume: Volume, labelmap: LabelMap, timings: dict[str, float],
        phases: tuple[int, int] | None = None, *, chosen: CardiacPhases | None = None,
    ) -> Prediction:
        """Phases, measurements and flags from a cine label map (also used to measure reference labels).

        ``phases``: ``(ed, es)`` frames chosen by a reader; default: declared in the DICOM, else from the LV curve.
        ``chosen``: the phases :meth:`predict` already picked (among its refined candidate frames), kept as they
        are.
        """
        from medai.measurements import function_measurements, patient_info, volume_curves, wall_thickness_measurements

        t0 = time.perf_counter()
        curves = volume_curves(labelmap)
        if chosen is not None:
            phases = chosen
        elif phases is not None:
            picked = select_phases(curves["lv_ml"], phases)
            phases = CardiacPhases(picked.ed, picked.es, "reader" if picked.source == "dicom" else picked.source)
        else:
            phases = select_phases(curves["lv_ml"], declared_phases(series, volume.source_sop_uids))
        patient = patient_info(study, series)
        measurements = function_measurements(labelmap, phases.ed, phases.es, patient)
        values = {m.name: m.value for m in measurements}
        flags: list[QualityFlag] = input_flags(volume.warnings) + curve_flags(curves["lv_ml"])
        flags += result_flags(values, labelmap, phases.ed)
        wall: dict[int, float] = {}
        if any(f.code == "no_lv_found" for f in flags):
            measurements = []
        else:
            wt = wall_thickness_measurements(labelmap, phases.ed, patient.sex)
            wall = {int(m.name.removeprefix("lv_wall_thickness_aha")): m.value for m in wt}
            measurements += wt
        if not patient.sex:
            flags.append(QualityFlag(code="sex_unknown", severity=Severity.INFO,
                                     message="PatientSex is missing: reference ranges span both sexes."))
        timings["measurement"] = time.perf_counter() - t0
        return Prediction(
            model=self.ref,
            label_maps={"cine_sax": labelmap},
            measurements=measurements,
            flags=flags,
            extras={
                "image": volume,
                "volume_curve": curves,
                "ed_frame": phases.ed,
                "es_frame": phases.es,
                "phase_source": phases.source,
                "wall_thickness_mm": wall,
                "series_uids": [s.SeriesInstanceUID for s in series],
                "timings_s": timings,
            },
        )


def load_default(ref: str | Path = "heart_mr_cine_seg", **kwargs: Any) -> CineSegPredictor:
    """The cine predictor of a package reference (default: the shipped ``heart_mr_cine_seg``)."""
    pred = Predictor.from_package(ref, **kwargs)
    if not isinstance(pred, CineSegPredictor):
        raise ConfigError(f"{ref} is a {pred.metadata.predictor} package, not a cine_sax_seg one")
    return pred
