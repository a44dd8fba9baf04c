"""Real pixels through the real path: EMIDEC slices of one case wrapped into an LGE DICOM series (headers
generated here, stated spacing 1.5 mm in-plane, 8 mm slices) -> ``medai analyze`` with the shipped
``heart_mr_lge_seg`` -> the scar report, and the SEG reads back equal to the label map."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

PIXEL_MM, SLICE_MM = 1.5, 8.0
CASE = "Case_P010"  # held out of the shipped model (fold 0; see its split.json)


def _wrap(data_dir: Path, out: Path, case: str = CASE):  # noqa: ANN202
    from medai.datasets.emidec import read_emidec_case
    from medai.dicom.phantoms import dataset_to_bytes, lge_series_datasets

    root = data_dir / "cardiac" / "emidec"
    if not (root / "images").is_dir():
        pytest.skip(f"EMIDEC not found under {root}")
    c = read_emidec_case(root, case)
    datasets, _ = lge_series_datasets(np.rint(c.image).astype(np.uint16), 4242, PIXEL_MM, SLICE_MM)
    out.mkdir(parents=True)
    for i, ds in enumerate(datasets):
        (out / f"IM{i:03d}.dcm").write_bytes(dataset_to_bytes(ds))
    return c


def test_emidec_case_as_dicom_through_medai_analyze(data_dir: Path, tmp_path: Path) -> None:
    import highdicom as hd

    from medai.cli import app
    from medai.dicom.ingest import ingest
    from medai.dicom.volumes import build_volume
    from medai.inference.predictor import Predictor

    case = _wrap(data_dir, tmp_path / "study")
    res = CliRunner().invoke(app, ["analyze", str(tmp_path / "study"), "--out", str(tmp_path / "out")])
    assert res.exit_code == 0, f"{res.output}{res.exception}"
    doc = json.loads((tmp_path / "out" / "report.json").read_text())
    assert [s["kind"] for s in doc["sections"]] == ["lge_scar"]
    sec = doc["sections"][0]
    names = {(m["name"], (m.get("method_code") or {}).get("value")) for m in sec["measurements"]}
    assert ("lge_infarct_pct", "LGE-MODEL") in names and ("lge_infarct_pct", "LGE-NSD") in names
    assert ("lge_infarct_mass", "LGE-MODEL") in names  # spacing is known: grams
    assert sec["summary"]["remote_region"]["n_voxels"] > 0
    # the SEG reads back equal to the label map the predictor makes of the same series
    study = ingest(tmp_path / "study").studies[0]
    vol = build_volume(study.series[0])
    lm = Predictor.from_package("heart_mr_lge_seg").segment_volume(vol)
    seg = hd.seg.segread(tmp_path / "out" / "seg_lge.dcm")
    sops = [str(u) for u in lm.volume.source_sop_uids[0]]
    for lab in lm.labels:
        want = lm.volume.array == lab.value
        number = next((int(s.SegmentNumber) for s in seg.SegmentSequence if str(s.TrackingID) == lab.name), None)
        assert number is not None, lab.name
        got = seg.get_pixels_by_source_instance(source_sop_instance_uids=sops, segment_numbers=[number],
                                                combine_segments=False, skip_overlap_checks=True)[..., 0]
        assert np.array_equal(got.astype(bool), want), lab.name
    # and the model's myocardium is the case's, on real pixels (sanity, not a metric)
    gt_myo = case.label >= 2
    pred_myo = lm.volume.array >= 2
    dice = 2 * (gt_myo & pred_myo).sum() / (gt_myo.sum() + pred_myo.sum())
    assert dice > 0.6, dice
