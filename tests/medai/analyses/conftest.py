"""Fixtures for the analysis plug-in tests: LGE phantoms and a label map predictor that returns a known answer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from medai.analyses.lge_scar import ROLE
from medai.domain.codes import Code
from medai.domain.prediction import ModelRef, Prediction
from medai.domain.volume import ANATOMICAL_STRUCTURE, LabelMap, SegmentLabel, Volume
from medai.inference.package import ModelMetadata

LGE_NAMES = {"lv": 1, "myo": 2, "infarct": 3, "mvo": 4}


def lge_labelmap(volume: Volume, labels: np.ndarray) -> LabelMap:
    """``labels`` (LGE convention) as a LabelMap on ``volume``'s grid."""
    table = tuple(SegmentLabel(v, n, ANATOMICAL_STRUCTURE, Code(value=n.upper(), scheme="99MEDAI", meaning=n))
                  for n, v in LGE_NAMES.items())
    return LabelMap(volume=volume.with_array(np.asarray(labels, dtype=np.uint8)), labels=table)


class KnownLabels:
    """A predictor stand-in whose ``segment_volume`` returns a fixed label map (the phantom's truth).

    Used where a test checks the quantification and renderings exactly; the real network runs in the tests that
    use the shipped package.
    """

    input_kind = "study"

    def __init__(self, labels: np.ndarray) -> None:
        self.labels = labels
        self.metadata = ModelMetadata(name="heart_mr_lge_seg", version="0.0.0-known", predictor="lge_sax_seg",
                                      task="segmentation")
        self.package_dir = Path(".")

    @property
    def ref(self) -> ModelRef:
        return ModelRef(name="heart_mr_lge_seg", version="0.0.0-known")

    def segment_volume(self, volume: Volume, timings: dict[str, float] | None = None, **_: Any) -> LabelMap:
        return lge_labelmap(volume, self.labels)

    def predict(self, study: Any) -> Prediction:  # pragma: no cover - the analysis calls segment_volume
        raise NotImplementedError


@pytest.fixture
def lge_phantom():  # noqa: ANN201
    from medai.dicom.phantoms import make_lge_scar_study

    return make_lge_scar_study(seed=3, transmural_fraction=0.6, scar_angles_deg=(200.0, 330.0), mvo_fraction=0.15,
                               scar_slices=(1, 6))


__all__ = ["ROLE", "KnownLabels", "lge_labelmap"]
