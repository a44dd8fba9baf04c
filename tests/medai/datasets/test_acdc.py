"""ACDC adapters: the official NIfTI release (a few real patients and the ``val`` split of splits.csv, skipped
when the data is absent; generated folders with the real files' headers), and the HDF5 form on generated files."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from medai.datasets.acdc import (
    ACDC_LABELS,
    acdc_group,
    acdc_split_patients,
    load_acdc,
    load_acdc_h5,
    load_acdc_release,
    nifti_to_zyx,
    read_acdc_h5,
    read_acdc_patient,
    read_acdc_splits,
    read_info_cfg,
)
from medai.datasets.base import CardiacPhase, split_by_patient
from medai.errors import ConfigError
from tests.medai.datasets.helpers import write_acdc_h5, write_acdc_release

# ------------------------------------------------------------------ real data: the official release (NIfTI)


def _acdc_root(data_dir: Path) -> Path:
    root = data_dir / "cardiac" / "acdc"
    if not (root / "training").is_dir():
        pytest.skip(f"ACDC official training set not found at {root}/training (see its README.md)")
    return root


def test_acdc_release_real_patient_at_true_spacing(data_dir: Path) -> None:
    """patient001 (DCM): ED frame01 / ES frame12, spacing from pixdim (the affine says 1 mm), ACDC labels."""
    root = _acdc_root(data_dir)
    ed, es = read_acdc_patient(root / "training" / "patient001")
    assert ed.phase is CardiacPhase.ED and es.phase is CardiacPhase.ES
    assert ed.patient_id == es.patient_id == "patient001" and (ed.meta["frame"], es.meta["frame"]) == (1, 12)
    assert ed.image.dtype == np.float32 and ed.image.shape == (10, 256, 216)  # (Z, Y, X); nibabel gives (216, 256, 10)
    assert ed.label is not None and ed.label.shape == ed.image.shape and ed.label.dtype == np.uint8
    assert set(np.unique(ed.label)) == {0, *ACDC_LABELS.values()}
    assert ed.spacing_mm == pytest.approx((10.0, 1.5625, 1.5625))
    assert ed.affine is not None
    np.testing.assert_allclose(np.linalg.norm(ed.affine[:3, :3], axis=0), ed.spacing_mm, rtol=1e-6)
    assert ed.to_volume().spacing == pytest.approx(ed.spacing_mm)  # what the predictor resamples from
    # volumes in mL: voxel count x prod(pixdim); patient001 is a dilated LV (EDV ~ 295 mL, EF ~ 13 %)
    ml = float(np.prod(ed.spacing_mm)) / 1000.0
    edv = (ed.label == ACDC_LABELS["lv"]).sum() * ml
    esv = (es.label == ACDC_LABELS["lv"]).sum() * ml
    assert 200.0 < edv < 400.0 and esv < edv
    assert ed.image[ed.label == 3].mean() > ed.image[ed.label == 2].mean()  # bSSFP: blood brighter than muscle
    assert ed.meta["group"] == "DCM" and ed.meta["height_cm"] > 100 and ed.meta["weight_kg"] > 30


def test_acdc_release_real_patient090_ed_is_frame04(data_dir: Path) -> None:
    """The one patient whose ED is not frame01: frames come from Info.cfg (ED 4, ES 11), image stored as uint8."""
    root = _acdc_root(data_dir)
    ed, es = load_acdc(root / "training" / "patient090")
    assert (ed.phase, ed.meta["frame"]) == (CardiacPhase.ED, 4)
    assert (es.phase, es.meta["frame"]) == (CardiacPhase.ES, 11)
    assert str(ed.meta["source"]).endswith("patient090_frame04.nii.gz") and ed.meta["group"] == "RV"
    assert ed.image.dtype == np.float32 and ed.spacing_mm is not None and ed.spacing_mm[0] == pytest.approx(10.0)
    assert 0.7 <= ed.spacing_mm[1] == ed.spacing_mm[2] <= 1.92
    assert ed.label is not None and es.label is not None
    assert (es.label == ACDC_LABELS["lv"]).sum() < (ed.label == ACDC_LABELS["lv"]).sum()


def test_acdc_real_val_split(data_dir: Path) -> None:
    """The ``val`` split of splits.csv: 20 patients, 4 per group (the last 4 of each block), ED + ES each."""
    root = _acdc_root(data_dir)
    cases = load_acdc(root, split="val")
    patients = sorted({c.patient_id for c in cases})
    assert len(cases) == 40 and len(patients) == 20
    assert patients == [f"patient{n:03d}" for b in (20, 40, 60, 80, 100) for n in range(b - 3, b + 1)]
    assert [c.phase for c in cases[:2]] == [CardiacPhase.ED, CardiacPhase.ES]
    groups = [c.meta["group"] for c in cases if c.phase is CardiacPhase.ED]
    assert sorted(set(groups)) == ["DCM", "HCM", "MINF", "NOR", "RV"] and all(groups.count(g) == 4 for g in groups)
    assert all(c.spacing_mm is not None and c.label is not None for c in cases)


def test_acdc_real_splits_cover_training_disjointly(data_dir: Path) -> None:
    root = _acdc_root(data_dir)
    splits = read_acdc_splits(root / "splits.csv")
    train, val = acdc_split_patients(root, "train"), acdc_split_patients(root / "training", "val")
    assert len(train) == 80 and len(val) == 20 and not set(train) & set(val)
    assert set(splits) == {p.name for p in (root / "training").glob("patient*")}
    few = load_acdc_release(root, split="train", patients=["patient001", "patient090", "patient017"])
    assert sorted({c.patient_id for c in few}) == ["patient001", "patient090"]  # patient017 is in val


# ----------------------------------------------------------------------- the HDF5 form, on a generated file


def test_acdc_h5_generated_shapes_and_labels(tmp_path: Path) -> None:
    folder = write_acdc_h5(tmp_path / "val", n_patients=2)
    ed = read_acdc_h5(folder / "patient001_frame01.h5")
    es = read_acdc_h5(folder / "patient001_frame02.h5")
    assert ed.phase is CardiacPhase.ED and es.phase is CardiacPhase.ES
    assert ed.patient_id == es.patient_id == "patient001" and ed.case_id == "patient001_ED"
    assert ed.image.dtype == np.float32 and ed.image.ndim == 3
    assert ed.label is not None and ed.label.shape == ed.image.shape and ed.label.dtype == np.uint8
    assert set(np.unique(ed.label)) == {0, *ACDC_LABELS.values()}
    # intensities are image * scale (the stored uint16 times the ``scale`` attribute)
    with h5py.File(folder / "patient001_frame01.h5", "r") as f:
        np.testing.assert_allclose(ed.image, f["image"][()] * f["image"].attrs["scale"], rtol=1e-6)
    assert 0.0 <= ed.image.min() and ed.image.max() <= 1.0 + 1e-6
    assert (es.label == ACDC_LABELS["lv"]).sum() < (ed.label == ACDC_LABELS["lv"]).sum()
    assert ed.meta["group"] == "DCM" and ed.spacing_mm is None and ed.affine is None  # HDF5 keeps no spacing


def test_acdc_h5_generated_folder(tmp_path: Path) -> None:
    folder = write_acdc_h5(tmp_path / "train", n_patients=3, first=61)
    cases = load_acdc(folder)
    assert len(cases) == 6 and len({c.patient_id for c in cases}) == 3
    assert [c.phase for c in cases[:2]] == [CardiacPhase.ED, CardiacPhase.ES]
    assert {c.meta["group"] for c in cases} == {"NOR"}
    assert [c.case_id for c in load_acdc_h5(folder)] == [c.case_id for c in cases]
    with pytest.raises(ConfigError, match="HDF5 folder"):
        load_acdc(folder, split="val")
    with h5py.File(tmp_path / "patient001_frame01.h5", "w") as f:
        f.create_dataset("label", data=np.zeros((2, 4, 4), np.uint8))
    with pytest.raises(ConfigError, match="no 'image' dataset"):
        read_acdc_h5(tmp_path / "patient001_frame01.h5")
    with pytest.raises(ConfigError, match="no ACDC HDF5 files"):
        load_acdc_h5(tmp_path / "empty")


# ---------------------------------------------------------------- the official layout, on generated folders


def _write_release_patient(folder: Path) -> None:
    import nibabel as nib

    folder.mkdir(parents=True)
    (folder / "Info.cfg").write_text("ED: 1\nES: 3\nGroup: NOR\nHeight: 180.0\nNbFrame: 4\nWeight: 75.5\n")
    rng = np.random.default_rng(0)
    affine = np.diag([1.5, 1.4, 10.0, 1.0])  # NIfTI RAS: x 1.5 mm, y 1.4 mm, z 10 mm
    for frame in (1, 3):
        img = rng.random((20, 24, 5)).astype(np.float32)  # (X, Y, Z)
        lab = np.zeros((20, 24, 5), np.uint8)
        lab[5:10, 6:12, 1:4] = 3
        lab[4:5, 6:12, 1:4] = 2
        lab[12:15, 6:12, 1:4] = 1
        nib.save(nib.Nifti1Image(img, affine), folder / f"{folder.name}_frame{frame:02d}.nii.gz")
        nib.save(nib.Nifti1Image(lab, affine), folder / f"{folder.name}_frame{frame:02d}_gt.nii.gz")


def test_acdc_official_release_layout(tmp_path: Path) -> None:
    patient = tmp_path / "training" / "patient061"
    _write_release_patient(patient)
    assert read_info_cfg(patient / "Info.cfg")["Group"] == "NOR"
    ed, es = read_acdc_patient(patient)
    assert (ed.phase, es.phase) == (CardiacPhase.ED, CardiacPhase.ES)
    assert ed.meta["frame"] == 1 and es.meta["frame"] == 3
    assert ed.meta["height_cm"] == 180.0 and ed.meta["weight_kg"] == 75.5 and ed.meta["group"] == "NOR"
    assert ed.image.shape == (5, 24, 20)  # (Z, Y, X)
    assert ed.spacing_mm == pytest.approx((10.0, 1.4, 1.5))
    assert ed.label is not None and (ed.label == 3).sum() == 5 * 6 * 3
    # (z, y, x) -> LPS: x index grows to the left? RAS +x = right, so L = -x*1.5
    assert ed.affine is not None
    np.testing.assert_allclose(ed.affine[:3, 2], [-1.5, 0, 0])
    np.testing.assert_allclose(ed.affine[:3, 0], [0, 0, 10.0])
    assert len(load_acdc(tmp_path / "training")) == 2
    assert len(load_acdc(patient)) == 2


def test_acdc_header_spacing_not_the_affine(tmp_path: Path) -> None:
    """Files like ACDC's (sform diag(-1, -1, 1), qform 0): the spacing is pixdim, the affine keeps the orientation."""
    root = write_acdc_release(tmp_path / "acdc", pixel_spacing=1.8, slice_step=10.0)
    path = root / "training" / "patient001" / "patient001_frame01.nii.gz"
    arr, aff = nifti_to_zyx(path)
    assert arr.shape == (4, 48, 48)
    # (z, y, x) columns; RAS (-1, -1, 1) -> LPS (+1, +1, +1), scaled by pixdim
    np.testing.assert_allclose(aff[:3, :3], np.array([[0, 0, 1.8], [0, 1.8, 0], [10.0, 0, 0]]), rtol=1e-6)
    ed, es = read_acdc_patient(root / "training" / "patient001")
    assert ed.spacing_mm == pytest.approx((10.0, 1.8, 1.8)) and es.spacing_mm == ed.spacing_mm
    assert ed.meta["height_cm"] == 172.0 and ed.meta["weight_kg"] == 70.5


def test_acdc_generated_release_frames_and_splits(tmp_path: Path) -> None:
    root = write_acdc_release(tmp_path / "acdc")
    ed, es = read_acdc_patient(root / "training" / "patient090")
    assert (ed.meta["frame"], es.meta["frame"]) == (4, 11)  # ED is not frame01: read from Info.cfg
    assert (ed.phase, es.phase) == (CardiacPhase.ED, CardiacPhase.ES)
    assert len(load_acdc(root)) == 6  # release root: every patient of training/
    assert len(load_acdc(root / "training")) == 6
    assert {c.patient_id for c in load_acdc(root, split="train")} == {"patient001", "patient090"}
    assert {c.patient_id for c in load_acdc(root / "training", split="val")} == {"patient061"}  # splits.csv beside
    assert [c.case_id for c in load_acdc(root, patients=["patient061"])] == ["patient061_ED", "patient061_ES"]
    with pytest.raises(ConfigError, match="no patient in split 'test'"):
        load_acdc(root, split="test")
    with pytest.raises(ConfigError, match="none of the patients"):
        load_acdc(root, split="val", patients=["patient001"])
    with pytest.raises(ConfigError, match="single ACDC patient folder"):
        load_acdc(root / "training" / "patient001", split="val")
    (root / "splits.csv").write_text("patient,group,split\npatient001,DCM,train\npatient002,DCM,val\n")
    with pytest.raises(ConfigError, match="missing"):
        load_acdc(root, split="val")
    (root / "splits.csv").unlink()
    with pytest.raises(ConfigError, match="no splits.csv"):
        load_acdc(root, split="val")


def test_acdc_release_errors(tmp_path: Path) -> None:
    (tmp_path / "patient001").mkdir()
    with pytest.raises(ConfigError, match="Info.cfg"):
        read_acdc_patient(tmp_path / "patient001")
    with pytest.raises(ConfigError, match="no patientNNN"):
        load_acdc(tmp_path / "patient001")
    with pytest.raises(ConfigError, match="not an ACDC HDF5"):
        read_acdc_h5(tmp_path / "foo.h5")


def test_group_and_patient_split() -> None:
    assert acdc_group("patient005") == "DCM" and acdc_group("patient090") == "RV" and acdc_group("x") == ""
    ids = [f"p{i:03d}" for i in range(200)]
    s1 = split_by_patient(ids, (0.7, 0.3))
    s2 = split_by_patient(list(reversed(ids)), (0.7, 0.3))
    assert s1 == s2  # deterministic, order-independent
    frac = sum(v == "train" for v in s1.values()) / len(ids)
    assert 0.6 < frac < 0.8
