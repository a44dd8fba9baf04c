"""The shipped cine package: complete, <= 20 MB, loadable through the registry, and it segments real held-out data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from medai.cardiac.postprocess import clean_frame
from medai.cardiac.preprocess import CineSegInferenceConfig, normalize_intensity
from medai.inference.package import read_metadata
from medai.registry import NETWORKS
from medai.settings import REPO_ROOT

PKG = REPO_ROOT / "models" / "packages" / "heart_mr_cine_seg"

pytestmark = pytest.mark.skipif(not (PKG / "metadata.json").is_file(), reason="shipped package not built yet")


def _load() -> tuple[torch.nn.Module, CineSegInferenceConfig]:
    cfg = CineSegInferenceConfig.model_validate_json((PKG / "inference.json").read_text())
    net = NETWORKS.get(cfg.network.name)(**cfg.network.params)
    state = torch.load(PKG / cfg.weights, map_location="cpu")
    net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    return net.eval(), cfg


def test_package_is_complete_and_small() -> None:
    meta = read_metadata(PKG)
    assert meta.name == "heart_mr_cine_seg" and meta.predictor == "cine_sax_seg" and meta.task == "segmentation"
    assert meta.licence == "CC BY-NC-SA 4.0" and "Bernard" in meta.training_data[0].citation
    assert meta.reproduce.startswith("medai train configs/experiment/cmr_seg_2d.yaml")
    assert meta.hardware and {"val/dice/lv", "val/dice/myo", "val/dice/rv"} <= set(meta.metrics)
    assert {lab["name"]: lab["value"] for lab in meta.labels} == {"rv": 1, "myo": 2, "lv": 3}
    for f in meta.files:
        assert (PKG / f).is_file(), f
    assert sum(p.stat().st_size for p in PKG.iterdir()) <= 20 * 1024 * 1024


def test_shipped_weights_segment_a_validation_patient(data_dir: Path) -> None:
    """Recomputes Dice on one acdc/val patient (validation data: a sanity check, not a test-set figure)."""
    from medai.datasets.acdc import read_acdc_h5
    from pipelines.cmr.module import dice_score, segment_slices

    torch.set_num_threads(1)
    net, cfg = _load()
    case = read_acdc_h5(data_dir / "cardiac" / "acdc" / "val" / "patient064_frame01.h5")  # NOR, ED
    raw = segment_slices(net, torch.from_numpy(normalize_intensity(case.image)), cfg.size_divisor).numpy()
    pred = clean_frame(raw.astype(np.uint8), cfg.labels)
    assert case.label is not None
    dice = {name: dice_score(pred == v, case.label == v) for name, v in cfg.labels.items()}
    assert dice["lv"] > 0.85 and dice["myo"] > 0.7 and dice["rv"] > 0.7, dice
