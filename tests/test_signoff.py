"""Sign-off renderings: the VERIFIED SR copy and the signed PDF, made from a phantom report's real renderings."""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pydicom
import pytest
from pypdf import PdfReader

from medai.errors import InputValidationError
from medai.reports.signoff import LOCKED_SENTENCE, sign_pdf, verify_sr
from tests.medai.reports.conftest import make_case

WHEN = datetime(2024, 5, 1, 16, 30, 12, tzinfo=timezone(timedelta(hours=2)))


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """SEG, SR and PDF of a small cine phantom case (measured on its exact labels, no network)."""
    from medai.reports import render_all

    case = make_case(n_slices=4, n_phases=5, rows=48, cols=40, pixel_spacing=2.5)
    return render_all(case.report, case.prediction, case.study, tmp_path_factory.mktemp("signoff"),
                      kinds=("seg", "sr", "pdf"))


def test_verify_sr_writes_a_verified_final_successor(rendered: dict[str, Path], tmp_path: Path) -> None:
    original = pydicom.dcmread(rendered["sr"])
    assert original.VerificationFlag == "UNVERIFIED"
    dst = tmp_path / "sr_verified.dcm"
    ds = verify_sr(rendered["sr"], dst, observer_name="Jane Doe", organization="Example Heart Centre", when=WHEN,
                   observer_id="jdoe")
    back = pydicom.dcmread(dst)
    assert back.SOPInstanceUID == ds.SOPInstanceUID == back.file_meta.MediaStorageSOPInstanceUID
    assert back.SOPInstanceUID != original.SOPInstanceUID
    assert back.SeriesInstanceUID == original.SeriesInstanceUID
    assert back.StudyInstanceUID == original.StudyInstanceUID
    assert (back.VerificationFlag, back.PreliminaryFlag, back.CompletionFlag) == ("VERIFIED", "FINAL", "COMPLETE")
    (obs,) = back.VerifyingObserverSequence
    assert str(obs.VerifyingObserverName) == "Jane Doe" and obs.VerifyingObserverName.family_name == "Jane Doe"
    assert obs.VerifyingOrganization == "Example Heart Centre"
    assert obs.VerificationDateTime == "20240501163012+0200"
    (code,) = obs.VerifyingObserverIdentificationCodeSequence
    assert (code.CodeValue, code.CodingSchemeDesignator) == ("jdoe", "99MEDAI")
    assert "99MEDAI" in {s.CodingSchemeDesignator for s in back.CodingSchemeIdentificationSequence}
    assert (back.ContentDate, back.ContentTime) == ("20240501", "163012")
    assert (back.InstanceCreationDate, back.InstanceCreationTime) == ("20240501", "163012")
    (pred,) = back.PredecessorDocumentsSequence
    assert pred.StudyInstanceUID == original.StudyInstanceUID
    (series,) = pred.ReferencedSeriesSequence
    assert series.SeriesInstanceUID == original.SeriesInstanceUID
    (ref,) = series.ReferencedSOPSequence
    assert ref.ReferencedSOPInstanceUID == original.SOPInstanceUID
    assert ref.ReferencedSOPClassUID == original.SOPClassUID
    assert back.ContentSequence == original.ContentSequence  # the content tree is untouched
    assert [p.name for p in tmp_path.iterdir()] == ["sr_verified.dcm"]  # no temporary file left behind


def test_verify_sr_without_observer_id_and_with_a_pn(rendered: dict[str, Path], tmp_path: Path) -> None:
    back = verify_sr(rendered["sr"], tmp_path / "v.dcm", observer_name="Doe^Jane", organization="Org",
                     when=datetime(2024, 5, 1, 8, 5))
    (obs,) = back.VerifyingObserverSequence
    assert (obs.VerifyingObserverName.family_name, obs.VerifyingObserverName.given_name) == ("Doe", "Jane")
    assert len(obs.VerifyingObserverIdentificationCodeSequence) == 0
    assert obs.VerificationDateTime == "20240501080500"


def _dciodvfy_errors(path: Path) -> set[str]:
    res = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60, check=False)
    return {ln for ln in (res.stdout + res.stderr).splitlines() if ln.startswith("Error")}


def test_dciodvfy_finds_no_new_error_in_the_verified_sr(rendered: dict[str, Path], tmp_path: Path) -> None:
    if shutil.which("dciodvfy") is None:
        pytest.skip("dciodvfy is not on PATH (apt-get install dicom3tools)")
    dst = verify_sr(rendered["sr"], tmp_path / "v.dcm", observer_name="Jane Doe", organization="Org", when=WHEN,
                    observer_id="jdoe")
    new = _dciodvfy_errors(tmp_path / "v.dcm") - _dciodvfy_errors(rendered["sr"])
    assert dst.VerificationFlag == "VERIFIED" and not new, sorted(new)


def test_verify_sr_rejects_non_sr_and_empty_observer(rendered: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(InputValidationError, match="not a DICOM structured report"):
        verify_sr(rendered["seg"], tmp_path / "x.dcm", observer_name="Jane Doe", organization="Org", when=WHEN)
    with pytest.raises(InputValidationError, match="not a readable DICOM"):
        verify_sr(rendered["pdf"], tmp_path / "x.dcm", observer_name="Jane Doe", organization="Org", when=WHEN)
    with pytest.raises(InputValidationError, match="observer's name"):
        verify_sr(rendered["sr"], tmp_path / "x.dcm", observer_name="  ", organization="Org", when=WHEN)
    assert not (tmp_path / "x.dcm").exists()


def test_sign_pdf_stamps_every_page_and_appends_the_signature_page(rendered: dict[str, Path],
                                                                   tmp_path: Path) -> None:
    n = len(PdfReader(rendered["pdf"]).pages)
    out = sign_pdf(rendered["pdf"], tmp_path / "signed.pdf", signer="Dr Jane Doe", role="cardiologist", when=WHEN,
                   version=2)
    pages = PdfReader(out).pages
    assert len(pages) == n + 1
    stamp = "Signed by Dr Jane Doe (cardiologist) on 2024-05-01T14:30Z - report version 2"
    for page in pages:
        assert stamp in page.extract_text()
    first = pages[0].extract_text()
    assert "Dr Jane Doe" in first and "version 2" in first
    assert "research use only" in first  # the original content is kept
    last = pages[-1].extract_text()
    assert "Electronic signature" in last and LOCKED_SENTENCE in last and "cardiologist" in last
    assert [p.name for p in tmp_path.iterdir()] == ["signed.pdf"]


def test_sign_pdf_rejects_bad_input(rendered: dict[str, Path], tmp_path: Path) -> None:
    when = datetime(2024, 5, 1, 14, 30, tzinfo=UTC)
    with pytest.raises(InputValidationError, match="not a readable PDF"):
        sign_pdf(rendered["sr"], tmp_path / "s.pdf", signer="A", role="r", when=when, version=1)
    with pytest.raises(InputValidationError, match="signer"):
        sign_pdf(rendered["pdf"], tmp_path / "s.pdf", signer="", role="r", when=when, version=1)
    with pytest.raises(InputValidationError, match="version"):
        sign_pdf(rendered["pdf"], tmp_path / "s.pdf", signer="A", role="r", when=when, version=0)
