"""report.pdf and the figures: structure and content checks (the pictures were looked at by a person)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medai.reports.overlay import crop_box, overlay_png, pick_slices
from medai.reports.pdf import FIGURES, build_pdf, format_value
from medai.reports.plots import bullseye_png, volume_curve_png
from tests.medai.reports.conftest import Case


def _png(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def test_pdf_pages_and_text(case: Case, rendered: dict[str, Path]) -> None:
    pypdf = pytest.importorskip("pypdf", reason="pypdf not installed (pip install pypdf)")
    reader = pypdf.PdfReader(str(rendered["pdf"]))
    assert len(reader.pages) == 2
    text = " ".join(page.extract_text() for page in reader.pages)
    flat = " ".join(text.split())
    assert "RESEARCH USE ONLY" in flat
    assert case.report.patient_id in flat and "heart_mr_cine_seg 9.8.7-test" in flat
    for name in ("lv_edv", "lv_ef", "rv_ef"):
        m = next(m for m in case.report.measurements if m.name == name)
        assert m.code.meaning in flat and format_value(m.value) in flat
    low = [m for m in case.report.measurements if m.flag == "low"]
    assert low and "LOW" in flat  # abnormal flags are spelled out (and highlighted)
    for f in case.report.flags:
        assert f.code in flat
    assert "Kawel-Boehm" in flat


def test_pdf_embeds_the_figures_and_saves_them(rendered: dict[str, Path]) -> None:
    figures = rendered["figures"]
    for name in FIGURES:
        img = _png((figures / f"{name}.png").read_bytes())
        assert img.width >= 300 and img.height >= 200, name
    pdf = rendered["pdf"].read_bytes()
    assert pdf.count(b"/Subtype /Image") >= len(FIGURES)


def test_pdf_from_report_alone(case: Case) -> None:
    """Without the prediction there are no overlays, but the curve and bullseye come from the report."""
    pdf = build_pdf(case.report, figures=None)
    assert pdf.startswith(b"%PDF") and pdf.count(b"/Subtype /Image") == 0
    from medai.reports.pdf import report_figures

    assert set(report_figures(case.report)) == {"volume_curve", "bullseye"}


def test_overlay_draws_segments_in_their_colours(case: Case) -> None:
    lm = case.label_map
    img = case.prediction.extras["image"]
    ed = case.prediction.extras["ed_frame"]
    zs = pick_slices(lm.volume.array[ed], 6)
    assert zs == sorted(zs) and all(lm.volume.array[ed, z].any() for z in zs)
    data = overlay_png(img, lm, ed, title="ED")
    rgb = np.asarray(_png(data).convert("RGB")).reshape(-1, 3).astype(int)
    for seg in lm.labels:  # each outline colour appears exactly
        assert (np.abs(rgb - np.asarray(seg.color)).sum(1) == 0).sum() > 20, seg.name
    y0, y1, x0, x1 = crop_box(lm.volume.array)
    assert 0 <= y0 < y1 <= lm.volume.array.shape[-2] and 0 <= x0 < x1 <= lm.volume.array.shape[-1]


def test_plots_handle_missing_data() -> None:
    assert _png(bullseye_png({1: 8.0, "7": 11.5})).width > 300  # other segments drawn as n/a
    assert _png(volume_curve_png({"times_ms": [], "lv_ml": []})).width > 300
    curve = {"times_ms": [0.0, 100.0, 200.0], "lv_ml": [120.0, 50.0, 110.0], "rv_ml": [130.0, 60.0, 125.0]}
    assert _png(volume_curve_png(curve, ed_frame=0, es_frame=1)).height > 200
