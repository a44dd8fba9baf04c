"""Cohort loaders and the lesion-grouped split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medai.derm.cohort import ImageCohort, OmicsCohort, group_split
from medai.errors import ConfigError, InputValidationError
from tests.medai.derm.conftest import encode, lesion_like


def test_group_split_keeps_groups_whole_and_is_stratified_and_reproducible() -> None:
    rng = np.random.default_rng(1)
    groups = [f"L{i // 2}" for i in range(600)]  # two images per lesion
    glabel = {g: rng.choice(["a", "b", "c"], p=[0.7, 0.2, 0.1]) for g in set(groups)}
    labels = [glabel[g] for g in groups]
    s = group_split(labels, groups, (0.15, 0.15), seed=3)
    g = np.asarray(groups)
    parts = [set(g[s[k]]) for k in ("train", "val", "test")]
    assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
    assert sum(len(v) for v in s.values()) == 600
    for lab in "abc":
        frac = np.mean(np.asarray(labels)[s["test"]] == lab)
        assert frac == pytest.approx(np.mean(np.asarray(labels) == lab), abs=0.06)
    s2 = group_split(labels, groups, (0.15, 0.15), seed=3)
    assert all(np.array_equal(s[k], s2[k]) for k in s)


def test_ham10000_cohort_and_split_by_lesion(data_dir: Path) -> None:
    c = ImageCohort.from_ham10000(data_dir / "derm" / "ham10000")
    assert len(c) == 8011 and c.class_names[4] == "mel"
    s = group_split(c.labels, c.groups)
    g = np.asarray(c.groups)
    assert not set(g[s["train"]]) & set(g[s["test"]])
    assert set(np.asarray(c.labels)[s["test"]]) == set(c.class_names)  # every class in the test split


def test_hospital_image_cohort_from_csv(tmp_path: Path) -> None:
    for i in range(4):
        (tmp_path / f"img{i}.png").write_bytes(encode(lesion_like(40, 40, seed=i)))
    pd.DataFrame(
        {
            "image": [f"img{i}.png" for i in range(4)],
            "label": ["vitiligo", "lupus", "vitiligo", "bullous"],
            "group": ["p1", "p1", "p2", "p3"],
        }
    ).to_csv(tmp_path / "labels.csv", index=False)
    c = ImageCohort.from_csv(tmp_path / "labels.csv")
    assert c.class_names == ["bullous", "lupus", "vitiligo"] and c.groups[1] == "p1"
    assert list(c.y) == [2, 1, 2, 0]
    pd.DataFrame({"image": ["gone.png"], "label": ["x"]}).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(InputValidationError, match="missing"):
        ImageCohort.from_csv(tmp_path / "bad.csv")
    pd.DataFrame({"file": ["img0.png"]}).to_csv(tmp_path / "nocol.csv", index=False)
    with pytest.raises(ConfigError, match="no column 'image'"):
        ImageCohort.from_csv(tmp_path / "nocol.csv")


def test_hospital_omics_cohort_from_csv(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    pd.DataFrame(rng.normal(size=(6, 3)), index=[f"s{i}" for i in range(6)], columns=["g1", "g2", "g3"]).to_csv(
        tmp_path / "matrix.csv"
    )
    pd.DataFrame(
        {"sample": [f"s{i}" for i in range(5)], "label": ["lupus", "healthy"] * 2 + ["lupus"], "study": list("aabbc")}
    ).to_csv(tmp_path / "labels.csv", index=False)
    c = OmicsCohort.from_csv(tmp_path / "matrix.csv", tmp_path / "labels.csv")
    assert c.X.shape == (5, 3) and c.studies == list("aabbc") and c.class_names == ["healthy", "lupus"]


def test_cops_loaders(data_dir: Path) -> None:
    root = data_dir / "derm" / "omics_cops"
    pso = OmicsCohort.from_cops_psoriasis(root)
    assert pso.X.shape == (445, 12) and len(set(pso.studies)) == 10
    assert set(pso.labels) == set(pso.class_names)
    ad = OmicsCohort.from_cops_atopic_dermatitis(root)
    assert ad.X.shape == (260, 1815) and all(lab is None for lab in ad.labels)
