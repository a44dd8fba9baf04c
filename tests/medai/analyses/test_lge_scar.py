"""LGE scar quantification: a phantom with known scar is reproduced exactly by the threshold methods; flags and
bad input; the analysis' SEG/SR/PDF/FHIR renderings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest

from medai.analyses import get_analysis
from medai.analyses.runner import run_study_analyses
from medai.cardiac.scar import Method, quantify, transmurality_bin, transmurality_by_segment
from medai.dicom.ingest import ingest
from medai.errors import SeriesSelectionError
from tests.medai.analyses.conftest import KnownLabels


def _masks(lab: np.ndarray) -> tuple[np.ndarray, ...]:
    return lab == 1, (lab >= 2), lab == 3, lab == 4


def test_threshold_methods_reproduce_the_phantom_scar_exactly(lge_phantom) -> None:  # noqa: ANN001
    study = ingest(lge_phantom.to_bytes()).studies[0]
    from medai.dicom.volumes import build_volume

    vol = build_volume(study.series[0])
    lab = lge_phantom.labels
    lv, myo, infarct, mvo = _masks(lab)
    truth_scar = infarct | mvo
    truth_pct = 100.0 * truth_scar.sum() / myo.sum()
    methods = [Method("model"), *(Method("nsd", {"n_sd": n}) for n in (2.0, 3.0, 5.0)),
               Method("fwhm", {"peak_percentile": 99.5})]
    voxel_ml = float(np.prod(vol.spacing)) / 1000
    results, remote = quantify(np.asarray(vol.array), myo, lv, infarct, mvo, vol.affine, voxel_ml, methods)
    truth_trans = transmurality_by_segment(truth_scar, myo, lv, vol.affine)
    assert remote.any() and not (remote & truth_scar).any()  # the automatic remote region holds no scar
    for r in results:
        assert np.array_equal(r.scar, truth_scar), r.method.key
        assert r.infarct_pct == pytest.approx(truth_pct, abs=1e-9)
        assert r.mvo_pct == pytest.approx(100.0 * mvo.sum() / myo.sum(), abs=1e-9)
        assert r.infarct_ml == pytest.approx(truth_scar.sum() * voxel_ml)
        assert r.transmurality_pct == truth_trans
    # the design: 60% transmural in the scarred sector; segments fully inside it read 60% +- ray discretisation
    full = [t for t in truth_trans.values() if t > 0]
    assert full and max(full) == pytest.approx(60.0, abs=12.0)
    assert results[0].segments_over_50 == sum(t > 50 for t in truth_trans.values()) >= 1


def test_transmurality_bins() -> None:
    assert [transmurality_bin(v) for v in (0, 0.4, 25, 25.1, 50, 60, 75.5, 100)] == [
        "0", "1-25", "1-25", "26-50", "26-50", "51-75", "76-100", "76-100"]


def _run(phantom, tmp_path: Path, labels=None):  # noqa: ANN001, ANN202
    study = ingest(phantom.to_bytes()).studies[0]
    known = KnownLabels(phantom.labels if labels is None else labels)
    return study, run_study_analyses(study, tmp_path / "out", kinds=["lge_scar"], models=lambda ref: known)


def test_lge_analysis_report_seg_sr_pdf_fhir(lge_phantom, tmp_path: Path) -> None:  # noqa: ANN001
    study, out = _run(lge_phantom, tmp_path)
    sec = out.report.section("lge_scar")
    assert sec is not None and out.report.summary["analyses"] == ["lge_scar"]
    truth = lge_phantom.labels
    truth_pct = 100.0 * (truth >= 3).sum() / (truth >= 2).sum()
    by = {(m.name, m.method_code.value if m.method_code else "", tuple(sorted(m.parameters.items())), m.aha_segment): m
          for m in sec.measurements}
    for n_sd in (2.0, 3.0, 5.0):
        m = by[("lge_infarct_pct", "LGE-NSD", (("n_sd", n_sd),), None)]
        assert m.value == pytest.approx(truth_pct) and m.unit.code == "%" and "n_sd" not in m.name
    assert by[("lge_infarct_pct", "LGE-MODEL", (), None)].value == pytest.approx(truth_pct)
    assert by[("lge_infarct_mass", "LGE-MODEL", (), None)].unit.code == "g"
    assert any(m.name == "lge_transmurality" and m.aha_segment for m in sec.measurements)
    assert sec.summary["remote_region"]["n_voxels"] > 0
    assert set(out.files) >= {"json", "seg_lge", "sr", "pdf", "fhir"}
    # SEG reads back equal to the label map (myocardium, infarct, MVO and the cavity), in source geometry
    import highdicom as hd

    seg = hd.seg.segread(out.files["seg_lge"])
    names = {int(s.SegmentNumber): str(s.SegmentLabel) for s in seg.SegmentSequence}
    src = sorted(study.series[0].instances, key=lambda i: float(i.dataset.ImagePositionPatient[2]))
    del src
    from medai.reports.seg import segment_numbers

    numbers = segment_numbers(out.prediction.label_maps["lge_sax"])
    assert set(numbers) >= {"myo", "infarct", "mvo"} and len(names) == len(numbers)
    sops = out.prediction.label_maps["lge_sax"].volume.source_sop_uids[0]
    for name, number in numbers.items():
        arr = seg.get_pixels_by_source_instance(source_sop_instance_uids=[str(u) for u in sops],
                                                segment_numbers=[number], combine_segments=False,
                                                skip_overlap_checks=True)[..., 0]
        value = {"lv": 1, "myo": 2, "infarct": 3, "mvo": 4}[name]
        assert np.array_equal(arr.astype(bool), truth == value), name
    sr = pydicom.dcmread(out.files["sr"])
    text = str(sr)
    assert "LGE-NSD" in text and "lge_scar:" in text and "AHA" in text
    fhir = out.files["fhir"].read_text()
    assert "LGEINFP" in fhir
    assert out.files["pdf"].read_bytes().startswith(b"%PDF") and (out.files["pdf"].parent / "figures").is_dir()


def test_no_myocardium_is_flagged_not_measured(lge_phantom, tmp_path: Path) -> None:  # noqa: ANN001
    _, out = _run(lge_phantom, tmp_path, labels=np.zeros_like(lge_phantom.labels))
    sec = out.report.section("lge_scar")
    assert [f.code for f in sec.flags if f.severity == "error"] == ["no_myocardium_found"]
    assert not sec.measurements


def test_scar_outside_the_myocardium_and_coverage_are_flagged(lge_phantom, tmp_path: Path) -> None:  # noqa: ANN001
    lab = lge_phantom.labels.copy()
    lab[:, 2:6, 2:6] = 3  # an infarct blob in the corner, far from the heart
    lab[:2] = 0
    lab[5:] = 0  # myocardium on 3 slices only
    _, out = _run(lge_phantom, tmp_path, labels=lab)
    codes = {f.code for f in out.report.section("lge_scar").flags}
    assert "scar_outside_myocardium" in codes


def test_dark_blood_contrast_is_flagged(tmp_path: Path) -> None:
    from medai.dicom.phantoms import make_lge_scar_study

    ph = make_lge_scar_study(seed=5, blood=60.0)
    _, out = _run(ph, tmp_path)
    assert "lge_contrast_out_of_range" in {f.code for f in out.report.section("lge_scar").flags}


def test_long_axis_or_single_slice_lge_is_refused_with_the_series_named(tmp_path: Path) -> None:
    from medai.dicom.phantoms import make_lge_scar_study

    ph = make_lge_scar_study(seed=6, description="LGE_PSIR_4CH")
    study = ingest(ph.to_bytes()).studies[0]
    with pytest.raises(SeriesSelectionError, match="long-axis.*It has: #20 MR 'LGE_PSIR_4CH'"):
        run_study_analyses(study, tmp_path / "o", kinds=["lge_scar"], models=lambda ref: KnownLabels(ph.labels))
    assert not (tmp_path / "o").exists()
    single = make_lge_scar_study(seed=7, n_slices=1)
    study = ingest(single.to_bytes()).studies[0]
    with pytest.raises(SeriesSelectionError, match="1 slice position"):
        get_analysis("lge_scar").sax_series(study)


def test_a_study_without_lge_gets_a_clear_error(tmp_path: Path) -> None:
    from medai.dicom.phantoms import make_cine_sax_study

    study = ingest(make_cine_sax_study(rows=32, cols=32, n_slices=3, n_phases=4).to_bytes()).studies[0]
    with pytest.raises(SeriesSelectionError, match="lge_scar needs a lge series.*It has|has: #"):
        run_study_analyses(study, tmp_path / "o", kinds=["lge_scar"])
    assert not (tmp_path / "o").exists()


def test_a_reader_corrected_scar_is_measured_again(lge_phantom, tmp_path: Path) -> None:  # noqa: ANN001
    """A reader removes the infarct of one slice (via labels.npz, as the web app does): the model method's infarct
    percentage becomes exactly the corrected map's, the renderings follow, and the model is not run again."""
    from medai.analyses.base import Correction
    from medai.reports.labelmaps import read_labelmap

    study, out = _run(lge_phantom, tmp_path)
    lm = read_labelmap(out.files["labels"], "lge_scar", "lge_sax")
    arr = lm.volume.array.copy()
    z = int(np.argmax((arr == 3).sum(axis=(1, 2))))
    arr[z][arr[z] == 3] = 2  # infarct -> healthy myocardium on that slice
    corrected = type(lm)(volume=lm.volume.with_array(arr), labels=lm.labels)

    def no_model(ref: str):  # noqa: ANN202 -- a correction must not run the network
        return KnownLabels(np.zeros_like(arr))

    out2 = run_study_analyses(study, tmp_path / "v2", kinds=["lge_scar"], models=no_model,
                              corrections={"lge_scar": Correction({"lge_sax": corrected})})
    sec = out2.report.section("lge_scar")
    pct = next(m.value for m in sec.measurements
               if m.name == "lge_infarct_pct" and m.method_code and m.method_code.value == "LGE-MODEL")
    assert pct == pytest.approx(100.0 * (arr >= 3).sum() / (arr >= 2).sum())
    before = next(m.value for m in out.report.section("lge_scar").measurements
                  if m.name == "lge_infarct_pct" and m.method_code and m.method_code.value == "LGE-MODEL")
    assert pct < before
    assert "reader_corrected" in {f.code for f in sec.flags} and "seg_lge" in out2.files
    assert np.array_equal(read_labelmap(out2.files["labels"], "lge_scar", "lge_sax").volume.array, arr)
