"""The cine_diagnosis analysis: selected with the cine analysis it requires, one study report whose diagnosis
section renders to JSON, SR (a coded Finding, SNOMED CT), PDF and FHIR (a preliminary Observation); a clear error
without its cine result.

The phantom is segmented with its known truth (the shipped cine package whose ``segment_volume`` returns the
phantom's labels), so the diagnosis runs for real on a correct segmentation.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest

from medai.analyses import get_analysis
from medai.analyses.runner import package_provider, run_study_analyses, select_analyses
from medai.cardiac.predictor import CineSegPredictor
from medai.dicom.ingest import ingest
from medai.dicom.phantoms import make_cine_sax_study
from medai.errors import ConfigError, SeriesSelectionError

PHANTOM = {"rows": 128, "cols": 128, "n_slices": 9, "n_phases": 12, "seed": 5}


class TruthCine(CineSegPredictor):
    """The shipped cine package, segmenting with the phantom's known labels."""

    truth: np.ndarray

    def segment_volume(self, volume, **kwargs):  # type: ignore[no-untyped-def]
        from medai.domain.volume import LabelMap

        return LabelMap(volume=volume.with_array(self.truth.copy()), labels=self.labels)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple:
    from medai.inference.package import read_metadata, resolve_package

    root = tmp_path_factory.mktemp("dx")
    ph = make_cine_sax_study(root / "study", **PHANTOM)
    path = resolve_package("heart_mr_cine_seg")
    cine = TruthCine(path, read_metadata(path))
    cine.load()
    cine.truth = ph.labels
    provider = package_provider({"heart_mr_cine_seg": cine})
    study = ingest(root / "study").studies[0]
    out = run_study_analyses(study, root / "out", kinds=["cine_diagnosis"], models=provider)
    return study, out, provider


def _codes(ds: pydicom.Dataset) -> set[str]:
    out: set[str] = set()
    for item in ds.get("ContentSequence", []):
        for seq in ("ConceptNameCodeSequence", "ConceptCodeSequence"):
            out |= {str(c.get("CodeValue")) for c in item.get(seq, [])}
        out |= _codes(item)
    return out


def test_asking_for_the_diagnosis_runs_the_cine_analysis_first(run: tuple) -> None:
    study, out, _ = run
    assert [a.kind for a in select_analyses(study, ["cine_diagnosis"])] == ["cine_function", "cine_diagnosis"]
    assert [s.kind for s in out.report.sections] == ["cine_function", "cine_diagnosis"]
    sec = out.report.section("cine_diagnosis")
    assert sec.quality is None  # a derived analysis: the gate judged the cine it is built on
    probs = {c.name: c.probability for c in sec.classes}
    assert set(probs) == {"NOR", "DCM", "HCM", "MINF", "RV"} and sum(probs.values()) == pytest.approx(1, abs=1e-6)
    s = sec.summary
    assert s["predicted_class"] == max(probs, key=probs.get) and s["probability"] == pytest.approx(max(probs.values()))
    assert s["modalities_used"] and set(s["modality_contributions"]) == set(s["modalities_used"])
    assert s["feature_attributions"] and s["segmentation_model"]["name"] == "heart_mr_cine_seg"
    doc = json.loads(out.files["json"].read_text())
    assert doc["sections"][1]["classes"] == [c.model_dump(mode="json") for c in sec.classes]


def test_the_suggestion_renders_to_sr_fhir_and_pdf(run: tuple) -> None:
    _, out, _ = run
    sec = out.report.section("cine_diagnosis")
    top = max(sec.classes, key=lambda c: c.probability)
    sr = pydicom.dcmread(out.files["sr"])
    codes = _codes(sr)
    assert "121071" in codes and top.code["value"] in codes  # Finding = the suggested class' concept
    bundle = json.loads(out.files["fhir"].read_text())
    obs = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Observation"
           and e["resource"]["code"]["coding"][0]["code"] == "cine_diagnosis"]
    assert len(obs) == 1 and obs[0]["status"] == "preliminary"
    assert obs[0]["valueCodeableConcept"]["coding"][0]["code"] == top.code["value"]
    assert len(obs[0]["component"]) == 5
    from pypdf import PdfReader

    text = " ".join(p.extract_text() for p in PdfReader(out.files["pdf"]).pages)
    assert "Suggested:" in text and "Modalities used" in text


def test_without_its_cine_result_the_diagnosis_says_what_it_needs(run: tuple) -> None:
    study, _, provider = run
    with pytest.raises(SeriesSelectionError, match="needs the cine_function analysis"):
        get_analysis("cine_diagnosis").run(study, provider, lambda s: None, prior={})


def test_a_requirement_cycle_is_refused(tmp_path: Path) -> None:
    import shutil

    from medai.analyses import CONFIG_DIR

    for name in ("cine_function.yaml", "cine_diagnosis.yaml"):
        shutil.copy(Path(CONFIG_DIR) / name, tmp_path / name)
    cfg = (tmp_path / "cine_function.yaml").read_text() + "requires: [cine_diagnosis]\n"
    (tmp_path / "cine_function.yaml").write_text(cfg)
    study = ingest(make_cine_sax_study(tmp_path / "s", **PHANTOM).paths[0].parent).studies[0]
    with pytest.raises(ConfigError, match="cycle"):
        select_analyses(study, ["cine_diagnosis"], config_dir=tmp_path)


@pytest.mark.parametrize("group", ["NOR", "DCM", "HCM", "MINF", "RV"])
def test_the_shipped_models_read_each_group_median_heart(group: str, tmp_path: Path) -> None:
    """End to end from images, with the shipped cine and diagnosis models: the phantom of each ACDC group's median
    heart (:data:`~medai.dicom.phantoms.PHENOTYPES`, fitted to the reference masks, not to any model) is given its
    group as the most probable class."""
    make_cine_sax_study(tmp_path / "study", phenotype=group, rows=192, cols=192, seed=1)
    out = run_study_analyses(ingest(tmp_path / "study").studies[0], tmp_path / "out")
    dx = out.report.section("cine_diagnosis")
    assert dx.summary["predicted_class"] == group, {c.name: round(c.probability, 2) for c in dx.classes}


def test_an_unknown_phenotype_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown phenotype 'XYZ'; choose one of NOR, DCM, HCM, MINF, RV"):
        make_cine_sax_study(None, phenotype="XYZ", n_phases=2, n_slices=3, rows=32, cols=32)
