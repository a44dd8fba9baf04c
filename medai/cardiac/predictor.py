"""The cine short-axis segmentation predictor (registered as ``cine_sax_seg``).

``predict(study)``: select the cine SAX series -> build the 4-D cine ``(T, Z, Y, X)`` -> :meth:`segment_volume`
(resample in-plane to the model's spacing, normalise, segment every slice of every frame, map class scores back
to the source grid, 3-D consistency cleaning) -> LV/RV volume curves -> ED/ES -> coded measurements -> quality
flags. Evaluation calls :meth:`segment_volume` directly on dataset volumes, so it runs the same code.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from medai.cardiac.phases import declared_phases, select_phases
from medai.cardiac.postprocess import clean_cine
from medai.cardiac.preprocess import CineSegInferenceConfig, normalize_intensity, pad_to_divisor
from medai.cardiac.quality import curve_flags, input_flags, result_flags
from medai.domain.codes import Code
from medai.domain.prediction import Prediction, QualityFlag, Severity
from medai.domain.study import Series, SeriesType, Study
from medai.domain.volume import ANATOMICAL_STRUCTURE, LabelMap, SegmentLabel, Volume
from medai.errors import ConfigError, InputValidationError
from medai.geometry import InplaneResample
from medai.inference.predictor import Predictor
from medai.registry import NETWORKS, PREDICTORS

logger = logging.getLogger(__name__)

#: Fallback coded label table when a package's metadata lists no labels (SNOMED CT, DICOM CID 7151/7152).
DEFAULT_LABEL_CODES: dict[str, tuple[str, str, tuple[int, int, int]]] = {
    "lv": ("87878005", "Left ventricle", (220, 40, 40)),
    "myo": ("74281007", "Myocardium", (40, 180, 60)),
    "rv": ("53085002", "Right ventricle", (40, 90, 230)),
}
#: Slices per forward pass.
CHUNK = 24


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


@PREDICTORS.register("cine_sax_seg")
class CineSegPredictor(Predictor):
    """Cine SAX segmentation (LV blood pool, LV myocardium, RV blood pool) and function analysis."""

    input_kind = "study"

    def load(self, device: str = "cpu", **kwargs: Any) -> None:
        """Read ``inference.json`` and the weights; build the registered network in eval mode."""
        import torch

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
        params = dict(self.config.network.params)
        params.setdefault("spatial_dims", self.config.spatial_dims)
        net = NETWORKS.get(self.config.network.name)(**params)
        weights = self.package_dir / self.config.weights
        if not weights.is_file():
            raise ConfigError(f"{self.package_dir} lacks its weights file {self.config.weights}")
        state = torch.load(weights, map_location="cpu", weights_only=True)
        state = {k: (v.float() if v.is_floating_point() else v) for k, v in state.items()}
        net.load_state_dict(state)  # type: ignore[attr-defined]
        self.device = torch.device(device)
        self.net = net.to(self.device).eval()  # type: ignore[attr-defined]
        self.labels = _label_table(self.config, self.metadata.labels)

    # ------------------------------------------------------------------------------------------------------------
    def segment_volume(
        self,
        volume: Volume,
        *,
        resample: bool = True,
        postprocess: bool = True,
        timings: dict[str, float] | None = None,
    ) -> LabelMap:
        """Segment a ``(Z, Y, X)`` or ``(T, Z, Y, X)`` image volume; the result is in the source geometry.

        Args:
            volume: image volume (float, LPS). Spacing comes from its affine.
            resample: resample in-plane to the model's ``target_spacing_mm`` (False when the spacing is unknown,
                e.g. ACDC HDF5, where the model sees the grid as-is like in training).
            postprocess: apply the 3-D consistency cleaning (:mod:`medai.cardiac.postprocess`).
            timings: filled with ``preprocessing`` / ``inference`` / ``postprocessing`` seconds when given.

        Returns:
            :class:`LabelMap` with ``volume.array`` uint8 of the input's shape and geometry.
        """
        import torch

        cfg = self.config
        arr = np.asarray(volume.array)
        temporal = volume.is_temporal
        if arr.ndim != (4 if temporal else 3):
            raise InputValidationError(
                f"expected a grey-level {'(T, Z, Y, X)' if temporal else '(Z, Y, X)'} volume, got shape {arr.shape}",
                details=[{"field": "volume", "problem": "shape", "value": list(arr.shape)}])
        frames = arr if temporal else arr[None]
        n_t, n_z, ny, nx = frames.shape
        t0 = time.perf_counter()
        step = InplaneResample.to_spacing(volume, cfg.target_spacing_mm if resample else None)
        # per-frame normalisation, as in training (each ED/ES volume is normalised on its own)
        prep = np.stack([normalize_intensity(step.image(f), cfg.p_low, cfg.p_high) for f in frames])
        flat = prep.reshape(n_t * n_z, *prep.shape[-2:])
        padded, (sy, sx) = pad_to_divisor(flat, cfg.size_divisor)
        t1 = time.perf_counter()
        out = np.empty((n_t * n_z, ny, nx), dtype=np.uint8)
        n_classes = None
        values = np.zeros(1, dtype=np.uint8)
        with torch.inference_mode():
            for i in range(0, len(padded), CHUNK):
                x = torch.from_numpy(np.ascontiguousarray(padded[i : i + CHUNK, None])).to(self.device)
                prob = torch.softmax(self.net(x).float(), dim=1)[:, :, sy, sx].cpu().numpy()
                if n_classes is None:
                    n_classes = prob.shape[1]
                    values = np.zeros(n_classes, dtype=np.uint8)
                    for v in cfg.labels.values():
                        if 0 < v < n_classes:
                            values[v] = v
                prob = step.invert_image(prob) if not step.is_identity else prob
                out[i : i + CHUNK] = values[prob.argmax(1)]
        t2 = time.perf_counter()
        lab = out.reshape(n_t, n_z, ny, nx)
        if postprocess:
            lab = clean_cine(lab, cfg.labels)
        t3 = time.perf_counter()
        if timings is not None:
            timings["preprocessing"] = timings.get("preprocessing", 0.0) + (t1 - t0)
            timings["inference"] = timings.get("inference", 0.0) + (t2 - t1)
            timings["postprocessing"] = timings.get("postprocessing", 0.0) + (t3 - t2)
        return LabelMap(volume=volume.with_array(lab if temporal else lab[0]), labels=self.labels)

    # ------------------------------------------------------------------------------------------------------------
    def predict(self, inputs: Study) -> Prediction:
        """Analyse the cine SAX series of a study.

        Raises:
            SeriesSelectionError: the study has no cine short-axis series (the message lists what it has).
            GeometryError: the cine series has inconsistent geometry.

        Returns:
            :class:`Prediction` with ``label_maps["cine_sax"]`` (``(T, Z, Y, X)`` in source geometry),
            coded measurements, quality flags and extras: ``image`` (the cine :class:`Volume`), ``volume_curve``
            (``times_ms``, ``lv_ml``, ``myo_ml``, ``rv_ml``), ``ed_frame``, ``es_frame``, ``phase_source``,
            ``wall_thickness_mm`` (AHA segment -> mm), ``series_uids`` and ``timings_s`` per stage.
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
        labelmap = self.segment_volume(volume, timings=timings)
        return self.measure(inputs, series, volume, labelmap, timings)

    def measure(
        self, study: Study, series: list[Series], volume: Volume, labelmap: LabelMap, timings: dict[str, float]
    ) -> Prediction:
        """Phases, measurements and flags from a cine label map (also used to measure reference labels)."""
        from medai.measurements import function_measurements, patient_info, volume_curves, wall_thickness_measurements

        t0 = time.perf_counter()
        curves = volume_curves(labelmap)
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
