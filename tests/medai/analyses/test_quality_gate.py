"""The quality gate as a registered step: a phantom with simulated motion gives "review required" through the
runner, ``medai analyze`` and the API; the clean phantom does not; unusable images give a clear error, not a
report; the verdict reaches JSON, SR, PDF, FHIR and the job.

The phantom is realistic enough for the shipped cine model to segment it (issue 12: cine model 1.0 used to miss
its RV; the phantom now has ACDC-like intensities, a half-moon RV, trabeculae and a chest around the heart):
:func:`test_the_real_model_segments_the_clean_phantom` checks the real model against the phantom's truth and what
the gate says about it. To test the artefact verdict on its own, the other tests segment the phantom with its known
truth (:class:`TruthCine`: the shipped package, whose ``segment_volume`` returns the phantom's labels), so
measurements, phases, coverage and the segmentation-quality estimate all run for real on a correct segmentation.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pydicom
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from medai.analyses.runner import package_provider, run_study_analyses
from medai.analyses.steps import read_step_config, steps
from medai.cardiac.predictor import CineSegPredictor
from medai.cli import app as cli_app
from medai.dicom.ingest import ingest
from medai.dicom.phantoms import make_cine_sax_study
from medai.domain.prediction import QualityStatus
from medai.errors import ConfigError, ImageQualityError
from medai.inference.predictor import Predictor
from medai.quality.simulate import corrupt_dicom_files

PHANTOM = {"rows": 128, "cols": 128, "n_slices": 9, "n_phases": 12, "seed": 3, "above_base_slices": 1}


def _phantom(folder: Path, artefact: str | None = None, share: float = 0.6) -> Path:
    ph = make_cine_sax_study(folder, **PHANTOM)
    if artefact is not None:
        corrupt_dicom_files(ph.paths, artefact, 1.0, seed=PHANTOM["seed"], share=share)
    return folder


class TruthCine(CineSegPredictor):
    """The shipped cine package whose segmentation is the phantom's known truth (see the module docstring)."""

    truth: np.ndarray

    def segment_volume(self, volume, **kwargs):  # type: ignore[no-untyped-def]
        from medai.domain.volume import LabelMap

        assert volume.array.shape == self.truth.shape
        return LabelMap(volume=volume.with_array(self.truth.copy()), labels=self.labels)


@pytest.fixture(scope="module")
def truth_cine() -> TruthCine:
    from medai.inference.package import read_metadata, resolve_package

    path = resolve_package("heart_mr_cine_seg")
    pred = TruthCine(path, read_metadata(path))
    pred.load()
    pred.truth = make_cine_sax_study(None, **PHANTOM).labels
    return pred


@pytest.fixture(scope="module")
def provider(truth_cine: TruthCine) -> object:
    return package_provider({"heart_mr_cine_seg": truth_cine,
                             "heart_mr_quality": Predictor.from_package("heart_mr_quality")})


@pytest.fixture(scope="module")
def studies(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("gate")
    return {"clean": _phantom(root / "clean"), "motion": _phantom(root / "motion", "motion"),
            "unusable": _phantom(root / "unusable", "motion", share=1.0)}


def _sr_strings(ds: pydicom.Dataset) -> set[str]:
    """Every text value, code value and code meaning in an SR content tree."""
    out: set[str] = set()
    for item in ds.get("ContentSequence", []):
        out |= {str(item.get(k)) for k in ("TextValue", "UID") if k in item}
        for seq in ("ConceptNameCodeSequence", "ConceptCodeSequence"):
            for c in item.get(seq, []):
                out |= {str(c.get(k)) for k in ("CodeValue", "LongCodeValue", "CodeMeaning") if k in c}
        out |= _sr_strings(item)
    return out


def _run(folder: Path, out: Path, provider: object) -> object:
    return run_study_analyses(ingest(folder).studies[0], out, models=provider)  # type: ignore[arg-type]


def test_motion_phantom_needs_review_and_the_clean_one_does_not(studies: dict[str, Path], provider: object,
                                                                tmp_path: Path) -> None:
    clean = _run(studies["clean"], tmp_path / "clean", provider)
    motion = _run(studies["motion"], tmp_path / "motion", provider)
    qc, qm = clean.report.sections[0].quality, motion.report.sections[0].quality
    assert qc is not None and qm is not None
    assert not clean.report.review.required, clean.report.review.reasons
    assert qc.status == QualityStatus.PASS and qc.series[0].good_share > 0.9
    assert motion.report.review.required and qm.status == QualityStatus.REVIEW
    codes = {f.code for f in qm.findings}
    assert "image_artefacts_cine_sax" in codes
    assert qm.series[0].artefacts["motion"].share > qm.series[0].artefacts["spike_noise"].share
    assert any("motion" in r for r in motion.report.review.reasons)
    # every measurement is under review, and says why
    assert motion.report.measurements and all("image_artefacts_cine_sax" in m.review
                                              for m in motion.report.measurements)
    assert not any(m.review for m in clean.report.measurements)
    # the predicted Dice per structure is reported, without ground truth
    assert set(qc.predicted_dice) == {"lv", "myo", "rv"} and all(0 <= v <= 1 for v in qc.predicted_dice.values())
    assert qc.coverage is not None and set(qc.coverage) == {"basal", "apical"}
    # ... and rendered: JSON, SR, PDF, FHIR
    doc = json.loads(motion.files["json"].read_text())
    assert doc["review"]["required"] and doc["sections"][0]["quality"]["status"] == "review"
    sr = pydicom.dcmread(motion.files["sr"])
    text = _sr_strings(sr)
    assert {"cine_function image quality", "Review required", "PDICE_LV", "image_artefacts_cine_sax"} <= text
    from pypdf import PdfReader

    pdf = " ".join(p.extract_text() for p in PdfReader(motion.files["pdf"]).pages)
    assert "REVIEW REQUIRED" in pdf
    assert "Image quality: acceptable" in " ".join(p.extract_text() for p in PdfReader(clean.files["pdf"]).pages)
    bundle = json.loads(motion.files["fhir"].read_text())
    obs = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Observation"]
    iq = [o for o in obs if o["code"]["coding"][0]["code"] == "image-quality"]
    assert len(iq) == 1 and iq[0]["valueCodeableConcept"]["coding"][0]["code"] == "review"
    assert any(o.get("status") == "preliminary" for o in obs)
    dr = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "DiagnosticReport")
    assert dr["conclusion"].startswith("REVIEW REQUIRED")


def test_a_corrected_version_is_judged_again_without_a_predicted_dice(studies: dict[str, Path], provider: object,
                                                                    tmp_path: Path) -> None:
    """A reader's correction is measured again (no inference), and the gate still wraps it: the images did not
    change, so the motion verdict and the coverage stay; the predicted Dice, which estimates the model's contours,
    is not given for a reader's."""
    from medai.analyses.base import Correction
    from medai.reports.labelmaps import read_labelmap

    motion = _run(studies["motion"], tmp_path / "v1", provider)
    study = ingest(studies["motion"]).studies[0]
    lm = read_labelmap(motion.files["labels"], "cine_function", "cine_sax")
    arr = lm.volume.array.copy()
    ed, es = (motion.report.sections[0].summary[k] for k in ("ed_frame", "es_frame"))
    z = int(np.argmax((arr[ed] == 1).sum(axis=(1, 2))))
    arr[:, z][arr[:, z] == 1] = 0  # the reader removes the RV of one slice
    v2 = run_study_analyses(study, tmp_path / "v2", models=provider,  # type: ignore[arg-type]
                            corrections={"cine_function": Correction({"cine_sax": type(lm)(
                                volume=lm.volume.with_array(arr), labels=lm.labels)},
                                {"ed_frame": ed, "es_frame": es})})
    q1, q2 = motion.report.sections[0].quality, v2.report.sections[0].quality
    assert q1 is not None and q2 is not None and q2.reader_corrected and not q1.reader_corrected
    assert q1.predicted_dice and not q2.predicted_dice
    assert not any(f.code.startswith("segmentation_quality") for f in q2.findings)
    assert q2.series == q1.series and q2.status == QualityStatus.REVIEW  # the same images, the same verdict
    assert "image_artefacts_cine_sax" in {f.code for f in q2.findings} and v2.report.review.required
    assert q2.coverage is not None and set(q2.coverage) == {"basal", "apical"}
    rv1 = next(m.value for m in motion.report.measurements if m.name == "rv_edv")
    rv2 = next(m.value for m in v2.report.measurements if m.name == "rv_edv")
    assert rv2 < rv1  # measured on the correction
    from pypdf import PdfReader

    pdf = " ".join(p.extract_text() for p in PdfReader(v2.files["pdf"]).pages)
    assert "corrected by a reader" in pdf and "REVIEW REQUIRED" in pdf


def test_unusable_images_give_a_clear_error_and_no_report(studies: dict[str, Path], provider: object,
                                                          tmp_path: Path) -> None:
    with pytest.raises(ImageQualityError) as exc:
        _run(studies["unusable"], tmp_path / "bad", provider)
    assert "unusable" in exc.value.message and "motion" in exc.value.message
    assert exc.value.http_status == 422 and exc.value.code == "image-quality-unusable"
    assert not (tmp_path / "bad").exists()


def test_medai_analyze_says_review_required(studies: dict[str, Path], tmp_path: Path, truth_cine: TruthCine,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    import medai.analyses.runner as runner

    real = runner.package_provider
    monkeypatch.setattr(runner, "package_provider",
                        lambda overrides=None: real({**(overrides or {}), "heart_mr_cine_seg": truth_cine}))
    res = CliRunner().invoke(cli_app, ["analyze", str(studies["motion"]), "--out", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    assert "REVIEW REQUIRED" in res.output and "image quality (cine_function): review" in res.output
    assert json.loads((tmp_path / "o" / "report.json").read_text())["review"]["required"] is True
    res = CliRunner().invoke(cli_app, ["analyze", str(studies["clean"]), "--out", str(tmp_path / "c")])
    assert res.exit_code == 0 and "REVIEW REQUIRED" not in res.output, res.output
    assert "image quality (cine_function): pass" in res.output


def test_the_real_model_segments_the_clean_phantom(studies: dict[str, Path], tmp_path: Path) -> None:
    """The shipped cine model against the phantom's exact truth, and the gate's verdict on its result.

    Volumes, LV EF and mass are within 10 % of the truth (issue 12's demo bar). The RV EF is held to the model's
    error on real hearts instead, the mean absolute RVEF error of its 5-fold CV on the ACDC release
    (``acdc_cv5.json``, about 10 points, biased low): the RV at end-systole is the model's weakest structure, and its
    phantom RVEF sat inside 10 % only by chance (a narrower phantom RV put it 12 % low with the same model).

    The gate uses no ground truth. Its image verdict is "pass" and its LV and myocardium estimates clear their
    thresholds. Its RV estimate (a regressor fitted on ACDC segmentations, driven by the network's own uncertainty)
    stays cautious on the phantom's end-systolic RV, where the network is least certain (predicted Dice ~0.80 for a
    true ~0.93), and may ask for an RV review although the RV agrees with the truth: the only finding allowed is
    that one.
    """
    real = package_provider()
    out = _run(studies["clean"], tmp_path / "real", real)
    q = out.report.sections[0].quality
    assert q is not None and q.series[0].status == QualityStatus.PASS  # the images are fine ...
    ph = make_cine_sax_study(None, **PHANTOM)
    pred = out.results[0].prediction.label_maps["cine_sax"].volume.array
    for name, value, min_dice in (("lv", 3, 0.95), ("myo", 2, 0.9), ("rv", 1, 0.9)):
        p, t = pred == value, ph.labels == value
        assert 2 * (p & t).sum() / (p.sum() + t.sum()) > min_dice, name  # ... and so is the segmentation
    got = {m.name: m.value for m in out.report.measurements}
    tr = ph.truth
    truth = {"lv_edv": tr.lv_edv_ml, "lv_esv": tr.lv_esv_ml, "lv_ef": tr.lv_ef_pct, "lv_mass": tr.lv_mass_g,
             "rv_edv": tr.rv_edv_ml, "rv_ef": tr.rv_ef_pct}
    for name, value in truth.items():
        if name != "rv_ef":
            assert got[name] == pytest.approx(value, rel=0.1), name  # issue 12: the demo's values within 10 %
    cv = json.loads((Path(__file__).parents[3] / "models" / "packages" / "heart_mr_cine_seg" / "evaluation"
                     / "acdc_cv5.json").read_text())["pooled"]
    assert abs(got["rv_ef"] - truth["rv_ef"]) <= cv["rvef_mae"], (got["rv_ef"], truth["rv_ef"], cv["rvef_mae"])
    assert q.predicted_dice["lv"] >= 0.85 and q.predicted_dice["myo"] >= 0.8
    assert {f.code for f in q.findings} <= {"segmentation_quality_rv"}
    assert not any(m.review for m in out.report.measurements if m.segment in ("lv", "myo"))


def test_a_disabled_or_misconfigured_step(tmp_path: Path, studies: dict[str, Path], provider: object) -> None:
    src = (Path(__file__).parents[3] / "configs" / "steps" / "quality.yaml").read_text()
    off = tmp_path / "off"
    off.mkdir()
    (off / "quality.yaml").write_text(src.replace("order: 0", "order: 0\nenabled: false"))
    assert steps(off) == []
    out = run_study_analyses(ingest(studies["clean"]).studies[0], tmp_path / "o", models=provider,  # type: ignore[arg-type]
                             step_dir=off)
    assert out.report.sections[0].quality is None
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "quality.yaml").write_text(src.replace("slice_threshold: 0.5", "slice_threshold: 2"))
    with pytest.raises(ConfigError, match="slice_threshold"):
        steps(bad)
    (bad / "quality.yaml").write_text(src.replace("kind: quality", "kind: other"))
    with pytest.raises(ConfigError, match="name the file"):
        read_step_config(bad / "quality.yaml")


# -- through the API ---------------------------------------------------------------------------------------------
@pytest.fixture
def api(tmp_path: Path, truth_cine: TruthCine) -> Iterator[object]:
    from serving.app import create_app
    from serving.auth import Role, create_key
    from serving.models import ModelRegistry
    from tests.serving.conftest import RISK_MODEL, Api, make_settings

    registry = ModelRegistry([RISK_MODEL, "heart_mr_cine_seg", "heart_mr_quality"])
    registry.put("heart_mr_cine_seg", truth_cine)
    app = create_app(make_settings(tmp_path), models=registry)
    with TestClient(app) as client:
        keys = {r: create_key(app.state.engine, r, f"test-{r.value}")[1] for r in Role}
        yield Api(client, keys)


def _submit(api: object, folder: Path) -> dict:
    from tests.serving.test_api import wait_job

    files = [("files", (p.name, p.read_bytes(), "application/dicom")) for p in sorted(folder.glob("*.dcm"))]
    r = api.client.post("/v1/studies", headers=api.h(), files=files)  # type: ignore[attr-defined]
    assert r.status_code in (200, 201), r.text
    uid = r.json()["studies"][0]["study_instance_uid"]
    r = api.client.post("/v1/analyses", headers=api.h(), json={"study_instance_uid": uid})  # type: ignore[attr-defined]
    assert r.status_code == 202
    return wait_job(api, r.json()["id"])


def test_the_job_result_carries_the_verdict(api: object, studies: dict[str, Path]) -> None:
    job = _submit(api, studies["motion"])
    assert job["status"] == "succeeded", job
    assert job["quality"]["review_required"] and job["quality"]["analyses"] == {"cine_function": "review"}
    assert any("motion" in r for r in job["quality"]["reasons"])
    job = _submit(api, studies["clean"])
    assert job["status"] == "succeeded" and job["quality"]["review_required"] is False
    job = _submit(api, studies["unusable"])
    assert job["status"] == "failed" and job["error_code"] == "image-quality-unusable", job
    assert not job["results"]


def test_lge_gets_the_artefact_verdict(tmp_path: Path) -> None:
    """LGE passes the same gate (artefacts; coverage and predicted Dice are fitted for cine only)."""
    from medai.dicom.phantoms import make_lge_scar_study
    from tests.medai.analyses.conftest import KnownLabels

    ph = make_lge_scar_study(tmp_path / "lge", seed=4)
    known = KnownLabels(ph.labels)
    quality = Predictor.from_package("heart_mr_quality")
    out = run_study_analyses(ingest(tmp_path / "lge").studies[0], tmp_path / "o", kinds=["lge_scar"],
                             models=lambda ref: quality if ref == "heart_mr_quality" else known)
    q = out.report.section("lge_scar").quality
    assert q is not None and [g.series_type for g in q.series] == ["lge"]
    assert q.series[0].n_slices == len(ph.paths) and q.coverage is None and q.predicted_dice == {}
    # a provider that cannot give the quality model: reported, flagged unassessed, review required
    out = run_study_analyses(ingest(tmp_path / "lge").studies[0], tmp_path / "o2", kinds=["lge_scar"],
                             models=lambda ref: known)
    q = out.report.section("lge_scar").quality
    assert q is not None and q.status == QualityStatus.REVIEW and q.findings[0].code == "quality_not_assessed"
    assert out.report.review.required


def test_the_gate_hands_the_coverage_model_the_images_behind_the_label_map() -> None:
    from types import SimpleNamespace

    from medai.analyses.steps.quality import QualityGate

    cine = np.arange(3 * 4 * 5 * 6, dtype=np.float32).reshape(3, 4, 5, 6)

    def result(image: object) -> object:
        return SimpleNamespace(prediction=SimpleNamespace(extras={"image": image}))

    ed, es = QualityGate._images(result(SimpleNamespace(array=cine)), [0, 2], cine.shape)  # type: ignore[arg-type,misc]
    assert np.array_equal(ed, cine[0]) and es is not None and np.array_equal(es, cine[2])
    one = QualityGate._images(result(SimpleNamespace(array=cine)), [1], cine.shape)  # type: ignore[arg-type]
    assert one is not None and np.array_equal(one[0], cine[1]) and one[1] is None
    stack = QualityGate._images(result(SimpleNamespace(array=cine[0])), [0], cine[0].shape)  # type: ignore[arg-type]
    assert stack is not None and stack[1] is None
    # no image, or one on another grid: the coverage model judges from the segmentation alone
    assert QualityGate._images(result(None), [0, 2], cine.shape) is None  # type: ignore[arg-type]
    assert QualityGate._images(result(SimpleNamespace(array=cine[:, :2])), [0, 2], cine.shape) is None  # type: ignore[arg-type]
    qp = Predictor.from_package("heart_mr_quality")
    model = qp.coverage_model  # type: ignore[attr-defined]
    assert qp.coverage_nets and model["basal"]["features"][-1] == "end_cnn_logit"  # type: ignore[attr-defined]
    for end in ("basal", "apical"):  # each judgement with its own regression's threshold
        assert qp.coverage_threshold(end) == model[end]["threshold"]  # type: ignore[attr-defined]
        assert qp.coverage_threshold(end, from_images=False) == model["seg_only"][end]["threshold"]  # type: ignore[attr-defined]
