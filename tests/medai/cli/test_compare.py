"""``medai compare``: table, timeline JSON and PNG from result folders; clear exit-2 errors for different patients,
a single analysis and unreadable JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date
from pathlib import Path

from typer.testing import CliRunner

from medai.cli import app
from medai.errors import InputValidationError
from tests.medai.serial.helpers import make_report, write_result

runner = CliRunner()


def _results(root: Path) -> list[Path]:
    write_result(root / "late", make_report("P7", date(2024, 7, 1), ef=47, edv=165, infarct_pct=6.0))
    write_result(root / "base", make_report("P7", date(2024, 1, 2), ef=61, edv=150, infarct_pct=6.5))
    return [root / "late", root / "base" / "report.json"]


def test_compare_writes_timeline_json_and_png_and_prints_the_table(tmp_path: Path) -> None:
    out = tmp_path / "o" / "tl.json"
    res = runner.invoke(app, ["compare", *map(str, _results(tmp_path)), "--out", str(out)],
                        env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    doc = json.loads(out.read_text())
    assert doc["patient_id"] == "P7" and [p["values"]["lv_ef"] for p in doc["points"]] == [61, 47]
    ef = next(c for c in doc["changes"] if c["measurement"] == "lv_ef" and c["kind"] == "consecutive")
    assert ef["delta"] == -14 and ef["verdict"] == "significant_decrease"
    assert [f["code"] for f in doc["ctrcd"]] == ["ctrcd_moderate"]
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    assert "2024-01-02" in res.output and "significant decrease" in res.output and "ctrcd_moderate" in res.output
    assert "within variability" in res.output  # infarct 6.5 -> 6.0


def test_compare_biomarker_option_reaches_ctrcd(tmp_path: Path) -> None:
    write_result(tmp_path / "a", make_report("P8", date(2024, 1, 1), ef=62))
    write_result(tmp_path / "b", make_report("P8", date(2024, 6, 1), ef=59))
    out = tmp_path / "t.json"
    res = runner.invoke(app, ["compare", str(tmp_path), "--out", str(out), "--biomarker-rise"])
    assert res.exit_code == 0, res.output
    assert json.loads(out.read_text())["ctrcd"][0]["code"] == "ctrcd_mild"


def test_compare_refuses_different_patients_unless_told(tmp_path: Path) -> None:
    _results(tmp_path)
    write_result(tmp_path / "other", make_report("Q1", date(2024, 3, 1)))
    res = runner.invoke(app, ["compare", str(tmp_path), "--out", str(tmp_path / "t.json")])
    assert isinstance(res.exception, InputValidationError) and "--patient" in res.exception.message
    res = runner.invoke(app, ["compare", str(tmp_path), "--out", str(tmp_path / "t.json"), "--patient", "P7"])
    assert res.exit_code == 0, res.output
    assert len(json.loads((tmp_path / "t.json").read_text())["points"]) == 2


def _medai(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from medai.cli import main; main()", *args], capture_output=True,
                          text=True, timeout=300)


def test_console_errors_exit_2_with_what_to_do(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("{oops")
    write_result(tmp_path / "one", make_report("P1"))
    write_result(tmp_path / "two", make_report("P2", date(2024, 5, 1)))
    bad = _medai("compare", str(tmp_path / "bad.json"), str(tmp_path / "one"), "--out", str(tmp_path / "t.json"))
    assert bad.returncode == 2 and "not a readable JSON report" in bad.stderr
    single = _medai("compare", str(tmp_path / "one"), "--out", str(tmp_path / "t.json"))
    assert single.returncode == 2 and "at least 2 analyses" in single.stderr
    mixed = _medai("compare", str(tmp_path / "one"), str(tmp_path / "two"), "--out", str(tmp_path / "t.json"))
    assert mixed.returncode == 2 and "different patient ids" in mixed.stderr
    assert not (tmp_path / "t.json").exists()
