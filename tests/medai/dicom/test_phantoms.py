"""The phantom generator: truth is exactly the label voxel volumes, images look like bSSFP cine, DICOM is valid."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.uid import MRImageStorage

from medai.cardiac.preprocess import CINE_LABELS
from medai.dicom.phantoms import (
    Phantom,
    make_brain_mr,
    make_ct_volume,
    make_echo_multiframe,
    make_lge_study,
    make_photo,
    truth_from_labels,
)


def test_truth_is_label_voxel_volume(cine_stack: Phantom) -> None:
    lab, truth = cine_stack.labels, cine_stack.truth
    assert lab is not None and truth is not None
    voxel_ml = 2.5 * 2.5 * 8.0 / 1000.0
    lv = (lab == CINE_LABELS["lv"]).reshape(lab.shape[0], -1).sum(1) * voxel_ml
    assert truth.ed_phase == int(np.argmax(lv)) == 0
    assert truth.es_phase == int(np.argmin(lv))
    assert truth.lv_edv_ml == lv.max() and truth.lv_esv_ml == lv.min()
    assert abs(truth.lv_ef_pct - 100 * (lv.max() - lv.min()) / lv.max()) < 1e-9
    # physiological ranges: a normal heart
    assert 50 < truth.lv_ef_pct < 75 and 35 < truth.rv_ef_pct < 70
    assert truth.lv_mass_g > 0 and truth.rv_edv_ml > truth.rv_esv_ml > 0
    assert truth == truth_from_labels(lab, voxel_ml)


def test_myocardium_grows_in_slice_and_thickens(cine_stack: Phantom) -> None:
    """In systole the slices hold more myocardium (the ventricle shortens and myocardium moves into them), as
    :data:`SYSTOLIC_AREA_GAIN` sets, and the wall thickens by about half, as a normal heart's."""
    from medai.dicom.phantoms import SYSTOLIC_AREA_GAIN

    lab, t = cine_stack.labels, cine_stack.truth
    myo = (lab == CINE_LABELS["myo"]).reshape(lab.shape[0], -1).sum(1)
    assert myo[t.es_phase] / myo[t.ed_phase] == pytest.approx(SYSTOLIC_AREA_GAIN, abs=0.06)
    mid = lab.shape[1] // 2
    ring = [(lab[p, mid] == CINE_LABELS["myo"]).sum() + (lab[p, mid] == CINE_LABELS["lv"]).sum() for p in
            (t.ed_phase, t.es_phase)]
    cavity = [(lab[p, mid] == CINE_LABELS["lv"]).sum() for p in (t.ed_phase, t.es_phase)]
    wall = [np.sqrt(r / np.pi) - np.sqrt(c / np.pi) for r, c in zip(ring, cavity, strict=True)]  # px
    assert 0.35 < wall[1] / wall[0] - 1 < 0.8


def test_lv_closes_towards_the_apex(cine_stack: Phantom) -> None:
    """The most apical slice's cavity is a small fraction of the largest (ACDC's median is 11 %), not a cut."""
    lv = (cine_stack.labels[cine_stack.truth.ed_phase] == CINE_LABELS["lv"]).reshape(cine_stack.labels.shape[1], -1)
    area = lv.sum(1)
    assert area[-1] < 0.2 * area.max() and area[-1] > 0


def test_images_painted_from_labels(cine_stack: Phantom) -> None:
    img, lab = cine_stack.image.astype(float), cine_stack.labels
    blood = img[lab == CINE_LABELS["lv"]].mean()
    myo = img[lab == CINE_LABELS["myo"]].mean()
    # bright blood, dark myocardium (bSSFP); the cavity label includes trabeculae and papillary muscles (ACDC), so
    # its mean is a little below its core's (ACDC cine: mean LV about 2.5x mean myocardium)
    assert blood > 2.2 * myo
    assert img.max() < 4096 and cine_stack.image.dtype == np.uint16


def test_dicom_attributes(cine_stack: Phantom, cine_stack_bytes: list[bytes]) -> None:
    import io

    ds = pydicom.dcmread(io.BytesIO(cine_stack_bytes[3]))
    assert ds.SOPClassUID == MRImageStorage and ds.Modality == "MR"
    assert ds.PhotometricInterpretation == "MONOCHROME2" and ds.BitsAllocated == 16
    assert ds.PatientSex == "M" and float(ds.PatientSize) == 1.75 and float(ds.PatientWeight) == 75
    assert float(ds.TriggerTime) == cine_stack.frame_times_ms[3]
    for uid in (ds.SOPInstanceUID, ds.SeriesInstanceUID, ds.StudyInstanceUID, ds.FrameOfReferenceUID):
        assert uid.is_valid
    np.testing.assert_array_equal(ds.pixel_array, cine_stack.image[3, 0])
    # IPP lies on the affine's z axis
    z_vec = cine_stack.affine[:3, 0]
    last = pydicom.dcmread(io.BytesIO(cine_stack_bytes[-1]))
    expected = cine_stack.affine[:3, 3] + z_vec * (len(cine_stack.image[0]) - 1)
    np.testing.assert_allclose(np.asarray(last.ImagePositionPatient, float), expected, atol=1e-3)
    assert len({d.SOPInstanceUID for d in cine_stack.datasets}) == len(cine_stack.datasets)


def test_reproducible_and_seeded() -> None:
    from medai.dicom.phantoms import make_cine_sax_study

    a = make_cine_sax_study(n_slices=2, n_phases=3, rows=32, cols=32, pixel_spacing=5.0, seed=1)
    b = make_cine_sax_study(n_slices=2, n_phases=3, rows=32, cols=32, pixel_spacing=5.0, seed=1)
    c = make_cine_sax_study(n_slices=2, n_phases=3, rows=32, cols=32, pixel_spacing=5.0, seed=2)
    assert a.study_uid == b.study_uid != c.study_uid
    np.testing.assert_array_equal(a.image, b.image)


def test_other_examples_are_valid_dicom() -> None:
    import io

    for ph, shape in [
        (make_ct_volume(n_slices=4, rows=16, cols=16), (16, 16)),
        (make_lge_study(n_slices=3, rows=32, cols=32), (32, 32)),
        (make_brain_mr(n_slices=3, rows=16, cols=16), (16, 16)),
        (make_echo_multiframe(n_frames=4, rows=20, cols=24), (4, 20, 24, 3)),
        (make_photo(rows=8, cols=10), (8, 10, 3)),
    ]:
        ds = pydicom.dcmread(io.BytesIO(ph.to_bytes()[0]))
        assert ds.pixel_array.shape == shape


def test_written_files(tmp_path) -> None:
    from medai.dicom.phantoms import make_cine_sax_study

    ph = make_cine_sax_study(tmp_path, n_slices=2, n_phases=3, rows=32, cols=32, pixel_spacing=5.0)
    assert len(ph.paths) == 6 and all(p.exists() for p in ph.paths)
    assert pydicom.dcmread(ph.paths[0]).preamble is not None


# -- the cine phantom looks like bSSFP cine (ACDC-like statistics), so real-data models segment it -------------------
@pytest.fixture(scope="module")
def demo_cine() -> Phantom:
    """The demo's in-plane geometry (128 x 128 at 1.5 mm), fewer slices and frames."""
    from medai.dicom.phantoms import make_cine_sax_study

    return make_cine_sax_study(n_slices=6, n_phases=8, rows=128, cols=128, seed=4)


def _core(mask: np.ndarray, depth_px: int) -> np.ndarray:
    """``mask`` eroded in-plane by ``depth_px`` pixels (away from partial volume and trabeculae)."""
    from scipy.ndimage import binary_erosion

    return binary_erosion(mask, structure=np.ones((1, 3, 3), bool), iterations=depth_px)


def test_cine_intensities_are_bssfp_like(demo_cine: Phantom) -> None:
    from medai.cardiac.preprocess import normalize_intensity

    ed = demo_cine.truth.ed_phase
    img, lab = demo_cine.image[ed].astype(float), demo_cine.labels[ed]
    lv = np.median(img[_core(lab == CINE_LABELS["lv"], 4)])
    rv = np.median(img[_core(lab == CINE_LABELS["rv"], 3)])
    myo = np.median(img[_core(lab == CINE_LABELS["myo"], 1)])
    assert lv > 2.5 * myo and rv > 2.0 * myo  # bright blood, dark grey myocardium
    assert 0.75 * lv < rv < lv  # the RV a little darker than the LV, as in ACDC
    # surroundings: dark lungs and air, fat at least as bright as blood, grey soft tissue in between
    outside = img[lab == 0]
    assert np.percentile(outside, 10) < 0.15 * lv and np.percentile(img, 99.5) > lv
    assert 0.2 < np.mean(outside < 0.15 * lv) < 0.5
    # after the model's intensity normalisation (clip 1-99 %, z-score) the tissues sit where ACDC's do
    # (ACDC training ED volumes: LV 1.7 +- 0.4, RV 1.4 +- 0.5, myocardium 0.1 +- 0.2)
    z = normalize_intensity(img)
    assert 1.2 < np.mean(z[lab == CINE_LABELS["lv"]]) < 2.4
    assert 0.8 < np.mean(z[lab == CINE_LABELS["rv"]]) < 2.0
    assert -0.4 < np.mean(z[lab == CINE_LABELS["myo"]]) < 0.5
    # the cavity labels include trabeculae and papillary muscles (ACDC convention): some LV voxels are dark
    assert np.percentile(img[lab == CINE_LABELS["lv"]], 2) < 0.6 * lv


def test_cine_has_rician_noise_and_soft_edges(demo_cine: Phantom) -> None:
    img = demo_cine.image.astype(float)
    # independent noise in every frame: far from the heart the chest is static, so frame differences are noise
    cy, cx = np.argwhere(demo_cine.labels[0, 0] == CINE_LABELS["lv"]).mean(0)
    yy, xx = np.mgrid[0 : img.shape[2], 0 : img.shape[3]]
    far = np.hypot(yy - cy, xx - cx) * 1.5 > 80.0  # > 80 mm from the LV centre
    tissue = far & (img[0, 0] > 150) & (img[1, 0] > 150)
    sd = np.std((img[0, 0] - img[1, 0])[tissue]) / np.sqrt(2)
    import inspect

    from medai.dicom.phantoms import make_cine_sax_study

    noise = inspect.signature(make_cine_sax_study).parameters["noise"].default  # SD, stored units
    assert 0.7 * noise < sd < 1.3 * noise
    # partial volume: the blood-myocardium edge is not a step; the myocardium's first pixels next to the cavity
    # lie between the myocardium's core and the blood
    from scipy.ndimage import binary_dilation

    lab = demo_cine.labels[0]
    myo = lab == CINE_LABELS["myo"]
    border = myo & binary_dilation(lab == CINE_LABELS["lv"], structure=np.ones((1, 3, 3), bool))
    core = np.median(img[0][_core(myo, 1)])
    blood = np.median(img[0][_core(lab == CINE_LABELS["lv"], 4)])
    assert core < np.median(img[0][border]) < core + 0.5 * (blood - core)


def test_rv_is_a_crescent_wrapping_the_septum(demo_cine: Phantom) -> None:
    from scipy.spatial import ConvexHull

    lab = demo_cine.labels[demo_cine.truth.ed_phase, 1]  # a basal slice
    rv, lv = lab == CINE_LABELS["rv"], lab == CINE_LABELS["lv"]
    pts = np.argwhere(rv).astype(float)
    assert len(pts) > 200
    # not a disc: the RV hugs the convex septum, so it fills much less than its convex hull
    assert rv.sum() < 0.85 * ConvexHull(pts).volume
    # it wraps the LV: seen from the LV centre it spans well over 90 degrees
    c = np.argwhere(lv).mean(0)
    ang = np.degrees(np.arctan2(pts[:, 0] - c[0], pts[:, 1] - c[1]))
    ang = (ang - np.median(ang) + 180.0) % 360.0 - 180.0
    assert np.ptp(ang) > 120
    # and it touches the septum along that arc (RV next to myocardium, not to the LV blood)
    from scipy.ndimage import binary_dilation

    contact = rv & binary_dilation(lab == CINE_LABELS["myo"])
    assert contact.sum() > 40 and not (rv & binary_dilation(lv)).any()


def test_wall_is_realistic_and_thickens(demo_cine: Phantom) -> None:
    lab, t = demo_cine.labels, demo_cine.truth
    for z in range(1, 4):  # basal to mid slices

        def radius(mask: np.ndarray) -> float:
            return float(np.sqrt(mask.sum() / np.pi)) * 1.5

        def wall(f: int, z: int = z) -> float:
            return radius(lab[f, z] >= CINE_LABELS["myo"]) - radius(lab[f, z] == CINE_LABELS["lv"])

        assert 7.0 < wall(t.ed_phase) < 11.0  # mm, end-diastole
        assert wall(t.es_phase) > 1.3 * wall(t.ed_phase)  # systolic thickening
