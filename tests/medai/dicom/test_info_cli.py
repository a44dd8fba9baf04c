"""``medai info``: the table and the --json summary, through typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medai.cli import app
from medai.dicom.phantoms import make_cine_sax_study, make_ct_volume
from medai.errors import IngestError

runner = CliRunner()


@pytest.fixture()
def study_dir(tmp_path: Path) -> Path:
    make_cine_sax_study(
        tmp_path / "cine",
        n_slices=4,
        n_phases=6,
        rows=32,
        cols=32,
        pixel_spacing=4.0,
        slice_thickness=6.0,
        slice_gap=2.0,
    )
    make_ct_volume(tmp_path / "ct", n_slices=3, rows=16, cols=16)
    (tmp_path / "README.txt").write_text("not DICOM")
    return tmp_path


def test_info_json(study_dir: Path) -> None:
    res = runner.invoke(app, ["info", str(study_dir), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["n_studies"] == 2 and out["n_instances"] == 24 + 3
    series = {s["series_type"]: s for st in out["studies"] for s in st["series"]}
    cine = series["cine_sax"]
    assert (cine["rows"], cine["columns"], cine["n_slices"], cine["n_phases"], cine["n_frames"]) == (32, 32, 4, 6, 24)
    assert cine["pixel_spacing"] == [4.0, 4.0] and cine["slice_spacing"] == pytest.approx(8.0, abs=1e-3)
    assert cine["modality"] == "MR" and cine["description"] == "CINE_SAX_bSSFP" and cine["uid"]
    assert cine["problems"] == [] and cine["slice_thickness"] == 6.0
    ct = series["cta"]
    assert (ct["n_slices"], ct["n_phases"], ct["orientation"]) == (3, 1, "axial")
    assert [s["source"].endswith("README.txt") for s in out["skipped"]] == [True]
    for key in (
        "uid",
        "modality",
        "description",
        "series_type",
        "rows",
        "columns",
        "n_slices",
        "n_phases",
        "pixel_spacing",
        "slice_spacing",
        "problems",
    ):
        assert key in cine


def test_info_table(study_dir: Path) -> None:
    res = runner.invoke(app, ["info", str(study_dir)], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    for needle in ("cine_sax", "cta", "32x32", "skipped inputs (1)", "README.txt", "not DICOM"):
        assert needle in res.output


def test_info_nothing_usable(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("x")
    res = runner.invoke(app, ["info", str(tmp_path), "--json"])
    assert res.exit_code != 0 and isinstance(res.exception, IngestError)


def test_info_with_user_rules(study_dir: Path, tmp_path: Path) -> None:
    rules = tmp_path / "r.yaml"
    rules.write_text("rules: [ {name: ct-any, series_type: ct, match: {modality: [CT]}} ]\n")
    res = runner.invoke(app, ["info", str(study_dir / "ct"), "--json", "--rules", str(rules)])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["studies"][0]["series"][0]["series_type"] == "ct"


def test_cli_module_keeps_heavy_imports_out() -> None:
    import subprocess
    import sys

    code = (
        "import sys, medai.cli.dicom_cmds, medai.dicom.ingest, medai.dicom.volumes, medai.dicom.summary; "
        "print(any(m in sys.modules for m in ('torch', 'monai', 'lightning')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_phantom_verb_writes_a_study_with_truth(tmp_path: Path) -> None:
    res = runner.invoke(app, ["phantom", str(tmp_path / "p"), "--kind", "cine-per-slice", "--seed", "3"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    assert report["files"] == 200 and 50 < report["truth"]["lv_ef_pct"] < 75
    info = json.loads(runner.invoke(app, ["info", str(tmp_path / "p"), "--json"]).output)
    assert [s["series_type"] for s in info["studies"][0]["series"]] == ["cine_sax"] * 10
    bad = runner.invoke(app, ["phantom", str(tmp_path / "q"), "--kind", "nope"])
    assert bad.exit_code != 0 and "unknown phantom kind" in str(bad.exception)


def test_phantom_verb_writes_a_group_median_heart(tmp_path: Path) -> None:
    res = runner.invoke(app, ["phantom", str(tmp_path / "d"), "--kind", "cine", "--phenotype", "dcm"])
    assert res.exit_code == 0, res.output
    truth = json.loads(res.output)["truth"]
    assert truth["lv_ef_pct"] < 20 and truth["lv_edv_ml"] > 250  # ACDC's median DCM: LVEF 15 %, 158 mL/m²
    for args, says in ((["--phenotype", "XYZ"], "unknown phenotype 'XYZ'; choose one of NOR, DCM, HCM, MINF, RV"),
                       (["--kind", "lge", "--phenotype", "DCM"], "--phenotype applies to --kind cine")):
        bad = runner.invoke(app, ["phantom", str(tmp_path / "q"), *args])
        assert bad.exit_code != 0 and says in str(bad.exception), bad.output


def test_info_picture(study_dir: Path, tmp_path: Path) -> None:
    png = tmp_path / "overview.png"
    res = runner.invoke(app, ["info", str(study_dir), "--json", "--picture", str(png)])
    assert res.exit_code == 0, res.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
