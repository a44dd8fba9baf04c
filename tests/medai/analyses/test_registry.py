"""The analysis registry: every configured kind builds, declares registered series types/measurements, and a
study with cine + LGE gives ONE report with a section per analysis (CLI and library)."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from typer.testing import CliRunner

from medai.analyses import analysis_kinds, catalogue, get_analysis, read_config
from medai.analyses.runner import package_provider, run_study_analyses, select_analyses
from medai.dicom.ingest import ingest
from medai.errors import ConfigError, SeriesSelectionError
from medai.inference.predictor import Predictor
from medai.measurements.registry import MEASUREMENTS
from tests.medai.analyses.conftest import cine_and_lge_study, make_tiny_lge_package

KINDS = analysis_kinds()


def tracking_identifiers(sr: pydicom.Dataset) -> list[str]:
    """Every TID 1500 measurement group's tracking identifier, in document order."""
    out: list[str] = []

    def walk(items) -> None:  # noqa: ANN001
        for it in items:
            if it.get("ValueType") == "TEXT" and it.ConceptNameCodeSequence[0].CodeMeaning == "Tracking Identifier":
                out.append(str(it.TextValue))
            walk(it.get("ContentSequence", []))

    walk(sr.ContentSequence)
    return out


def test_the_wave_2_kinds_are_registered() -> None:
    assert {"cine_function", "lge_scar"} <= set(KINDS)
    assert get_analysis("cine_cmr").kind == "cine_function"  # alias
    with pytest.raises(ConfigError, match="known analyses: .*lge_scar"):
        get_analysis("nope")


@pytest.mark.parametrize("kind", KINDS)
def test_every_analysis_config_builds_and_names_what_it_needs(kind: str) -> None:
    a = get_analysis(kind)
    cfg = read_config(Path("configs/analyses") / f"{kind}.yaml")
    assert cfg == a.config and cfg.series and cfg.models and cfg.title
    for spec in cfg.measurements:
        assert MEASUREMENTS.get(spec.name).code == spec.code
    for ref in cfg.models.values():
        assert (Path("models/packages") / ref / "metadata.json").is_file() or ref.startswith("models:/"), ref


@pytest.mark.parametrize("kind", KINDS)
def test_every_analysis_refuses_a_study_without_its_series(kind: str, tmp_path: Path) -> None:
    from medai.dicom.phantoms import make_brain_mr

    study = ingest(make_brain_mr().to_bytes()).studies[0]
    with pytest.raises(SeriesSelectionError, match="It has: #|study .* has: #"):
        run_study_analyses(study, tmp_path / "out", kinds=[kind])
    assert not (tmp_path / "out").exists()


def test_bad_config_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "x.yaml").write_text("kind: y\ntitle: t\nseries: [cine_sax]\n")
    with pytest.raises(ConfigError, match="name the file y.yaml"):
        read_config(tmp_path / "x.yaml")
    (tmp_path / "y.yaml").write_text("kind: y\ntitle: t\nseries: [not_a_type]\nbogus: 1\n")
    with pytest.raises(ConfigError, match="series.0.*bogus"):
        read_config(tmp_path / "y.yaml")


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Predictor]:
    from tests.medai.cardiac.helpers import make_tiny_package

    root = tmp_path_factory.mktemp("pk")
    return {"heart_mr_cine_seg": Predictor.from_package(make_tiny_package(root / "cine")),
            "heart_mr_lge_seg": Predictor.from_package(make_tiny_lge_package(root / "lge"))}


def test_cine_plus_lge_gives_one_study_report(tiny_models: dict[str, Predictor], tmp_path: Path) -> None:
    study = ingest(cine_and_lge_study()).studies[0]
    kinds = ["cine_function", "lge_scar", "cine_diagnosis"]
    assert [a.kind for a in select_analyses(study)] == kinds
    stages: list[str] = []
    out = run_study_analyses(study, tmp_path / "out", models=package_provider(tiny_models), progress=stages.append)
    rep = out.report
    assert [s.kind for s in rep.sections] == kinds and rep.summary["analyses"] == kinds
    assert rep.section("cine_diagnosis").classes and rep.classes == rep.section("cine_diagnosis").classes
    assert "cine_function" in stages and "lge_scar" in stages and stages[-2:] == ["rendering", "publishing"]
    # one SEG per analysed series, one SR, one PDF with a page per analysis, FHIR
    assert {"seg", "seg_lge", "sr", "pdf", "json", "fhir"} <= set(out.files)
    segs = [pydicom.dcmread(out.files[k]) for k in ("seg", "seg_lge")]
    series = {s.SeriesInstanceUID: s.series_type.value for s in study.series}
    refs = [{series[str(r.SeriesInstanceUID)] for r in ds.ReferencedSeriesSequence} for ds in segs]
    assert refs == [{"cine_sax"}, {"lge"}]
    sr = pydicom.dcmread(out.files["sr"])
    ids = tracking_identifiers(sr)
    for sec in rep.sections:  # measurement groups per analysis
        assert any(i.startswith(f"{sec.kind}: ") for i in ids) == bool(sec.measurements), (sec.kind, ids)
    assert rep.section("lge_scar").measurements
    evidence = {str(i.ReferencedSOPInstanceUID) for e in sr.CurrentRequestedProcedureEvidenceSequence
                for s in e.ReferencedSeriesSequence for i in s.ReferencedSOPSequence}
    assert {str(d.SOPInstanceUID) for d in segs} <= evidence
    from pypdf import PdfReader

    pages = [p.extract_text() for p in PdfReader(out.files["pdf"]).pages]
    assert any("Cine CMR ventricular function" in p for p in pages)
    assert any("LGE scar quantification" in p for p in pages)
    assert sum(len(s.measurements) for s in rep.sections) == len(rep.measurements)


def test_analysis_flag_restricts_and_an_automatic_failure_is_flagged(tiny_models: dict[str, Predictor],
                                                                   tmp_path: Path) -> None:
    study = ingest(cine_and_lge_study(seed=12)).studies[0]
    out = run_study_analyses(study, tmp_path / "a", kinds=["lge_scar"], models=package_provider(tiny_models))
    assert [s.kind for s in out.report.sections] == ["lge_scar"] and "seg" not in out.files

    provide = package_provider(tiny_models)

    def broken(ref: str) -> Predictor:
        if ref == "heart_mr_lge_seg":
            raise ConfigError("the LGE package is missing its weights")
        return provide(ref)

    out = run_study_analyses(study, tmp_path / "b", models=broken)
    assert [s.kind for s in out.report.sections] == ["cine_function", "cine_diagnosis"]
    assert any(f.code == "analysis_lge_scar_failed" and f.severity == "error" for f in out.report.flags)
    with pytest.raises(ConfigError, match="missing its weights"):
        run_study_analyses(study, tmp_path / "c", kinds=["cine_function", "lge_scar"], models=broken)
    assert not (tmp_path / "c").exists()


def test_medai_analyze_runs_every_applicable_analysis(tiny_models: dict[str, Predictor], tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from medai.analyses import runner
    from medai.cli import app

    cine_and_lge_study(tmp_path / "study", seed=13)
    real = runner.package_provider
    monkeypatch.setattr(runner, "package_provider", lambda overrides=None: real({**tiny_models, **(overrides or {})}))
    res = CliRunner().invoke(app, ["analyze", str(tmp_path / "study"), "--out", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    doc = json.loads((tmp_path / "out" / "report.json").read_text())
    assert [s["kind"] for s in doc["sections"]] == ["cine_function", "lge_scar", "cine_diagnosis"]
    assert "LGE scar quantification" in res.output and "Cine CMR ventricular function" in res.output
    assert "Cine CMR diagnosis (decision support): suggested" in res.output
    res = CliRunner().invoke(app, ["analyze", str(tmp_path / "study"), "--out", str(tmp_path / "o2"),
                                   "--analysis", "lge_scar"])
    assert res.exit_code == 0, res.output
    doc = json.loads((tmp_path / "o2" / "report.json").read_text())
    assert [s["kind"] for s in doc["sections"]] == ["lge_scar"]
    res = CliRunner().invoke(app, ["analyze", str(tmp_path / "study"), "--out", str(tmp_path / "o3"),
                                   "--analysis", "nope"])
    assert res.exit_code != 0 and "known analyses" in f"{res.output}{res.exception}"


def test_catalogue_is_in_run_order() -> None:
    orders = [a.config.order for a in catalogue().values()]
    assert orders == sorted(orders)
