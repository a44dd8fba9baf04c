"""Library warnings become study problems: collected per context, counted (repeats included), not printed raw, and
in the report of a real analysis run; outside a capture nothing changes."""

from __future__ import annotations

import io
import logging
import threading
import warnings

import pydicom
import pytest
from pydicom.misc import warn_and_log

from medai.libwarnings import MAX_FLAGS, capture


def test_warn_and_log_is_collected_once_per_occurrence_and_not_printed(capsys: pytest.CaptureFixture[str],
                                                                        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    with capture() as caught:
        for _ in range(3):
            warn_and_log("Invalid value for VR DA: '2020-13-45'")  # a warning and a WARNING record each time
        warn_and_log("another   problem\n spread over lines")
    assert capsys.readouterr().err == ""
    assert not [r for r in caplog.records if r.name.startswith("pydicom")]
    items = caught.items()
    assert items[0] == {"library": "pydicom", "category": "UserWarning",
                        "message": "Invalid value for VR DA: '…'", "count": 3}
    assert items[1]["message"] == "another problem spread over lines" and items[1]["count"] == 1
    assert len(caught) == 4
    flags = caught.flags()
    assert [f.code for f in flags] == ["pydicom_warning", "pydicom_warning"]
    assert all(f.severity == "info" for f in flags) and "(3 times)" in flags[0].message


def test_repeats_are_counted_in_every_capture_not_once_per_process() -> None:
    """Python shows a warning once per location by default: a server's second study would lose its problems."""
    for _ in range(2):
        with capture() as caught:
            warn_and_log("the same message")
        assert caught.items()[0]["count"] == 1


def test_outside_a_capture_warnings_pass_through_unchanged() -> None:
    with capture():
        pass  # installed
    with pytest.warns(UserWarning, match="not collected"):
        warn_and_log("not collected")
    with pytest.warns(RuntimeWarning, match="ours"):  # other code's warnings inside a capture are not taken either
        with capture() as caught:
            warnings.warn("ours", RuntimeWarning, stacklevel=1)
    assert len(caught) == 0


def test_nested_capture_joins_the_outer_one_and_threads_keep_their_own() -> None:
    seen: dict[str, list[str]] = {}

    def work(name: str) -> None:
        with capture() as c:
            warn_and_log(f"from {name}")
            seen[name] = [d["message"] for d in c.items()]

    with capture() as outer:
        warn_and_log("outer")
        with capture() as inner:
            warn_and_log("inner")
        assert inner is outer
        threads = [threading.Thread(target=work, args=(n,)) for n in ("a", "b")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert sorted(d["message"] for d in outer.items()) == ["inner", "outer"]
    assert seen == {"a": ["from a"], "b": ["from b"]}


def test_many_distinct_messages_are_capped_with_a_summary() -> None:
    with capture() as caught:
        for i in range(MAX_FLAGS + 5):
            warn_and_log(f"problem {i}")
    flags = caught.flags()
    assert len(flags) == MAX_FLAGS + 1 and flags[-1].code == "library_warnings_more"
    assert flags[-1].message.startswith("5 more library warnings")


def test_quoted_values_are_masked_so_identifiers_stay_out_of_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="medai.libwarnings")
    with capture() as caught:
        warn_and_log("Invalid value for VR UI: '2.16.124.0123'. Please see the standard")
        warn_and_log("Invalid value for VR UI: '2.16.124.0456'. Please see the standard")
        warn_and_log('The string "DOE JOHN" is unlikely to represent the intended person name')
    caught.log("study-1")
    assert [d["count"] for d in caught.items()] == [2, 1]
    text = caplog.text + " ".join(f.message for f in caught.flags())
    assert "0123" not in text and "DOE JOHN" not in text and "VR UI: '…'" in text


def test_library_warnings_of_a_real_run_land_in_the_study_report(tmp_path, capsys: pytest.CaptureFixture[str],  # noqa: ANN001
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    """A cine phantom whose Patient's Name has one component (as Sunnybrook's do): highdicom warns while writing the
    SEG and SR. The report carries INFO flags and ``library_warnings``, the name is in neither them nor the log, and
    nothing reached stderr raw."""
    from medai.analyses.runner import package_provider, run_study_analyses
    from medai.dicom.ingest import ingest
    from medai.inference.predictor import Predictor
    from tests.medai.analyses.conftest import cine_and_lge_study, make_tiny_lge_package
    from tests.medai.cardiac.helpers import make_tiny_package

    caplog.set_level(logging.INFO)
    files = []
    for b in cine_and_lge_study(seed=13):
        ds = pydicom.dcmread(io.BytesIO(b))
        ds.PatientName = "ZQXPATIENT"
        buf = io.BytesIO()
        ds.save_as(buf)
        files.append(buf.getvalue())
    models = {"heart_mr_cine_seg": Predictor.from_package(make_tiny_package(tmp_path / "cine")),
              "heart_mr_lge_seg": Predictor.from_package(make_tiny_lge_package(tmp_path / "lge"))}
    capsys.readouterr()
    study = ingest(files).studies[0]
    out = run_study_analyses(study, tmp_path / "out", kinds=["cine_function"], models=package_provider(models))
    err = capsys.readouterr().err
    lib = out.report.summary.get("library_warnings", [])
    assert any(d["library"] == "highdicom" and "person name" in d["message"] for d in lib), lib
    flags = [f for f in out.report.flags if f.code == "highdicom_warning"]
    assert flags and all(f.severity == "info" for f in flags)
    assert "ZQXPATIENT" not in " ".join(f.message for f in flags)
    assert not [r for r in caplog.records if "ZQXPATIENT" in r.getMessage()]
    assert "UserWarning" not in err and "ZQXPATIENT" not in err, err
    import json

    saved = json.loads((tmp_path / "out" / "report.json").read_text())
    assert any(f["code"] == "highdicom_warning" for f in saved["flags"])
