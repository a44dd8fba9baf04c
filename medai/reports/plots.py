"""Report plots: the ventricular volume-time curve and the AHA 16-segment bullseye of wall thickness (matplotlib).

Each function draws on a fresh Agg figure and returns PNG bytes (and writes them when given a path), so the PDF
renderer can embed them without touching the disk and the CLI can save them next to the report.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

#: Display names and default colours of volume curves by segment name (colours match the default label table).
CURVE_STYLE: dict[str, tuple[str, str]] = {
    "lv": ("LV blood pool", "#dc2828"),
    "rv": ("RV blood pool", "#285ae6"),
    "myo": ("LV myocardium", "#28b43c"),
}

#: AHA 16-segment model (Cerqueira et al., Circulation 2002): segment -> (ring, start angle deg, end angle deg).
#: Rings: 0 basal (outer), 1 mid, 2 apical (inner). Angles counter-clockwise from the viewer's right (3 o'clock),
#: standard display: anterior at the top, septum on the left, lateral on the right, inferior at the bottom.
AHA_LAYOUT: dict[int, tuple[int, float, float]] = {
    1: (0, 60, 120), 2: (0, 120, 180), 3: (0, 180, 240), 4: (0, 240, 300), 5: (0, 300, 360), 6: (0, 0, 60),
    7: (1, 60, 120), 8: (1, 120, 180), 9: (1, 180, 240), 10: (1, 240, 300), 11: (1, 300, 360), 12: (1, 0, 60),
    13: (2, 45, 135), 14: (2, 135, 225), 15: (2, 225, 315), 16: (2, 315, 405),
}
AHA_NAMES: dict[int, str] = {
    1: "basal anterior", 2: "basal anteroseptal", 3: "basal inferoseptal", 4: "basal inferior",
    5: "basal inferolateral", 6: "basal anterolateral", 7: "mid anterior", 8: "mid anteroseptal",
    9: "mid inferoseptal", 10: "mid inferior", 11: "mid inferolateral", 12: "mid anterolateral",
    13: "apical anterior", 14: "apical septal", 15: "apical inferior", 16: "apical lateral",
}
_RING_RADII = ((2.0, 3.0), (1.0, 2.0), (0.0, 1.0))


def new_figure(figsize: tuple[float, float]) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, dpi=110)


def figure_png(fig: Any, path: Path | str | None) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=fig.dpi)
    data = buf.getvalue()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(data)
    return data


def volume_curve_png(
    curve: Mapping[str, Sequence[float]],
    *,
    ed_frame: int | None = None,
    es_frame: int | None = None,
    path: Path | str | None = None,
    segments: Sequence[str] = ("lv", "rv"),
) -> bytes:
    """Volume-time curves (mL over ms from the R wave) with ED and ES marked.

    Args:
        curve: ``times_ms`` and ``<segment>_ml`` lists of equal length (the predictor's ``extras["volume_curve"]``).
        ed_frame / es_frame: frame indices marked as ED / ES.
        path: also write the PNG there.
        segments: which ``<segment>_ml`` curves to draw (those present).

    Returns:
        PNG bytes.
    """
    times = np.asarray(curve.get("times_ms") or [], dtype=float)
    fig = new_figure((6.0, 3.0))
    ax = fig.add_axes((0.1, 0.16, 0.87, 0.74))
    drawn = 0
    for seg in segments:
        values = curve.get(f"{seg}_ml")
        if not values:
            continue
        v = np.asarray(values, dtype=float)
        t = times if len(times) == len(v) else np.arange(len(v), dtype=float)
        label, colour = CURVE_STYLE.get(seg, (seg, None))
        ax.plot(t, v, marker="o", ms=3, lw=1.6, color=colour, label=label)
        drawn += 1
    for frame, name, style in ((ed_frame, "ED", "--"), (es_frame, "ES", ":")):
        if frame is not None and 0 <= frame < len(times):
            ax.axvline(times[frame], color="0.3", ls=style, lw=1)
            ax.annotate(name, (times[frame], 1.0), xycoords=("data", "axes fraction"), ha="center", va="bottom",
                        fontsize=9)
    ax.set_xlabel("time from R wave (ms)" if len(times) else "frame")
    ax.set_ylabel("volume (mL)")
    ax.grid(alpha=0.3)
    if drawn:
        ax.legend(loc="best", fontsize=8, frameon=False)
    else:
        ax.text(0.5, 0.5, "no volume curve", transform=ax.transAxes, ha="center", va="center")
    ax.set_ylim(bottom=0)
    return figure_png(fig, path)


def bullseye_png(
    wall_thickness_mm: Mapping[int | str, float],
    *,
    path: Path | str | None = None,
    vmin: float = 0.0,
    vmax: float = 15.0,
    title: str = "End-diastolic wall thickness (mm)",
    cmap: str = "viridis",
    unit: str = "mm",
) -> bytes:
    """AHA 16-segment bullseye of LV wall thickness, values written in each segment.

    Args:
        wall_thickness_mm: AHA segment number (1..16, int or str) -> thickness in mm; missing segments are grey.
        path: also write the PNG there.
        vmin / vmax: colour scale limits (mm).
        title: figure title.
        cmap: matplotlib colour map.
        unit: the values' unit (colour bar label).

    Returns:
        PNG bytes.
    """
    import matplotlib as mpl
    from matplotlib.patches import Wedge

    values = {int(k): float(v) for k, v in wall_thickness_mm.items()}
    cm = mpl.colormaps[cmap]
    norm = mpl.colors.Normalize(vmin=vmin, vmax=vmax)
    fig = new_figure((4.0, 4.5))
    ax = fig.add_axes((0.08, 0.16, 0.84, 0.74))
    for seg, (ring, a0, a1) in AHA_LAYOUT.items():
        r0, r1 = _RING_RADII[ring]
        value = values.get(seg)
        colour = cm(norm(value)) if value is not None else (0.85, 0.85, 0.85, 1.0)
        ax.add_patch(Wedge((0.0, 0.0), r1, a0, a1, width=r1 - r0, facecolor=colour, edgecolor="white", lw=1.5,
                           hatch=None if value is not None else "//"))
        mid = np.deg2rad((a0 + a1) / 2)
        rm = (r0 + r1) / 2 if ring < 2 else 0.6
        text = f"{value:.1f}" if value is not None else "n/a"
        dark = value is not None and norm(value) < 0.55
        ax.text(rm * np.cos(mid), rm * np.sin(mid), f"{seg}\n{text}", ha="center", va="center", fontsize=7.5,
                color="white" if dark else "black")
    for label, x, y, rot in (("anterior", 0, 3.2, 0), ("inferior", 0, -3.2, 0), ("septal", -3.2, 0, 90),
                             ("lateral", 3.2, 0, 270)):
        ax.text(x, y, label, ha="center", va="center", fontsize=8, color="0.3", rotation=rot)
    ax.set_xlim(-3.45, 3.45)
    ax.set_ylim(-3.45, 3.45)
    ax.set_aspect("equal")
    ax.set_axis_off()
    fig.suptitle(title, fontsize=9, y=0.97)
    cax = fig.add_axes((0.15, 0.08, 0.7, 0.03))
    fig.colorbar(mpl.cm.ScalarMappable(norm=norm, cmap=cm), cax=cax, orientation="horizontal")
    cax.tick_params(labelsize=7)
    cax.set_xlabel(unit, fontsize=8, labelpad=1)
    return figure_png(fig, path)


__all__ = ["AHA_LAYOUT", "AHA_NAMES", "CURVE_STYLE", "bullseye_png", "figure_png", "new_figure", "volume_curve_png"]
