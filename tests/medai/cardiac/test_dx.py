"""Diagnosis features (known phantom geometry) and the cine_dx predictor of the shipped package: any modality
subset, attributions, and clear errors for bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest

from medai.cardiac.dx_features import MODALITY_FEATURES, cine_dx_features, feature_names
from medai.cardiac.dx_predictor import CineDxPredictor, load_dx, stack_ed_es
from medai.dicom.phantoms import make_cine_sax_study
from medai.domain.volume import LabelMap, Volume
from medai.errors import ConfigError, InputValidationError
from medai.measurements.cardiac import MYOCARDIAL_DENSITY_G_PER_ML, PatientInfo
from tests.medai.cardiac.helpers import phantom_labelmap


@pytest.fixture(scope="module")
def phantom_features() -> tuple[dict[str, float], LabelMap, int, int]:
    ph = make_cine_sax_study(None, rows=128, cols=128, n_slices=9, n_phases=12, seed=3)
    lm = phantom_labelmap(ph)
    lv = [lm.volume_ml("lv", t) for t in range(lm.volume.n_frames)]
    ed, es = int(np.argmax(lv)), int(np.argmin(lv))
    return cine_dx_features(lm, ed, es, PatientInfo(height_m=1.8, weight_kg=80.0)), lm, ed, es


def test_features_measure_the_label_map(phantom_features: tuple) -> None:
    f, lm, ed, es = phantom_features
    assert list(f) == feature_names()
    assert f["lv_edv"] == pytest.approx(lm.volume_ml("lv", ed)) and f["lv_esv"] == pytest.approx(lm.volume_ml("lv", es))
    assert f["lv_ef"] == pytest.approx(100 * (f["lv_edv"] - f["lv_esv"]) / f["lv_edv"])
    assert f["lv_mass"] == pytest.approx(lm.volume_ml("myo", ed) * MYOCARDIAL_DENSITY_G_PER_ML)
    bsa = math.sqrt(180 * 80 / 3600)
    assert f["bsa"] == pytest.approx(bsa) and f["lv_edvi"] == pytest.approx(f["lv_edv"] / bsa)
    assert f["rv_lv_edv_ratio"] == pytest.approx(f["rv_edv"] / f["lv_edv"])
    # the phantom's wall is a few mm thick everywhere and thickens in systole
    assert 2.0 < f["wt_ed_min"] <= f["wt_ed_mean"] <= f["wt_ed_max"] < 20.0
    assert f["thickening_mean"] > 0


def test_missing_parts_are_nan_not_invented(phantom_features: tuple) -> None:
    _, lm, ed, es = phantom_features
    f = cine_dx_features(lm, ed, es)  # no height/weight
    assert all(math.isnan(f[n]) for n in MODALITY_FEATURES["clinical"]) and math.isnan(f["lv_edvi"])
    rv_value = lm.label("rv").value
    no_rv = LabelMap(volume=lm.volume.with_array(np.where(lm.volume.array == rv_value, 0, lm.volume.array)),
                     labels=lm.labels)
    g = cine_dx_features(no_rv, ed, es)
    assert math.isnan(g["rv_edv"]) and math.isnan(g["rv_ef"]) and math.isfinite(g["lv_ef"])


@pytest.fixture(scope="module")
def dx() -> CineDxPredictor:
    return load_dx()


def test_the_shipped_model_uses_any_subset_and_explains_itself(dx: CineDxPredictor, phantom_features: tuple) -> None:
    f = phantom_features[0]
    full = dx.predict({"features": f})
    probs = [c.probability for c in full.classes]
    assert sum(probs) == pytest.approx(1.0, abs=1e-6) and [c.name for c in full.classes] == ["NOR", "DCM", "HCM",
                                                                                            "MINF", "RV"]
    assert full.extras["predicted_class"] == full.classes[int(np.argmax(probs))].name
    assert full.extras["modalities_used"] == list(MODALITY_FEATURES)
    assert set(full.extras["modality_contributions"]) == set(MODALITY_FEATURES)
    assert set(full.extras["feature_attributions"]) <= set(feature_names()) and full.extras["feature_attributions"]
    dcm = next(c for c in full.classes if c.name == "DCM")
    assert dcm.code == {"value": "399020009", "scheme": "SCT", "meaning": "Dilated cardiomyopathy"}
    only = dx.predict({"features": f, "modalities": ["cmr_volumes"]})
    assert only.extras["modalities_used"] == ["cmr_volumes"]
    assert any(fl.code == "dx_modalities_missing" for fl in only.flags)
    # a row without the clinical fields is the same as asking for the other two modalities
    no_clin = dict(f, height_cm=None, weight_kg=None, bsa=None, lv_edvi=None, lv_esvi=None, rv_edvi=None,
                   rv_esvi=None, lv_massi=None)
    assert dx.predict({"features": no_clin}).extras["modalities_used"] == ["cmr_volumes", "cmr_wall"]


def test_every_estimator_loads_and_the_fusion_reports_its_attention(dx: CineDxPredictor,
                                                                    phantom_features: tuple) -> None:
    inputs = {"features": phantom_features[0], "modalities": ["cmr_volumes", "cmr_wall"]}
    preds = {n: dx if n == dx.estimator_name else load_dx(estimator=n, seg_predictor=None) for n in dx.config.names}
    assert set(preds) >= {"baseline", "fusion"}
    for name, p in preds.items():
        out = p.predict(inputs)
        assert out.extras["estimator"] == name
        if p.fusion_model is None:
            assert "modality_weights" not in out.extras
            continue
        w = out.extras["modality_weights"]  # the fusion model's attention, also when it is an ensemble's member
        assert w["clinical"] == 0.0 and sum(w.values()) == pytest.approx(1.0, abs=1e-5)
    for name, members in dx.config.ensembles.items():  # an ensemble is the mean of its members' probabilities
        rows = [phantom_features[0]]
        np.testing.assert_allclose(preds[name].probabilities(rows),
                                   np.mean([preds[m].probabilities(rows) for m in members], axis=0), atol=1e-12)
    with pytest.raises(ConfigError, match="no estimator 'bogus'"):
        load_dx(estimator="bogus")
    from medai.cardiac.dx_predictor import CineDxInferenceConfig

    doc = dx.config.model_dump()  # an ensemble must be a new name over fitted estimators
    for bad in ({"mix": ["baseline", "svm"]}, {"mix": []}, {"baseline": ["fusion"]}):
        with pytest.raises(ValueError, match="ensemble"):
            CineDxInferenceConfig.model_validate({**doc, "ensembles": bad})


@pytest.mark.parametrize(("inputs", "match"), [
    ({"nope": 1}, "takes"),
    ({"features": {"lv_edv": "big"}}, "not a number"),
    ({"features": {}}, "no modality has a finite feature"),
    ({"features": {"lv_edv": 100.0}, "modalities": ["echo"]}, "unknown modalities"),
])
def test_bad_inputs_say_what_is_wrong(dx: CineDxPredictor, inputs: dict, match: str) -> None:
    with pytest.raises(InputValidationError, match=match):
        dx.predict(inputs)


def test_ed_and_es_must_share_one_stack() -> None:
    a = Volume(array=np.zeros((4, 8, 8), np.float32), affine=np.eye(4))
    b = Volume(array=np.zeros((5, 8, 8), np.float32), affine=np.eye(4))
    with pytest.raises(InputValidationError, match="one geometry"):
        stack_ed_es(a, b)
    assert stack_ed_es(a, a).array.shape == (2, 4, 8, 8)
