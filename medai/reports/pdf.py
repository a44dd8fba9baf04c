"""``report.pdf``: the clinician-facing rendering of a cine CMR :class:`~medai.domain.prediction.Report` (reportlab).

Page 1: header (patient pseudonym, sex, study, model and version, report id and time, a RESEARCH USE ONLY banner),
the measurement table (value, UCUM unit, published reference range, flag; abnormal values highlighted), quality
flags (coloured by severity) and the cardiac phases used. Page 2: overlays of the segmentation at ED and ES, the
volume-time curve and the AHA bullseye of end-diastolic wall thickness, then the sources of the reference ranges.

Figures come from :mod:`medai.reports.overlay` and :mod:`medai.reports.plots`; the curve and the bullseye need
only the report (``summary``), the overlays need the prediction (image and label map).
"""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medai.domain.measurement import Flag, Measurement
from medai.domain.prediction import Report, Severity

if TYPE_CHECKING:
    from medai.domain.prediction import Prediction
    from medai.domain.study import Study

logger = logging.getLogger(__name__)

RESEARCH_USE = "RESEARCH USE ONLY - not for diagnostic use. Results must be reviewed by a qualified clinician."
#: Names of the figures (PNG) a cine report shows, in order.
FIGURES = ("overlay_ed", "overlay_es", "volume_curve", "bullseye")
_WALL_PREFIX = "lv_wall_thickness_aha"
_FLAG_COLOURS = {Flag.LOW: "#cfe2ff", Flag.HIGH: "#f8d0d0", Flag.NORMAL: "#ffffff", Flag.UNKNOWN: "#ffffff"}
_SEVERITY_COLOURS = {Severity.ERROR: "#b00020", Severity.WARNING: "#b35c00", Severity.INFO: "#33557a"}


def format_value(value: float) -> str:
    """A measured value with precision suited to its size (3 significant figures, at most 2 decimals)."""
    a = abs(value)
    if a >= 100:
        return f"{value:.0f}"
    if a >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def format_range(m: Measurement) -> str:
    """``"106 - 214 (adult male)"``, or an em dash when no published range applies."""
    rr = m.reference_range
    if rr is None:
        return "-"
    if rr.low is not None and rr.high is not None:
        text = f"{format_value(rr.low)} - {format_value(rr.high)}"
    elif rr.low is not None:
        text = f">= {format_value(rr.low)}"
    elif rr.high is not None:
        text = f"<= {format_value(rr.high)}"
    else:
        return "-"
    return f"{text} ({rr.population})" if rr.population else text


def report_figures(report: Report, prediction: Prediction | None = None, role: str = "cine_sax") -> dict[str, bytes]:
    """The PNG figures of a cine report: ``overlay_ed``, ``overlay_es`` (need the prediction), ``volume_curve``,
    ``bullseye`` (from the report summary). Figures whose inputs are missing are left out."""
    from medai.reports.overlay import crop_box, overlay_png
    from medai.reports.plots import bullseye_png, volume_curve_png

    out: dict[str, bytes] = {}
    summary = report.summary
    ex = prediction.extras if prediction is not None else {}
    ed = summary.get("ed_frame", ex.get("ed_frame"))
    es = summary.get("es_frame", ex.get("es_frame"))
    image = ex.get("image")
    label_map = prediction.label_maps.get(role) if prediction is not None else None
    if image is not None and label_map is not None and image.array.shape == label_map.volume.array.shape:
        box = crop_box(label_map.volume.array)
        times = image.frame_times_ms
        for name, t in (("ED", ed), ("ES", es)):
            if t is None:
                continue
            when = f", {times[int(t)]:.0f} ms" if times and int(t) < len(times) else ""
            out[f"overlay_{name.lower()}"] = overlay_png(image, label_map, int(t), box=box,
                                                         title=f"{name} (frame {int(t) + 1}{when})")
    curve = summary.get("volume_curve") or ex.get("volume_curve")
    if curve:
        out["volume_curve"] = volume_curve_png(curve, ed_frame=ed, es_frame=es)
    wall = summary.get("wall_thickness_mm") or ex.get("wall_thickness_mm")
    if wall:
        out["bullseye"] = bullseye_png(wall)
    return out


def styles() -> dict[str, Any]:
    """The paragraph styles of medai PDFs (``title``, ``h2``, ``body``, ``small``, ``cell``, ``banner``)."""
    from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet

    base = getSampleStyleSheet()
    return {
        "title": ParagraphStyle("t", parent=base["Title"], fontSize=16, spaceAfter=4, alignment=0),
        "h2": ParagraphStyle("h2", parent=base["Heading2"], fontSize=11.5, spaceBefore=8, spaceAfter=4),
        "body": ParagraphStyle("b", parent=base["BodyText"], fontSize=9, leading=11.5),
        "small": ParagraphStyle("s", parent=base["BodyText"], fontSize=7.5, leading=9.5, textColor="#444444"),
        "cell": ParagraphStyle("c", parent=base["BodyText"], fontSize=8.5, leading=10),
        "banner": ParagraphStyle("ban", parent=base["BodyText"], fontSize=9, leading=11, textColor="#ffffff",
                                 fontName="Helvetica-Bold"),
    }


def _esc(text: Any) -> str:
    from xml.sax.saxutils import escape

    return escape(str(text))


def _header(report: Report, st: dict[str, Any], title: str = "Cine CMR ventricular function report") -> list[Any]:
    from reportlab.lib import colors
    from reportlab.lib.units import mm
    from reportlab.platypus import Paragraph, Spacer, Table, TableStyle

    model = ", ".join(f"{m.name} {m.version}" for m in report.models) or "unknown"
    series = "; ".join(str(s.get("series_description") or s.get("series_instance_uid", "")) for s in report.series)
    sex = {"M": "male", "F": "female"}.get(report.patient_sex.upper()[:1], report.patient_sex or "unknown")
    rows = [
        ["Patient (pseudonym)", report.patient_id or "-", "Sex", sex],
        ["Study", report.study_instance_uid or "-", "Series", series or "-"],
        ["Model", model, "Report", f"{report.created:%Y-%m-%d %H:%M} UTC"],
        ["Report id", report.report_id, "Schema", report.schema_version],
    ]
    data = [[Paragraph(f"<b>{_esc(a)}</b>", st["cell"]), Paragraph(_esc(b), st["cell"]),
             Paragraph(f"<b>{_esc(c)}</b>", st["cell"]), Paragraph(_esc(d), st["cell"])] for a, b, c, d in rows]
    table = Table(data, colWidths=[32 * mm, 68 * mm, 18 * mm, 62 * mm])
    table.setStyle(TableStyle([
        ("BACKGROUND", (0, 0), (-1, -1), colors.HexColor("#f3f5f8")),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("BOX", (0, 0), (-1, -1), 0.5, colors.HexColor("#9aa5b1")),
        ("TOPPADDING", (0, 0), (-1, -1), 2), ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
    ]))
    banner = Table([[Paragraph(RESEARCH_USE, st["banner"])]], colWidths=[180 * mm])
    banner.setStyle(TableStyle([("BACKGROUND", (0, 0), (-1, -1), colors.HexColor("#b00020")),
                                ("TOPPADDING", (0, 0), (-1, -1), 3), ("BOTTOMPADDING", (0, 0), (-1, -1), 3)]))
    return [Paragraph(_esc(title), st["title"]), banner, Spacer(1, 3 * mm), table]


def _measurement_table(measurements: list[Measurement], st: dict[str, Any]) -> Any:
    from reportlab.lib import colors
    from reportlab.lib.units import mm
    from reportlab.platypus import Paragraph, Table, TableStyle

    head = ["Measurement", "Value", "Unit", "Reference range", "Flag"]
    data: list[list[Any]] = [[Paragraph(f"<b>{h}</b>", st["cell"]) for h in head]]
    style = [
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#dde3ea")),
        ("LINEBELOW", (0, 0), (-1, 0), 0.6, colors.HexColor("#6b7785")),
        ("LINEBELOW", (0, 1), (-1, -1), 0.25, colors.HexColor("#c8ced6")),
        ("ALIGN", (1, 1), (1, -1), "RIGHT"),
        ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
        ("TOPPADDING", (0, 0), (-1, -1), 2), ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
    ]
    for i, m in enumerate(measurements, start=1):
        abnormal = m.flag in (Flag.LOW, Flag.HIGH)
        meaning = m.code.meaning[:1].upper() + m.code.meaning[1:]
        value = format_value(m.value)
        flag = {Flag.LOW: "LOW", Flag.HIGH: "HIGH", Flag.NORMAL: "normal", Flag.UNKNOWN: "-"}[m.flag]
        if m.review:
            flag += " / review"
        bold = ("<b>", "</b>") if abnormal else ("", "")
        data.append([
            Paragraph(_esc(meaning), st["cell"]),
            Paragraph(f"{bold[0]}{value}{bold[1]}", st["cell"]),
            Paragraph(_esc(str(m.unit)), st["cell"]),
            Paragraph(_esc(format_range(m)), st["cell"]),
            Paragraph(f"{bold[0]}{flag}{bold[1]}", st["cell"]),
        ])
        if abnormal:
            style.append(("BACKGROUND", (0, i), (-1, i), colors.HexColor(_FLAG_COLOURS[m.flag])))
    table = Table(data, colWidths=[70 * mm, 16 * mm, 20 * mm, 58 * mm, 16 * mm], repeatRows=1)
    table.setStyle(TableStyle(style))
    return table


def _flags(report: Any, st: dict[str, Any]) -> list[Any]:
    from reportlab.platypus import Paragraph

    if not report.flags:
        return [Paragraph("No quality flags were raised.", st["body"])]
    out = []
    for f in report.flags:
        colour = _SEVERITY_COLOURS.get(f.severity, "#000000")
        out.append(Paragraph(f'<font color="{colour}"><b>{_esc(f.severity.value.upper())}</b></font> '
                             f"<b>{_esc(f.code)}</b>: {_esc(f.message)}", st["body"]))
    return out


def image(png: bytes, width: float) -> Any:
    """A reportlab image flowable of a PNG, ``width`` wide (points), aspect kept."""
    from reportlab.lib.utils import ImageReader
    from reportlab.platypus import Image

    w, h = ImageReader(io.BytesIO(png)).getSize()
    return Image(io.BytesIO(png), width=width, height=width * h / w)


def _footer(canvas: Any, doc: Any) -> None:
    import medai

    canvas.saveState()
    canvas.setFont("Helvetica", 7)
    canvas.setFillColorRGB(0.35, 0.35, 0.35)
    canvas.drawString(15 * 2.8346, 10 * 2.8346, f"medai {medai.__version__} - research use only - not for diagnosis")
    canvas.drawRightString(doc.pagesize[0] - 15 * 2.8346, 10 * 2.8346, f"page {doc.page}")
    canvas.restoreState()


@dataclass
class PdfPage:
    """One analysis' page of a study PDF: its report section, the analysis (for its table and story), figures."""

    section: Any
    analysis: Any = None
    figures: dict[str, bytes] = field(default_factory=dict)


def cine_story(section: Any, figures: Mapping[str, bytes]) -> list[Any]:
    """The cine-specific part of a page: the phases, the ED/ES overlays, volume curve and bullseye."""
    from reportlab.lib.units import mm
    from reportlab.platypus import KeepTogether, Paragraph, Spacer, Table, TableStyle

    st = styles()
    story: list[Any] = []
    s = section.summary
    if s.get("ed_frame") is not None:
        story.append(Paragraph("Cardiac phases", st["h2"]))
        story.append(Paragraph(
            f"End-diastole: frame {int(s['ed_frame']) + 1}; end-systole: frame {int(s['es_frame']) + 1} "
            f"(source: {_esc(s.get('phase_source') or 'LV volume curve')}). Frames are numbered from 1.", st["body"]))
    wall = [m for m in section.measurements if m.name.startswith(_WALL_PREFIX)]
    pics = [k for k in FIGURES if k in figures]
    if pics:
        story.append(Paragraph("Segmentation and function", st["h2"]))
        half = 88 * mm
        ov = [image(figures[k], half) for k in ("overlay_ed", "overlay_es") if k in figures]
        if ov:
            t = Table([ov], colWidths=[90 * mm] * len(ov))
            t.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("LEFTPADDING", (0, 0), (-1, -1), 1)]))
            story.append(t)
            story.append(Paragraph("Red: LV blood pool, green: LV myocardium, blue: RV blood pool (colours from the "
                                   "model's label table). Slices ordered as stored.", st["small"]))
            story.append(Spacer(1, 3 * mm))
        row = []
        widths = []
        if "volume_curve" in figures:
            row.append(image(figures["volume_curve"], 104 * mm))
            widths.append(106 * mm)
        if "bullseye" in figures:
            row.append(image(figures["bullseye"], 70 * mm))
            widths.append(74 * mm)
        if row:
            t = Table([row], colWidths=widths)
            t.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "MIDDLE"), ("LEFTPADDING", (0, 0), (-1, -1), 1)]))
            story.append(KeepTogether([t]))
        if wall:
            story.append(Paragraph(
                f"Wall thickness: {_esc(s.get('wall_thickness_model') or 'AHA 16-segment model')}; "
                f"{_esc(wall[0].method)}. Segments without myocardium are shown as n/a.", st["small"]))
    return story


def quality_story(section: Any, st: dict[str, Any]) -> list[Any]:
    """The quality gate's verdict of a section: a coloured banner (review required / acceptable), its reasons,
    and a table of the artefact scores, coverage and predicted Dice."""
    from reportlab.lib import colors
    from reportlab.lib.units import mm
    from reportlab.platypus import Paragraph, Spacer, Table, TableStyle

    q = getattr(section, "quality", None)  # a whole Report (single-analysis PDF) has no quality of its own
    if q is None:
        return []
    text = {"pass": "Image quality: acceptable", "review": "REVIEW REQUIRED before these values are used",
            "unusable": "IMAGES UNUSABLE"}[q.status.value]
    colour = {"pass": "#2e7d32", "review": "#e65100", "unusable": "#b00020"}[q.status.value]
    banner = Table([[Paragraph(f"<b>{_esc(text)}</b>", st["banner"])]], colWidths=[180 * mm])
    banner.setStyle(TableStyle([("BACKGROUND", (0, 0), (-1, -1), colors.HexColor(colour)),
                                ("TOPPADDING", (0, 0), (-1, -1), 3), ("BOTTOMPADDING", (0, 0), (-1, -1), 3)]))
    out: list[Any] = [banner]
    for f in q.findings:
        out.append(Paragraph(f"<b>{_esc(f.code)}</b>: {_esc(f.message)}", st["small"]))
    rows = [["Series", "Slices", "Good", *(a.replace("_", " ") for a in (q.series[0].artefacts if q.series else {}))]]
    for g in q.series:
        rows.append([g.series_type, str(g.n_slices), f"{100 * g.good_share:.0f}%",
                     *(f"{100 * a.share:.0f}% (max {a.max_probability:.2f})" for a in g.artefacts.values())])
    if len(rows) > 1:
        table = Table([[Paragraph(_esc(c), st["cell"]) for c in r] for r in rows])
        table.setStyle(TableStyle([("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#dde3ea")),
                                   ("LINEBELOW", (0, 0), (-1, -1), 0.25, colors.HexColor("#c8ced6"))]))
        out += [Spacer(1, 1 * mm), table]
    extra = []
    if q.coverage is not None:
        extra.append("missing slices: " + ", ".join(f"{k} p={v:.2f}" for k, v in q.coverage.items()))
    if q.predicted_dice:
        extra.append("predicted Dice: " + ", ".join(f"{k.upper()} {v:.2f}" for k, v in q.predicted_dice.items()))
    if q.reader_corrected:
        extra.append("segmentation corrected by a reader (no predicted Dice)")
    if extra:
        model = f" ({q.model.name} {q.model.version})" if q.model else ""
        out.append(Paragraph(_esc("; ".join(extra) + model), st["small"]))
    return [*out, Spacer(1, 2 * mm)]


def _page_story(page: PdfPage, st: dict[str, Any], title: bool) -> list[Any]:
    from reportlab.platypus import Paragraph

    section = page.section
    story: list[Any] = []
    if title:
        story.append(Paragraph(_esc(section.title or section.kind), st["title"]))
    story += quality_story(section, st)
    main = (page.analysis.table_measurements(section) if page.analysis is not None
            else [m for m in section.measurements if not m.name.startswith(_WALL_PREFIX)])
    if section_classes(section) and not main:  # a classification section: its story is the probabilities
        story += _flags(section, st)
        if page.analysis is not None:
            story += page.analysis.pdf_story(section, dict(page.figures), _KIT)
        return story
    story.append(Paragraph("Measurements", st["h2"]))
    if main:
        story.append(_measurement_table(main, st))
        n_abn = sum(m.flag in (Flag.LOW, Flag.HIGH) for m in main)
        story.append(Paragraph(
            f"{n_abn} value(s) outside the reference range are highlighted (blue: low, red: high). A dash means "
            "no verified published range is tabulated for that measurement.", st["small"]))
    else:
        story.append(Paragraph("No measurements: see the quality flags.", st["body"]))
    story.append(Paragraph("Quality flags", st["h2"]))
    story += _flags(section, st)
    if page.analysis is not None:
        story += page.analysis.pdf_story(section, dict(page.figures), _KIT)
    else:
        story += cine_story(section, page.figures)
    return story


def build_pdf(report: Report, figures: Mapping[str, bytes] | None = None, *,
              pages: list[PdfPage] | None = None) -> bytes:
    """The PDF of ``report`` as bytes: a header, then one page per analysis section.

    Args:
        report: the report (measurements, flags, summary with phases, curve and wall thickness).
        figures: PNG figures by name (:data:`FIGURES`) of a single-analysis report without ``pages``.
        pages: one :class:`PdfPage` per analysis (default: the report itself as one cine page).
    """
    from reportlab import rl_config
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.units import mm
    from reportlab.platypus import PageBreak, Paragraph, SimpleDocTemplate

    import medai

    # binary (zlib) streams, not ASCII85 text: reportlab's pure-Python ASCII85 encoder (its C accelerator is not
    # installed) took 0.28 s of a 0.42 s report, and the file is 20% smaller; every PDF reader decodes both
    rl_config.useA85 = 0

    if pages is None:
        pages = [PdfPage(section=report, figures=dict(figures or {}))]
    st = styles()
    title = pages[0].section.title if len(pages) == 1 and getattr(pages[0].section, "title", "") else (
        "CMR study report" if len(pages) > 1 else "Cine CMR ventricular function report")
    buf = io.BytesIO()
    doc = SimpleDocTemplate(buf, pagesize=A4, leftMargin=15 * mm, rightMargin=15 * mm, topMargin=13 * mm,
                            bottomMargin=16 * mm, title=title,
                            author=f"medai {medai.__version__}", subject=f"report {report.report_id}",
                            creator="medai")
    story: list[Any] = _header(report, st, title)
    for i, page in enumerate(pages):
        if i:
            story.append(PageBreak())
        story += _page_story(page, st, title=len(pages) > 1)
    sources = sorted({m.reference_range.source for m in report.measurements
                      if m.reference_range is not None and m.reference_range.source})
    if sources:
        story.append(Paragraph("Reference ranges", st["h2"]))
        story += [Paragraph(_esc(src), st["small"]) for src in sources]
    doc.build(story, onFirstPage=_footer, onLaterPages=_footer)
    return buf.getvalue()


def write_study_pdf(report: Report, pages: list[PdfPage], path: Path | str = "report.pdf",
                    figures_dir: Path | str | None = "figures") -> Path:
    """Write the study PDF (a page per analysis); figures are also saved as ``figures/<name>.png``
    (``figures/<kind>_<name>.png`` when several analyses have figures)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(build_pdf(report, pages=pages))
    if figures_dir is not None:
        folder = path.parent / figures_dir
        prefix = len(pages) > 1
        for page in pages:
            for name, png in page.figures.items():
                folder.mkdir(parents=True, exist_ok=True)
                (folder / (f"{page.section.kind}_{name}.png" if prefix else f"{name}.png")).write_bytes(png)
    logger.info("wrote %s (%d pages)", path, len(pages))
    return path


def write_pdf(
    report: Report,
    prediction: Prediction | None = None,
    study: Study | None = None,
    path: Path | str = "report.pdf",
    *,
    figures: Mapping[str, bytes] | None = None,
    figures_dir: Path | str | None = "figures",
) -> Path:
    """Write ``report.pdf`` (the renderer called by the analysis job with ``report, prediction, study, path``).

    Args:
        report: the report.
        prediction: gives the image and label map for the ED/ES overlays (optional).
        study: unused (the report carries the patient and study attributes); accepted for the renderer interface.
        path: output file.
        figures: precomputed PNG figures by name; default: :func:`report_figures`.
        figures_dir: also save the figures as ``<name>.png`` in this folder (relative to the PDF's folder);
            None to save nothing.

    Returns:
        ``path``.
    """
    path = Path(path)
    figs = dict(figures) if figures is not None else report_figures(report, prediction)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(build_pdf(report, figs))
    if figures_dir is not None and figs:
        folder = path.parent / figures_dir
        folder.mkdir(parents=True, exist_ok=True)
        for name, png in figs.items():
            (folder / f"{name}.png").write_bytes(png)
    logger.info("wrote %s (%d figures)", path, len(figs))
    return path


def section_classes(section: Any) -> list[Any]:
    """The class probabilities of a section (empty for measurement sections and whole reports)."""
    return list(getattr(section, "classes", None) or []) if hasattr(section, "kind") else []


def diagnosis_story(section: Any) -> list[Any]:
    """A classification section: the suggestion banner, a probability table with bars, the modalities used and
    their contributions, and the features that drove the suggestion (occlusion attributions)."""
    from reportlab.lib import colors
    from reportlab.lib.units import mm
    from reportlab.platypus import Paragraph, Spacer, Table, TableStyle

    st = styles()
    sm = section.summary
    classes = sorted(section_classes(section), key=lambda c: -c.probability)
    if not classes:
        return []
    top = classes[0]
    out: list[Any] = [Paragraph(f"<b>Suggested: {_esc(sm.get('predicted_display', top.name))}</b> "
                                f"(p = {top.probability:.2f}). {_esc(sm.get('decision_support', ''))}.", st["body"])]
    rows = [["Class", "Code", "Probability", ""]]
    for c in classes:
        code = f"{c.code.get('scheme', '')} {c.code.get('value', '')}" if c.code else ""
        rows.append([f"{c.name} ({(c.code or {}).get('meaning', '')})", code, f"{c.probability:.3f}",
                     "\u2588" * max(0, round(20 * c.probability))])
    table = Table([[Paragraph(_esc(x), st["cell"]) for x in r] for r in rows],
                  colWidths=[70 * mm, 30 * mm, 22 * mm, 55 * mm])
    table.setStyle(TableStyle([("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#dde3ea")),
                               ("BACKGROUND", (0, 1), (-1, 1), colors.HexColor("#fff3e0")),
                               ("LINEBELOW", (0, 0), (-1, -1), 0.25, colors.HexColor("#c8ced6"))]))
    out += [Spacer(1, 1 * mm), table, Spacer(1, 2 * mm), Paragraph("Why", st["h2"])]
    used = ", ".join(sm.get("modalities_used", [])) or "-"
    missing = ", ".join(sm.get("modalities_missing", [])) or "none"
    contrib = ", ".join(f"{k} {v:+.2f}" for k, v in (sm.get("modality_contributions") or {}).items())
    out.append(Paragraph(_esc(f"Modalities used: {used} (missing: {missing}). Contribution to p({top.name}) "
                              f"when removed: {contrib}."), st["small"]))
    if sm.get("modality_weights"):
        w = ", ".join(f"{k} {v:.2f}" for k, v in sm["modality_weights"].items())
        out.append(Paragraph(_esc(f"Fusion attention over the modalities: {w}."), st["small"]))
    feats = sm.get("features") or {}
    attr = sm.get("feature_attributions") or {}
    if attr:
        rows = [["Feature", "Value", f"Effect on p({top.name})"]]
        for k, v in attr.items():
            val = feats.get(k)
            rows.append([k, "-" if val is None else format_value(float(val)), f"{v:+.3f}"])
        t2 = Table([[Paragraph(_esc(x), st["cell"]) for x in r] for r in rows], colWidths=[60 * mm, 30 * mm, 40 * mm])
        t2.setStyle(TableStyle([("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#dde3ea")),
                                ("LINEBELOW", (0, 0), (-1, -1), 0.25, colors.HexColor("#c8ced6"))]))
        out += [t2, Paragraph(_esc(sm.get("attribution_method", "")), st["small"])]
    return [*out, Spacer(1, 2 * mm)]


def measurement_table(measurements: list[Measurement]) -> Any:
    """The measurement table flowable (value, unit, reference range, flag; abnormal values highlighted)."""
    return _measurement_table(measurements, styles())


def flags_story(section: Any) -> list[Any]:
    """Paragraphs of a report's or section's quality flags (coloured by severity)."""
    return _flags(section, styles())


def esc(text: Any) -> str:
    """Text escaped for reportlab paragraphs."""
    return _esc(text)


_KIT = sys.modules[__name__]

__all__ = ["FIGURES", "RESEARCH_USE", "PdfPage", "build_pdf", "cine_story", "write_study_pdf", "image", "styles",
           "format_range", "format_value", "report_figures", "write_pdf"]
