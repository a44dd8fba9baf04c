"""The analysis job calls these renderers: with a (random-weight) predictor every file is written, none flagged,
and the SEG holds the prediction's own label map at its ED/ES frames."""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import numpy as np
import torch

from medai.cardiac.analysis import run_cine_analysis
from medai.dicom.ingest import ingest
from medai.dicom.phantoms import make_cine_sax_study
from medai.inference.predictor import Predictor
from medai.reports.json_report import read_json
from medai.reports.seg import segment_numbers
from tests.medai.cardiac.helpers import make_tiny_package


def test_run_cine_analysis_writes_every_rendering(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    predictor = Predictor.from_package(make_tiny_package(tmp_path / "pkg"))
    phantom = make_cine_sax_study(n_slices=4, n_phases=5, rows=48, cols=40, pixel_spacing=2.0, seed=3)
    study = ingest(phantom.to_bytes()).studies[0]
    out = run_cine_analysis(study, tmp_path / "out", predictor)
    assert out.render_errors == {}
    assert not [f for f in out.report.flags if f.code.startswith("render_")]
    for kind, name in (("json", "report.json"), ("seg", "seg.dcm"), ("sr", "sr.dcm"), ("pdf", "report.pdf")):
        assert out.files[kind] == tmp_path / "out" / name and out.files[kind].stat().st_size > 0
    figures = {p.name for p in (tmp_path / "out" / "figures").iterdir()}
    assert {"overlay_ed.png", "overlay_es.png", "volume_curve.png"} <= figures
    assert ("bullseye.png" in figures) == bool(out.prediction.extras["wall_thickness_mm"])
    assert read_json(out.files["json"]).report_id == out.report.report_id
    lm = out.prediction.label_maps["cine_sax"]
    seg = hd.seg.segread(out.files["seg"])
    numbers = segment_numbers(lm)
    for t in {out.prediction.extras["ed_frame"], out.prediction.extras["es_frame"]}:
        px = seg.get_pixels_by_source_instance(list(lm.volume.source_sop_uids[t]), combine_segments=True,
                                               relabel=False)
        back = np.zeros_like(px, dtype=np.uint8)
        for name, n in numbers.items():
            back[px == n] = lm.label(name).value
        np.testing.assert_array_equal(back, lm.volume.array[t])
    sr = hd.sr.srread(out.files["sr"])
    assert sr.StudyInstanceUID == study.StudyInstanceUID
