"""EMIDEC adapter: the PNG layout on a generated folder and on the real data; case-level, stratified folds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medai.datasets.emidec import (
    EMIDEC_LABELS,
    FOLD_SEED,
    case_group,
    emidec_case_ids,
    emidec_folds,
    fold_split,
    load_emidec,
    read_emidec_case,
)
from medai.errors import ConfigError


def _write_case(root: Path, case_id: str, n: int, shape: tuple[int, int] = (32, 40), seed: int = 0) -> None:
    from PIL import Image

    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "labels").mkdir(parents=True, exist_ok=True)
    for k in range(n):
        img = np.full(shape, k * 10, np.uint8) + rng.integers(0, 5, shape, dtype=np.uint8)
        lab = np.zeros(shape, np.uint8)
        lab[10:20, 10:20] = 2
        lab[13:17, 13:17] = 1
        if case_id.startswith("Case_P"):
            lab[10:12, 10:20] = 3
            lab[10, 14] = 4
        name = f"{case_id}_slice{k:03d}.png"
        Image.fromarray(img).save(root / "images" / name)
        Image.fromarray(lab).save(root / "labels" / name)


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "emidec"
    _write_case(root, "Case_N001", 3)
    _write_case(root, "Case_P002", 12)  # 12 slices: 010 and 011 must sort after 009
    return root


def test_generated_folder(folder: Path) -> None:
    assert emidec_case_ids(folder) == ["Case_N001", "Case_P002"]
    case = read_emidec_case(folder, "Case_P002")
    assert case.image.shape == case.label.shape == (12, 32, 40)  # type: ignore[union-attr]
    assert case.image.dtype == np.float32 and case.label.dtype == np.uint8  # type: ignore[union-attr]
    assert case.meta["slices"] == list(range(12)) and case.meta["group"] == "P"
    # sorted by KKK: the generated slice k has grey level ~10 k
    assert np.all(np.diff(case.image.mean(axis=(1, 2))) > 5)
    assert case.labels == EMIDEC_LABELS and case.spacing_mm is None and case.patient_id == "Case_P002"
    assert set(np.unique(case.label)) == {0, 1, 2, 3, 4}
    assert [c.case_id for c in load_emidec(folder, ["Case_N001"])] == ["Case_N001"]
    with pytest.raises(ConfigError, match="not in"):
        load_emidec(folder, ["Case_P999"])


def test_missing_mask_and_bad_folder(folder: Path, tmp_path: Path) -> None:
    (folder / "labels" / "Case_N001_slice001.png").unlink()
    with pytest.raises(ConfigError, match="no mask"):
        read_emidec_case(folder, "Case_N001")
    with pytest.raises(ConfigError, match="images/ and labels/"):
        emidec_case_ids(tmp_path)
    with pytest.raises(ConfigError):
        case_group("patient001")


def test_folds_by_case_stratified_and_deterministic() -> None:
    ids = [f"Case_N{i:03d}" for i in range(28)] + [f"Case_P{i:03d}" for i in range(52)]
    folds = emidec_folds(ids)
    assert folds == emidec_folds(list(reversed(ids)), seed=FOLD_SEED)  # order-independent, fixed seed
    assert set(folds) == set(ids) and set(folds.values()) == set(range(5))
    sizes = [sum(f == k for f in folds.values()) for k in range(5)]
    assert max(sizes) - min(sizes) <= 1
    for k in range(5):
        n = sum(1 for c, f in folds.items() if f == k and c.startswith("Case_N"))
        assert n in (5, 6)
    held_all: list[str] = []
    for k in range(5):
        train, held = fold_split(ids, k)
        assert not set(train) & set(held) and len(train) + len(held) == 80
        held_all += held
    assert sorted(held_all) == sorted(ids)  # every case held out exactly once
    train, held = fold_split(ids, 1, exclude_folds=[0])
    assert not {c for c, f in folds.items() if f == 0} & (set(train) | set(held))
    assert emidec_folds(ids, seed=1) != folds
    with pytest.raises(ValueError):
        fold_split(ids, 5)


def test_real_emidec(data_dir: Path) -> None:
    root = data_dir / "cardiac" / "emidec"
    if not root.is_dir():
        pytest.skip("EMIDEC not found under the data root")
    ids = emidec_case_ids(root)
    assert len(ids) == 80 and sum(c.startswith("Case_N") for c in ids) == 28
    case = read_emidec_case(root, "Case_P012" if "Case_P012" in ids else ids[-1])
    assert case.image.ndim == 3 and case.image.shape[1:] == (256, 256) and case.label is not None
    assert 5 <= case.image.shape[0] <= 10
    assert (case.label == EMIDEC_LABELS["infarct"]).any()
    # infarct is brighter than healthy myocardium on LGE
    assert case.image[case.label == 3].mean() > case.image[case.label == 2].mean()
    normal = read_emidec_case(root, ids[0])
    assert ids[0].startswith("Case_N") and not np.isin(normal.label, [3, 4]).any()
