"""medai.percentiles.percentiles must be np.percentile bit for bit: the networks were trained on its windows."""

from __future__ import annotations

import numpy as np
import pytest

from medai.percentiles import percentiles


def _cases(rng: np.random.Generator) -> list[tuple[np.ndarray, list[float]]]:
    cases = []
    for trial in range(600):
        n = int(rng.integers(1, 2500))
        maker = (
            lambda: rng.normal(size=n).astype(np.float32),
            lambda: rng.integers(0, 5, size=n).astype(np.float32),  # heavy ties
            lambda: rng.integers(-100, 4000, size=n).astype(np.int16),  # stored CT/MR pixels
            lambda: rng.gamma(2.0, 100.0, size=n),  # float64
            lambda: rng.integers(0, 255, size=n).astype(np.uint8),
        )[trial % 5]
        qs = ([0.5, 99.5] if trial % 3 else
              [float(x) for x in rng.uniform(0, 100, size=int(rng.integers(1, 5)))] + [0.0, 100.0, 50.0])
        cases.append((maker(), qs))
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


def test_outside_the_fast_path_numpy_answers_nan_and_errors_alike() -> None:
    a = np.array([1.0, np.nan, 3.0], dtype=np.float32)
    assert np.isnan(percentiles(a, [1.0, 99.0])).all()
    with pytest.raises(ValueError, match="Percentiles must be in the range"):
        percentiles(np.arange(10.0), [-1.0, 50.0])
    with pytest.raises(ValueError, match="Percentiles must be in the range"):
        percentiles(np.arange(10.0), [50.0, 101.0])
