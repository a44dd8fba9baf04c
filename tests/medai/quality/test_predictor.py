"""The shipped ``heart_mr_quality`` package through its predictor: shapes, bad input, and real slices."""

from __future__ import annotations

import numpy as np
import pytest

from medai.errors import InputValidationError
from medai.inference.predictor import Predictor
from medai.quality.predictor import QualityPredictor
from medai.quality.simulate import ARTEFACTS, corrupt
from medai.settings import find_data_dir


@pytest.fixture(scope="module")
def qp() -> QualityPredictor:
    p = Predictor.from_package("heart_mr_quality")
    assert isinstance(p, QualityPredictor)
    return p


def test_scores_have_one_row_per_slice_and_any_size_is_accepted(qp: QualityPredictor) -> None:
    rng = np.random.default_rng(0)
    slices = [rng.random((64, 80)).astype(np.float32), rng.random((256, 256)).astype(np.float32) * 900]
    s = qp.score_slices(slices)
    assert s.artefacts == list(ARTEFACTS)
    assert s.presence.shape == s.severity.shape == (2, len(ARTEFACTS))
    assert ((s.presence >= 0) & (s.presence <= 1)).all() and s.good.shape == (2,)
    nan = slices[0].copy()
    nan[:5] = np.nan
    assert np.isfinite(qp.score_slices([nan]).presence).all()
    with pytest.raises(InputValidationError, match="2-D"):
        qp.score_slices([np.zeros((4, 32, 32))])
    assert qp.score_slices([]).presence.shape == (0, len(ARTEFACTS))


@pytest.mark.realdata
def test_on_real_held_out_slices_clean_is_good_and_each_artefact_is_named(qp: QualityPredictor) -> None:
    root = find_data_dir()
    if root is None or not (root / "cardiac" / "acdc").is_dir():
        pytest.skip("ACDC not found under ../shared/data (or MEDAI_DATA_DIR)")
    from medai.datasets.acdc import load_acdc_release

    case = load_acdc_release(root / "cardiac" / "acdc", split="val", patients=["patient017"])[0]
    img = case.image[len(case.image) // 2]
    clean = qp.score_slices([img])
    assert clean.good[0] > 0.5
    for k, name in enumerate(ARTEFACTS):
        x, _ = corrupt(img, np.random.default_rng(k), artefacts=(name,), strength=0.9)
        s = qp.score_slices([x])
        assert s.presence[0, k] > 0.5, (name, s.presence[0])
        assert s.good[0] < 0.5
