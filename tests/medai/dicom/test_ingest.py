"""Ingest: folders, zip (nested too), gzip, bytes; non-DICOM, duplicates, conflicts and malformed files reported."""

from __future__ import annotations

import copy
import gzip
import io
import zipfile
from pathlib import Path

import pydicom
import pytest

from medai.dicom.ingest import IngestLimits, ingest, iter_instances, looks_like_dicom
from medai.dicom.phantoms import Phantom, dataset_to_bytes, make_cine_sax_study
from medai.domain.study import SeriesType
from medai.errors import IngestError


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_folder_recursive_one_series_per_slice(cine_folder: Phantom) -> None:
    root = cine_folder.paths[0].parent.parent
    (root / "notes.txt").write_text("not dicom")
    result = ingest(root)
    assert len(result.studies) == 1
    study = result.studies[0]
    assert len(study.series) == 5 and all(len(s) == 8 for s in study.series)
    assert all(s.series_type == SeriesType.CINE_SAX for s in study.series)
    assert [p.source for p in result.skipped] == [str(root / "notes.txt")]
    assert "not DICOM" in result.skipped[0].reason
    assert study.PatientSex == "M" and study.PatientSize == 1.75 and study.PatientWeight == 75
    assert result.root == root


def test_bytes_and_deferred_pixels_decode(cine_stack: Phantom, cine_stack_bytes: list[bytes]) -> None:
    result = ingest(cine_stack_bytes)
    series = result.studies[0].series[0]
    assert len(series) == len(cine_stack_bytes)
    inst = series.instances[0]
    assert inst.source.startswith("<bytes")
    assert inst.pixel_dataset().pixel_array.shape == (64, 64)


def test_file_pixels_are_deferred_and_read_on_demand(cine_folder: Phantom) -> None:
    result = ingest(cine_folder.paths[:3])
    inst = next(iter_instances(result))
    raw = inst.dataset.get_item(0x7FE00010, keep_deferred=True)
    assert raw.value is None  # not read while ingesting
    assert inst.loader is not None
    assert (inst.pixel_dataset().pixel_array == pydicom.dcmread(inst.source).pixel_array).all()


def test_zip_nested_zip_and_gzip(tmp_path: Path, cine_stack_bytes: list[bytes]) -> None:
    inner = _zip({f"inner/{i}.dcm": b for i, b in enumerate(cine_stack_bytes[:5])})
    outer = _zip(
        {
            **{f"a/{i}.dcm": b for i, b in enumerate(cine_stack_bytes[5:20], start=5)},
            "nested.zip": inner,
            "b/x.dcm.gz": gzip.compress(cine_stack_bytes[20]),
            "__MACOSX/._a.dcm": b"\x00\x05\x16\x07" + b"\x00" * 200,
        }
    )
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "upload.zip").write_bytes(outer)
    (tmp_path / "one.dcm.gz").write_bytes(gzip.compress(cine_stack_bytes[21]))
    result = ingest(tmp_path)
    insts = list(iter_instances(result))
    assert len(insts) == 5 + 15 + 1 + 1
    sources = {i.source for i in insts}
    assert any("!nested.zip!inner/0.dcm" in s for s in sources)
    assert any(s.endswith("upload.zip!b/x.dcm.gz") for s in sources)
    assert [p.source.rsplit("!", 1)[-1] for p in result.skipped] == ["__MACOSX/._a.dcm"]
    zipped = next(i for i in insts if "!a/5.dcm" in i.source)
    assert zipped.loader is not None  # pixels re-read from the archive on demand
    assert zipped.pixel_dataset().pixel_array.shape == (64, 64)
    # zip given as bytes works the same way
    assert len(list(iter_instances(ingest(outer)))) == 21


def test_identical_duplicates_silently_kept_once(tmp_path: Path, cine_stack_bytes: list[bytes]) -> None:
    (tmp_path / "a.dcm").write_bytes(cine_stack_bytes[0])
    (tmp_path / "copy.dcm").write_bytes(cine_stack_bytes[0])
    result = ingest([tmp_path, cine_stack_bytes[0]])
    assert len(list(iter_instances(result))) == 1
    assert result.skipped == []


def test_conflicting_duplicate_refused_and_reported(cine_stack: Phantom) -> None:
    good = dataset_to_bytes(cine_stack.datasets[0])
    ds = pydicom.dcmread(io.BytesIO(good))
    ds.PatientWeight = "99"  # same SOPInstanceUID, different content
    bad = dataset_to_bytes(ds)
    result = ingest([good, bad])
    insts = list(iter_instances(result))
    assert len(insts) == 1 and float(insts[0].dataset.PatientWeight) == 75
    assert len(result.skipped) == 1 and "conflicting duplicate" in result.skipped[0].reason
    assert insts[0].content_hash and insts[0].content_hash != ""
    assert any("conflicting duplicate" in p for p in result.studies[0].problems)


def test_malformed_inputs_reported_not_raised(
    tmp_path: Path, cine_stack: Phantom, cine_stack_bytes: list[bytes]
) -> None:
    good = cine_stack_bytes[0]
    (tmp_path / "ok.dcm").write_bytes(good)
    (tmp_path / "truncated.dcm").write_bytes(cine_stack_bytes[1][: len(cine_stack_bytes[1]) - 500])
    (tmp_path / "header_only.dcm").write_bytes(cine_stack_bytes[2][:300])
    (tmp_path / "empty.dcm").write_bytes(b"")
    (tmp_path / "random.bin").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "bad.zip").write_bytes(b"PK\x03\x04" + b"\x00" * 50)
    (tmp_path / "bad.gz").write_bytes(b"\x1f\x8b" + b"garbage")

    nopix = copy.deepcopy(cine_stack.datasets[3])
    del nopix.PixelData
    (tmp_path / "nopixels.dcm").write_bytes(dataset_to_bytes(nopix))

    weird_ts = pydicom.dcmread(io.BytesIO(cine_stack_bytes[4]))
    weird_ts.file_meta.TransferSyntaxUID = "1.2.3.4.5.6.7"
    (tmp_path / "weird_ts.dcm").write_bytes(dataset_to_bytes(weird_ts))

    huge = pydicom.dcmread(io.BytesIO(cine_stack_bytes[5]))
    huge.Rows, huge.Columns, huge.NumberOfFrames = 60000, 60000, 1000
    (tmp_path / "huge.dcm").write_bytes(dataset_to_bytes(huge))

    result = ingest(tmp_path)
    assert [i.source for i in iter_instances(result)] == [str(tmp_path / "ok.dcm")]
    reasons = {Path(p.source).name: p.reason for p in result.skipped}
    assert set(reasons) == {
        "truncated.dcm",
        "header_only.dcm",
        "empty.dcm",
        "random.bin",
        "bad.zip",
        "bad.gz",
        "nopixels.dcm",
        "weird_ts.dcm",
        "huge.dcm",
    }
    assert "too short" in reasons["truncated.dcm"] or "truncated" in reasons["truncated.dcm"]
    assert "no pixel data" in reasons["nopixels.dcm"]
    assert "transfer syntax" in reasons["weird_ts.dcm"]
    assert "absurd" in reasons["huge.dcm"] or "NumberOfFrames" in reasons["huge.dcm"]
    assert "not DICOM" in reasons["random.bin"]


def test_limits_are_configurable(cine_stack_bytes: list[bytes]) -> None:
    result = ingest(cine_stack_bytes[:2] + [cine_stack_bytes[0]], limits=IngestLimits(max_pixel_bytes=64 * 64 * 2))
    assert len(list(iter_instances(result))) == 2 and result.skipped == []  # at the limit; the duplicate is silent
    with pytest.raises(IngestError, match="absurd image size"):
        ingest(cine_stack_bytes[:2], limits=IngestLimits(max_pixel_bytes=1000))


def test_nothing_usable_raises_with_reasons(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("hello")
    (tmp_path / "b.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 300)
    with pytest.raises(IngestError) as exc:
        ingest(tmp_path)
    assert "a.txt" in exc.value.message and "b.jpg" in exc.value.message and "not DICOM" in exc.value.message
    assert len(exc.value.details) == 2
    with pytest.raises(IngestError, match="No files were found"):
        ingest([])
    with pytest.raises(IngestError, match="no such file"):
        ingest(tmp_path / "does-not-exist")


def test_raw_dataset_without_preamble_accepted_and_sniffing() -> None:
    ph = make_cine_sax_study(n_slices=1, n_phases=1, rows=32, cols=32, pixel_spacing=5.0)
    ds = ph.datasets[0].copy()
    ds.file_meta = pydicom.dataset.FileMetaDataset()
    ds.preamble = None
    buf = io.BytesIO()
    pydicom.dcmwrite(buf, ds, implicit_vr=True, little_endian=True)
    raw = buf.getvalue()  # a bare implicit-VR dataset: no preamble, no 'DICM', no file meta
    assert raw[:2] == b"\x08\x00" and b"DICM" not in raw[:200]
    assert looks_like_dicom(raw[:132])
    assert not looks_like_dicom(b"%PDF-1.4" + b"\x00" * 200)
    result = ingest(raw)
    assert len(list(iter_instances(result))) == 1


@pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom warns when the test writes the invalid values
def test_invalid_patient_values_tolerated(cine_stack: Phantom) -> None:
    ds = copy.deepcopy(cine_stack.datasets[0])
    ds.PatientSize = "175"  # cm instead of m
    ds.PatientWeight = "74.321"  # replaced by an invalid DS in the bytes below
    ds.PatientBirthDate = "00000000"
    ds.StudyDate = "20120000"
    ds.PatientSex = "X"
    data = dataset_to_bytes(ds)
    assert data.count(b"74.321") == 1
    study = ingest(data.replace(b"74.321", b"ab.cde")).studies[0]
    assert study.PatientSize == 1.75 and study.PatientWeight is None and study.PatientSex == ""
    text = " ".join(study.problems)
    for needle in ("centimetres", "PatientWeight", "PatientBirthDate", "StudyDate", "PatientSex"):
        assert needle in text


def test_progress_callback(cine_stack_bytes: list[bytes]) -> None:
    seen: list[int] = []
    ingest(cine_stack_bytes[:4], progress=seen.append)
    assert seen == [1, 2, 3, 4]


def test_transfer_syntax_that_contradicts_the_pixel_data_is_reported(cine_stack_bytes: list[bytes]) -> None:
    good = cine_stack_bytes[0]
    explicit = b"1.2.840.10008.1.2.1\x00"
    assert explicit in good
    wrong = good.replace(explicit, b"1.2.840.10008.1.2.5\x00", 1)  # says RLE, pixels are native
    result = ingest([wrong, cine_stack_bytes[1]])
    assert len(result.skipped) == 1 and "stored natively" in result.skipped[0].reason


def test_full_dataset_from_every_source(tmp_path: Path, cine_stack_bytes: list[bytes]) -> None:
    from medai.dicom.ingest import full_dataset

    (tmp_path / "a.dcm").write_bytes(cine_stack_bytes[0])
    (tmp_path / "b.zip").write_bytes(_zip({"b.dcm": cine_stack_bytes[1]}))
    result = ingest([tmp_path, cine_stack_bytes[2]])
    insts = sorted(iter_instances(result), key=lambda i: i.source)
    assert len(insts) == 3
    for inst, data in zip(insts, [cine_stack_bytes[0], cine_stack_bytes[1], cine_stack_bytes[2]], strict=True):
        full = full_dataset(inst)
        ref = pydicom.dcmread(io.BytesIO(data))
        assert full.SOPInstanceUID == ref.SOPInstanceUID
        assert full.PixelData == ref.PixelData
        # the header's own deferred pixel data is readable too (files: from disk; archives: from the zip)
        assert inst.dataset.pixel_array.shape == ref.pixel_array.shape


def test_dicomdir_index_skipped_with_reason(cine_stack: Phantom, cine_stack_bytes: list[bytes]) -> None:
    from pydicom.uid import MediaStorageDirectoryStorage

    ds = copy.deepcopy(cine_stack.datasets[0])
    del ds.PixelData
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = MediaStorageDirectoryStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    result = ingest([dataset_to_bytes(ds), cine_stack_bytes[0]])
    assert len(result.skipped) == 1 and "DICOMDIR" in result.skipped[0].reason


def test_concurrent_ingests_restore_pydicom_settings(cine_stack_bytes: list[bytes]) -> None:
    import logging
    from concurrent.futures import ThreadPoolExecutor

    from pydicom import config

    before = (config.settings.reading_validation_mode, logging.getLogger("pydicom").level)
    with ThreadPoolExecutor(4) as pool:
        counts = list(pool.map(lambda k: len(list(iter_instances(ingest(cine_stack_bytes[k : k + 10])))), range(8)))
    assert counts == [10] * 8
    assert (config.settings.reading_validation_mode, logging.getLogger("pydicom").level) == before


def test_deflated_transfer_syntax(tmp_path: Path, cine_stack: Phantom) -> None:
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    ds = copy.deepcopy(cine_stack.datasets[0])
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    data = dataset_to_bytes(ds)
    (tmp_path / "deflated.dcm").write_bytes(data)
    (tmp_path / "d.zip").write_bytes(_zip({"x/deflated.dcm": data}))
    for src in (tmp_path / "deflated.dcm", tmp_path / "d.zip", data):
        result = ingest(src)
        assert result.skipped == [], result.skipped
        (inst,) = list(iter_instances(result))
        from medai.dicom.volumes import decode_instance

        assert (decode_instance(inst)[0] == cine_stack.image[0, 0]).all()
