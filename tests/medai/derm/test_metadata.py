"""Patient metadata for the fused skin-lesion model: parsing, encoding with missing indicators, field dropout,
cohort columns, and the predictor's fused and image-only paths."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from medai.derm.cohort import ImageCohort
from medai.derm.metadata import MetadataEncoder, drop_fields, parse_age
from medai.derm.preprocess import dihedral_views
from medai.errors import InputValidationError
from medai.inference.predictor import Predictor
from tests.medai.derm.conftest import encode, lesion_like, make_meta_package


@pytest.mark.parametrize(("raw", "years"), [(54, 54.0), ("54", 54.0), ("045Y", 45.0), ("006M", 0.5), (None, None),
                                             ("unknown", None), (float("nan"), None)])
def test_ages_parse_from_numbers_and_dicom_age_strings(raw: object, years: float | None) -> None:
    assert parse_age(raw) == years


@pytest.mark.parametrize("raw", ["old", "300", -4, "12X"])
def test_bad_ages_are_refused_with_the_field(raw: object) -> None:
    with pytest.raises(InputValidationError) as exc:
        parse_age(raw)
    assert exc.value.details[0]["field"] == "age"


def test_encoding_marks_missing_fields_and_unknown_values() -> None:
    enc = MetadataEncoder.fit([{"age": 40, "sex": "male", "site": "back"}, {"age": None, "sex": "f", "site": "face"}])
    assert enc.fields == ["age", "sex", "site"] and enc.site == ["back", "face"]
    assert enc.dim == 2 + 3 + 3
    full, notes = enc.encode({"age": "060Y", "sex": "F", "site": "face"})
    assert np.allclose(full, [0.6, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0]) and notes == []
    none, _ = enc.encode(None)
    assert none.tolist() == enc.encode_missing().tolist() == [0, 1, 0, 0, 1, 0, 0, 1]
    odd, notes = enc.encode({"site": "elbow"})
    assert odd[-1] == 1.0 and "elbow" in notes[0]
    assert enc.missing_mask().sum() == 3


def test_field_dropout_hides_whole_fields_only() -> None:
    enc = MetadataEncoder(fields=["age", "sex", "site"], site=["back", "face"])
    x = torch.from_numpy(enc.encode_many([{"age": 50, "sex": "male", "site": "back"}] * 400))
    out = drop_fields(x, enc.field_slices(), p=0.5, generator=torch.Generator().manual_seed(0))
    for start, stop in enc.field_slices():
        block = out[:, start:stop]
        hidden = block[:, -1] == 1
        assert 0.4 < hidden.float().mean() < 0.9  # p + whole-record drops
        assert torch.all(block[hidden, :-1] == 0) and torch.equal(block[~hidden], x[~hidden, start:stop])
    assert torch.equal(drop_fields(x, enc.field_slices(), p=0.0), x)


def test_csv_cohorts_read_metadata_columns_by_field_or_ham10000_name(tmp_path: Path) -> None:
    for i in range(2):
        (tmp_path / f"{i}.png").write_bytes(encode(lesion_like(40, 40, seed=i)))
    cols = {"image": ["0.png", "1.png"], "label": ["a", "b"], "age_approx": ["45", ""],
            "sex": ["male", "female"], "localization": ["back", "unknown"]}
    pd.DataFrame(cols).to_csv(tmp_path / "l.csv", index=False)
    c = ImageCohort.from_csv(tmp_path / "l.csv")
    assert c.metadata is not None and c.metadata[0] == {"age": "45", "sex": "male", "site": "back"}
    assert c.metadata[1]["age"] is None
    assert c.subset([1]).metadata == [c.metadata[1]]
    pd.DataFrame({"image": ["0.png"], "label": ["a"]}).to_csv(tmp_path / "bare.csv", index=False)
    assert ImageCohort.from_csv(tmp_path / "bare.csv").metadata is None


def test_dihedral_views_are_distinct_flips_and_rotations() -> None:
    x = torch.arange(16.0).view(1, 1, 4, 4)
    views = dihedral_views(x, 8)
    assert len(views) == 8 and len({tuple(v.flatten().tolist()) for v in views}) == 8
    assert len(dihedral_views(x, 1)) == 1 and torch.equal(dihedral_views(x, 1)[0], x)


def test_fused_predictor_uses_metadata_and_keeps_the_image_only_path(tmp_path: Path) -> None:
    pred = Predictor.from_package(make_meta_package(tmp_path / "pkg"))
    img = encode(lesion_like(60, 80, seed=1))
    alone = pred.predict(img)
    fused = pred.predict(img, metadata={"age": 70, "sex": "male", "site": "back"})
    assert alone.extras["metadata_used"] == [] and "metadata_absent" in [f.code for f in alone.flags]
    assert fused.extras["metadata_used"] == ["age", "sex", "site"]
    pa = np.array([c.probability for c in alone.classes])
    pf = np.array([c.probability for c in fused.classes])
    assert abs(pa.sum() - 1) < 1e-6 and np.abs(pa - pf).max() > 1e-4
    assert fused.extras["saliency_method"] == "grad-cam"
    assert fused.extras["saliency_implementation"] == "captum.attr.LayerGradCam"
    sal = fused.extras["saliency"]
    assert sal.shape == (60, 80) and 0 <= sal.min() and sal.max() <= 1
    # the batched evaluation path gives the same numbers as one-by-one prediction, fused and image-only
    from medai.derm.image import load_skin_image

    pixels = [load_skin_image(img).pixels]
    pb, ib = pred.predict_proba_batch(pixels, [{"age": 70, "sex": "male", "site": "back"}], image_only=True)
    assert np.allclose(pb[0], pf, atol=1e-5) and np.allclose(ib[0], pa, atol=1e-5)


def test_ham10000_cohort_carries_age_sex_and_site() -> None:
    from medai.settings import find_data_dir

    d = find_data_dir()
    root = d / "derm" / "ham10000" if d else None
    if root is None or not (root / "HAM10000_metadata.csv").is_file():
        pytest.skip("HAM10000 not found under the data dir (set MEDAI_DATA_DIR)")
    c = ImageCohort.from_ham10000(root)
    assert c.metadata is not None and set(c.metadata[0]) == {"age", "sex", "site"}
    enc = MetadataEncoder.fit(c.metadata)
    assert "back" in enc.site and "unknown" not in enc.site and enc.fields == ["age", "sex", "site"]


def test_ham10000_repackaged_as_labels_csv_gives_the_same_cohort_and_split(tmp_path: Path) -> None:
    """The any-disease path reads HAM10000 in the hospital layout exactly as the dedicated loader does: same images,
    labels, lesion groups, metadata and therefore the same lesion-grouped split."""
    from medai.derm.cohort import group_split
    from medai.settings import find_data_dir

    d = find_data_dir()
    root = d / "derm" / "ham10000" if d else None
    if root is None or not (root / "HAM10000_metadata.csv").is_file():
        pytest.skip("HAM10000 not found under the data dir (set MEDAI_DATA_DIR)")
    ham = ImageCohort.from_ham10000(root)
    csv = ImageCohort.from_csv(ham.to_labels_csv(tmp_path / "labels.csv"), class_names=ham.class_names)
    assert [p.resolve() for p in csv.paths] == [p.resolve() for p in ham.paths]
    assert csv.labels == ham.labels and csv.groups == ham.groups
    enc = MetadataEncoder.fit(ham.metadata)
    assert np.array_equal(enc.encode_many(csv.metadata), enc.encode_many(ham.metadata))
    a, b = group_split(ham.labels, ham.groups), group_split(csv.labels, csv.groups)
    assert all(np.array_equal(a[k], b[k]) for k in a)
