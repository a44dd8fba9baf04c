"""The phantom generator: truth is exactly the label voxel volumes, images look like bSSFP cine, DICOM is valid."""

from __future__ import annotations

import numpy as np
import pydicom
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


def test_myocardium_conserved_and_thickens(cine_stack: Phantom) -> None:
    lab, t = cine_stack.labels, cine_stack.truth
    myo = (lab == CINE_LABELS["myo"]).reshape(lab.shape[0], -1).sum(1)
    assert abs(int(myo[t.es_phase]) - int(myo[t.ed_phase])) / myo[t.ed_phase] < 0.08  # incompressible wall


def test_images_painted_from_labels(cine_stack: Phantom) -> None:
    img, lab = cine_stack.image.astype(float), cine_stack.labels
    blood = img[lab == CINE_LABELS["lv"]].mean()
    myo = img[lab == CINE_LABELS["myo"]].mean()
    assert blood > 2.5 * myo  # bright blood, dark myocardium (bSSFP)
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
