"""Fuzzed input: mutated DICOM bytes (byte flips, truncation, insertions) never make ingest -- or building a volume
from what it accepted -- raise anything but the documented medai error types."""

from __future__ import annotations

import gzip
import io
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medai.dicom.ingest import ingest
from medai.dicom.phantoms import make_cine_sax_study, make_echo_multiframe
from medai.dicom.volumes import build_cine, build_volume
from medai.errors import MedaiError
from medai.settings import find_data_dir


def _seeds() -> list[tuple[str, bytes]]:
    """Real DICOM files when the data is present (small ones), plus generated ones (always)."""
    out = [
        ("phantom-mr", make_cine_sax_study(n_slices=1, n_phases=1, rows=16, cols=16, pixel_spacing=8.0).to_bytes()[0]),
        ("phantom-us", make_echo_multiframe(n_frames=2, rows=8, cols=8).to_bytes()[0]),
    ]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a/1.dcm", out[0][1])
        zf.writestr("a/2.dcm.gz", gzip.compress(out[1][1]))
    out += [("zip", buf.getvalue()), ("gzip", gzip.compress(out[0][1]))]
    root = find_data_dir()
    if root is not None:
        for rel in (
            "cardiac/sunnybrook/dicoms/SCD0000101/1.dcm",
            "cardiac/dicom_samples/echo_us/gdcm_US-RGB-8-esopecho_TEE_doppler.dcm",
            "cardiac/dicom_samples/cardiac_ct/osirix_TOUTATIX_CTA_coronary_IM-0001-0101_j2k.dcm",
        ):
            p = Path(root) / rel
            if p.is_file():
                out.append((rel, p.read_bytes()))
    return out


SEEDS = _seeds()


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    name, data = draw(st.sampled_from(SEEDS))
    data = bytearray(data)
    # mutations concentrate on the header (the first 3 KB), where the parser lives
    for _ in range(draw(st.integers(1, 6))):
        if not data:
            break
        hot = min(len(data), 3000)
        kind = draw(st.sampled_from(["flip", "truncate", "insert", "delete", "length"]))
        pos = draw(st.integers(0, hot - 1))
        if kind == "flip":
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "truncate":
            data = data[: draw(st.integers(0, len(data)))]
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete":
            del data[pos : pos + draw(st.integers(1, 16))]
        else:  # an absurd element length
            data[pos : pos + 4] = b"\xff\xff\xff\x7f"
    return bytes(data)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=mutated())
def test_ingest_raises_only_documented_errors(data: bytes) -> None:
    try:
        result = ingest(data)
    except MedaiError:
        return
    for study in result.studies:
        for series in study.series:
            for build in (build_volume, build_cine):
                try:
                    build(series)
                except MedaiError:
                    pass


def test_seeds_are_valid() -> None:
    for name, data in SEEDS:
        result = ingest(data)
        assert result.studies, name
    if len(SEEDS) == 4:
        pytest.skip("real data absent: fuzzed generated DICOM only")
