"""Volume builders: native 4-D cine in both vendor layouts and enhanced multi-frame, 3-D sorting and rescale,
ultrasound clips, colour, and the tolerated (warned) or refused (GeometryError) irregularities."""

from __future__ import annotations

import copy
import io

import numpy as np
import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medai.dicom.ingest import ingest
from medai.dicom.phantoms import (
    Phantom,
    dataset_to_bytes,
    make_brain_mr,
    make_cine_sax_study,
    make_ct_volume,
    make_echo_multiframe,
    make_lge_study,
    make_photo,
)
from medai.dicom.volumes import build_cine, build_volume, decode_instance
from medai.domain.study import Series
from medai.errors import DicomError, GeometryError

SMALL = {"n_slices": 4, "n_phases": 6, "rows": 40, "cols": 40, "pixel_spacing": 3.5}


def _series(datasets_or_bytes: list) -> list[Series]:
    data = [d if isinstance(d, bytes) else dataset_to_bytes(d) for d in datasets_or_bytes]
    return ingest(data).studies[0].series


def _check_cine(ph: Phantom, series: list[Series]) -> None:
    vol = build_cine(series if len(series) > 1 else series[0])
    assert vol.array.shape == ph.image.shape and vol.array.dtype == np.float32
    np.testing.assert_array_equal(vol.array, ph.image.astype(np.float32))  # order: position along normal, time
    np.testing.assert_allclose(vol.affine, ph.affine, atol=1e-3)
    assert vol.frame_times_ms == pytest.approx(ph.frame_times_ms)
    assert vol.warnings == ()
    # the affine maps every (z, 0, 0) to that slice's ImagePositionPatient, and source UIDs index (t, z)
    by_uid = {d.SOPInstanceUID: d for d in ph.datasets}
    for t in (0, ph.image.shape[0] - 1):
        for z in range(ph.image.shape[1]):
            ds = by_uid[vol.source_sop_uids[t][z]]
            if "ImagePositionPatient" not in ds:  # enhanced: one instance, positions per frame
                continue
            ipp = np.asarray(ds.ImagePositionPatient, float)
            np.testing.assert_allclose(vol.index_to_lps([z, 0, 0])[0], ipp, atol=1e-3)
            assert float(ds.TriggerTime) == pytest.approx(ph.frame_times_ms[t])
    # voxel volume and label volumes agree with the truth: EF measured on the built geometry is exact
    lv = (ph.labels == 3).reshape(ph.labels.shape[0], -1).sum(1) * vol.voxel_volume_ml
    # (IOP is stored with 6 significant digits in DS, hence rel=1e-4)
    assert lv.max() == pytest.approx(ph.truth.lv_edv_ml, rel=1e-4)
    assert lv.min() == pytest.approx(ph.truth.lv_esv_ml, rel=1e-4)


@pytest.mark.parametrize(
    "layout", [{}, {"one_series_per_slice": True}, {"enhanced": True}, {"oblique": False}, {"slice_gap": 2.0}]
)
def test_cine_round_trip(layout: dict) -> None:
    ph = make_cine_sax_study(**SMALL, **layout)
    series = _series(ph.datasets)
    _check_cine(ph, series)


def test_cine_order_independent_of_instance_order() -> None:
    ph = make_cine_sax_study(**SMALL)
    rng = np.random.default_rng(0)
    shuffled = [ph.datasets[i] for i in rng.permutation(len(ph.datasets))]
    for ds in shuffled:  # instance numbers must not be what orders the cine
        ds.InstanceNumber = int(rng.integers(1, 1000))
    _check_cine(ph, _series(shuffled))


def test_missing_phase_filled_with_warning() -> None:
    ph = make_cine_sax_study(**SMALL)
    missing = next(
        d
        for d in ph.datasets
        if float(d.TriggerTime) == ph.frame_times_ms[3] and d.InstanceNumber <= 6 * 2 and d.InstanceNumber > 6
    )
    kept = [d for d in ph.datasets if d is not missing]
    vol = build_cine(_series(kept)[0])
    assert vol.array.shape == ph.image.shape
    assert any("misses phase(s) [3]" in w and "slice 1" in w for w in vol.warnings)
    # filled from the nearest phase in time of the same slice
    nearest = [np.array_equal(vol.array[3, 1], ph.image[k, 1].astype(np.float32)) for k in (2, 4)]
    assert any(nearest)
    np.testing.assert_array_equal(vol.array[:, 0], ph.image[:, 0].astype(np.float32))


def test_repeated_slice_in_stack_keeps_last_with_warning() -> None:
    ph = make_cine_sax_study(**SMALL)
    repeats = []
    for ds in ph.datasets[6:12]:  # slice 1 acquired again (same series, same trigger times)
        r = copy.deepcopy(ds)
        r.SOPInstanceUID = pydicom.uid.generate_uid()
        r.InstanceNumber = ds.InstanceNumber + 1000
        r.PixelData = (ds.pixel_array // 2).astype(np.uint16).tobytes()
        repeats.append(r)
    vol = build_cine(_series(ph.datasets + repeats)[0])
    assert vol.array.shape == ph.image.shape
    assert any("slice 1" in w and "repeated" in w for w in vol.warnings)
    np.testing.assert_array_equal(vol.array[:, 1], (ph.image[:, 1] // 2).astype(np.float32))  # the last one


def test_repeated_slice_series_keeps_last_with_warning() -> None:
    ph = make_cine_sax_study(**SMALL, one_series_per_slice=True)
    series_uid = pydicom.uid.generate_uid()
    repeats = []
    for ds in ph.datasets[12:18]:  # slice 2 re-acquired as a new series with a higher number
        r = copy.deepcopy(ds)
        r.SOPInstanceUID = pydicom.uid.generate_uid()
        r.SeriesInstanceUID = series_uid
        r.SeriesNumber = 999
        repeats.append(r)
    series = _series(ph.datasets + repeats)
    assert len(series) == 5
    vol = build_cine(series)
    assert vol.array.shape == ph.image.shape
    assert any("acquired 2 times" in w and "#999" in w for w in vol.warnings)
    assert {vol.source_sop_uids[t][2] for t in range(6)} == {r.SOPInstanceUID for r in repeats}


def test_differing_frames_of_reference_warned_like_sunnybrook() -> None:
    ph = make_cine_sax_study(**SMALL)
    for ds in ph.datasets:
        ds.FrameOfReferenceUID = pydicom.uid.generate_uid()
    vol = build_cine(_series(ph.datasets)[0])
    np.testing.assert_array_equal(vol.array, ph.image.astype(np.float32))
    assert any("FrameOfReferenceUIDs" in w for w in vol.warnings)


def test_inconsistent_orientation_raises() -> None:
    ph = make_cine_sax_study(**SMALL, one_series_per_slice=True)
    for ds in ph.datasets[:6]:
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    with pytest.raises(GeometryError, match="2 different orientations"):
        build_cine(_series(ph.datasets))


def test_inconsistent_size_raises() -> None:
    ph = make_cine_sax_study(**SMALL, one_series_per_slice=True)
    other = make_cine_sax_study(**{**SMALL, "rows": 32, "cols": 32}, one_series_per_slice=True, seed=5)
    with pytest.raises(GeometryError, match="matrix sizes differ"):
        build_cine(_series(ph.datasets[:12]) + _series(other.datasets[12:18]))


def test_inconsistent_pixel_spacing_raises() -> None:
    ph = make_cine_sax_study(**SMALL)
    for ds in ph.datasets[:6]:
        ds.PixelSpacing = [2.0, 2.0]
    with pytest.raises(GeometryError, match="pixel spacings differ"):
        build_cine(_series(ph.datasets)[0])


def test_ct_sorted_along_normal_with_rescale() -> None:
    ph = make_ct_volume(n_slices=10, rows=24, cols=24)  # shuffled instances, descending instance numbers
    vol = build_volume(_series(ph.datasets)[0])
    np.testing.assert_allclose(vol.array, ph.image)  # HU after RescaleIntercept -1024
    np.testing.assert_allclose(vol.affine, ph.affine, atol=1e-4)
    assert vol.spacing == pytest.approx((1.5, 0.7, 0.7))
    assert vol.array.min() < -900 and vol.array.max() > 300
    assert not vol.is_temporal and len(vol.source_sop_uids[0]) == 10


def test_lge_and_brain_volumes() -> None:
    lge = make_lge_study(n_slices=4, rows=32, cols=32)
    vol = build_volume(_series(lge.datasets)[0])
    np.testing.assert_array_equal(vol.array, lge.image.astype(np.float32))
    np.testing.assert_allclose(vol.affine, lge.affine, atol=1e-3)
    brain = make_brain_mr(n_slices=3, rows=16, cols=16)
    assert build_volume(_series(brain.datasets)[0]).array.shape == (3, 16, 16)


def test_build_volume_refuses_temporal_series() -> None:
    ph = make_cine_sax_study(**SMALL)
    with pytest.raises(GeometryError, match="use build_cine"):
        build_volume(_series(ph.datasets)[0])


def test_gap_in_stack_warned() -> None:
    ct = make_ct_volume(n_slices=8, rows=16, cols=16, shuffle=False)
    kept = [d for i, d in enumerate(ct.datasets) if i != 4]
    vol = build_volume(_series(kept)[0])
    assert vol.array.shape[0] == 7 and any("non-uniform slice spacing" in w for w in vol.warnings)


def test_ultrasound_clip_timing_and_calibration() -> None:
    ph = make_echo_multiframe(n_frames=6, rows=30, cols=40, frame_time_ms=20.0, delta_cm=0.05)
    vol = build_cine(_series(ph.datasets)[0])
    assert vol.array.shape == (6, 1, 30, 40, 3)
    np.testing.assert_array_equal(vol.array[:, 0], ph.image.astype(np.float32))
    assert vol.frame_times_ms == pytest.approx((0, 20, 40, 60, 80, 100))
    assert vol.spacing[1:] == pytest.approx((0.5, 0.5))  # 0.05 cm -> 0.5 mm
    assert any("ultrasound region calibration" in w for w in vol.warnings)
    with pytest.raises(GeometryError, match="use build_cine"):
        build_volume(_series(ph.datasets)[0])


def test_ultrasound_frame_time_vector_and_no_regions() -> None:
    ph = make_echo_multiframe(n_frames=4, rows=10, cols=12, regions=False, color=False)
    ds = ph.datasets[0]
    del ds.FrameTime
    ds.FrameTimeVector = [0, 10, 30, 15]
    ds.FrameIncrementPointer = 0x00181065
    vol = build_cine(_series([ds])[0])
    assert vol.frame_times_ms == pytest.approx((0, 10, 40, 55))
    assert vol.array.shape == (4, 1, 10, 12)
    assert any("1 mm per pixel assumed" in w for w in vol.warnings)


def test_ybr_full_converted_to_rgb() -> None:
    ph = make_photo(rows=8, cols=10)
    ds = ph.datasets[0]
    from pydicom.pixels import convert_color_space

    ybr = convert_color_space(ph.image, "RGB", "YBR_FULL")
    ds.PhotometricInterpretation = "YBR_FULL"
    ds.PixelData = ybr.tobytes()
    vol = build_volume(_series([ds])[0])
    assert vol.array.shape == (1, 8, 10, 3)
    assert np.abs(vol.array[0] - ph.image.astype(np.float32)).max() <= 2  # RGB again (rounding)


def test_undecodable_pixels_raise_dicom_error() -> None:
    ph = make_photo(rows=8, cols=10)
    data = dataset_to_bytes(ph.datasets[0])
    ds = pydicom.dcmread(io.BytesIO(data))
    ds.file_meta.TransferSyntaxUID = pydicom.uid.JPEGBaseline8Bit
    ds.PixelData = pydicom.encaps.encapsulate([b"\xff\xd8\xff\xe0 not a jpeg"])
    series = _series([ds])
    with pytest.raises(DicomError, match="cannot decode"):
        decode_instance(series[0].instances[0])


def test_enhanced_ct_frames_sorted_with_per_frame_rescale() -> None:
    ph = make_ct_volume(n_slices=6, rows=16, cols=16, enhanced=True)  # one instance, frames shuffled
    (ds,) = ph.datasets
    assert ds.NumberOfFrames == 6 and "PerFrameFunctionalGroupsSequence" in ds
    vol = build_volume(_series(ph.datasets)[0])
    np.testing.assert_allclose(vol.array, ph.image)
    np.testing.assert_allclose(vol.affine, ph.affine, atol=1e-4)
    assert set(vol.source_sop_uids[0]) == {ds.SOPInstanceUID}


def test_anisotropic_pixel_spacing_maps_rows_and_columns() -> None:
    ph = make_ct_volume(n_slices=3, rows=12, cols=20, shuffle=False)
    for ds in ph.datasets:
        ds.PixelSpacing = [0.5, 0.8]  # (between rows, between columns)
    vol = build_volume(_series(ph.datasets)[0])
    assert vol.array.shape == (3, 12, 20)
    assert vol.spacing == pytest.approx((1.5, 0.5, 0.8))
    corner = np.asarray(ph.datasets[0].ImagePositionPatient, float)
    np.testing.assert_allclose(vol.index_to_lps([0, 11, 19])[0], corner + [19 * 0.8, 11 * 0.5, 0], atol=1e-4)


def test_in_plane_shifted_slice_warned() -> None:
    ph = make_cine_sax_study(**SMALL, one_series_per_slice=True)
    row = np.asarray(ph.datasets[0].ImageOrientationPatient[:3], float)
    for ds in ph.datasets[12:18]:  # slice 2 moved 7 mm along the rows (a breath-hold mismatch)
        ds.ImagePositionPatient = list(np.asarray(ds.ImagePositionPatient, float) + 7.0 * row)
    vol = build_cine(_series(ph.datasets))
    assert any("shifted in-plane by up to 7.0 mm" in w for w in vol.warnings)


def test_slices_with_unequal_phase_counts() -> None:
    ph = make_cine_sax_study(**SMALL)
    extra = copy.deepcopy(ph.datasets[0])  # slice 0 gets a 7th frame late in the cycle
    extra.SOPInstanceUID = pydicom.uid.generate_uid()
    extra.TriggerTime = "990"
    vol = build_cine(_series([*ph.datasets, extra])[0])
    assert vol.array.shape == ph.image.shape
    assert any("slice 0 has 1 more image" in w for w in vol.warnings)
    np.testing.assert_array_equal(vol.array, ph.image.astype(np.float32))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    angles=st.tuples(*[st.floats(-180, 180, allow_nan=False)] * 3),
    per_slice=st.booleans(),
    order_seed=st.integers(0, 2**16),
)
def test_cine_geometry_property(angles: tuple[float, float, float], per_slice: bool, order_seed: int) -> None:
    """Any plane orientation, either vendor layout, any instance order: the 4-D array, affine and times match."""
    ph = make_cine_sax_study(
        n_slices=3,
        n_phases=3,
        rows=16,
        cols=16,
        pixel_spacing=9.0,
        slice_thickness=7.0,
        orientation_angles=angles,
        one_series_per_slice=per_slice,
    )
    order = np.random.default_rng(order_seed).permutation(len(ph.datasets))
    series = _series([ph.datasets[i] for i in order])
    vol = build_cine(series if per_slice else series[0])
    np.testing.assert_array_equal(vol.array, ph.image.astype(np.float32))
    np.testing.assert_allclose(vol.affine, ph.affine, atol=2e-3)
    assert vol.frame_times_ms == pytest.approx(ph.frame_times_ms) and vol.warnings == ()


def test_palette_colour_applied() -> None:
    ph = make_photo(rows=8, cols=10)
    ds = ph.datasets[0]
    idx = (np.arange(80).reshape(8, 10) % 4).astype(np.uint8)
    lut = np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]] + [[0, 0, 0]] * 252, dtype=np.uint16) * 257
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "PALETTE COLOR"
    del ds.PlanarConfiguration
    for i, c in enumerate(["Red", "Green", "Blue"]):
        setattr(ds, f"{c}PaletteColorLookupTableDescriptor", [256, 0, 16])
        setattr(ds, f"{c}PaletteColorLookupTableData", lut[:, i].tobytes())
    ds.PixelData = idx.tobytes()
    vol = build_volume(_series([ds])[0])
    assert vol.array.shape == (1, 8, 10, 3)
    np.testing.assert_array_equal(vol.array[0, 0, :4], lut[:4].astype(np.float32))


def test_mixed_colour_and_greyscale_refused() -> None:
    ct = make_ct_volume(n_slices=3, rows=8, cols=10, shuffle=False)
    colour = copy.deepcopy(ct.datasets[1])
    colour.SamplesPerPixel, colour.PhotometricInterpretation, colour.PlanarConfiguration = 3, "RGB", 0
    colour.BitsAllocated, colour.BitsStored, colour.HighBit, colour.PixelRepresentation = 8, 8, 7, 0
    colour.PixelData = np.zeros((8, 10, 3), np.uint8).tobytes()
    with pytest.raises(GeometryError, match="decoded frame has shape"):
        build_volume(_series([ct.datasets[0], colour, ct.datasets[2]])[0])


def test_monochrome1_inverted_with_warning() -> None:
    brain = make_brain_mr(n_slices=2, rows=8, cols=8)
    for ds in brain.datasets:
        ds.PhotometricInterpretation = "MONOCHROME1"
    vol = build_volume(_series(brain.datasets)[0])
    np.testing.assert_array_equal(vol.array, 4095.0 - brain.image.astype(np.float32))  # BitsStored 12
    assert any("MONOCHROME1" in w for w in vol.warnings)
