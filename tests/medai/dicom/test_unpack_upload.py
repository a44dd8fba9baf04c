"""Uploads unpacked to disk one candidate at a time within IngestLimits: zips (nested, gzip members), a zip bomb
refused by its declared size (zipfile never inflates past it), encrypted members and depth limits reported, and
memory that stays flat however much the archive inflates."""

from __future__ import annotations

import gzip
import io
import tracemalloc
import zipfile
from pathlib import Path

import pydicom
import pytest

from medai.dicom.ingest import IngestLimits, unpack_upload
from medai.dicom.phantoms import make_cine_sax_study
from medai.errors import IngestError


def _zip(members: dict[str, bytes], level: int = 6) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=level) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


@pytest.fixture(scope="module")
def dicoms() -> list[bytes]:
    return make_cine_sax_study(rows=16, cols=16, n_slices=2, n_phases=2, seed=3).to_bytes()


def _run(data: bytes, tmp: Path, limits: IngestLimits | None = None) -> tuple[dict[str, bytes], dict[str, str]]:
    got, skipped = {}, {}
    for source, path, why in unpack_upload(io.BytesIO(data), "up.zip", tmp / "scratch", limits):
        if path is None:
            skipped[source] = why
        else:
            got[source] = path.read_bytes()
    return got, skipped


def test_members_nested_zips_and_gzip_members_come_out_as_files(dicoms: list[bytes], tmp_path: Path) -> None:
    inner = _zip({"c.dcm": dicoms[2]})
    data = _zip({"a.dcm": dicoms[0], "b.dcm.gz": gzip.compress(dicoms[1]), "inner.zip": inner, "note.txt": b"hi"})
    got, skipped = _run(data, tmp_path)
    assert got == {"up.zip:a.dcm": dicoms[0], "up.zip:b.dcm.gz": dicoms[1], "up.zip:inner.zip:c.dcm": dicoms[2],
                   "up.zip:note.txt": b"hi"}  # not-DICOM is the store's to refuse, with its reason
    assert skipped == {}
    assert list((tmp_path / "scratch").iterdir()) == []  # every scratch file removed behind the caller
    single, _ = _run(dicoms[3], tmp_path)
    assert single == {"up.zip": dicoms[3]}
    assert pydicom.dcmread(io.BytesIO(single["up.zip"])).SOPInstanceUID


def test_a_zip_bomb_is_refused_by_its_size_not_read_into_memory(dicoms: list[bytes], tmp_path: Path) -> None:
    bomb = _zip({"ok.dcm": dicoms[0], "bomb.bin": b"\0" * (40 * 1024**2)}, level=9)
    assert len(bomb) < 100_000  # 40 MB that compress to some tens of kB
    limits = IngestLimits(max_file_bytes=8 * 1024**2)
    got, skipped = _run(bomb, tmp_path, limits)
    assert list(got) == ["up.zip:ok.dcm"]
    assert "exceeds" in skipped["up.zip:bomb.bin"] and "max_file_bytes" in skipped["up.zip:bomb.bin"]
    # within the limits the 40 MB member is streamed: Python's peak allocation stays near one chunk
    tracemalloc.start()
    for _source, path, _why in unpack_upload(io.BytesIO(bomb), "up.zip", tmp_path / "s2"):
        if path is not None:
            assert path.stat().st_size in (len(dicoms[0]), 40 * 1024**2)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 8 * 1024**2, f"unpacking peaked at {peak / 1e6:.1f} MB of Python allocations"


def test_depth_member_count_and_encryption_are_reported(dicoms: list[bytes], tmp_path: Path) -> None:
    deep = _zip({"l3.zip": _zip({"l2.zip": _zip({"x.dcm": dicoms[0]})})})
    got, skipped = _run(deep, tmp_path)
    assert got == {} and any("nested deeper" in w for w in skipped.values())
    many = _zip({f"{i}.dcm": dicoms[i % 4] for i in range(6)})
    got, skipped = _run(many, tmp_path, IngestLimits(max_archive_members=4))
    assert len(got) == 4 and "only the first 4" in skipped["up.zip"]
    enc = bytearray(_zip({"e.dcm": dicoms[0]}))
    enc[6] |= 0x1  # the local header's and the central directory's "encrypted" flag
    cd = enc.rfind(b"PK\x01\x02")
    enc[cd + 8] |= 0x1
    got, skipped = _run(bytes(enc), tmp_path)
    assert got == {} and "encrypted" in skipped["up.zip:e.dcm"]
    with pytest.raises(IngestError, match="cannot be read"):
        _run(b"PK\x03\x04" + b"\0" * 100, tmp_path)
