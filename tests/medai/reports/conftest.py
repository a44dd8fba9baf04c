"""Fixtures: a cine phantom study measured on its exact labels (a realistic Report/Prediction without a network),
and every rendering of it written once per session."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from medai.cardiac.analysis import build_report
from medai.cardiac.predictor import DEFAULT_LABEL_CODES, CineSegPredictor
from medai.dicom.ingest import ingest
from medai.dicom.phantoms import Phantom, make_cine_sax_study
from medai.dicom.volumes import build_cine
from medai.domain.codes import Code
from medai.domain.prediction import Prediction, Report
from medai.domain.study import Study
from medai.domain.volume import ANATOMICAL_STRUCTURE, LabelMap, SegmentLabel
from medai.inference.package import ModelMetadata

#: The phantom's label values (H1's phantom: rv=1, myo=2, lv=3).
PHANTOM_VALUES = {"rv": 1, "myo": 2, "lv": 3}


@dataclass
class Case:
    phantom: Phantom
    study: Study
    prediction: Prediction
    report: Report

    @property
    def label_map(self) -> LabelMap:
        return self.prediction.label_maps["cine_sax"]

    @property
    def datasets(self) -> list:
        return [inst.dataset for s in self.study.series for inst in s.instances]


def make_case(**phantom_kwargs: object) -> Case:
    """Phantom -> ingest -> cine volume -> exact labels with the SNOMED label table -> measure -> Report."""
    kw = {"n_slices": 6, "n_phases": 8, "rows": 64, "cols": 56, "pixel_spacing": 2.5, **phantom_kwargs}
    phantom = make_cine_sax_study(**kw)  # type: ignore[arg-type]
    study = ingest(phantom.to_bytes()).studies[0]
    volume = build_cine(study.series if len(study.series) > 1 else study.series[0])
    # the phantom's labels are on the same grid as the cine (same slice order, same affine up to DS rounding)
    np.testing.assert_allclose(volume.affine, phantom.affine, atol=1e-3)
    labels = tuple(
        SegmentLabel(v, n, ANATOMICAL_STRUCTURE,
                     Code(value=DEFAULT_LABEL_CODES[n][0], scheme="SCT", meaning=DEFAULT_LABEL_CODES[n][1]),
                     DEFAULT_LABEL_CODES[n][2])
        for n, v in PHANTOM_VALUES.items())
    label_map = LabelMap(volume.with_array(np.asarray(phantom.labels, dtype=np.uint8)), labels)
    meta = ModelMetadata(name="heart_mr_cine_seg", version="9.8.7-test", predictor="cine_sax_seg",
                         task="segmentation")
    predictor = CineSegPredictor(Path("unused-package-dir"), meta)  # measure() needs no weights
    prediction = predictor.measure(study, study.series, volume, label_map, {})
    return Case(phantom, study, prediction, build_report(study, prediction))


@pytest.fixture(scope="session")
def case() -> Case:
    return make_case()


@pytest.fixture(scope="session")
def rendered(case: Case, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from medai.reports import render_all

    return render_all(case.report, case.prediction, case.study, tmp_path_factory.mktemp("rendered"))
