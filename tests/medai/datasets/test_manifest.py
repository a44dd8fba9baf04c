"""Generic manifest: CSV/JSON round trip, validation (patient-level splits), loading arrays."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medai.datasets.manifest import Manifest, ManifestEntry, load_manifest_cases, read_manifest, write_manifest
from medai.errors import ConfigError


def _entries() -> list[ManifestEntry]:
    return [
        ManifestEntry(case="a_ED", image="a_ed.npy", label="a_ed_gt.npy", split="train", site="H1", patient="a",
                      phase="ED"),
        ManifestEntry(case="a_ES", image="a_es.npy", label="", split="train", site="H1", patient="a", phase="ES"),
        ManifestEntry(case="b_ED", image="b.nii.gz", label="b_gt.nii.gz", split="val", site="H2"),
    ]


@pytest.mark.parametrize("suffix", [".csv", ".json"])
def test_manifest_round_trip(tmp_path: Path, suffix: str) -> None:
    m = Manifest(entries=_entries())
    path = write_manifest(m, tmp_path / f"manifest{suffix}")
    back = read_manifest(path)
    assert back == m
    assert [e.case for e in back.split("train")] == ["a_ED", "a_ES"]
    assert back.entries[2].patient == "b_ED"  # defaults to the case id


def test_manifest_rejects_patient_in_two_splits(tmp_path: Path) -> None:
    p = tmp_path / "m.csv"
    p.write_text("case,image,split,patient\nx1,x1.npy,train,x\nx2,x2.npy,val,x\n")
    with pytest.raises(ConfigError, match="splits must be made by patient"):
        read_manifest(p)
    p.write_text("case,split\nx1,train\n")
    with pytest.raises(ConfigError, match="case, image"):
        read_manifest(p)


def test_manifest_loads_cases(tmp_path: Path) -> None:
    import nibabel as nib

    rng = np.random.default_rng(0)
    img = rng.random((3, 8, 9)).astype(np.float32)
    lab = (img > 0.5).astype(np.uint8) * 3
    np.save(tmp_path / "a_ed.npy", img)
    np.save(tmp_path / "a_ed_gt.npy", lab)
    np.save(tmp_path / "a_es.npy", img)
    nib.save(nib.Nifti1Image(np.transpose(img, (2, 1, 0)), np.diag([1.2, 1.3, 8.0, 1.0])), tmp_path / "b.nii.gz")
    nib.save(nib.Nifti1Image(np.transpose(lab, (2, 1, 0)), np.diag([1.2, 1.3, 8.0, 1.0])), tmp_path / "b_gt.nii.gz")
    path = write_manifest(Manifest(entries=_entries()), tmp_path / "m.json")
    train = load_manifest_cases(path, split="train")
    assert [c.case_id for c in train] == ["a_ED", "a_ES"]
    np.testing.assert_array_equal(train[0].label, lab)
    assert train[1].label is None and train[0].meta["site"] == "H1"
    (val,) = load_manifest_cases(path, split="val")
    np.testing.assert_allclose(val.image, img)
    np.testing.assert_array_equal(val.label, lab)
    assert val.spacing_mm == pytest.approx((8.0, 1.3, 1.2))
