"""Fixtures for the analysis plug-in tests: LGE phantoms and a label map predictor that returns a known answer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from medai.analyses.lge_scar import ROLE
from medai.domain.codes import Code
from medai.domain.prediction import ModelRef, Prediction
from medai.domain.volume import ANATOMICAL_STRUCTURE, LabelMap, SegmentLabel, Volume
from medai.inference.package import ModelMetadata

LGE_NAMES = {"lv": 1, "myo": 2, "infarct": 3, "mvo": 4}


def lge_labelmap(volume: Volume, labels: np.ndarray) -> LabelMap:
    """``labels`` (LGE convention) as a LabelMap on ``volume``'s grid."""
    table = tuple(SegmentLabel(v, n, ANATOMICAL_STRUCTURE, Code(value=n.upper(), scheme="99MEDAI", meaning=n))
                  for n, v in LGE_NAMES.items())
    return LabelMap(volume=volume.with_array(np.asarray(labels, dtype=np.uint8)), labels=table)


class KnownLabels:
    """A predictor stand-in whose ``segment_volume`` returns a fixed label map (the phantom's truth).

    Used where a test checks the quantification and renderings exactly; the real network runs in the tests that
    use the shipped package.
    """

    input_kind = "study"

    def __init__(self, labels: np.ndarray) -> None:
        self.labels = labels
        self.metadata = ModelMetadata(name="heart_mr_lge_seg", version="0.0.0-known", predictor="lge_sax_seg",
                                      task="segmentation")
        self.package_dir = Path(".")

    @property
    def ref(self) -> ModelRef:
        return ModelRef(name="heart_mr_lge_seg", version="0.0.0-known")

    def segment_volume(self, volume: Volume, timings: dict[str, float] | None = None, **_: Any) -> LabelMap:
        return lge_labelmap(volume, self.labels)

    def predict(self, study: Any) -> Prediction:  # pragma: no cover - the analysis calls segment_volume
        raise NotImplementedError


@pytest.fixture
def lge_phantom():  # noqa: ANN201
    from medai.dicom.phantoms import make_lge_scar_study

    return make_lge_scar_study(seed=3, transmural_fraction=0.6, scar_angles_deg=(200.0, 330.0), mvo_fraction=0.15,
                               scar_slices=(1, 6))


__all__ = ["ROLE", "KnownLabels", "lge_labelmap"]


def make_tiny_lge_package(out: Path, seed: int = 0) -> Path:
    """A tiny random 2-D U-Net LGE package (same format as the shipped ``heart_mr_lge_seg``): real plumbing,
    meaningless numbers."""
    import torch

    from medai.cardiac.lge_predictor import LgeSegInferenceConfig, metadata_labels
    from medai.cardiac.preprocess import NetworkSpec
    from medai.inference.package import write_metadata
    from medai.registry import NETWORKS

    torch.manual_seed(seed)
    spec = NetworkSpec(name="unet2d", params={"in_channels": 1, "out_channels": 5, "channels": [4, 8],
                                              "num_res_units": 0})
    net = NETWORKS.get(spec.name)(spatial_dims=2, **spec.params)
    out.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), out / "weights.pt")  # type: ignore[attr-defined]
    cfg = LgeSegInferenceConfig(network=spec, canonical_size=(64, 64), crop_size=(32, 32), size_divisor=8)
    (out / "inference.json").write_text(cfg.model_dump_json(indent=2))
    write_metadata(out, ModelMetadata(name="heart_mr_lge_seg", version="0.0.0-test", predictor="lge_sax_seg",
                                      task="segmentation", labels=metadata_labels(cfg.labels),
                                      files=["weights.pt", "inference.json"]))
    return out


def cine_and_lge_study(out_dir: Path | None = None, seed: int = 11) -> list[bytes]:
    """One study (same StudyInstanceUID and patient) holding a small cine SAX series and an LGE SAX stack."""
    from medai.dicom.phantoms import make_cine_sax_study, make_lge_scar_study

    cine = make_cine_sax_study(out_dir / "cine" if out_dir else None, rows=48, cols=48, n_slices=5, n_phases=6,
                               pixel_spacing=1.8, seed=seed)
    lge = make_lge_scar_study(out_dir / "lge" if out_dir else None, rows=64, cols=64, n_slices=6, seed=seed)
    assert cine.study_uid == lge.study_uid
    return cine.to_bytes() + lge.to_bytes()
