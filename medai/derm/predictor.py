"""``SkinLesionPredictor``: one skin image -> 7 HAM10000 diagnosis probabilities, malignant summary and saliency.

Package files: ``weights.pt`` (network ``state_dict``), ``inference.json`` (:class:`SkinInferenceConfig`),
``metadata.json``. The preprocessing is :mod:`medai.derm.preprocess`, the same code the training cache used.

``Prediction`` contents:

* ``classes`` -- one :class:`ClassProbability` per diagnosis (coded, see :mod:`medai.derm.labels`), temperature-
  scaled ``softmax(logits / T)`` with ``T`` fitted on the validation lesions.
* ``extras["malignant_probability"]`` -- ``P(mel) + P(bcc) + P(akiec)``.
* ``extras["predicted_class"]`` -- arg-max class name.
* ``extras["saliency"]`` -- ``(H, W) float32`` in [0, 1] at the source image size (long side capped at 2048 px):
  captum's LayerGradCam of the predicted class on the network's ``cam_layer`` (its last convolutional stage), or
  captum's InputXGradient for a network without one; ``extras["saliency_method"]`` says which.
* ``extras["metadata_used"]`` -- the patient metadata fields the fused model was given (``[]``: image only).
* ``extras["model_version"]``, ``extras["temperature"]``, ``extras["image_size"]`` (source ``[H, W]``).
* ``flags`` -- e.g. colour-space conversions applied to the input.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, Field

from medai.derm.image import SkinImage, load_skin_image
from medai.derm.labels import CLASS_CODES, MALIGNANT, LesionClass
from medai.derm.metadata import MetadataEncoder
from medai.derm.preprocess import DEFAULT_MEAN, DEFAULT_STD, dihedral_views, normalise, resize_square
from medai.domain.prediction import ClassProbability, Prediction, QualityFlag, Severity
from medai.errors import ConfigError
from medai.inference.predictor import Predictor
from medai.registry import NETWORKS, PREDICTORS

logger = logging.getLogger(__name__)

SALIENCY_MAX_SIDE = 2048


class SkinInferenceConfig(BaseModel):
    """``inference.json`` of a skin-lesion package."""

    network: str
    network_params: dict[str, Any] = Field(default_factory=dict)
    class_names: list[str]
    image_size: int
    mean: list[float] = Field(default_factory=lambda: list(DEFAULT_MEAN))
    std: list[float] = Field(default_factory=lambda: list(DEFAULT_STD))
    temperature: float = 1.0
    tta: int = Field(1, ge=1, le=8, description="test-time views averaged (flips, then 90-degree rotations)")
    metadata: MetadataEncoder | None = Field(None, description="vocabularies of the fused patient metadata")
    preprocess: str = ""


@PREDICTORS.register("skin_lesion")
class SkinLesionPredictor(Predictor):
    """Skin-lesion classifier (HAM10000 classes). ``predict(image)`` takes bytes, a path or a ``pydicom.Dataset``."""

    input_kind: ClassVar[str] = "image"

    def load(self, saliency: bool = True, **kwargs: Any) -> None:
        """Read ``inference.json`` and ``weights.pt``.

        Args:
            saliency: compute the saliency map in :meth:`predict` (costs one backward pass).
        """
        import torch

        try:
            self.config = SkinInferenceConfig.model_validate_json((self.package_dir / "inference.json").read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{self.package_dir}: unreadable inference.json: {exc}") from exc
        self.saliency = saliency
        net = NETWORKS.get(self.config.network)(
            in_channels=3, num_classes=len(self.config.class_names), **self.config.network_params
        )
        state = torch.load(self.package_dir / "weights.pt", map_location="cpu", weights_only=True)
        net.load_state_dict(state)
        self.net = net.eval()
        self._mean = torch.tensor(self.config.mean, dtype=torch.float32).view(1, 3, 1, 1)

    @property
    def metadata_fields(self) -> list[str]:
        """Patient metadata the model fuses (``[]``: image only)."""
        return list(self.config.metadata.fields) if self.config.metadata else []

    def predict(self, inputs: bytes | str | Path | Any, metadata: dict[str, Any] | None = None) -> Prediction:
        """Classify one image (see the module docstring for the output).

        Args:
            inputs: image bytes, a path, a ``pydicom.Dataset`` or a :class:`SkinImage`.
            metadata: patient record (``age``, ``sex``, ``site``, ``skin_type``; any may be absent). For a DICOM
                image, PatientAge and PatientSex fill what the record lacks. Ignored by image-only models.
        """
        img = inputs if isinstance(inputs, SkinImage) else load_skin_image(inputs)
        record = {**(img.metadata or {}), **{k: v for k, v in (metadata or {}).items() if v is not None}}
        meta_vec, notes = self._encode(record)
        probs, sal, method = self._run(img.pixels, meta=meta_vec)
        names = self.config.class_names
        classes = []
        for name, p in zip(names, probs, strict=True):
            code = CLASS_CODES.get(LesionClass(name)) if name in LesionClass._value2member_map_ else None
            classes.append(ClassProbability(name=name, code=code.model_dump() if code else None, probability=float(p)))
        malignant = float(sum(p for n, p in zip(names, probs, strict=True) if n in {m.value for m in MALIGNANT}))
        flags = [QualityFlag(code="image_converted", severity=Severity.INFO, message=n) for n in img.notes]
        flags += [QualityFlag(code="metadata_unknown_value", severity=Severity.INFO, message=n) for n in notes]
        if self.config.metadata is not None:
            used = [f for f in self.config.metadata.fields if record.get(f) not in (None, "")]
            if not used:
                flags.append(
                    QualityFlag(
                        code="metadata_absent",
                        severity=Severity.INFO,
                        message="no patient metadata given: image-only prediction (send age, sex and site to use "
                        "the fused model)",
                    )
                )
        extras: dict[str, Any] = {
            "malignant_probability": malignant,
            "predicted_class": names[int(np.argmax(probs))],
            "model_version": self.metadata.version,
            "temperature": self.config.temperature,
            "image_size": list(img.size),
            "metadata_used": [f for f in self.metadata_fields if record.get(f) not in (None, "")],
        }
        if sal is not None:
            extras["saliency"] = sal
            extras["saliency_method"] = method
            extras["saliency_implementation"] = {"grad-cam": "captum.attr.LayerGradCam"}.get(
                method, "captum.attr.InputXGradient"
            )
        return Prediction(model=self.ref, classes=classes, flags=flags, extras=extras)

    def predict_proba(self, pixels: np.ndarray, metadata: dict[str, Any] | None = None) -> np.ndarray:
        """Calibrated probabilities ``(K,)`` of a validated ``(H, W, 3) uint8`` RGB array (no saliency)."""
        return self._run(pixels, meta=self._encode(metadata)[0], want_saliency=False)[0]

    def predict_proba_batch(
        self,
        images: list[np.ndarray],
        metadata: list[dict[str, Any] | None] | None = None,
        image_only: bool = False,
        batch_size: int = 32,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Calibrated probabilities ``(N, K)`` of validated ``(H, W, 3) uint8`` images with their patient records,
        in batches (the evaluation path; same preprocessing, views and temperature as :meth:`predict`).

        With ``image_only`` (fused models), also the image-only probabilities of the same images: the backbone runs
        once per view and the fusion head twice, once with the records and once with none.
        """
        import torch

        s, t = self.config.image_size, self.config.temperature
        uses_meta = bool(getattr(self.net, "meta_dim", 0))
        split_head = hasattr(self.net, "features") and hasattr(self.net, "head")
        fused, alone = [], []
        for i in range(0, len(images), batch_size):
            chunk = images[i : i + batch_size]
            cfg = self.config
            x = torch.from_numpy(np.stack([normalise(resize_square(p, s), cfg.mean, cfg.std) for p in chunk]))
            m = None
            if uses_meta:
                recs = (metadata or [None] * len(images))[i : i + batch_size]
                m = torch.from_numpy(np.stack([self._encode(r)[0] for r in recs]))
            with torch.no_grad():
                lf, li = [], []
                for v in dihedral_views(x, self.config.tta):
                    if uses_meta and split_head:
                        f = self.net.features(v)
                        lf.append(self.net.head(f, m))
                        if image_only:
                            li.append(self.net.head(f, None))
                    else:
                        lf.append(self.net(v, m) if uses_meta else self.net(v))
                fused.append(torch.softmax(torch.stack(lf).mean(0) / t, 1).double().numpy())
                if li:
                    alone.append(torch.softmax(torch.stack(li).mean(0) / t, 1).double().numpy())
        k = len(self.config.class_names)
        out = np.concatenate(fused) if fused else np.zeros((0, k))
        return out, (np.concatenate(alone) if alone else (out if image_only else None))

    def embed_batch(self, images: list[np.ndarray], batch_size: int = 32) -> np.ndarray:
        """Image embeddings ``(N, F)``: the network's pooled last feature map (mean over the test-time views), the
        image modality that multimodal prognosis models take. Needs a network with ``features``."""
        import torch

        if not hasattr(self.net, "features"):
            raise ConfigError(f"{self.config.network} exposes no features: it cannot embed images")
        cfg = self.config
        out = []
        for i in range(0, len(images), batch_size):
            chunk = images[i : i + batch_size]
            x = torch.from_numpy(
                np.stack([normalise(resize_square(p, cfg.image_size), cfg.mean, cfg.std) for p in chunk])
            )
            with torch.no_grad():
                views = [self.net.features(v).mean(dim=(2, 3)) for v in dihedral_views(x, cfg.tta)]
            out.append(torch.stack(views).mean(0).double().numpy())
        return np.concatenate(out) if out else np.zeros((0, 0))

    def _encode(self, record: dict[str, Any] | None) -> tuple[np.ndarray | None, list[str]]:
        if self.config.metadata is None:
            return None, []
        return self.config.metadata.encode(record)

    def _forward(self, x: Any, meta: Any) -> Any:
        """Mean logits over the package's test-time views."""
        import torch

        uses_meta = bool(getattr(self.net, "meta_dim", 0))
        views = [self.net(v, meta) if uses_meta else self.net(v) for v in dihedral_views(x, self.config.tta)]
        return torch.stack(views).mean(0)

    def _run(
        self, pixels: np.ndarray, meta: np.ndarray | None = None, want_saliency: bool | None = None
    ) -> tuple[np.ndarray, np.ndarray | None, str]:
        import torch

        want = self.saliency if want_saliency is None else want_saliency
        s = self.config.image_size
        x = torch.from_numpy(normalise(resize_square(pixels, s), self.config.mean, self.config.std))[None]
        m = torch.from_numpy(meta)[None] if meta is not None else None
        t = self.config.temperature
        with torch.no_grad():
            logits = self._forward(x, m)[0]
        probs = torch.softmax(logits / t, 0).numpy().astype(np.float64)
        if not want:
            return probs, None, ""
        cls = int(logits.argmax())
        cam, method = self._saliency(x, m, cls)
        cam = cam.detach()
        h, w = pixels.shape[:2]
        scale = min(1.0, SALIENCY_MAX_SIDE / max(h, w))
        oh, ow = max(1, round(h * scale)), max(1, round(w * scale))
        sal = torch.nn.functional.interpolate(cam, size=(oh, ow), mode="bilinear", align_corners=False)[0, 0]
        sal = sal - sal.min()
        mx = float(sal.max())
        sal = (sal / mx) if mx > 0 else sal
        return probs, sal.numpy().astype(np.float32), method

    def _saliency(self, x: Any, meta: Any, cls: int) -> tuple[Any, str]:
        """``(1, 1, h, w)`` map of the class ``cls``: captum's LayerGradCam on the network's ``cam_layer``
        (its last convolutional stage), or captum's InputXGradient for networks without one."""
        import torch
        from captum.attr import InputXGradient, LayerGradCam

        net = self.net
        uses_meta = bool(getattr(net, "meta_dim", 0))

        def fwd(inp: torch.Tensor) -> torch.Tensor:
            return net(inp, meta) if uses_meta else net(inp)

        layer = getattr(net, "cam_layer", None)
        with torch.enable_grad():
            if isinstance(layer, torch.nn.Module):
                cam = LayerGradCam(fwd, layer).attribute(x, target=cls, relu_attributions=True)
                return cam.sum(1, keepdim=True), "grad-cam"
            attr = InputXGradient(fwd).attribute(x.clone().requires_grad_(True), target=cls)
        return attr.abs().sum(1, keepdim=True), "input-x-gradient"


def saliency_overlay(pixels: np.ndarray, saliency: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """Blend a saliency map over the image: ``(H, W, 3) uint8`` (saliency resized to the image when needed)."""
    from matplotlib import colormaps
    from PIL import Image

    h, w = pixels.shape[:2]
    if saliency.shape != (h, w):
        saliency = np.asarray(Image.fromarray(saliency.astype(np.float32), mode="F").resize((w, h)))
    heat = (colormaps["jet"](np.clip(saliency, 0, 1))[..., :3] * 255).astype(np.float32)
    out = (1 - alpha) * pixels.astype(np.float32) + alpha * heat
    return np.clip(out, 0, 255).astype(np.uint8)


def write_saliency_png(pixels: np.ndarray, saliency: np.ndarray, path: str | Path) -> Path:
    """Write the image and its saliency overlay side by side as a PNG."""
    from PIL import Image

    over = saliency_overlay(pixels, saliency)
    both = np.concatenate([pixels, over], axis=1)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(both).save(path)
    return path


def read_package_config(package_dir: Path) -> dict[str, Any]:
    """``inference.json`` of a package as a dict."""
    return json.loads((Path(package_dir) / "inference.json").read_text())
