"""Helpers shared by the cine tests (also imported by tests/pipelines/cmr)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medai.cardiac.preprocess import CineSegInferenceConfig, NetworkSpec
from medai.domain.codes import Code
from medai.domain.volume import ANATOMICAL_STRUCTURE, LabelMap, SegmentLabel, Volume
from medai.inference.package import ModelMetadata, write_metadata

LABELS = {"rv": 1, "myo": 2, "lv": 3}


def make_tiny_package(out: Path, seed: int = 0) -> Path:
    """Write a tiny random 2-D U-Net package (same format as the shipped ``heart_mr_cine_seg``)."""
    import torch

    from medai.registry import NETWORKS

    torch.manual_seed(seed)
    spec = NetworkSpec(name="unet2d", params={"in_channels": 1, "out_channels": 4, "channels": [4, 8],
                                              "num_res_units": 0})
    net = NETWORKS.get(spec.name)(spatial_dims=2, **spec.params)
    out.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.half() if v.is_floating_point() else v for k, v in net.state_dict().items()},  # type: ignore
               out / "weights.pt")
    cfg = CineSegInferenceConfig(network=spec, spatial_dims=2, target_spacing_mm=2.0, size_divisor=8)
    (out / "inference.json").write_text(cfg.model_dump_json(indent=2))
    write_metadata(out, ModelMetadata(name="heart_mr_cine_seg", version="0.0.0-test", predictor="cine_sax_seg",
                                      task="segmentation", files=["weights.pt", "inference.json"]))
    return out


def phantom_labelmap(phantom: object) -> LabelMap:
    """The phantom's exact ``(T, Z, Y, X)`` labels as a LabelMap on its image grid."""
    labs = tuple(SegmentLabel(v, n, ANATOMICAL_STRUCTURE, Code(value=n, scheme="99MEDAI", meaning=n))
                 for n, v in LABELS.items())
    vol = Volume(array=np.asarray(phantom.labels), affine=phantom.affine,  # type: ignore[attr-defined]
                 frame_times_ms=phantom.frame_times_ms)  # type: ignore[attr-defined]
    return LabelMap(volume=vol, labels=labs)
