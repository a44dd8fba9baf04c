"""The fast cine inference path agrees with the reference: channels-last + slab argmax give the labels of plain
NCHW + numpy argmax; bfloat16 (opt-in) stays within a boundary pixel or so of float32 on the shipped model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import medai.cardiac.predictor as cine
from medai.cardiac.predictor import argmax_classes, load_default
from medai.dicom.phantoms import make_cine_sax_study
from medai.domain.volume import Volume
from medai.errors import ConfigError


@pytest.fixture(scope="module")
def phantom_volume() -> Volume:
    ph = make_cine_sax_study(n_slices=6, n_phases=4, rows=128, cols=128, pixel_spacing=1.4)
    return Volume(array=ph.image.astype(np.float32), affine=ph.affine, frame_times_ms=ph.frame_times_ms)


@pytest.mark.parametrize("shape", [(5, 4, 9, 11), (3, 2, 7), (1, 6, 4, 4, 3)])
def test_argmax_classes_is_numpy_argmax_ties_included(shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(sum(shape))
    p = rng.integers(0, 3, size=shape).astype(np.float32)  # few distinct values: many ties
    np.testing.assert_array_equal(argmax_classes(p), p.argmax(1))


def test_channels_last_and_slab_argmax_reproduce_the_reference_labels(phantom_volume: Volume,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    fast = load_default("heart_mr_cine_seg", precision="float32", runtime="torch")
    got = fast.segment_volume(phantom_volume).volume.array
    ref_pred = load_default("heart_mr_cine_seg", precision="float32", runtime="torch")
    ref_pred.net = ref_pred.net.to(memory_format=torch.contiguous_format)
    monkeypatch.setattr(cine, "argmax_classes", lambda prob: prob.argmax(1))
    real_contig = torch.Tensor.contiguous
    monkeypatch.setattr(torch.Tensor, "contiguous", lambda t, memory_format=torch.contiguous_format:
                        real_contig(t, memory_format=torch.contiguous_format))
    ref = ref_pred.segment_volume(phantom_volume).volume.array
    assert got.any() and (got == ref).mean() >= 0.9999, (got != ref).sum()


def test_bfloat16_agrees_with_float32(phantom_volume: Volume) -> None:
    f32 = load_default("heart_mr_cine_seg", precision="float32").segment_volume(phantom_volume).volume.array
    bf16 = load_default("heart_mr_cine_seg", precision="bfloat16").segment_volume(phantom_volume).volume.array
    assert (f32 == bf16).mean() >= 0.995
    for v in (1, 2, 3):
        a, b = f32 == v, bf16 == v
        if a.sum() > 50:
            assert 2 * (a & b).sum() / (a.sum() + b.sum()) >= 0.97, v


def test_precision_setting_and_bad_value(medai_env) -> None:  # noqa: ANN001
    medai_env(PRECISION="bfloat16")
    assert load_default("heart_mr_cine_seg").precision == "bfloat16"
    medai_env(PRECISION="float16")
    with pytest.raises(ConfigError, match="MEDAI_PRECISION.*float32 or bfloat16"):
        load_default("heart_mr_cine_seg")
    medai_env(PRECISION=None)
    assert load_default("heart_mr_cine_seg").precision == "float32"
