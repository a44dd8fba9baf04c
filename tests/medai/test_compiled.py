"""ONNX Runtime inference (medai.inference.compiled) agrees with the torch reference on every shipped package that
carries an export, falls back to torch when the export is stale or missing, and says why when it must not."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from medai.cardiac.predictor import load_default
from medai.dicom.phantoms import make_cine_sax_study
from medai.domain.volume import Volume
from medai.errors import ConfigError
from medai.inference import Predictor, export_package, read_metadata
from medai.inference.compiled import EXPORT_TOL, OnnxNet, onnx_path
from medai.settings import get_settings

PACKAGES = get_settings().packages_dir
EXPORTED = sorted(p.parent.name for p in PACKAGES.glob("*/weights.onnx"))


def test_the_image_packages_ship_an_export() -> None:
    assert {"heart_mr_cine_seg", "heart_mr_lge_seg", "heart_mr_quality"} <= set(EXPORTED)
    for name in EXPORTED:
        assert "weights.onnx" in read_metadata(PACKAGES / name).files, name


@pytest.mark.parametrize("name", EXPORTED)
def test_each_export_matches_torch_logits(name: str) -> None:
    fast = Predictor.from_package(name, runtime="onnx")
    ref = Predictor.from_package(name, runtime="torch")
    assert fast.runtime == "onnx" and isinstance(fast.net, OnnxNet)  # type: ignore[attr-defined]
    assert ref.runtime == "torch" and isinstance(ref.net, torch.nn.Module)  # type: ignore[attr-defined]
    meta = fast.net.metadata()  # type: ignore[attr-defined]
    shape = [s if isinstance(s, int) else 3 for s in fast.net._session(1).get_inputs()[0].shape]  # type: ignore
    if name == "heart_mr_cine_seg":
        shape[-2:] = [160, 224]
    x = torch.randn(shape, generator=torch.Generator().manual_seed(7))
    with torch.inference_mode():
        a, b = fast.net(x).numpy(), ref.net(x).numpy()  # type: ignore[attr-defined]
    assert a.shape == b.shape and np.abs(a - b).max() <= EXPORT_TOL, (name, np.abs(a - b).max())
    assert meta["medai.weights_sha256"] and meta["medai.network"]


def test_the_coverage_ensembles_run_on_onnx_and_match_torch() -> None:
    from medai.quality.ensemble import EndSliceEnsemble
    from medai.quality.predictor import end_cnn_logits

    fast = Predictor.from_package("heart_mr_quality")  # auto: the ensembles prefer ONNX Runtime
    ref = Predictor.from_package("heart_mr_quality", runtime="torch")
    x = np.random.default_rng(5).normal(size=(3, 4, 64, 64)).astype(np.float32)
    for end in ("basal", "apical"):
        assert isinstance(fast.coverage_nets[end], OnnxNet)  # type: ignore[attr-defined]
        assert isinstance(ref.coverage_nets[end], EndSliceEnsemble)  # type: ignore[attr-defined]
        a = end_cnn_logits(fast.coverage_nets[end], x)  # type: ignore[attr-defined]
        b = end_cnn_logits(list(ref.coverage_nets[end].nets), x)  # type: ignore[attr-defined]
        assert a.shape == (3,) and np.abs(a - b).max() <= EXPORT_TOL


def test_onnx_cine_labels_equal_torch_labels_on_a_phantom() -> None:
    ph = make_cine_sax_study(n_slices=6, n_phases=4, rows=128, cols=128, pixel_spacing=1.4)
    vol = Volume(array=ph.image.astype(np.float32), affine=ph.affine, frame_times_ms=ph.frame_times_ms)
    got = load_default("heart_mr_cine_seg", runtime="onnx").segment_volume(vol).volume.array
    ref = load_default("heart_mr_cine_seg", runtime="torch").segment_volume(vol).volume.array
    assert got.any() and (got == ref).mean() >= 0.9999, (got != ref).sum()


def test_one_session_per_thread_count() -> None:
    net = load_default("heart_mr_cine_seg", runtime="onnx").net
    before = torch.get_num_threads()
    x = torch.zeros(1, 1, 64, 64)
    try:
        torch.set_num_threads(1)
        one = net(x)
        torch.set_num_threads(2)
        two = net(x)
    finally:
        torch.set_num_threads(before)
    assert {1, 2} <= set(net._sessions)  # type: ignore[attr-defined]
    assert torch.allclose(one, two, atol=1e-5)


def test_auto_runs_each_network_on_its_faster_runtime_and_fast_start_on_onnx() -> None:
    assert load_default("heart_mr_cine_seg").runtime == "torch"  # torch eager is faster warm for the U-Net
    assert Predictor.from_package("heart_mr_lge_seg").runtime == "torch"  # type: ignore[attr-defined]
    quality = Predictor.from_package("heart_mr_quality")
    assert quality.runtime == "torch" and isinstance(quality.coverage_nets["basal"], OnnxNet)  # type: ignore
    assert load_default("heart_mr_cine_seg", runtime="fast-start").runtime == "onnx"
    assert Predictor.from_package("heart_mr_lge_seg", runtime="fast-start").runtime == "onnx"  # type: ignore


def test_one_shot_commands_use_fast_start_unless_the_user_chose(medai_env) -> None:  # noqa: ANN001
    import os

    from medai.cli.cmr_cmds import _one_shot_runtime

    medai_env(RUNTIME=None)
    with _one_shot_runtime():
        assert get_settings().runtime == "fast-start"
    assert "MEDAI_RUNTIME" not in os.environ and get_settings().runtime == "auto"
    medai_env(RUNTIME="torch")
    with _one_shot_runtime():
        assert get_settings().runtime == "torch"


def test_bfloat16_and_the_setting_choose_torch(medai_env) -> None:  # noqa: ANN001
    assert load_default("heart_mr_cine_seg", precision="bfloat16").runtime == "torch"
    with pytest.raises(ConfigError, match="precision bfloat16.*MEDAI_RUNTIME=torch"):
        load_default("heart_mr_cine_seg", precision="bfloat16", runtime="onnx")
    medai_env(RUNTIME="fast-start")
    assert load_default("heart_mr_cine_seg").runtime == "onnx"
    medai_env(RUNTIME="torch")
    assert Predictor.from_package("heart_mr_quality").coverage_nets["basal"].n_members == 5  # type: ignore
    medai_env(RUNTIME="tensorrt")
    with pytest.raises(ConfigError, match="'tensorrt' \\(MEDAI_RUNTIME\\): use one of auto, torch, onnx, fast"):
        load_default("heart_mr_cine_seg")


@pytest.fixture()
def quality_copy(tmp_path: Path) -> Path:
    dst = tmp_path / "heart_mr_quality"
    shutil.copytree(PACKAGES / "heart_mr_quality", dst)
    return dst


def test_a_stale_export_falls_back_to_torch_and_a_new_export_is_used(quality_copy: Path) -> None:
    state = torch.load(quality_copy / "weights.pt", weights_only=True)
    key = next(k for k, v in state.items() if v.is_floating_point())
    state[key] = state[key] + 0.01  # retrained weights, the old export left behind
    torch.save(state, quality_copy / "weights.pt")
    assert Predictor.from_package(quality_copy, runtime="fast-start").runtime == "torch"  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="exported from other weights than weights.pt.*export-onnx"):
        Predictor.from_package(quality_copy, runtime="onnx")

    written = export_package(quality_copy)
    names = ["weights.onnx", "coverage_cnn.basal.onnx", "coverage_cnn.apical.onnx"]
    assert written == [quality_copy / n for n in names] and written[0] == onnx_path(quality_copy, "weights.pt")
    assert all(read_metadata(quality_copy).files.count(n) == 1 for n in names)
    fresh = Predictor.from_package(quality_copy, runtime="fast-start")
    ref = Predictor.from_package(quality_copy, runtime="torch")
    assert fresh.runtime == "onnx"  # type: ignore[attr-defined]
    x = torch.randn(4, 1, 128, 128, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        assert np.abs(fresh.net(x).numpy() - ref.net(x).numpy()).max() <= EXPORT_TOL  # type: ignore[attr-defined]


def test_a_missing_export_under_runtime_onnx_says_what_to_run(quality_copy: Path) -> None:
    (quality_copy / "weights.onnx").unlink()
    assert Predictor.from_package(quality_copy, runtime="fast-start").runtime == "torch"  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="weights.onnx is missing; run `medai models export-onnx"):
        Predictor.from_package(quality_copy, runtime="onnx")


def test_the_onnx_path_does_not_import_monai() -> None:
    """The cold-start saving: loading the cine model under ONNX Runtime leaves monai (2.5 s of imports) out."""
    code = ("import sys; from medai.cardiac.predictor import load_default; p = load_default(runtime='fast-start'); "
            "print(p.runtime, 'monai' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert out.stdout.split() == ["onnx", "False"], out.stderr[-2000:]
