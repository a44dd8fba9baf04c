"""De-identification on synthetic data sets: every PS3.15 Table E.1-1 attribute, dates, UIDs, files and archives."""

from __future__ import annotations

import io
import os
import stat
import zipfile
from datetime import datetime
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from medai.dicom.deid import (
    BASIC_PROFILE,
    PS315_EDITION,
    Deidentifier,
    DeidFlagCode,
    ProfileAction,
    deidentify_path,
    load_site_secret,
    profile_rule,
)
from medai.errors import ConfigError, IngestError

SECRET = b"unit-test-secret-0123456789abcdef"
NESTING_SQ = 0x00081032  # Procedure Code Sequence: not in the profile, so it is kept and recursed into
MASKED_SAMPLES = {"(50xx,xxxx)": (0x50000010, "US", 3), "(60xx,3000)": (0x60003000, "OW", b"\x01\x02\x03\x04"),
                  "(60xx,4000)": (0x60004000, "LT", "overlay by Dr Who")}  # fmt: skip


def _sample_value(tag: int, vr: str):
    """A non-empty, valid value of the VR that is unique to the tag."""
    text = f"V{tag:08X}"
    return {
        "DA": "20200115",
        "TM": "101530.25",
        "DT": "20200115101530",
        "AS": "045Y",
        "DS": "12.5",
        "IS": "7",
        "US": 7,
        "UI": f"1.2.826.0.1.3680043.9.7.{tag}",
        "UR": "http://example.org/patient/42",
        "PN": "Doe^Jane",
        "OB": b"\x01\x02\x03\x04",
        "UN": b"\x01\x02\x03\x04",
        "SQ": Sequence([Dataset()]),
    }.get(vr, text)


def _exact_rules():
    return [r for r in BASIC_PROFILE if not r.is_masked]


def _fill(ds: Dataset, with_sequences: bool = True) -> None:
    for rule in _exact_rules():
        tag = rule.mask[1]
        vr = dictionary_VR(tag).split(" or ")[0]
        if vr == "SQ" and not with_sequences:
            continue
        value = _sample_value(tag, vr)
        if vr == "SQ":
            item = Dataset()
            item.CodeValue = f"C{tag:08X}"
            item.CodingSchemeDesignator = "99LOCAL"
            item.CodeMeaning = "something identifying"
            item.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
            item.ReferencedSOPInstanceUID = f"1.2.826.0.1.3680043.9.8.{tag}"
            value = Sequence([item])
        ds.add_new(tag, vr, value)
    for tag, vr, value in MASKED_SAMPLES.values():
        ds.add_new(tag, vr, value)


def _full_profile_dataset() -> Dataset:
    """A data set holding every Table E.1-1 attribute, at top level and again inside a kept sequence item."""
    ds = Dataset()
    _fill(ds)
    nested = Dataset()
    _fill(nested)
    ds.add_new(NESTING_SQ, "SQ", Sequence([nested]))
    ds.add_new(0x00291010, "LO", "private secret")  # private
    ds.add_new(0x00290010, "LO", "ACME private creator")
    return ds


@pytest.fixture(scope="module")
def full_pair() -> tuple[Dataset, Dataset]:
    original = _full_profile_dataset()
    result = Deidentifier(SECRET).deidentify_dataset(original)
    return original, result.dataset


def _rule_id(rule) -> str:
    return f"{rule.tag}-{rule.action.value}-{rule.name}"


def test_table_covers_the_standard_profile() -> None:
    # the transcription of PS3.15 2024b Table E.1-1 (basic profile column), checked against pydicom's dictionary
    assert PS315_EDITION == "2024b"
    assert len(BASIC_PROFILE) == 620
    assert len({r.tag for r in BASIC_PROFILE}) == len(BASIC_PROFILE)
    actions = {r.action for r in BASIC_PROFILE}
    assert actions >= {ProfileAction.D, ProfileAction.Z, ProfileAction.X, ProfileAction.U, ProfileAction.X_Z_U_STAR}
    must = ["PatientName", "PatientID", "PatientBirthDate", "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID",
            "FrameOfReferenceUID", "ReferencedSOPInstanceUID", "AccessionNumber", "InstitutionName",
            "InstitutionAddress", "ReferringPhysicianName", "OperatorsName", "PerformingPhysicianName",
            "StationName", "DeviceSerialNumber", "StudyDescription", "SeriesDescription", "ImageComments",
            "RequestAttributesSequence", "RequestingPhysician", "PatientAddress", "OtherPatientIDs", "StudyID",
            "ContentDate", "AcquisitionDateTime"]  # fmt: skip
    keywords = {r.keyword for r in BASIC_PROFILE}
    assert not [k for k in must if k not in keywords]
    assert profile_rule(0x60023000) is not None and profile_rule(0x50100020) is not None  # masked groups
    assert profile_rule(0x00280010) is None  # Rows is kept


@pytest.mark.parametrize("rule", BASIC_PROFILE, ids=_rule_id)
def test_every_profile_attribute_loses_its_value(rule, full_pair) -> None:
    original, out = full_pair
    if rule.is_masked:
        tag = next(t for key, (t, _, _) in MASKED_SAMPLES.items() if key == rule.tag)
        assert tag not in out
        return
    tag = rule.mask[1]
    for before, after, where in ((original, out, "top level"), (original[NESTING_SQ][0], out[NESTING_SQ][0], "nested")):
        assert tag in before
        if tag in after:
            assert after[tag].value != before[tag].value, f"{rule.name} kept its value ({where})"
            if rule.action is ProfileAction.X:
                assert after[tag].VR in ("DA", "DT", "TM"), f"{rule.name} must be removed ({where})"


def test_actions_and_identity_attributes(full_pair) -> None:
    original, out = full_pair
    assert "AccessionNumber" in out and out.AccessionNumber == ""  # Z keeps a Type 2 attribute, empty
    assert "PatientAddress" not in out  # X
    assert out.ContentCreatorName == ""  # Z/D -> Z
    assert "ProtocolName" not in out  # X/D -> X
    assert out.PersonName == "ANONYMIZED"  # D
    assert out.PatientID == out.PatientName == Deidentifier(SECRET).pseudonym(original.PatientID)
    assert len(out.PatientID) == 32
    assert out.PatientBirthDate == ""  # Z, never shifted
    assert "PatientBirthTime" not in out
    assert out.PatientIdentityRemoved == "YES"
    assert out.LongitudinalTemporalInformationModified == "MODIFIED"
    assert [(i.CodeValue, i.CodingSchemeDesignator) for i in out.DeidentificationMethodCodeSequence] == [
        ("113100", "DCM"),
        ("113107", "DCM"),
    ]
    assert all(len(v) <= 64 for v in out.DeidentificationMethod)
    for elem in out.iterall():
        assert elem.tag.group % 2 == 0, f"private {elem.tag} left"
    # U* sequences are kept and their references remapped
    for keyword in ("ReferencedImageSequence", "SourceImageSequence"):
        before, after = original[keyword][0], out[keyword][0]
        assert after.CodeValue == before.CodeValue
        assert after.ReferencedSOPClassUID == before.ReferencedSOPClassUID
        assert after.ReferencedSOPInstanceUID == Deidentifier(SECRET).remap_uid(before.ReferencedSOPInstanceUID)


def _study(patient_id: str, n: int = 3) -> list[Dataset]:
    study_uid, series_uid, for_uid = generate_uid(), generate_uid(), generate_uid()
    sop_uids = [generate_uid() for _ in range(n)]
    out = []
    for i in range(n):
        ds = Dataset()
        ds.PatientID = patient_id
        ds.PatientName = "Doe^John"
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study_uid, series_uid, for_uid
        ds.SOPInstanceUID = sop_uids[i]
        ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
        ds.Modality = "MR"
        ds.StudyDate, ds.StudyTime = "20200229", "233000"
        ds.ContentDate, ds.ContentTime = "20200301", f"0015{10 + i:02d}.125"
        ds.AcquisitionDateTime = f"2020030100{i:02d}00.5+0100"
        ds.InstanceCreationDate = "20200302"
        if i:
            ref = Dataset()
            ref.ReferencedSOPClassUID = ds.SOPClassUID
            ref.ReferencedSOPInstanceUID = sop_uids[0]
            ds.ReferencedImageSequence = Sequence([ref])
        out.append(ds)
    return out


def _instant(date: str, tm: str) -> datetime:
    return datetime.strptime(date + tm.split(".")[0], "%Y%m%d%H%M%S")


def test_uids_consistent_across_study_and_references_preserved() -> None:
    deid = Deidentifier(SECRET)
    originals = _study("P1")
    outs = [deid.deidentify_dataset(ds).dataset for ds in originals]
    assert len({o.StudyInstanceUID for o in outs}) == 1 and outs[0].StudyInstanceUID != originals[0].StudyInstanceUID
    assert len({o.SeriesInstanceUID for o in outs}) == 1
    assert len({o.FrameOfReferenceUID for o in outs}) == 1
    assert len({o.SOPInstanceUID for o in outs}) == 3
    for o in outs[1:]:
        assert o.ReferencedImageSequence[0].ReferencedSOPInstanceUID == outs[0].SOPInstanceUID
        assert o.ReferencedImageSequence[0].ReferencedSOPClassUID == originals[0].SOPClassUID  # class kept
    for o in outs:
        assert o.StudyInstanceUID.startswith("2.25.") and len(o.StudyInstanceUID) <= 64
        assert pydicom.uid.UID(o.StudyInstanceUID).is_valid
    # a second batch with the same secret maps the same UIDs the same way
    again = Deidentifier(SECRET).deidentify_dataset(originals[2]).dataset
    assert again.SOPInstanceUID == outs[2].SOPInstanceUID
    assert again.ReferencedImageSequence[0].ReferencedSOPInstanceUID == outs[0].SOPInstanceUID


def test_dates_shifted_and_intervals_preserved() -> None:
    deid = Deidentifier(SECRET)
    a, b = _study("P1", n=2)
    b.StudyDate = "20210615"  # a follow-up study of the same patient
    oa, ob = (deid.deidentify_dataset(x).dataset for x in (a, b))
    for o, x in ((oa, a), (ob, b)):
        assert o.StudyDate != x.StudyDate and o.StudyTime != x.StudyTime and o.ContentTime != x.ContentTime
        # date and time move together as one instant
        assert _instant(o.ContentDate, o.ContentTime) - _instant(o.StudyDate, o.StudyTime) == _instant(
            x.ContentDate, x.ContentTime
        ) - _instant(x.StudyDate, x.StudyTime)
        assert o.ContentTime.endswith(".125")  # precision kept
        assert o.AcquisitionDateTime.endswith(".5+0100")
    assert _instant(ob.StudyDate, ob.StudyTime) - _instant(oa.StudyDate, oa.StudyTime) == _instant(
        b.StudyDate, b.StudyTime
    ) - _instant(a.StudyDate, a.StudyTime)
    dt = [datetime.strptime(o.AcquisitionDateTime[:14], "%Y%m%d%H%M%S") for o in (oa, ob)]
    assert dt[1] - dt[0] == datetime(2020, 3, 1, 0, 1) - datetime(2020, 3, 1, 0, 0)
    shift = datetime.strptime(oa.InstanceCreationDate, "%Y%m%d") - datetime(2020, 3, 2)
    assert -3650 <= shift.days <= -365
    # another patient gets another offset
    oc = deid.deidentify_dataset(_study("P2", n=1)[0]).dataset
    assert oc.StudyDate != oa.StudyDate or oc.StudyTime != oa.StudyTime


@pytest.mark.filterwarnings("ignore:Invalid value for VR DA")
@pytest.mark.parametrize("bad", ["20120000", "00000000", "2012", "garbage"])
def test_invalid_dates_replaced_with_dummy_and_flagged(bad: str) -> None:
    ds = _study("P1", n=1)[0]
    ds.StudyDate = bad
    ds.SeriesDate = bad
    result = Deidentifier(SECRET).deidentify_dataset(ds)
    assert result.dataset.StudyDate == "19000101" and result.dataset.SeriesDate == "19000101"
    assert {f.keyword for f in result.flags if f.code is DeidFlagCode.INVALID_DATE} == {"StudyDate", "SeriesDate"}
    assert all(bad not in f.message for f in result.flags)  # the original value is not echoed


def test_deterministic_with_same_secret_and_different_with_another() -> None:
    ds = _study("P1", n=2)[1]
    one = Deidentifier(SECRET).deidentify_dataset(ds).dataset
    two = Deidentifier(SECRET).deidentify_dataset(ds).dataset
    other = Deidentifier(b"another-secret-0123456789").deidentify_dataset(ds).dataset
    assert one == two
    for keyword in ("PatientID", "StudyInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID"):
        assert one[keyword].value != other[keyword].value
    assert (one.StudyDate, one.StudyTime) != (other.StudyDate, other.StudyTime)
    assert "StudyDate" in ds and ds.PatientID == "P1"  # the input was not modified


def test_short_secret_refused() -> None:
    with pytest.raises(ConfigError, match="16 bytes"):
        Deidentifier(b"short")


@pytest.mark.parametrize(
    ("modality", "sop_class", "burned", "expected"),
    [
        ("US", "1.2.840.10008.5.1.4.1.1.3.1", None, DeidFlagCode.BURNED_IN_ANNOTATION_POSSIBLE),
        ("OT", "1.2.840.10008.5.1.4.1.1.7", None, DeidFlagCode.BURNED_IN_ANNOTATION_POSSIBLE),
        ("CT", "1.2.840.10008.5.1.4.1.1.2", "YES", DeidFlagCode.BURNED_IN_ANNOTATION),
        ("US", "1.2.840.10008.5.1.4.1.1.3.1", "NO", None),
        ("CT", "1.2.840.10008.5.1.4.1.1.2", None, None),
    ],
)
def test_burned_in_annotation_flagged_pixels_untouched(modality, sop_class, burned, expected) -> None:
    ds = _file_dataset(modality=modality, sop_class=sop_class)
    if burned:
        ds.BurnedInAnnotation = burned
    before = ds.PixelData
    result = Deidentifier(SECRET).deidentify_dataset(ds)
    codes = [f.code for f in result.flags if "burned" in f.code.value]
    assert codes == ([expected] if expected else [])
    assert result.burned_in is bool(expected)
    assert result.dataset.PixelData == before


def _file_dataset(modality: str = "MR", sop_class: str = "1.2.840.10008.5.1.4.1.1.4", **kw) -> Dataset:
    ds = _study(kw.get("patient_id", "P1"), n=1)[0]
    ds.SOPClassUID = sop_class
    ds.Modality = modality
    ds.InstitutionName = "General Hospital"
    ds.add_new(0x00091001, "LO", "private")
    ds.Rows, ds.Columns = 4, 5
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.PixelData = np.arange(20, dtype=np.uint16).reshape(4, 5).tobytes()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.SourceApplicationEntityTitle = "HOSPITAL_PACS"
    return ds


def _to_bytes(ds: Dataset) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _outputs(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_deidentify_folder_zip_and_bytes(tmp_path: Path) -> None:
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    datasets = [_file_dataset(), _file_dataset(patient_id="P2")]
    (src / "a.dcm").write_bytes(_to_bytes(datasets[0]))
    (src / "sub" / "Doe_John.dcm").write_bytes(_to_bytes(datasets[1]))
    (src / "sub" / "copy.dcm").write_bytes(_to_bytes(datasets[1]))  # exact duplicate
    (src / "notes.txt").write_text("not dicom")
    (src / "truncated.dcm").write_bytes(_to_bytes(datasets[0])[:200])

    report = deidentify_path(src, tmp_path / "out", secret=SECRET)
    files = _outputs(tmp_path / "out")
    assert len(report.written) == 2 and len(files) == 2
    reasons = {s.source: s.reason for s in report.skipped}
    assert "notes.txt" in reasons and "not a DICOM" in reasons["notes.txt"]
    assert "duplicate" in reasons.get("sub/copy.dcm", "") or "duplicate" in reasons.get("sub/Doe_John.dcm", "")
    assert "truncated.dcm" in reasons
    for f in files:
        assert "Doe" not in str(f) and f.suffix == ".dcm"
        out = pydicom.dcmread(f)
        assert out.file_meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID
        assert "SourceApplicationEntityTitle" not in out.file_meta
        assert out.preamble == b"\x00" * 128
        assert out.pixel_array.tolist() == np.arange(20).reshape(4, 5).tolist()
        assert "InstitutionName" in out and out.InstitutionName == ""
        assert not any(e.tag.is_private for e in out.iterall())

    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("x/a.dcm", _to_bytes(datasets[0]))
        zf.writestr("x/readme.md", "hello")
    (tmp_path / "in.zip").write_bytes(archive.getvalue())
    zrep = deidentify_path(tmp_path / "in.zip", tmp_path / "out_zip", secret=SECRET)
    brep = deidentify_path(archive.getvalue(), tmp_path / "out_bytes", secret=SECRET)
    single = deidentify_path(_to_bytes(datasets[0]), tmp_path / "out_single", secret=SECRET)
    assert len(zrep.written) == len(brep.written) == len(single.written) == 1
    assert zrep.written[0].output == brep.written[0].output == single.written[0].output
    assert [s.source for s in zrep.skipped] == ["in.zip:x/readme.md"]
    # the same instance gives byte-identical output whatever the container
    assert _outputs(tmp_path / "out_zip")[0].read_bytes() == _outputs(tmp_path / "out_bytes")[0].read_bytes()


def test_conflicting_duplicate_is_skipped(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    ds = _file_dataset()
    (src / "a.dcm").write_bytes(_to_bytes(ds))
    ds.PixelData = np.ones((4, 5), np.uint16).tobytes()
    (src / "b.dcm").write_bytes(_to_bytes(ds))
    report = deidentify_path(src, tmp_path / "out", secret=SECRET)
    assert len(report.written) == 1
    assert "conflicting duplicate" in report.skipped[0].reason


def test_output_is_atomic_and_refuses_existing(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    for i in range(3):
        (src / f"{i}.dcm").write_bytes(_to_bytes(_file_dataset(patient_id=f"P{i}")))

    def explode(done: int, total: int, name: str) -> None:
        if done == 2:
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        deidentify_path(src, tmp_path / "out", secret=SECRET, progress=explode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]  # nothing half-written, no temp folder left

    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("x")
    with pytest.raises(ConfigError, match="not an empty folder"):
        deidentify_path(src, tmp_path / "busy", secret=SECRET)
    (tmp_path / "empty").mkdir()
    assert len(deidentify_path(src, tmp_path / "empty", secret=SECRET).written) == 3

    only_text = tmp_path / "text"
    only_text.mkdir()
    (only_text / "a.txt").write_text("hello")
    with pytest.raises(IngestError, match="no DICOM"):
        deidentify_path(only_text, tmp_path / "out2", secret=SECRET)
    assert not (tmp_path / "out2").exists()


def test_mapping_written_only_outside_output(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    ds = _file_dataset(patient_id="MRN-123456")
    (src / "a.dcm").write_bytes(_to_bytes(ds))
    with pytest.raises(ConfigError, match="inside the output folder"):
        deidentify_path(src, tmp_path / "out", secret=SECRET, mapping_path=tmp_path / "out" / "map.json")
    assert not (tmp_path / "out").exists()

    mapping = tmp_path / "site" / "map.json"
    report = deidentify_path(src, tmp_path / "out", secret=SECRET, mapping_path=mapping)
    import json

    data = json.loads(mapping.read_text())
    out = pydicom.dcmread(tmp_path / "out" / report.written[0].output)
    assert data["patients"]["MRN-123456"] == out.PatientID
    assert data["uids"][ds.SOPInstanceUID] == out.SOPInstanceUID
    assert stat.S_IMODE(os.stat(mapping).st_mode) == 0o600
    files = _outputs(tmp_path / "out")
    assert [f.suffix for f in files] == [".dcm"]
    blob = b"".join(f.read_bytes() for f in files)
    for secret_or_original in (b"MRN-123456", ds.SOPInstanceUID.encode(), ds.StudyInstanceUID.encode(), SECRET,
                               b"General Hospital", b"Doe^John", b"HOSPITAL_PACS", b"20200229"):  # fmt: skip
        assert secret_or_original not in blob

    # a second batch merges into the same mapping
    (tmp_path / "in2").mkdir()
    (tmp_path / "in2" / "b.dcm").write_bytes(_to_bytes(_file_dataset(patient_id="MRN-999")))
    deidentify_path(tmp_path / "in2", tmp_path / "out2", secret=SECRET, mapping_path=mapping)
    assert set(json.loads(mapping.read_text())["patients"]) == {"MRN-123456", "MRN-999"}


def test_site_secret_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MEDAI_DEID_SECRET", raising=False)
    first = load_site_secret()
    key_file = Path(os.environ["MEDAI_HOME"]) / "deid" / "site_secret.key"
    assert key_file.is_file() and stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert len(first) == 64 and load_site_secret() == first  # created once, then reused
    monkeypatch.setenv("MEDAI_DEID_SECRET", "from-the-environment-0123")
    assert load_site_secret() == b"from-the-environment-0123"
    explicit = tmp_path / "k"
    explicit.write_text("explicit-secret-file-value\n")
    assert load_site_secret(explicit) == b"explicit-secret-file-value"
    with pytest.raises(ConfigError, match="does not exist"):
        load_site_secret(tmp_path / "missing")


def test_zip_inside_folder_is_opened(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("a.dcm", _to_bytes(_file_dataset()))
    (src / "batch.zip").write_bytes(archive.getvalue())
    (src / "b.dcm").write_bytes(_to_bytes(_file_dataset(patient_id="P2")))
    report = deidentify_path(src, tmp_path / "out", secret=SECRET)
    assert sorted(r.source for r in report.written) == ["b.dcm", "batch.zip:a.dcm"]


def test_nested_patient_ids_pseudonymised_by_their_own_value() -> None:
    ds = _study("P1", n=1)[0]
    other = Dataset()
    other.PatientID = "OTHER-7"
    other.PatientName = "Other^Person"
    ds.SourcePatientGroupIdentificationSequence = Sequence([other])
    out = Deidentifier(SECRET).deidentify_dataset(ds).dataset
    item = out.SourcePatientGroupIdentificationSequence[0]
    assert item.PatientID == Deidentifier(SECRET).pseudonym("OTHER-7") != out.PatientID
    assert item.PatientName == ""


def test_retain_patient_characteristics_option() -> None:
    """PS3.15 E.3.10: sex, age, size and weight stay (the analyses' reference ranges and BSA need them), free text
    and identity still go, and DCM 113108 is recorded; without the option the basic profile removes them."""
    ds = Dataset()
    ds.PatientName, ds.PatientID = "Doe^Jane", "MRN123"
    ds.PatientSex, ds.PatientAge, ds.PatientSize, ds.PatientWeight = "F", "054Y", "1.68", "61"
    ds.AdditionalPatientHistory = "lives at 1 Main Street"
    ds.StudyInstanceUID, ds.SOPInstanceUID = generate_uid(), generate_uid()
    kept = Deidentifier(SECRET, retain_patient_characteristics=True).deidentify_dataset(ds).dataset
    assert (kept.PatientSex, kept.PatientAge, str(kept.PatientSize), str(kept.PatientWeight)) == \
        ("F", "054Y", "1.68", "61")
    assert "AdditionalPatientHistory" not in kept and "Doe" not in str(kept.PatientName)
    assert "113108" in {c.CodeValue for c in kept.DeidentificationMethodCodeSequence}
    basic = Deidentifier(SECRET).deidentify_dataset(ds).dataset
    assert not basic.get("PatientSex") and "PatientAge" not in basic and "PatientWeight" not in basic
    assert "113108" not in {c.CodeValue for c in basic.DeidentificationMethodCodeSequence}
