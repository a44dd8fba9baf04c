"""LGE scar segmentation: post-processing invariants, the predictor's geometry round trip, predict() on a phantom."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medai.cardiac.lge_postprocess import (
    clean_lge,
    enclose_cavity,
    infarct_mask,
    keep_one_myocardium,
    mvo_within_infarct,
)
from medai.cardiac.lge_predictor import (
    LGE_LABELS,
    LgeSegInferenceConfig,
    LgeSegPredictor,
    crop_box,
    load_default,
    normalize_slices,
    stack_context,
)
from medai.cardiac.preprocess import NetworkSpec
from medai.domain.volume import Volume
from medai.errors import ConfigError, InputValidationError
from medai.inference.package import ModelMetadata, write_metadata
from medai.inference.predictor import Predictor
from medai.registry import PREDICTORS

V = LGE_LABELS


def make_tiny_lge_package(out: Path, context: int = 0, seed: int = 0) -> Path:
    """A tiny random 2-D U-Net package in the ``heart_mr_lge_seg`` format (canonical 64, crop 32)."""
    import torch

    from medai.registry import NETWORKS

    torch.manual_seed(seed)
    spec = NetworkSpec(name="unet2d", params={"in_channels": 1 + 2 * context, "out_channels": 5,
                                              "channels": [4, 8], "num_res_units": 0})
    net = NETWORKS.get(spec.name)(spatial_dims=2, **spec.params)
    out.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), out / "weights.pt")  # type: ignore[attr-defined]
    cfg = LgeSegInferenceConfig(network=spec, canonical_size=(64, 64), crop_size=(32, 32), context=context,
                                size_divisor=8)
    (out / "inference.json").write_text(cfg.model_dump_json(indent=2))
    write_metadata(out, ModelMetadata(name="heart_mr_lge_seg", version="0.0.0-test", predictor="lge_sax_seg",
                                      task="segmentation", files=["weights.pt", "inference.json"]))
    return out


def _ring_slice(h: int = 40, w: int = 40, cy: float = 20, cx: float = 20, r: float = 6) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    d = np.hypot(yy - cy, xx - cx)
    sl = np.zeros((h, w), np.uint8)
    sl[(d >= r) & (d < r + 4)] = V["myo"]
    sl[d < r] = V["lv"]
    return sl


def test_one_myocardium_drops_strays_with_their_scar() -> None:
    lab = np.stack([_ring_slice()] * 3)
    lab[1, 1:4, 1:4] = V["infarct"]  # a stray scar blob far from the heart
    lab[1, 35:38, 35:38] = V["myo"]
    lab[0, 13:15, 18:22] = V["infarct"]  # genuine scar inside the ring
    out = keep_one_myocardium(lab, V)
    assert not out[1, 1:4, 1:4].any() and not out[1, 35:38, 35:38].any()
    assert (out[0, 13:15, 18:22] == V["infarct"]).all()
    # infarct and MVO only inside the kept myocardium
    full = clean_lge(lab, V)
    myo_ring = np.isin(np.stack([_ring_slice()] * 3), [V["myo"]])
    assert not (infarct_mask(full, V) & ~myo_ring).any()


def test_mvo_must_touch_infarct() -> None:
    sl = _ring_slice()
    lab = np.stack([sl.copy(), sl.copy()])
    lab[0, 13:15, 18:22] = V["infarct"]
    lab[0, 15, 19:21] = V["mvo"]  # inside/touching the infarct: kept
    lab[1, 25:27, 14:16] = V["mvo"]  # no infarct on this slice: relabelled
    ext_before = infarct_mask(lab, V).sum()
    out = mvo_within_infarct(lab, V)
    assert (out[0, 15, 19:21] == V["mvo"]).all()
    assert (out[1, 25:27, 14:16] == V["infarct"]).all()
    assert infarct_mask(out, V).sum() == ext_before  # the infarct extent (3+4) is unchanged
    as_myo = mvo_within_infarct(lab, V, policy="myo")
    assert (as_myo[1, 25:27, 14:16] == V["myo"]).all()
    with pytest.raises(ValueError):
        mvo_within_infarct(lab, V, policy="delete")


def test_cavity_enclosed_and_hole_free() -> None:
    closed = _ring_slice()
    closed[20, 20] = 0  # a hole in the cavity
    closed[19, 19] = 0
    closed[2:4, 2:4] = V["lv"]  # cavity outside a closed ring
    open_ring = _ring_slice()
    open_ring[:20, 17:24] = np.where(open_ring[:20, 17:24] == V["myo"], 0, open_ring[:20, 17:24])  # gap in the ring
    lab = np.stack([closed, open_ring])
    out = enclose_cavity(lab, V)
    assert out[0, 20, 20] == V["lv"] and out[0, 19, 19] == V["lv"]
    assert not out[0, 2:4, 2:4].any()
    # open ring: the cavity is left as it is (no leak into the background)
    assert (out[1] == V["lv"]).sum() == (open_ring == V["lv"]).sum()


def test_clean_is_idempotent_and_keeps_shape() -> None:
    rng = np.random.default_rng(0)
    lab = np.stack([_ring_slice(cy=20 + k, r=5 + k) for k in range(4)])
    noise = rng.random(lab.shape) < 0.03
    lab[noise] = rng.integers(1, 5, noise.sum())
    once = clean_lge(lab, V)
    assert once.shape == lab.shape and once.dtype == np.uint8
    assert np.array_equal(clean_lge(once, V), once)
    assert clean_lge(np.zeros((2, 8, 8), np.uint8), V).sum() == 0
    with pytest.raises(ValueError):
        clean_lge(lab[0], V)


def test_preprocessing_helpers() -> None:
    a = np.arange(3 * 4 * 5, dtype=np.float32).reshape(3, 4, 5)
    a[1] *= 100
    n = normalize_slices(a)
    assert np.allclose(n.mean(axis=(1, 2)), 0, atol=1e-5) and np.allclose(n.std(axis=(1, 2)), 1, atol=1e-3)
    assert normalize_slices(a, "volume").std() == pytest.approx(1, abs=1e-3)
    s = stack_context(a, 1)
    assert s.shape == (3, 3, 4, 5)
    assert np.array_equal(s[0, 0], a[0]) and np.array_equal(s[1, 0], a[0]) and np.array_equal(s[2, 2], a[2])
    assert np.array_equal(s[:, 1], a)
    assert crop_box((256, 256), (128, 128)) == (64, 192, 64, 192) and crop_box((10, 12), None) == (0, 10, 0, 12)
    with pytest.raises(ValueError, match="size_divisor"):
        LgeSegInferenceConfig(network=NetworkSpec(name="unet2d"), crop_size=(100, 100), size_divisor=16)


@pytest.fixture(scope="module")
def tiny_pkg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_lge_package(tmp_path_factory.mktemp("lge") / "tiny")


def test_registered_and_loaded(tiny_pkg: Path) -> None:
    assert PREDICTORS.get("lge_sax_seg") is LgeSegPredictor
    pred = Predictor.from_package(tiny_pkg)
    assert isinstance(pred, LgeSegPredictor) and pred.input_kind == "study"
    names = {lab.name: lab for lab in pred.labels}
    assert set(names) == {"lv", "myo", "infarct", "mvo"}
    assert names["myo"].property_type.value == "74281007" and names["infarct"].property_type.value == "22298006"
    assert names["infarct"].property_category.value == "49755003"
    assert [names[n].value for n in ("lv", "myo", "infarct", "mvo")] == [1, 2, 3, 4]


@pytest.mark.parametrize("context", [0, 1])
def test_segment_volume_keeps_source_geometry(tmp_path: Path, context: int) -> None:
    pred = load_default(make_tiny_lge_package(tmp_path / "p", context=context))
    aff = np.array([[0, 0, 1.4, -50], [0, 1.3, 0, 20], [8.0, 0, 0, 5], [0, 0, 0, 1]], float)
    vol = Volume(array=np.random.default_rng(1).random((3, 70, 90)).astype(np.float32) * 500, affine=aff,
                 frame_of_reference_uid="1.2.3")
    timings: dict[str, float] = {}
    lm = pred.segment_volume(vol, timings=timings)
    arr = lm.volume.array
    assert arr.shape == (3, 70, 90) and arr.dtype == np.uint8
    assert set(np.unique(arr)) <= {0, 1, 2, 3, 4}
    assert np.array_equal(lm.volume.affine, aff) and lm.volume.frame_of_reference_uid == "1.2.3"
    assert {"preprocessing", "inference", "postprocessing"} <= set(timings)
    with pytest.raises(InputValidationError):
        pred.segment_volume(Volume(array=np.zeros((2, 3, 8, 8), np.float32), affine=np.eye(4),
                                   frame_times_ms=(0.0, 1.0)))


def test_probabilities_map_back_to_the_right_place(tiny_pkg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A disc at the centre of the network window must land at the centre of any source grid (bilinear on probs)."""
    pred = load_default(tiny_pkg)

    def disc(self: LgeSegPredictor, x: np.ndarray) -> np.ndarray:
        n, _, h, w = x.shape
        yy, xx = np.mgrid[:h, :w]
        inside = np.hypot(yy - (h - 1) / 2, xx - (w - 1) / 2) < 8
        p = np.zeros((n, 5, h, w), np.float32)
        p[:, 0] = ~inside
        p[:, V["myo"]] = inside
        return p

    monkeypatch.setattr(LgeSegPredictor, "_probabilities", disc)
    vol = Volume(array=np.zeros((2, 100, 150), np.float32), affine=np.eye(4))
    arr = pred.segment_volume(vol, postprocess=False).volume.array
    yx = np.argwhere(arr[0] == V["myo"])
    assert np.allclose(yx.mean(0), (49.5, 74.5), atol=0.6)
    # canonical 64 -> source 100 x 150: the disc (radius 8 canonical px) becomes an ellipse of radii 12.5 x 18.75
    assert np.ptp(yx[:, 0]) == pytest.approx(25, abs=2) and np.ptp(yx[:, 1]) == pytest.approx(37.5, abs=2)


def test_tta_averages_flipped_views_mapped_back(tmp_path: Path) -> None:
    """``tta="xy"`` = mean of the softmax over the 4 flips, each flipped back; a flip of the input flips the output."""
    import json

    import torch

    pkg = make_tiny_lge_package(tmp_path / "tta", seed=3)
    cfg = json.loads((pkg / "inference.json").read_text())
    cfg["tta"] = "xy"
    (pkg / "inference.json").write_text(json.dumps(cfg))
    pred = load_default(pkg)
    assert pred.config.tta == "xy"
    x = np.random.default_rng(0).normal(size=(3, 1, 32, 32)).astype(np.float32)
    got = pred._probabilities(x)
    with torch.inference_mode():
        t = torch.from_numpy(x)
        ref = sum(torch.softmax(pred.net(t.flip(d) if d else t), 1).flip(d) if d else torch.softmax(pred.net(t), 1)
                  for d in [(), (-1,), (-2,), (-2, -1)]) / 4
    assert np.allclose(got, ref.numpy(), atol=1e-6)
    assert np.allclose(got.sum(1), 1, atol=1e-5)
    # the averaged views make the output equivariant to the flips it averages over
    assert np.allclose(pred._probabilities(x[..., ::-1].copy()), got[..., ::-1], atol=1e-5)
    plain = make_tiny_lge_package(tmp_path / "plain", seed=3)
    assert not np.allclose(load_default(plain)._probabilities(x), got, atol=1e-4)


def test_predict_on_lge_phantom(tiny_pkg: Path) -> None:
    from medai.dicom.ingest import ingest
    from medai.dicom.phantoms import make_lge_study

    phantom = make_lge_study(n_slices=4, rows=48, cols=56)
    study = ingest(phantom.to_bytes()).studies[0]
    out = load_default(tiny_pkg).predict(study)
    lm = out.label_maps["lge_sax"]
    assert lm.volume.array.shape == (4, 48, 56) and lm.volume.array.dtype == np.uint8
    assert np.allclose(lm.volume.affine, phantom.affine, atol=1e-4)
    img = out.extras["image"]
    assert img.array.shape == (4, 48, 56) and out.extras["series_uids"] == [img.source_series_uid]
    assert {"volume", "preprocessing", "inference", "postprocessing"} <= set(out.extras["timings_s"])
    assert out.measurements == [] and out.model.name == "heart_mr_lge_seg"


def test_bad_packages(tmp_path: Path) -> None:
    pkg = make_tiny_lge_package(tmp_path / "p")
    (pkg / "weights.pt").unlink()
    with pytest.raises(ConfigError, match="weights"):
        load_default(pkg)
    pkg2 = make_tiny_lge_package(tmp_path / "q", context=1)
    cfg = LgeSegInferenceConfig.model_validate_json((pkg2 / "inference.json").read_text())
    (pkg2 / "inference.json").write_text(cfg.model_copy(update={"context": 0}).model_dump_json())
    with pytest.raises(ConfigError, match="in_channels"):
        load_default(pkg2)
