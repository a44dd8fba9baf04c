"""kill -9 of the server mid-analysis, restart: the job completes exactly once, nothing lost or duplicated."""

from __future__ import annotations

from pathlib import Path

import pytest

from medai.dicom.phantoms import make_cine_sax_study
from serving.tools.kill9_durability import run_scenario
from tests.serving.slow_app import SLOW_STAGE


@pytest.mark.slow
def test_kill9_mid_analysis_then_restart_completes_once(tmp_path: Path, tiny_cine: Path) -> None:
    study = tmp_path / "study"
    make_cine_sax_study(study, n_slices=4, n_phases=5, rows=40, cols=40, pixel_spacing=1.8)
    out = run_scenario(study, tmp_path / "run", app="tests.serving.slow_app:make_app",
                       extra_env={"MEDAI_TEST_TINY_CINE": str(tiny_cine), "MEDAI_TEST_SLOW_S": "3",
                                  "OMP_NUM_THREADS": "1"},
                       kill_when_stage=SLOW_STAGE, timeout=180)
    assert out["killed_at"] == {"status": "running", "stage": SLOW_STAGE, "attempts": 1}
    assert out["status"] == "succeeded", out
    assert out["attempts"] == 2 and out["completions"] == 1 and out["jobs_in_db"] == 1
    assert {"json", "seg", "sr", "pdf", "fhir"} <= set(out["result_files"])
    assert out["result_dirs"] == [".work", out["job_id"]] or out["result_dirs"] == [out["job_id"]]
    assert out["scratch_left"] == []  # the killed attempt's identified scratch copy is gone
    assert out["derived_instances"] == 2  # one SEG and one SR, not one pair per attempt
    assert ("create", "study") in out["audit_actions"] and ("create", "analysis") in out["audit_actions"]
