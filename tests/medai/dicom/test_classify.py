"""Series classification by the rules in configs/series/rules.yaml, user overrides, and series selection."""

from __future__ import annotations

from pathlib import Path

import pytest

from medai.dicom.classify import DEFAULT_RULES, RuleSet, load_rules, select_series, series_features
from medai.dicom.ingest import ingest
from medai.dicom.phantoms import (
    make_brain_mr,
    make_cine_sax_study,
    make_ct_volume,
    make_echo_multiframe,
    make_lge_study,
    make_photo,
)
from medai.domain.study import SeriesType
from medai.errors import ConfigError, SeriesSelectionError

SMALL = {"n_slices": 4, "n_phases": 6, "rows": 32, "cols": 32, "pixel_spacing": 4.0}


def _types(phantom, **kw) -> list[SeriesType]:
    return [s.series_type for s in ingest(phantom.to_bytes(), **kw).studies[0].series]


@pytest.mark.parametrize(
    ("factory", "expected"),
    [
        (lambda: make_cine_sax_study(**SMALL), SeriesType.CINE_SAX),
        (lambda: make_cine_sax_study(**SMALL, series_description=""), SeriesType.CINE_SAX),  # by geometry
        (lambda: make_cine_sax_study(**SMALL, enhanced=True, series_description=""), SeriesType.CINE_SAX),
        (lambda: make_cine_sax_study(**{**SMALL, "n_slices": 1}, series_description="cine_4CH"), SeriesType.CINE_4CH),
        (lambda: make_cine_sax_study(**{**SMALL, "n_slices": 1}, series_description="CINE 2ch"), SeriesType.CINE_2CH),
        (lambda: make_cine_sax_study(**{**SMALL, "n_slices": 1}, series_description="LVOT cine"), SeriesType.CINE_3CH),
        (lambda: make_cine_sax_study(**{**SMALL, "n_slices": 1}, series_description=""), SeriesType.CINE_LAX),
        (lambda: make_lge_study(n_slices=3, rows=24, cols=24), SeriesType.LGE),
        (lambda: make_ct_volume(n_slices=3, rows=16, cols=16), SeriesType.CTA),
        (lambda: make_ct_volume(n_slices=3, rows=16, cols=16, contrast=False), SeriesType.CT),
        (lambda: make_echo_multiframe(n_frames=3, rows=10, cols=12), SeriesType.ECHO),
        (lambda: make_photo(rows=8, cols=8), SeriesType.PHOTOGRAPHIC),
        (lambda: make_photo(rows=8, cols=8, dermoscopic=True), SeriesType.DERMOSCOPIC),
        (lambda: make_brain_mr(n_slices=3, rows=16, cols=16), SeriesType.MR_OTHER),
    ],
)
def test_phantom_types(factory, expected: SeriesType) -> None:
    assert _types(factory()) == [expected]


def test_t1_map_by_description() -> None:
    ph = make_lge_study(n_slices=2, rows=16, cols=16)
    for ds in ph.datasets:
        ds.SeriesDescription = "MOLLI_T1_MAP_SAX"
        ds.ProtocolName = "MOLLI"
        del ds.InversionTime
    assert _types(ph) == [SeriesType.T1_MAP]


def test_per_slice_series_without_description_form_a_sax_stack() -> None:
    ph = make_cine_sax_study(**SMALL, one_series_per_slice=True, series_description="")
    for ds in ph.datasets:
        ds.SeriesDescription = ""
        ds.ProtocolName = ""
    assert _types(ph) == [SeriesType.CINE_SAX] * 4


def test_features() -> None:
    ph = make_cine_sax_study(**SMALL)
    f = series_features(ingest(ph.to_bytes()).studies[0].series[0])
    assert (f.n_slices, f.n_phases, f.n_frames, f.orientation, f.cardiac_gated) == (4, 6, 24, "oblique", True)


def test_user_rules_take_precedence_and_replace(tmp_path: Path) -> None:
    user = tmp_path / "rules.yaml"
    user.write_text(
        "rules:\n  - name: brain-as-unknown\n    series_type: unknown\n"
        "    match: {modality: [MR], description: brain}\n"
    )
    brain = make_brain_mr(n_slices=2, rows=8, cols=8)
    assert _types(brain, rules=user) == [SeriesType.UNKNOWN]
    cine = make_cine_sax_study(**SMALL)
    assert _types(cine, rules=user) == [SeriesType.CINE_SAX]  # defaults still apply after the user's rules
    user.write_text("replace: true\nrules:\n  - name: all-ct\n    series_type: ct\n    match: {}\n")
    assert _types(cine, rules=user) == [SeriesType.CT]


@pytest.mark.parametrize(
    "text",
    [
        "rules: [ {name: x, series_type: not_a_type, match: {}} ]",
        "rules: [ {name: x, series_type: ct, match: {description: '(unclosed'}} ]",
        "rules: [ {name: x, series_type: ct, match: {colour: red}} ]",
        "rules: [ {name: x, series_type: ct, match: {orientation: [diagonal]}} ]",
        "rules: {: nope",
    ],
)
def test_invalid_rules_raise_config_error(tmp_path: Path, text: str) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    with pytest.raises(ConfigError, match="bad.yaml"):
        load_rules(bad)


def test_default_rules_file_valid_and_cover_every_type() -> None:
    rules = RuleSet.model_validate(__import__("yaml").safe_load(DEFAULT_RULES.read_text()))
    covered = {r.series_type for r in rules.rules}
    assert covered >= set(SeriesType) - {SeriesType.UNKNOWN}


def test_select_series_names_what_the_study_has() -> None:
    study = ingest(make_brain_mr(n_slices=2, rows=8, cols=8).to_bytes()).studies[0]
    with pytest.raises(SeriesSelectionError) as exc:
        select_series(study, SeriesType.CINE_SAX)
    msg = exc.value.message
    assert "no cine_sax series" in msg and "t2_tse_tra_brain" in msg and "mr_other" in msg
    cine = ingest(make_cine_sax_study(**SMALL).to_bytes()).studies[0]
    assert select_series(cine, SeriesType.CINE_SAX) == cine.series


def test_non_image_and_pet_series() -> None:
    import copy

    from pydicom.uid import BasicTextSRStorage, PositronEmissionTomographyImageStorage, generate_uid

    from medai.dicom.phantoms import dataset_to_bytes

    brain = make_brain_mr(n_slices=2, rows=8, cols=8)
    pet = [copy.deepcopy(d) for d in brain.datasets]
    for ds in pet:
        ds.Modality, ds.SOPClassUID = "PT", PositronEmissionTomographyImageStorage
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
        ds.SeriesDescription = "PET FDG"
    sr = copy.deepcopy(brain.datasets[0])
    for kw in ("PixelData", "Rows", "Columns", "ImagePositionPatient", "ImageOrientationPatient"):
        delattr(sr, kw)
    sr.Modality, sr.SOPClassUID, sr.SOPInstanceUID = "SR", BasicTextSRStorage, generate_uid()
    sr.SeriesInstanceUID, sr.SeriesNumber = generate_uid(), 99
    sr.file_meta.MediaStorageSOPClassUID, sr.file_meta.MediaStorageSOPInstanceUID = sr.SOPClassUID, sr.SOPInstanceUID
    result = ingest([dataset_to_bytes(d) for d in [*pet, sr]])
    assert result.skipped == []  # an SR has no pixel data, and needs none
    assert sorted(s.series_type.value for s in result.studies[0].series) == ["pet", "sr"]


def test_incomplete_cine_with_declared_phases_is_sax_with_a_note() -> None:
    from medai.dicom.phantoms import dataset_to_bytes

    ph = make_cine_sax_study(**SMALL, series_description="")
    ed_es = [d for d in ph.datasets if float(d.TriggerTime) in (ph.frame_times_ms[0], ph.frame_times_ms[2])]
    for ds in ed_es:
        ds.SeriesDescription = ds.ProtocolName = ""
    (series,) = ingest([dataset_to_bytes(d) for d in ed_es]).studies[0].series
    assert series.series_type == SeriesType.CINE_SAX
    assert any("holds 2 of the 6 cardiac phases" in p for p in series.problems)
