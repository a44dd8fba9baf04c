"""medai.percentiles.percentiles must be np.percentile bit for bit: the networks were trained on its windows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medai.percentiles import percentiles


def _make(rng: np.random.Generator, kind: int, n: int) -> np.ndarray:
    if kind == 0:
        return rng.normal(size=n).astype(np.float32)
    if kind == 1:
        return rng.integers(0, 5, size=n).astype(np.float32)  # heavy ties
    if kind == 2:
        return rng.integers(-100, 4000, size=n).astype(np.int16)  # stored CT/MR pixels
    if kind == 3:
        return rng.gamma(2.0, 100.0, size=n)  # float64
    return rng.integers(0, 255, size=n).astype(np.uint8)


def _cases(rng: np.random.Generator) -> list[tuple[np.ndarray, list[float]]]:
    cases = []
    for trial in range(600):
        n = int(rng.integers(1, 2500) if trial % 10 else rng.integers(10_000, 200_000))  # some sampled, most whole
        qs = ([0.5, 99.5] if trial % 3 else
              [float(x) for x in rng.uniform(0, 100, size=int(rng.integers(1, 5)))] + [0.0, 100.0, 50.0])
        cases.append((_make(rng, trial % 5, n), qs))
    return cases


def test_equals_numpy_bit_for_bit_on_random_tied_and_integer_data() -> None:
    rng = np.random.default_rng(7)
    for a, qs in _cases(rng):
        got, want = percentiles(a, qs), np.percentile(a, qs)
        assert got.dtype == want.dtype == np.float64
        assert np.array_equal(got, want), (a.dtype, a.size, qs, got, want)


def test_multidimensional_images_and_the_input_is_left_untouched() -> None:
    rng = np.random.default_rng(3)
    vol = rng.gamma(2.0, 100.0, size=(3, 40, 36)).astype(np.float32)
    before = vol.copy()
    assert np.array_equal(percentiles(vol, [1.0, 99.0]), np.percentile(vol, [1.0, 99.0]))
    assert np.array_equal(vol, before)
    assert np.array_equal(percentiles(np.array([5.0]), [0.5, 99.5]), [5.0, 5.0])


def test_image_like_data_and_a_sample_that_misses_the_tails() -> None:
    """Smooth images with a flat background (many ties, spatially ordered values) take the tail path; a strided
    sample that does not represent the array makes the threshold unsafe, and the whole array is used instead."""
    yy, xx = np.mgrid[:180, :200]
    img = np.where((yy - 90) ** 2 + (xx - 100) ** 2 < 70**2, 400.0 + yy + 0.5 * xx, 0.0).astype(np.float32)
    vol = np.stack([img * (1 + 0.1 * z) for z in range(6)])
    for a in (img, vol, vol.astype(np.int16)):
        for qs in ([1.0, 99.0], [0.5, 99.5], [1.0, 99.5]):
            assert np.array_equal(percentiles(a, qs), np.percentile(a, qs)), (a.shape, a.dtype, qs)
    n = 100_000
    stride = n // 4096
    tricky = np.full(n, 1e6)
    tricky[::stride] = np.arange(len(tricky[::stride]))  # the sample holds the lowest values, nothing else does
    assert np.array_equal(percentiles(tricky, [1.0, 99.0]), np.percentile(tricky, [1.0, 99.0]))
    assert np.array_equal(percentiles(-tricky, [1.0, 99.0]), np.percentile(-tricky, [1.0, 99.0]))


@pytest.mark.realdata
def test_real_mr_frames(data_dir: Path) -> None:
    from medai.datasets.acdc import load_acdc

    root = data_dir / "cardiac" / "acdc"
    if not (root / "splits.csv").is_file():
        pytest.skip(f"ACDC official training set not found at {root}")
    for case in load_acdc(root, split="val")[:12]:
        for a in (case.image, case.image.astype(np.float32), case.image[case.image.shape[0] // 2]):
            for qs in ([1.0, 99.0], [0.5, 99.5], [25.0, 50.0, 75.0]):
                assert np.array_equal(percentiles(a, qs), np.percentile(a, qs)), (case.case_id, qs)


def test_outside_the_fast_path_numpy_answers_nan_and_errors_alike() -> None:
    a = np.array([1.0, np.nan, 3.0], dtype=np.float32)
    assert np.isnan(percentiles(a, [1.0, 99.0])).all()
    with pytest.raises(ValueError, match="Percentiles must be in the range"):
        percentiles(np.arange(10.0), [-1.0, 50.0])
    with pytest.raises(ValueError, match="Percentiles must be in the range"):
        percentiles(np.arange(10.0), [50.0, 101.0])
