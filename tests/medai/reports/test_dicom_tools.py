"""External validators on seg.dcm and sr.dcm: dcmtk (dcmdump, dsrdump) and dicom3tools (dciodvfy).

Install with ``bash .ci/services.sh`` (dcmtk) and ``apt-get install dicom3tools``; each test skips with the reason
when its tool is not on PATH.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest


def _run(tool: str, *args: str) -> subprocess.CompletedProcess[str]:
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not on PATH (install dcmtk via `bash .ci/services.sh`, dicom3tools via apt-get)")
    return subprocess.run([tool, *args], capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize("kind", ["seg", "sr"])
def test_dcmdump_parses_without_error(rendered: dict[str, Path], kind: str) -> None:
    res = _run("dcmdump", "-q", "+E", str(rendered[kind]))
    assert res.returncode == 0, res.stderr
    assert "E:" not in res.stderr and "error" not in res.stderr.lower(), res.stderr
    assert ("=SegmentationStorage" if kind == "seg" else "=Comprehensive3DSRStorage") in _run(
        "dcmdump", str(rendered[kind])).stdout


def test_dsrdump_reads_the_sr_tree_without_warnings(rendered: dict[str, Path]) -> None:
    res = _run("dsrdump", str(rendered["sr"]))
    assert res.returncode == 0, res.stderr
    problems = [ln for ln in (res.stdout + res.stderr).splitlines() if ln.startswith(("E:", "W:"))]
    assert not problems, problems
    assert "Imaging Measurement Report" in res.stdout and "Left ventricular Ejection fraction" in res.stdout


@pytest.mark.parametrize("kind", ["seg", "sr"])
def test_dciodvfy_reports_no_error(rendered: dict[str, Path], kind: str) -> None:
    res = _run("dciodvfy", str(rendered[kind]))
    lines = (res.stdout + res.stderr).splitlines()
    errors = [ln for ln in lines if ln.startswith("Error")]
    assert not errors, errors
    # the only warning allowed: our private coding scheme 99MEDAI (declared in CodingSchemeIdentificationSequence)
    warnings = [ln for ln in lines if ln.startswith("Warning") and "99MEDAI" not in ln]
    assert not warnings, warnings
