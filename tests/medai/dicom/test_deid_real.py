"""De-identification of the real DICOM samples (cardiac/dicom_samples, Sunnybrook SCD0000101).

The must-show of issue 2: after de-identification no PS3.15 basic-profile attribute keeps its original value,
checked attribute by attribute at every sequence depth, and the pixels are unchanged and still decode.
"""

from __future__ import annotations

import gzip
import io
import shutil
import warnings
from datetime import datetime
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.pixels import pixel_array

from medai.dicom.deid import Deidentifier, DeidFlagCode, deidentify_path, profile_rule

SECRET = b"real-data-test-secret-0123456789"
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _sample_files(data_dir: Path) -> list[Path]:
    samples = sorted(p for p in (data_dir / "cardiac" / "dicom_samples").rglob("*") if p.is_file())
    sunnybrook = sorted((data_dir / "cardiac" / "sunnybrook" / "dicoms" / "SCD0000101").glob("*.dcm"))[:3]
    if not samples or len(sunnybrook) < 3:
        pytest.skip("cardiac/dicom_samples or sunnybrook/dicoms/SCD0000101 not present")
    return samples + sunnybrook


def _read(path: Path) -> Dataset:
    data = path.read_bytes()
    if path.suffix == ".gz":
        data = gzip.decompress(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(io.BytesIO(data))


@pytest.fixture(scope="module")
def real_pairs(data_dir: Path) -> dict[str, tuple[Dataset, Dataset, list]]:
    """name -> (original, de-identified, flags), all files of one batch through one Deidentifier."""
    deid = Deidentifier(SECRET)
    out = {}
    for path in _sample_files(data_dir):
        original = _read(path)
        result = deid.deidentify_dataset(original)
        out[path.name] = (original, result.dataset, result.flags)
    return out


def _walk(ds: Dataset, prefix: tuple = ()):
    """(path, element) for every element, at every sequence depth; path = ((tag, item index), ..., tag)."""
    for elem in ds:
        yield (*prefix, int(elem.tag)), elem
        if elem.VR == "SQ":
            for i, item in enumerate(elem.value):
                yield from _walk(item, (*prefix, (int(elem.tag), i)))


def _lookup(ds: Dataset, path: tuple):
    node = ds
    for step in path[:-1]:
        tag, index = step
        if tag not in node or len(node[tag].value) <= index:
            return None
        node = node[tag].value[index]
    return node.get(path[-1])


def _is_empty(value) -> bool:
    return value is None or value == "" or value == b"" or (hasattr(value, "__len__") and len(value) == 0)


def test_real_files_present(real_pairs) -> None:
    assert len(real_pairs) == 11  # 8 samples (one gzipped) + 3 Sunnybrook images


@pytest.mark.parametrize(
    "name",
    [
        "osirix_GOUDURIX_CTA_coronary_IM-0001-0100.dcm",
        "osirix_TOUTATIX_CTA_coronary_IM-0001-0100.dcm",
        "osirix_TOUTATIX_CTA_coronary_IM-0001-0101_j2k.dcm",
        "barre_MR-MONO2-8-16x-heart.dcm",
        "deiddata_ultrasound-multiframe_PLAX_doppler_30f.dcm.gz",
        "gdcm_US-RGB-8-esopecho_TEE_doppler.dcm",
        "pydicom_examples_ybr_color_A4C_30f.dcm",
        "pydicomdata_color3d_jpeg_baseline_A4C_120f.dcm",
        "1.dcm",
        "10.dcm",
        "100.dcm",
    ],
)
def test_no_profile_attribute_keeps_its_value(real_pairs, name: str) -> None:
    """Attribute by attribute: each basic-profile attribute with a value is removed, emptied or changed."""
    if name not in real_pairs:
        pytest.skip(f"{name} not in this data release")
    original, out, _ = real_pairs[name]
    checked, kept = [], []
    for path, elem in _walk(original):
        rule = profile_rule(path[-1])
        if rule is None or _is_empty(elem.value):
            continue  # not a profile attribute, or nothing identifying to hide
        checked.append(rule.name)
        after = _lookup(out, path)
        if after is not None and not _is_empty(after.value) and after.value == elem.value:
            kept.append(f"{rule.tag} {rule.name} ({rule.action.value}) at {path}")
    assert not kept, "attributes that kept their original value:\n" + "\n".join(kept)
    assert checked, f"{name}: no profile attribute with a value found: nothing was tested"


def test_profile_checks_cover_identifying_attributes(real_pairs) -> None:
    """The attribute-by-attribute test above really exercised the identifying attributes of these files."""
    seen = set()
    for original, _, _ in real_pairs.values():
        for path, elem in _walk(original):
            rule = profile_rule(path[-1])
            if rule is not None and not _is_empty(elem.value):
                seen.add(rule.keyword)
    expected = {"PatientName", "PatientID", "PatientBirthDate", "StudyInstanceUID", "SOPInstanceUID",
                "FrameOfReferenceUID", "ReferencedSOPInstanceUID", "InstitutionName", "InstitutionAddress",
                "ReferringPhysicianName", "PhysiciansOfRecord", "RequestingPhysician", "OperatorsName",
                "AccessionNumber", "StationName", "DeviceSerialNumber", "StudyDate", "StudyTime",
                "PatientComments", "ImageComments", "RequestAttributesSequence", "StorageMediaFileSetUID",
                "ReferencedImageSequence", "SourceImageSequence", "ReferencedStudySequence", "PatientAge"}  # fmt: skip
    assert not expected - seen
    assert len(seen) >= 50


def test_private_tags_gone_pixels_unchanged_and_identity_marked(real_pairs) -> None:
    had_private = 0
    for name, (original, out, _) in real_pairs.items():
        had_private += any(e.tag.is_private for e in original.iterall())
        assert not any(e.tag.is_private for e in out.iterall()), name
        assert out.PixelData == original.PixelData, name
        assert out.PatientIdentityRemoved == "YES"
        assert out.get("BurnedInAnnotation") == original.get("BurnedInAnnotation")  # flagged, never changed
    assert had_private >= 2  # the SonoSite echoes carry private XML


def test_uids_consistent_within_study_and_references(real_pairs) -> None:
    deid = Deidentifier(SECRET)
    toutatix = [v for k, v in real_pairs.items() if "TOUTATIX" in k]
    sunny = [v for k, v in real_pairs.items() if k in ("1.dcm", "10.dcm", "100.dcm")]
    for group in (toutatix, sunny):
        assert len(group) >= 2
        for keyword in ("StudyInstanceUID", "SeriesInstanceUID"):
            new = {o[keyword].value for _, o, _ in group}
            assert len(new) == 1 and new != {x[keyword].value for x, _, _ in group}
        # same input UID -> same output UID, different -> different (Sunnybrook has one FoR per slice)
        pairs = {(x.FrameOfReferenceUID, o.FrameOfReferenceUID) for x, o, _ in group}
        assert len({a for a, _ in pairs}) == len({b for _, b in pairs}) == len(pairs)
        assert all(b == deid.remap_uid(a) for a, b in pairs)
        assert len({o.SOPInstanceUID for _, o, _ in group}) == len(group)
        for original, out, _ in group:
            assert out.SOPInstanceUID == deid.remap_uid(original.SOPInstanceUID)
            assert out.file_meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID
    # both TOUTATIX slices reference the same localizer and source image: still the same after remapping
    refs = {o.ReferencedImageSequence[0].ReferencedSOPInstanceUID for _, o, _ in toutatix}
    src = {o.SourceImageSequence[0].ReferencedSOPInstanceUID for _, o, _ in toutatix}
    assert len(refs) == 1 and len(src) == 1
    original = toutatix[0][0]
    assert refs == {deid.remap_uid(original.ReferencedImageSequence[0].ReferencedSOPInstanceUID)}
    assert toutatix[0][1].SourceImageSequence[0].ReferencedSOPClassUID == "1.3.12.2.1107.5.9.1"  # class kept
    # the same images (pydicom ybr A4C and its JPEG-baseline sibling) share study and SOP UIDs -> same new UIDs
    a4c = [v for k, v in real_pairs.items() if "A4C" in k]
    assert len({o.StudyInstanceUID for _, o, _ in a4c}) == 1


def _instant(ds: Dataset, date_kw: str, time_kw: str) -> datetime:
    return datetime.strptime(str(ds[date_kw].value) + str(ds[time_kw].value).split(".")[0], "%Y%m%d%H%M%S")


def test_intervals_preserved_on_real_dates(real_pairs) -> None:
    original, out, _ = real_pairs["osirix_TOUTATIX_CTA_coronary_IM-0001-0100.dcm"]
    pairs = [("StudyDate", "StudyTime"), ("SeriesDate", "SeriesTime"), ("AcquisitionDate", "AcquisitionTime"),
             ("ContentDate", "ContentTime")]  # fmt: skip
    base_o, base_n = _instant(original, *pairs[0]), _instant(out, *pairs[0])
    assert base_o != base_n
    for d, t in pairs[1:]:
        assert _instant(out, d, t) - base_n == _instant(original, d, t) - base_o
    # across the two slices of the series: acquisition times keep their sub-second spacing
    o2, n2, _ = real_pairs["osirix_TOUTATIX_CTA_coronary_IM-0001-0101_j2k.dcm"]
    frac = [float(str(x.AcquisitionTime)) % 1 for x in (original, o2, out, n2)]
    assert abs((frac[1] - frac[0]) - (frac[3] - frac[2])) < 1e-6
    # the birth date is emptied, not shifted
    assert original.PatientBirthDate == "19530828" and out.PatientBirthDate == ""


def test_sunnybrook_invalid_dates_replaced_times_shifted(real_pairs) -> None:
    original, out, flags = real_pairs["1.dcm"]
    assert original.StudyDate == "20120000"
    assert out.StudyDate == "19000101" and out.ContentDate == "19000101"
    assert {f.keyword for f in flags if f.code is DeidFlagCode.INVALID_DATE} >= {"StudyDate", "ContentDate"}

    def secs(tm) -> float:
        s = str(tm)
        return int(s[:2]) * 3600 + int(s[2:4]) * 60 + float(s[4:])

    # dates unusable, so times shift alone: their spacing is kept modulo one day
    gap_o = (secs(original.ContentTime) - secs(original.StudyTime)) % 86400
    gap_n = (secs(out.ContentTime) - secs(out.StudyTime)) % 86400
    assert abs(gap_o - gap_n) < 1e-6 and out.StudyTime != original.StudyTime


def test_burned_in_flags_on_echo(real_pairs) -> None:
    def codes(name: str) -> set[DeidFlagCode]:
        return {f.code for f in real_pairs[name][2]}

    assert DeidFlagCode.BURNED_IN_ANNOTATION in codes("deiddata_ultrasound-multiframe_PLAX_doppler_30f.dcm.gz")
    assert DeidFlagCode.BURNED_IN_ANNOTATION_POSSIBLE in codes("pydicom_examples_ybr_color_A4C_30f.dcm")
    assert not {c for c in codes("osirix_GOUDURIX_CTA_coronary_IM-0001-0100.dcm") if "burned" in c.value}


def test_written_files_decode_and_leak_nothing(data_dir: Path, tmp_path: Path) -> None:
    files = _sample_files(data_dir)
    src = tmp_path / "in"
    src.mkdir()
    for f in files:
        shutil.copy(f, src / f.name)
    mapping = tmp_path / "site" / "mapping.json"
    report = deidentify_path(src, tmp_path / "out", secret=SECRET, mapping_path=mapping)
    assert len(report.written) == 10  # the two A4C files are the same instance (same SOP UID, different codec)
    assert [s.reason.split(":")[0] for s in report.skipped] == ["conflicting duplicate"]
    assert {r.output for r in report.burned_in}
    assert mapping.is_file() and not list((tmp_path / "out").rglob("*.json"))

    by_source = {r.source: tmp_path / "out" / r.output for r in report.written}
    for f in files:
        if f.name not in by_source:
            continue
        out_path = by_source[f.name]
        original = _read(f)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            written = pydicom.dcmread(out_path)
            expected = pixel_array(original, index=0)
            got = pixel_array(written, index=0)
        assert written.PixelData == original.PixelData, f.name
        assert np.array_equal(got, expected), f.name
        if "TransferSyntaxUID" in original.file_meta:
            assert written.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID

    blob = b"".join(p.read_bytes() for p in (tmp_path / "out").rglob("*.dcm"))
    for needle in (b"GOUDURIX", b"TOUTATIX", b"MIYAMOTO", b"UCLA", b"SCD0000101", b"7DkT2Tp", b"Santa Monica",
                   b"SonoSite Private", b"1.3.12.2.1107.5.1.4.54023.30000005032916373504600004847",
                   b"2.16.124.113543.6006.99.08980635789900778171", SECRET):  # fmt: skip
        assert needle not in blob, needle
