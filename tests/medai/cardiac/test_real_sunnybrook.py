"""The shipped model on a real study: Sunnybrook SCD0000101 (GE 1.5 T, heart failure with infarction).

Reference: LVEF 26.2 % derived from the expert contours (``derived_lv_volumes.csv``, contoured slices only).
Tolerance +/- 10 EF points: published automated-vs-expert limits of agreement for LVEF are about +/- 7-10 points
on in-domain data (e.g. Bai et al., JCMR 2018;20:65, UK Biobank), this is an external scanner and site (the model
is trained on ACDC, Siemens, Dijon), and the model measures the whole stack while the reference covers the 9
contoured slices. A failed segmentation (EF of a random network, no LV) misses this band by far.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from medai.inference.package import shipped_packages

torch.set_num_threads(2)

REFERENCE_EF = 26.2
TOLERANCE_EF = 10.0


@pytest.mark.slow
def test_shipped_model_ef_on_scd0000101(data_dir: Path) -> None:
    if "heart_mr_cine_seg" not in shipped_packages():
        pytest.skip("shipped package models/packages/heart_mr_cine_seg is missing (not trained yet)")
    folder = data_dir / "cardiac" / "sunnybrook" / "dicoms" / "SCD0000101"
    if not folder.is_dir():
        pytest.skip("Sunnybrook SCD0000101 not present")
    from medai.cardiac.predictor import load_default
    from medai.dicom.ingest import ingest

    study = ingest(folder).studies[0]
    pred = load_default("heart_mr_cine_seg").predict(study)
    m = {x.name: x for x in pred.measurements}
    assert "no_lv_found" not in {f.code for f in pred.flags}
    assert m["lv_ef"].value == pytest.approx(REFERENCE_EF, abs=TOLERANCE_EF)
    assert m["lv_ef"].flag == "low"  # a failing heart is reported as abnormal
    assert pred.extras["ed_frame"] in (17, 18, 19, 0)  # contour-derived ED is phase 19 of 20 (frame 18)
