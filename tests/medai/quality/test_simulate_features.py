"""Artefact simulation (seeded, realistic changes) and the coverage / segmentation-quality features."""

from __future__ import annotations

import numpy as np
import pytest

from medai.quality import simulate as S
from medai.quality.features import (
    COVERAGE_FEATURES,
    END_CHANNELS,
    END_INPUT_SIZE,
    SEG_FEATURES,
    Structures,
    coverage_features,
    end_slice_inputs,
    seg_features,
)
from medai.quality.preprocess import prepare_slices
from medai.quality.uncertainty import slice_stats


def _disc_image(n: int = 96) -> np.ndarray:
    yy, xx = np.mgrid[:n, :n]
    r = np.hypot(yy - n / 2, xx - n / 2)
    img = np.where(r < n / 6, 1.0, np.where(r < n / 4, 0.3, 0.1)) + 0.6 * ((yy // 8 + xx // 8) % 2) * (r > n / 3)
    return img.astype(np.float32)


@pytest.mark.parametrize("name", S.ARTEFACTS)
def test_each_artefact_changes_the_image_more_when_stronger_and_is_reproducible(name: str) -> None:
    img = S._scale01(_disc_image())

    def nrmse(s: float, seed: int = 3) -> float:
        out = S.apply(img, name, s, np.random.default_rng(seed), allow_wrap=False)
        assert out.shape == img.shape and np.isfinite(out).all()
        a, b = prepare_slices([img])[0, 0], prepare_slices([out])[0, 0]
        return float(np.sqrt(((a - b) ** 2).mean()))

    import torch

    torch.manual_seed(0)
    weak = nrmse(0.3)
    torch.manual_seed(0)
    strong = nrmse(1.0)
    assert strong > 0.02, f"{name} at full strength barely changes the image"
    assert strong > weak
    x1, c1 = S.corrupt(img, np.random.default_rng(5), artefacts=(name,))
    x2, c2 = S.corrupt(img, np.random.default_rng(5), artefacts=(name,))
    assert np.array_equal(x1, x2) and c1 == c2
    assert c1.presence()[S.ARTEFACTS.index(name)] == 1.0 and c1.severity().max() >= S.MIN_STRENGTH


def test_random_corruption_labels_match_what_was_applied() -> None:
    rng = np.random.default_rng(0)
    seen = np.zeros(len(S.ARTEFACTS))
    clean = 0
    for _ in range(60):
        _, c = S.corrupt(_disc_image(48), rng)
        p = c.presence()
        seen += p
        clean += p.sum() == 0
        assert ((c.severity() > 0) == (p > 0)).all()
    assert clean > 10 and (seen > 0).all()


def test_wrap_around_folds_the_outside_back_in() -> None:
    img = np.zeros((100, 80), dtype=np.float32)
    img[2:8] = 1.0  # a bright band near the top edge
    for seed in range(6):  # both phase-encoding directions come up
        out = S.wrap(img, 1.0, np.random.default_rng(seed))
        if out.shape[0] < 100:  # vertical phase encoding: the band outside the FOV folds in at the bottom
            assert out.shape[1] == 80 and out[-20:].sum() > 0 and out[:10].sum() == 0
        else:  # horizontal: the band is inside the FOV and stays where it was
            assert out.shape[1] < 80 and out[2:8].sum() > 0


def _stack(z: int = 10, cut_base: int = 0, cut_apex: int = 0) -> np.ndarray:
    """A ventricle from base (slice 0, with RV) to apex; 1 slice of atrium above, 1 empty slice below."""
    n = 64
    yy, xx = np.mgrid[:n, :n]
    arr = np.zeros((z, n, n), dtype=np.uint8)
    for k in range(1, z - 1):
        r = 14 * (1 - (k - 1) / (z - 1)) + 3
        d = np.hypot(yy - 32, xx - 32)
        arr[k][d < r + 4] = 2
        arr[k][d < r] = 3
        if k < z // 2:
            arr[k][(np.hypot(yy - 32, xx - 12) < 8) & (arr[k] == 0)] = 1
    return arr[cut_base : z - cut_apex]


def test_coverage_features_tell_a_truncated_stack_from_a_complete_one() -> None:
    s = Structures(lv=3, myo=2, rv=1)
    full = coverage_features(_stack(), s)
    cut = coverage_features(_stack(cut_base=3, cut_apex=4), s)
    assert full["basal"].shape == (len(COVERAGE_FEATURES),)
    i_beyond = COVERAGE_FEATURES.index("beyond_present")
    assert full["basal"][i_beyond] == 1 and full["apical"][i_beyond] == 1
    assert cut["basal"][i_beyond] == 0 and cut["apical"][i_beyond] == 0
    i_end = COVERAGE_FEATURES.index("end_lv_frac")
    assert cut["apical"][i_end] > full["apical"][i_end]


def test_end_slice_inputs_crop_the_outermost_heart_slices_in_mm_whichever_way_the_stack_runs() -> None:
    s = Structures(lv=3, myo=2, rv=1)
    arr = _stack()
    z = len(arr)
    code = np.arange(1, z + 1, dtype=np.float32)[:, None, None] * np.ones(arr.shape[1:], np.float32)
    ed, es = code, code[::-1].copy()  # each slice's intensity says which slice it is (ES counted the other way)
    ins = end_slice_inputs(ed, es, arr, s, (8.0, 1.5, 1.5))
    assert set(ins) == {"basal", "apical"}
    b, a = ins["basal"], ins["apical"]
    assert b is not None and a is not None
    for x in (b, a):
        assert x.shape == (len(END_CHANNELS), END_INPUT_SIZE, END_INPUT_SIZE) and x.dtype == np.float32
    mid = (slice(None), slice(24, 40), slice(24, 40))
    vb, va = b[mid].mean((1, 2)), a[mid].mean((1, 2))
    # basal: slice 1 (slice 0 is atrium, no LV) then slice 2; apical: slice z-2 then z-3
    assert vb[0] < vb[2] and vb[1] > vb[3] and va[0] > va[2] and va[1] < va[3]
    assert vb[0] < va[0] and vb[1] > va[1]
    # the same anatomy stored apex-first gives the same inputs
    flipped = end_slice_inputs(ed[::-1], es[::-1], arr[::-1], s, (8.0, 1.5, 1.5))
    assert np.allclose(flipped["basal"], b) and np.allclose(flipped["apical"], a)
    # 110 mm at 1.5 mm/px spans 73 px, more than the 64-px slice: the crop's edges are padding
    assert (b[0][:, :3] == 0).all() and (b[0][24:40, 24:40] > 0).all()
    coarse = end_slice_inputs(ed, es, arr, s, (8.0, 3.0, 3.0))["basal"]
    assert coarse is not None and (coarse[0] > 0).all()  # at 3 mm/px the 110 mm are 37 px, inside the slice
    assert end_slice_inputs(ed, es, np.zeros_like(arr), s, (8.0, 1.5, 1.5)) == {"basal": None, "apical": None}


def test_seg_features_see_fragmented_and_uncertain_segmentations() -> None:
    s = Structures(lv=3, myo=2, rv=1)
    arr = _stack()
    good = seg_features(arr, 3, (8.0, 1.5, 1.5), None, s)
    frag = arr.copy()
    frag[3, 5:9, 5:9] = 3  # a stray LV island
    bad = seg_features(frag, 3, (8.0, 1.5, 1.5), None, s)
    assert good.shape == (len(SEG_FEATURES),)
    assert bad[SEG_FEATURES.index("components")] > good[SEG_FEATURES.index("components")]
    assert bad[SEG_FEATURES.index("largest_frac")] < 1.0 == good[SEG_FEATURES.index("largest_frac")]
    assert good[SEG_FEATURES.index("ring")] > 0.9
    prob = np.full((len(arr), 4, 64, 64), 0.2, dtype=np.float32)
    prob[:, 3] = 0.4  # the LV wins everywhere, but only just
    stats = slice_stats(prob)
    assert stats.shape == (len(arr), 4, 3)
    np.testing.assert_allclose(stats[:, :, 1].sum(1), 64 * 64, rtol=1e-5)
    unsure = seg_features(arr, 3, (8.0, 1.5, 1.5), stats, s)
    assert unsure[SEG_FEATURES.index("uncertainty")] > good[SEG_FEATURES.index("uncertainty")]


def test_medai_phantom_can_write_a_known_bad_study(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json

    import pydicom
    from typer.testing import CliRunner

    from medai.cli import app

    clean = CliRunner().invoke(app, ["phantom", str(tmp_path / "c"), "--kind", "cine", "--seed", "2"])
    bad = CliRunner().invoke(app, ["phantom", str(tmp_path / "m"), "--kind", "cine", "--seed", "2",
                                   "--artefact", "motion", "--share", "0.5"])
    assert clean.exit_code == 0 and bad.exit_code == 0, bad.output
    info = json.loads(bad.output)
    assert info["artefact"]["name"] == "motion" and 0 < info["artefact"]["files"] < info["files"]
    a = sorted((tmp_path / "c").rglob("*.dcm"))
    b = sorted((tmp_path / "m").rglob("*.dcm"))
    changed = sum(not np.array_equal(pydicom.dcmread(x).pixel_array, pydicom.dcmread(y).pixel_array)
                  for x, y in zip(a, b, strict=True))
    assert changed == info["artefact"]["files"]
    res = CliRunner().invoke(app, ["phantom", str(tmp_path / "x"), "--artefact", "blur"])
    assert res.exit_code != 0
