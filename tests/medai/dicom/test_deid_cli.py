"""``medai deid IN OUT``: the CLI over :func:`medai.dicom.deid.deidentify_path`."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from typer.testing import CliRunner

from medai.cli import app


def _write_instance(path: Path, patient_id: str, modality: str = "US") -> Dataset:
    ds = Dataset()
    ds.PatientID, ds.PatientName, ds.PatientBirthDate = patient_id, "Roe^Richard", "19600101"
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = generate_uid(), generate_uid(), generate_uid()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.6.1"
    ds.Modality = modality
    ds.StudyDate, ds.StudyTime = "20230105", "081500"
    ds.InstitutionName = "St Elsewhere"
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = 2, 3, 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = np.arange(6, dtype=np.uint8).tobytes()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    path.write_bytes(buf.getvalue())
    return ds


def test_cli_deid_writes_summary_and_mapping(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    original = _write_instance(src / "Roe_Richard.dcm", "MRN-42")
    (src / "notes.txt").write_text("not dicom")
    secret = tmp_path / "site.key"
    secret.write_text("a-site-secret-of-sufficient-length\n")
    mapping = tmp_path / "site" / "map.json"

    result = CliRunner().invoke(
        app, ["deid", str(src), str(tmp_path / "out"), "--mapping", str(mapping), "--secret-file", str(secret)]
    )
    assert result.exit_code == 0, result.output
    assert "1 files written" in result.output
    assert "notes.txt" in result.output and "not a DICOM" in result.output
    assert "burned-in-annotation-possible" in result.output  # ultrasound without BurnedInAnnotation
    assert "review the pixels" in result.output

    files = [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
    assert len(files) == 1
    out = pydicom.dcmread(files[0])
    assert out.PatientID != "MRN-42" and out.PatientIdentityRemoved == "YES"
    assert out.StudyDate != original.StudyDate and out.PatientBirthDate == ""
    assert json.loads(mapping.read_text())["patients"]["MRN-42"] == out.PatientID
    assert b"a-site-secret" not in files[0].read_bytes()

    # the same secret file gives the same pseudonym in a later run
    again = CliRunner().invoke(app, ["deid", str(src), str(tmp_path / "out2"), "--secret-file", str(secret)])
    assert again.exit_code == 0, again.output
    out2 = pydicom.dcmread(next(p for p in (tmp_path / "out2").rglob("*.dcm")))
    assert out2.PatientID == out.PatientID and out2.SOPInstanceUID == out.SOPInstanceUID


def test_cli_deid_errors_exit_2(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    _write_instance(src / "a.dcm", "MRN-1")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("x")
    result = CliRunner().invoke(app, ["deid", str(src), str(busy)])
    assert result.exit_code == 2
    assert "not an empty folder" in " ".join(result.output.split())
    inside = CliRunner().invoke(app, ["deid", str(src), str(tmp_path / "o"), "--mapping", str(tmp_path / "o" / "m")])
    assert inside.exit_code == 2 and "inside the output folder" in " ".join(inside.output.split())
    assert not (tmp_path / "o").exists()
