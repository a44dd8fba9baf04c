"""Predictor plumbing with a tiny random package, the analysis job, the CLI, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from medai.cardiac.analysis import run_cine_analysis
from medai.cardiac.predictor import CineSegPredictor
from medai.dicom.ingest import ingest
from medai.dicom.phantoms import make_brain_mr, make_cine_sax_study
from medai.dicom.volumes import build_cine
from medai.domain.volume import Volume
from medai.errors import GeometryError, SeriesSelectionError
from medai.inference.predictor import Predictor
from medai.measurements import by_name
from medai.registry import PREDICTORS
from tests.medai.cardiac.helpers import phantom_labelmap

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def small_phantom():
    return make_cine_sax_study(n_slices=5, n_phases=6, rows=48, cols=40, pixel_spacing=1.7)


@pytest.fixture(scope="module")
def small_study(small_phantom):
    return ingest(small_phantom.to_bytes()).studies[0]


def test_registered_and_loaded_from_package(tiny_package: Path) -> None:
    assert PREDICTORS.get("cine_sax_seg") is CineSegPredictor
    pred = Predictor.from_package(tiny_package)
    assert isinstance(pred, CineSegPredictor)
    assert [lab.name for lab in pred.labels] == ["rv", "myo", "lv"]
    assert all(p.dtype == torch.float32 for p in pred.net.parameters())  # fp16 weights restored to fp32


def test_segment_volume_returns_source_geometry(tiny_package: Path, small_phantom) -> None:
    pred = Predictor.from_package(tiny_package)
    vol = Volume(array=small_phantom.image.astype(np.float32), affine=small_phantom.affine,
                 frame_times_ms=small_phantom.frame_times_ms)
    timings: dict[str, float] = {}
    lm = pred.segment_volume(vol, timings=timings)
    assert lm.volume.array.shape == vol.array.shape and lm.volume.array.dtype == np.uint8
    np.testing.assert_allclose(lm.volume.affine, vol.affine)
    assert set(np.unique(lm.volume.array)) <= {0, 1, 2, 3}
    assert {"preprocessing", "inference", "postprocessing"} <= set(timings)
    static = pred.segment_volume(vol.frame(0), resample=False)  # one (Z, Y, X) frame, grid as-is (ACDC HDF5)
    assert static.volume.array.shape == vol.array.shape[1:]


def test_predict_measures_and_flags(tiny_package: Path, small_study, small_phantom) -> None:
    pred = Predictor.from_package(tiny_package)
    out = pred.predict(small_study)
    lm = out.label_maps["cine_sax"]
    assert lm.volume.array.shape == small_phantom.labels.shape
    assert lm.volume.source_sop_uids is not None and len(lm.volume.source_sop_uids) == 6
    ex = out.extras
    assert len(ex["volume_curve"]["lv_ml"]) == 6 and set(ex["timings_s"]) >= {"inference", "measurement"}
    assert out.flags or out.measurements  # a random network: flagged and/or measured, never silent
    # the same measuring code on the exact labels gives the phantom's truth and no implausibility flag
    vol = build_cine(small_study.series[0])
    exact = pred.measure(small_study, small_study.series, vol, phantom_labelmap(small_phantom), {})
    m = by_name(exact.measurements)
    assert m["lv_ef"].value == pytest.approx(small_phantom.truth.lv_ef_pct)
    assert m["lv_mass"].value == pytest.approx(small_phantom.truth.lv_mass_g)
    assert (exact.extras["ed_frame"], exact.extras["es_frame"]) == (small_phantom.truth.ed_phase,
                                                                   small_phantom.truth.es_phase)
    assert not {"ef_implausible", "no_lv_found"} & {f.code for f in exact.flags}


def test_run_cine_analysis_writes_report_atomically(tiny_package: Path, small_study, tmp_path: Path) -> None:
    pred = Predictor.from_package(tiny_package)
    out_dir = tmp_path / "result"
    out_dir.mkdir()
    (out_dir / "stale.txt").write_text("old run")
    stages: list[str] = []
    res = run_cine_analysis(small_study, out_dir, pred, progress=stages.append)
    assert stages[:3] == ["cine_function", "quality", "preprocessing"] and "rendering" in stages
    assert res.files["json"] == out_dir / "report.json"
    doc = json.loads((out_dir / "report.json").read_text())
    assert doc["schema_version"] and doc["study_instance_uid"] == small_study.StudyInstanceUID
    assert doc["summary"]["volume_curve"]["lv_ml"] and "rendering" in doc["summary"]["timings_s"]
    assert not (out_dir / "stale.txt").exists()  # replaced as a whole
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folders left


def test_failed_analysis_leaves_nothing(tiny_package: Path, tmp_path: Path) -> None:
    brain = ingest(make_brain_mr().to_bytes()).studies[0]
    with pytest.raises(SeriesSelectionError):
        run_cine_analysis(brain, tmp_path / "out", Predictor.from_package(tiny_package))
    assert list(tmp_path.iterdir()) == []


def test_bad_input_no_cine_lists_the_series(tiny_package: Path) -> None:
    """A non-cardiac MR (brain T2) and a study without cine: a clear error naming what the study has."""
    brain = ingest(make_brain_mr().to_bytes()).studies[0]
    with pytest.raises(SeriesSelectionError) as exc:
        Predictor.from_package(tiny_package).predict(brain)
    msg = exc.value.message
    assert "cine_sax" in msg and "t2_tse_tra_brain" in msg


def test_bad_input_inconsistent_geometry(tiny_package: Path, small_phantom) -> None:
    datasets = [ds.copy() for ds in small_phantom.datasets]
    for ds in datasets[:6]:  # one slice position acquired with another matrix size
        ds.Rows, ds.Columns = 40, 48
        ds.PixelData = np.zeros((40, 48), np.uint16).tobytes()
    from medai.dicom.phantoms import dataset_to_bytes

    study = ingest([dataset_to_bytes(ds) for ds in datasets]).studies[0]
    with pytest.raises(GeometryError, match="matrix sizes differ"):
        Predictor.from_package(tiny_package).predict(study)


def test_cli_demo_and_analyze(tiny_package: Path, tmp_path: Path, small_phantom) -> None:
    from typer.testing import CliRunner

    from medai.cli import app

    runner = CliRunner()
    res = runner.invoke(app, ["demo", "--out", str(tmp_path / "demo"), "--model", str(tiny_package)])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "demo" / "analysis" / "report.json").is_file()
    assert "phantom study written" in res.output and "timings:" in res.output
    res = runner.invoke(app, ["demo", "--out", str(tmp_path / "dcm"), "--model", str(tiny_package),
                              "--phenotype", "dcm"])
    assert res.exit_code == 0, res.output
    assert "median heart of ACDC's DCM group" in res.output and "model vs phantom truth" in res.output
    bad = runner.invoke(app, ["demo", "--out", str(tmp_path / "x"), "--phenotype", "xyz"])
    assert bad.exit_code != 0 and "choose one of NOR, DCM, HCM, MINF, RV" in str(bad.exception)
    brain_dir = tmp_path / "brain"
    make_brain_mr(brain_dir)
    res = runner.invoke(app, ["analyze", str(brain_dir), "--out", str(tmp_path / "b"), "--model", str(tiny_package)])
    assert res.exit_code != 0 and isinstance(res.exception, SeriesSelectionError)


def test_roi_box_covers_the_heart_with_margin(tiny_package: Path) -> None:
    from medai.cardiac.predictor import ROI_MARGIN_MM
    from medai.geometry import InplaneResample

    pred = Predictor.from_package(tiny_package)
    p = make_cine_sax_study(n_slices=4, n_phases=3, rows=256, cols=256, pixel_spacing=1.25)
    vol = Volume(array=p.image.astype(np.float32), affine=p.affine, frame_times_ms=p.frame_times_ms)
    step = InplaneResample.to_spacing(vol, pred.config.target_spacing_mm)
    box = pred._roi(p.labels[0], step)
    assert box is not None
    y0, y1, x0, x1 = box
    div = pred.config.size_divisor
    assert (y1 - y0) % div == 0 and (x1 - x0) % div == 0
    heart = np.argwhere(p.labels.any(axis=(0, 1)))  # every frame's heart, source pixels
    sy, sx = step.scale()
    m = ROI_MARGIN_MM / pred.config.target_spacing_mm
    assert y0 <= (heart[:, 0].min() + 0.5) / sy - 0.5 - m + 1 and y1 >= (heart[:, 0].max() + 0.5) / sy - 0.5 + m - 1
    assert x0 <= (heart[:, 1].min() + 0.5) / sx - 0.5 - m + 1 and x1 >= (heart[:, 1].max() + 0.5) / sx - 0.5 + m - 1
    assert pred._roi(np.zeros_like(p.labels[0]), step) is None


def test_bad_input_cardiac_study_without_cine(tiny_package: Path) -> None:
    """An LGE-only cardiac study: the error names the LGE series it does have."""
    from medai.dicom.phantoms import make_lge_study

    study = ingest(make_lge_study().to_bytes()).studies[0]
    with pytest.raises(SeriesSelectionError) as exc:
        Predictor.from_package(tiny_package).predict(study)
    assert "lge" in exc.value.message and "It has:" in exc.value.message


def test_analysis_end_to_end_with_exact_segmentation(tiny_package: Path, small_phantom, small_study, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """With the phantom's exact labels in place of the network, the report holds the phantom's truth and the
    SEG/SR renderers (when installed) produce files that read back."""
    import pydicom

    pred = Predictor.from_package(tiny_package)
    exact = phantom_labelmap(small_phantom)

    def oracle(self, volume, **kwargs):  # type: ignore[no-untyped-def]
        return exact.__class__(volume=volume.with_array(exact.volume.array), labels=self.labels)

    monkeypatch.setattr(CineSegPredictor, "segment_volume", oracle)
    res = run_cine_analysis(small_study, tmp_path / "out", pred)
    m = {x.name: x.value for x in res.report.measurements}
    assert m["lv_ef"] == pytest.approx(small_phantom.truth.lv_ef_pct)
    # volumes use the affine read back from the DICOM (decimal strings): equal to 1e-5
    assert m["lv_edv"] == pytest.approx(small_phantom.truth.lv_edv_ml, rel=1e-5)
    assert m["lv_mass"] == pytest.approx(small_phantom.truth.lv_mass_g, rel=1e-5)
    doc = json.loads(res.files["json"].read_text())
    assert {x["name"] for x in doc["measurements"]} >= {"lv_ef", "lv_edv", "lv_mass"}
    for kind in ("seg", "sr"):
        if kind in res.files:
            ds = pydicom.dcmread(res.files[kind])
            assert ds.StudyInstanceUID == small_study.StudyInstanceUID
        else:
            assert any(f.code == f"render_{kind}_failed" for f in res.report.flags)
