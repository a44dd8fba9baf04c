"""Real data (../shared/data/cardiac, skipped when absent): Sunnybrook cine SAX and the dicom_samples decode."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
from typer.testing import CliRunner

from medai.cli import app
from medai.dicom.ingest import ingest, iter_instances
from medai.dicom.volumes import build_cine, build_volume, decode_instance

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def sunnybrook(data_dir: Path) -> Path:
    path = data_dir / "cardiac" / "sunnybrook" / "dicoms" / "SCD0000101"
    if not path.is_dir():
        pytest.skip(f"{path} not present")
    return path


@pytest.fixture(scope="module")
def samples(data_dir: Path) -> list[Path]:
    root = data_dir / "cardiac" / "dicom_samples"
    files = sorted(p for p in root.rglob("*") if p.is_file())
    if not files:
        pytest.skip(f"{root} not present")
    return files


def test_info_json_sunnybrook(sunnybrook: Path) -> None:
    res = CliRunner().invoke(app, ["info", str(sunnybrook), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["n_studies"] == 1 and out["skipped"] == []
    (series,) = out["studies"][0]["series"]
    assert series["series_type"] == "cine_sax"
    assert (series["n_slices"], series["n_phases"], series["rows"], series["columns"]) == (12, 20, 256, 256)
    assert series["pixel_spacing"] == pytest.approx([1.367, 1.367], abs=1e-3)
    assert series["slice_spacing"] == pytest.approx(10.0, abs=1e-3)
    # invalid values tolerated and reported
    problems = " ".join(out["studies"][0]["problems"])
    assert "20120000" in problems and "00000000" in problems


def test_sunnybrook_cine_volume(sunnybrook: Path) -> None:
    result = ingest(sunnybrook)
    (series,) = result.studies[0].series
    vol = build_cine(series)
    assert vol.array.shape == (20, 12, 256, 256)
    assert vol.spacing == pytest.approx((10.0, 1.367188, 1.367188), abs=1e-3)
    assert all(b > a for a, b in zip(vol.frame_times_ms, vol.frame_times_ms[1:], strict=False))
    assert any("FrameOfReferenceUIDs" in w for w in vol.warnings)  # one FoR per image, one consistent stack
    # the 4-D order agrees with a plain pydicom read: position along the normal, then TriggerTime
    normal = vol.affine[:3, 0] / np.linalg.norm(vol.affine[:3, 0])
    for t, z in [(0, 0), (7, 5), (19, 11)]:
        ds = pydicom.dcmread(next(i.source for i in series.instances if i.SOPInstanceUID == vol.source_sop_uids[t][z]))
        np.testing.assert_array_equal(vol.array[t, z], ds.pixel_array.astype(np.float32))
        np.testing.assert_allclose(
            vol.index_to_lps([z, 0, 0])[0], np.asarray(ds.ImagePositionPatient, float), atol=1e-3
        )
    pos = [
        float(np.asarray(pydicom.dcmread(i.source, stop_before_pixels=True).ImagePositionPatient, float) @ normal)
        for i in series.instances[::20]
    ]
    assert len({round(p, 1) for p in pos}) == 12


EXPECTED_FRAMES = {
    "pydicomdata_color3d_jpeg_baseline_A4C_120f.dcm": (120, (480, 640, 3)),
    "pydicom_examples_ybr_color_A4C_30f.dcm": (30, (240, 320, 3)),
    "deiddata_ultrasound-multiframe_PLAX_doppler_30f.dcm.gz": (30, (600, 800, 3)),
    "gdcm_US-RGB-8-esopecho_TEE_doppler.dcm": (1, (120, 256, 3)),
    "barre_MR-MONO2-8-16x-heart.dcm": (16, (256, 256)),
    "osirix_TOUTATIX_CTA_coronary_IM-0001-0101_j2k.dcm": (1, (512, 512)),
    "osirix_TOUTATIX_CTA_coronary_IM-0001-0100.dcm": (1, (512, 512)),
    "osirix_GOUDURIX_CTA_coronary_IM-0001-0100.dcm": (1, (512, 512)),
}


def test_every_sample_decodes_with_its_frame_count(samples: list[Path]) -> None:
    assert {p.name for p in samples} <= set(EXPECTED_FRAMES), "a new sample: add its expected frame count"
    for path in samples:
        (inst,) = list(iter_instances(ingest(path)))
        arr = decode_instance(inst)
        frames, shape = EXPECTED_FRAMES[path.name]
        declared = int(inst.dataset.get("NumberOfFrames", 1) or 1)
        assert declared == frames and arr.shape == (frames, *shape), path.name
        assert np.ptp(arr) > 0, f"{path.name} decoded to a constant image"


def test_compressed_samples_match_reference_decoders(samples: list[Path]) -> None:
    by_name = {p.name: p for p in samples}
    # JPEG 2000 CTA: the same slice position range as the uncompressed neighbour, HU-like after rescale
    j2k = by_name["osirix_TOUTATIX_CTA_coronary_IM-0001-0101_j2k.dcm"]
    vol = build_volume(ingest(j2k).studies[0].series[0])
    assert vol.array.shape == (1, 512, 512) and vol.array.min() < -500 and vol.array.max() > 200
    # gzipped Philips Doppler: same pixels as pydicom on the decompressed bytes
    gz = by_name["deiddata_ultrasound-multiframe_PLAX_doppler_30f.dcm.gz"]
    import io

    ref = pydicom.dcmread(io.BytesIO(gzip.decompress(gz.read_bytes()))).pixel_array
    clip = build_cine(ingest(gz).studies[0].series[0])
    assert clip.array.shape == (30, 1, 600, 800, 3)
    np.testing.assert_array_equal(clip.array[:, 0], ref.astype(np.float32))
    assert clip.frame_times_ms[1] == pytest.approx(54.241, abs=1e-3)
    assert clip.spacing[1] > 0.05 and not any("1 mm per pixel" in w for w in clip.warnings)
    # JPEG baseline YBR echo: RGB out
    jpg = build_cine(ingest(by_name["pydicom_examples_ybr_color_A4C_30f.dcm"]).studies[0].series[0])
    assert jpg.array.shape == (30, 1, 240, 320, 3)


def test_sunnybrook_ed_es_subsets_are_incomplete_sax_cines(data_dir: Path) -> None:
    root = data_dir / "cardiac" / "sunnybrook" / "dicoms"
    others = sorted(p for p in root.glob("SCD*") if p.name != "SCD0000101")
    if not others:
        pytest.skip("only SCD0000101 present")
    for folder in others:
        (series,) = ingest(folder).studies[0].series
        assert series.series_type.value == "cine_sax", folder.name
        assert any("of the 20 cardiac phases" in p for p in series.problems)
        vol = build_cine(series)
        assert vol.n_frames == 2 and vol.frame_times_ms[0] < vol.frame_times_ms[1]
