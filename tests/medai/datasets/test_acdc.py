"""ACDC adapters: the HDF5 form on real data, and the official NIfTI release layout on a generated patient folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medai.datasets.acdc import ACDC_LABELS, acdc_group, load_acdc, read_acdc_h5, read_acdc_patient, read_info_cfg
from medai.datasets.base import CardiacPhase, split_by_patient
from medai.errors import ConfigError


def test_acdc_h5_real_shapes_and_labels(data_dir: Path) -> None:
    folder = data_dir / "cardiac" / "acdc" / "val"
    ed = read_acdc_h5(folder / "patient001_frame01.h5")
    es = read_acdc_h5(folder / "patient001_frame02.h5")
    assert ed.phase is CardiacPhase.ED and es.phase is CardiacPhase.ES
    assert ed.patient_id == es.patient_id == "patient001"
    assert ed.image.dtype == np.float32 and ed.image.ndim == 3
    assert ed.label is not None and ed.label.shape == ed.image.shape and ed.label.dtype == np.uint8
    assert set(np.unique(ed.label)) == {0, *ACDC_LABELS.values()}
    # intensities are the original min-max normalised ones (image * scale)
    assert 0.0 <= ed.image.min() and ed.image.max() <= 1.0 + 1e-6
    # the LV cavity shrinks from ED to ES (patient001 is DCM but still contracts)
    assert (es.label == ACDC_LABELS["lv"]).sum() < (ed.label == ACDC_LABELS["lv"]).sum()
    # blood pool (LV cavity) is brighter than myocardium on bSSFP cine
    assert ed.image[ed.label == 3].mean() > ed.image[ed.label == 2].mean()
    assert ed.meta["group"] == "DCM" and ed.spacing_mm is None


def test_acdc_h5_folder_counts(data_dir: Path) -> None:
    cases = load_acdc(data_dir / "cardiac" / "acdc" / "val")
    assert len(cases) == 20
    assert len({c.patient_id for c in cases}) == 10
    assert {c.phase for c in cases} == {CardiacPhase.ED, CardiacPhase.ES}
    groups = [c.meta["group"] for c in cases if c.phase is CardiacPhase.ED]
    assert sorted(set(groups)) == ["DCM", "HCM", "MINF", "NOR", "RV"] and all(groups.count(g) == 2 for g in groups)


def test_acdc_train_val_disjoint(data_dir: Path) -> None:
    root = data_dir / "cardiac" / "acdc"
    train = {p.name.split("_")[0] for p in (root / "train").glob("*.h5")}
    val = {p.name.split("_")[0] for p in (root / "val").glob("*.h5")}
    assert len(train) == 70 and len(val) == 10 and not train & val


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
