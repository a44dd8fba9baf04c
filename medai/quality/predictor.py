"""``heart_mr_quality``'s predictor (registered as ``mr_quality``).

Three parts, each optional in a package except the first:

* the artefact CNN (``weights.pt``): per slice, the probability and severity of motion, ghosting/wrap,
  spike/noise and low contrast; "good" is ``1 - max`` of the four;
* the coverage classifier (``coverage.json``, logistic regressions on :data:`~medai.quality.features.
  COVERAGE_FEATURES` of the segmentation and, when the images are given, on the logit of the end-slice CNN
  ensemble ``coverage_cnn.pt`` over the end slices' images): probability that basal / apical LV slices are
  missing from a short-axis stack;
* the segmentation-quality regressors (``seg_quality.skops``, one per structure on :data:`~medai.quality.
  features.SEG_FEATURES`): the Dice a segmentation would score against a reader, predicted without one.

``predict(study)`` scores the slices of every cine / LGE short-axis series; the quality gate
(:mod:`medai.quality.gate`) calls the parts directly.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from medai.domain.prediction import Prediction
from medai.domain.study import Series, SeriesType, Study
from medai.errors import ConfigError
from medai.inference.predictor import Predictor
from medai.quality.features import Structures, coverage_features, end_slice_inputs, seg_features
from medai.quality.preprocess import INPUT_SIZE, prepare_slices
from medai.quality.simulate import ARTEFACTS
from medai.registry import PREDICTORS

logger = logging.getLogger(__name__)

#: Slices scored per forward pass.
CHUNK = 64


class QualityInferenceConfig(BaseModel):
    """``inference.json`` of a quality package."""

    model_config = ConfigDict(extra="forbid")

    network: dict[str, Any]
    weights: str = "weights.pt"
    input_size: int = INPUT_SIZE
    artefacts: list[str] = Field(default_factory=lambda: list(ARTEFACTS))
    coverage: str | None = None
    seg_quality: str | None = None


@dataclass
class SliceScores:
    """Artefact scores of ``N`` slices: ``presence`` / ``severity`` ``(N, K)`` in ``[0, 1]``, ``good`` ``(N,)``."""

    artefacts: list[str]
    presence: np.ndarray
    severity: np.ndarray

    @property
    def good(self) -> np.ndarray:
        """``(N,)`` probability that a slice has none of the artefacts (``1 - max presence``)."""
        return 1.0 - self.presence.max(1) if len(self.presence) else np.zeros(0)


def sample_instances(series: Series, limit: int) -> list[Any]:
    """Up to ``limit`` instances spread evenly over the series (all slice positions and phases alike)."""
    inst = sorted(series.instances, key=lambda i: (i.get("InstanceNumber") or 0))
    if len(inst) <= limit:
        return inst
    idx = np.unique(np.linspace(0, len(inst) - 1, limit).round().astype(int))
    return [inst[i] for i in idx]


def end_cnn_logits(nets: Sequence[Any] | Any, x: np.ndarray) -> np.ndarray:
    """Mean logit of the end-slice CNN networks over the four 90-degree rotations of ``x`` ``(N, 4, S, S)``:
    ``nets`` is a list of fold networks, or an ensemble already built (:class:`medai.quality.ensemble.
    EndSliceEnsemble`, or its ONNX export); used by the predictor and by the fit that makes its training rows."""
    import torch

    from medai.quality.ensemble import EndSliceEnsemble

    net = EndSliceEnsemble(list(nets)).eval() if isinstance(nets, list | tuple) else nets
    with torch.inference_mode():
        return net(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).numpy()


#: what ``MEDAI_RUNTIME=auto`` runs the coverage ensembles on: ONNX Runtime, 2.5x faster than torch for these 20
#: small passes per end (:mod:`medai.inference.compiled`). The artefact CNN stays on torch under ``auto``: one
#: batched pass, 0.22 against 0.31-0.38 ms per slice on ONNX Runtime (1 thread, 2026-12-07).
ENSEMBLE_RUNTIME = "onnx"
#: the ONNX export of one end's coverage ensemble (beside the coverage CNN weights)
END_ONNX = "coverage_cnn.{end}.onnx"


@PREDICTORS.register("mr_quality")
class QualityPredictor(Predictor):
    """Artefact, coverage and segmentation-quality models of short-axis cardiac MR."""

    input_kind = "study"

    def load(self, device: str = "cpu", runtime: str | None = None, **kwargs: Any) -> None:
        """Read ``inference.json``, the CNN (its ONNX export or the torch network, by ``runtime``, default
        ``MEDAI_RUNTIME``: :mod:`medai.inference.compiled`), and the coverage / segmentation-quality files it
        names."""
        import torch

        from medai.cardiac.preprocess import NetworkSpec, load_network
        from medai.inference import compiled

        path = self.package_dir / "inference.json"
        if not path.is_file():
            raise ConfigError(f"{self.package_dir} has no inference.json; it is not a quality package")
        try:
            self.config = QualityInferenceConfig.model_validate_json(path.read_text())
        except ValueError as exc:
            raise ConfigError(f"invalid {path}: {exc}") from exc
        self.net = load_network(self.package_dir, NetworkSpec.model_validate(self.config.network), 2,
                                self.config.weights, device, runtime=runtime)
        self.runtime = compiled.runtime_of(self.net)
        self.device = torch.device(device)
        self.coverage_model: dict[str, Any] | None = None
        self.coverage_nets: dict[str, Any] = {}
        if self.config.coverage:
            self.coverage_model = json.loads((self.package_dir / self.config.coverage).read_text())
            if self.coverage_model.get("end_cnn"):
                self.coverage_nets = self._coverage_ensembles(runtime)
        self.seg_models: dict[str, Any] | None = None
        if self.config.seg_quality:
            import skops.io as sio

            p = self.package_dir / self.config.seg_quality
            self.seg_models = sio.load(p, trusted=sio.get_untrusted_types(file=p))

    def _coverage_ensembles(self, runtime: str | None, *, torch_only: bool = False) -> dict[str, Any]:
        """Per end, the fold networks of the end-slice CNN as one ensemble: its ONNX export (:data:`END_ONNX`) when
        the runtime allows and the export is current, else the torch :class:`~medai.quality.ensemble.
        EndSliceEnsemble`."""
        import torch

        from medai.inference import compiled
        from medai.quality.ensemble import EndSliceEnsemble
        from medai.registry import NETWORKS

        assert self.coverage_model is not None
        cnn = self.coverage_model["end_cnn"]
        mode = "torch" if torch_only else compiled.resolve_runtime(runtime, preferred=ENSEMBLE_RUNTIME)
        states = torch.load(self.package_dir / cnn["weights"], map_location="cpu", weights_only=True)
        out: dict[str, Any] = {}
        for end, per_fold in states.items():
            if mode != "torch":
                out[end] = compiled.load_onnx(self.package_dir, cnn["weights"], self._ensemble_signature(end, per_fold),
                                              required=mode == "onnx", name=END_ONNX.format(end=end))
                if out[end] is not None:
                    continue
            nets = []
            for st in per_fold:
                net = NETWORKS.get(cnn["network"]["name"])(**cnn["network"]["params"])
                net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in st.items()})
                nets.append(net.eval())
            out[end] = EndSliceEnsemble(nets).eval()
        return out

    def _ensemble_signature(self, end: str, per_fold: Sequence[Any]) -> str:
        from medai.inference import compiled

        assert self.coverage_model is not None
        cnn = self.coverage_model["end_cnn"]["network"]
        return compiled.network_signature(cnn["name"], {**cnn["params"], "end": end, "members": len(per_fold)})

    def export_onnx(self) -> list[Path]:
        """``weights.onnx`` of the artefact CNN (``input_size`` square slices, batch dynamic), and one
        :data:`END_ONNX` per end of the coverage model's end-slice CNN ensemble (about 2.5x faster than torch for
        these small networks: 14 ms against 36 ms per end on 1 thread, measured with the machine otherwise idle)."""
        from medai.cardiac.preprocess import NetworkSpec, export_network
        from medai.inference import compiled

        n = self.config.input_size
        out = [export_network(self.package_dir, NetworkSpec.model_validate(self.config.network), 2,
                              self.config.weights, (2, 1, n, n), None)]
        if self.coverage_model is not None and self.coverage_model.get("end_cnn"):
            cnn = self.coverage_model["end_cnn"]
            size = int(cnn.get("input", {}).get("size", 64))
            for end, ens in self._coverage_ensembles(None, torch_only=True).items():
                out.append(compiled.export_onnx(
                    ens, self.package_dir, cnn["weights"], self._ensemble_signature(end, list(ens.nets)),
                    (2, int(cnn["network"]["params"].get("in_channels", 4)), size, size), None,
                    name=END_ONNX.format(end=end)))
        return out

    # -- artefacts -------------------------------------------------------------------------------------------------
    def score_slices(self, slices: Sequence[np.ndarray] | np.ndarray) -> SliceScores:
        """Artefact presence and severity of 2-D slices (any size; each normalised on its own)."""
        import torch

        k = len(self.config.artefacts)
        x = prepare_slices(slices, self.config.input_size)
        outs = []
        with torch.inference_mode():
            for i in range(0, len(x), CHUNK):
                outs.append(torch.sigmoid(self.net(torch.from_numpy(x[i : i + CHUNK]).to(self.device))).cpu().numpy())
        out = np.concatenate(outs) if outs else np.zeros((0, 2 * k), dtype=np.float32)
        return SliceScores(list(self.config.artefacts), out[:, :k], out[:, k:])

    def score_series(self, series: Series, limit: int = 48) -> SliceScores:
        """Scores of up to ``limit`` instances of ``series`` (every frame of multi-frame instances counts once)."""
        slices = []
        for inst in sample_instances(series, limit):
            arr = np.asarray(inst.pixel_dataset().pixel_array, dtype=np.float32)
            if arr.ndim == 3 and arr.shape[-1] in (3, 4):  # colour: take luminance
                arr = arr[..., :3].mean(-1)
            slices += [arr] if arr.ndim == 2 else list(arr[:: max(1, len(arr) // 8)])
        return self.score_slices(slices)

    # -- coverage --------------------------------------------------------------------------------------------------
    def coverage(self, labels: np.ndarray, structures: Structures, es: np.ndarray | None = None,
                 spacing_zyx: tuple[float, float, float] | None = None,
                 images: tuple[np.ndarray, np.ndarray | None] | None = None) -> dict[str, float] | None:
        """``{"basal": p, "apical": p}``: probability that LV slices are missing at each end of the ED
        ``(Z, Y, X)`` label map (``es``: the ES one, when known); None when the package has no coverage model.

        ``images``: the ED and ES ``(Z, Y, X)`` image stacks on the label map's grid (ES may be None). With them,
        and a package that has the end-slice CNN, the judgement uses the end slices' images as well as the
        segmentation; without them, the segmentation alone (see :meth:`coverage_threshold`)."""
        if self.coverage_model is None:
            return None
        feats = coverage_features(labels, structures, es, spacing_zyx)
        from_images = self._uses_images(images)
        logits = self._end_logits(labels, structures, spacing_zyx, images) if from_images else {}
        out = {}
        for end in ("basal", "apical"):
            m = self._coverage_lr(end, from_images)
            x = np.r_[feats[end], [logits[end]]] if from_images else feats[end]
            if len(x) != len(m.get("features", self.coverage_model["features"])):
                raise ConfigError(f"{self.package_dir}: the coverage model was fitted on "
                                  f"{len(m.get('features', self.coverage_model['features']))} features, this medai "
                                  f"computes {len(x)}; refit it (python -m pipelines.quality.fit_gate)")
            z = (x - np.asarray(m["mean"])) / np.asarray(m["scale"])
            out[end] = float(1.0 / (1.0 + np.exp(-(z @ np.asarray(m["coef"]) + m["intercept"]))))
        return out

    def _uses_images(self, images: tuple[np.ndarray, np.ndarray | None] | None) -> bool:
        return images is not None and bool(self.coverage_nets)

    def _coverage_lr(self, end: str, from_images: bool) -> dict[str, Any]:
        assert self.coverage_model is not None
        if from_images or "seg_only" not in self.coverage_model:
            return self.coverage_model[end]
        return self.coverage_model["seg_only"][end]

    def _end_logits(self, labels: np.ndarray, structures: Structures, spacing_zyx: tuple[float, float, float] | None,
                    images: tuple[np.ndarray, np.ndarray | None] | None) -> dict[str, float]:
        """The end-slice CNN ensemble's mean logit per end (4 rotations x fold networks; 0 for an end without
        heart)."""
        assert images is not None
        ed, es = images
        if ed.shape != labels.shape or (es is not None and es.shape != labels.shape):
            raise ValueError(f"coverage: the images {ed.shape} are not on the label map's grid {labels.shape}")
        inputs = end_slice_inputs(ed, es, labels, structures, spacing_zyx)
        return {end: 0.0 if x is None else float(end_cnn_logits(self.coverage_nets[end], x[None])[0])
                for end, x in inputs.items()}

    def coverage_threshold(self, end: str, override: float | None = None, from_images: bool = True) -> float:
        """The probability from which ``end`` (``basal`` / ``apical``) counts as missing: ``override``, else the
        threshold the package chose on its training data for the judgement from images and segmentation
        (``from_images``) or from the segmentation alone, else 0.5."""
        if override is not None:
            return float(override)
        if self.coverage_model is None:
            return 0.5
        return float(self._coverage_lr(end, from_images and bool(self.coverage_nets)).get("threshold", 0.5))

    # -- segmentation quality --------------------------------------------------------------------------------------
    def predicted_dice(self, labels: np.ndarray, spacing_zyx: tuple[float, float, float], stats: np.ndarray | None,
                       structures: Structures, values: dict[str, int],
                       artefacts: np.ndarray | list[float] | None = None) -> dict[str, float]:
        """Predicted Dice per structure (names of ``values`` that the package has a regressor for).

        Args:
            artefacts: per artefact class (:attr:`config.artefacts` order), the highest probability over the
                series' slices.
        """
        if self.seg_models is None:
            return {}
        from medai.quality.features import frame_context

        out = {}
        ctx = frame_context(labels, structures, spacing_zyx)
        for name, value in values.items():
            reg = self.seg_models.get(name)
            if reg is None:
                continue
            f = seg_features(labels, value, spacing_zyx, stats, structures, artefacts, ctx)
            if f.shape[0] != reg.n_features_in_:
                raise ConfigError(f"{self.package_dir}: the segmentation-quality model was fitted on "
                                  f"{reg.n_features_in_} features, this medai computes {f.shape[0]}; refit it "
                                  "(python -m pipelines.quality.fit_gate)")
            out[name] = float(np.clip(reg.predict(f[None])[0], 0.0, 1.0))
        return out

    def predict(self, inputs: Study) -> Prediction:
        """Artefact scores of every cine and LGE short-axis series of the study.

        Returns:
            :class:`Prediction` with ``extras["series"]``: SeriesInstanceUID -> :class:`SliceScores`.
        """
        scores = {s.SeriesInstanceUID: self.score_series(s)
                  for s in inputs.series_of_type(SeriesType.CINE_SAX, SeriesType.LGE)}
        return Prediction(model=self.ref, extras={"series": scores})


__all__ = ["QualityInferenceConfig", "QualityPredictor", "SliceScores", "sample_instances"]
