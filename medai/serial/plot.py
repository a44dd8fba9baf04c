"""The timeline picture: EF, volumes, mass and scar over study dates (matplotlib, the style of
:mod:`medai.reports.plots`), significant changes marked, the CTRCD LVEF thresholds (40 %, 50 %) drawn."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

from medai.reports.plots import CURVE_STYLE, figure_png, new_figure
from medai.serial.timeline import ChangeVerdict, ComparisonKind, Timeline

logger = logging.getLogger(__name__)

_SCAR = "#7b2d8e"
#: panel title, y label, (measurement, colour, line style) in drawing order
PANELS: tuple[tuple[str, str, tuple[tuple[str, str, str], ...]], ...] = (
    ("Ejection fraction", "EF (%)", (("lv_ef", CURVE_STYLE["lv"][1], "-"), ("rv_ef", CURVE_STYLE["rv"][1], "-"))),
    ("Volumes", "volume (mL)", (("lv_edv", CURVE_STYLE["lv"][1], "-"), ("lv_esv", CURVE_STYLE["lv"][1], "--"),
                                ("lv_sv", CURVE_STYLE["lv"][1], ":"), ("rv_edv", CURVE_STYLE["rv"][1], "-"),
                                ("rv_esv", CURVE_STYLE["rv"][1], "--"))),
    ("Mass", "mass (g)", (("lv_mass", CURVE_STYLE["myo"][1], "-"), ("lge_infarct_mass", _SCAR, "--"))),
    ("Scar", "infarct (% of LV myocardium)", (("lge_infarct_pct", _SCAR, "-"),)),
)


def timeline_png(timeline: Timeline, path: Path | str | None = None) -> bytes:
    """One panel per group with data (EF, volumes, mass, scar) over the study dates.

    Points reached by a change beyond the scan-rescan variability (consecutive comparison) are drawn filled with a
    black edge and labelled with the change; others are open. The EF panel shades LVEF < 40 % and 40-49 % (the
    2022 ESC CTRCD thresholds).

    Args:
        timeline: the serial comparison.
        path: also write the PNG there.

    Returns:
        PNG bytes.
    """
    import matplotlib.dates as mdates

    dates = [p.study_datetime for p in timeline.points]
    significant = {(c.measurement, c.to_index): c for c in timeline.changes
                   if c.kind == ComparisonKind.CONSECUTIVE
                   and c.verdict in (ChangeVerdict.INCREASE, ChangeVerdict.DECREASE)}
    panels = [(title, ylab, [s for s in series if timeline.track(s[0]) is not None])
              for title, ylab, series in PANELS]
    panels = [p for p in panels if p[2]]
    n = max(1, len(panels))
    fig = new_figure((6.4, 1.2 + 2.1 * n))
    axes = fig.subplots(n, 1, sharex=True, squeeze=False)[:, 0]
    for ax, (title, ylab, series) in zip(axes, panels, strict=False):
        drawn: list[float] = []
        for name, colour, style in series:
            track = timeline.track(name)
            if track is None:
                continue
            xs = [d for d, v in zip(dates, track.values, strict=True) if v is not None]
            ys = [v for v in track.values if v is not None]
            drawn += ys
            ax.plot(xs, ys, ls=style, lw=1.6, color=colour, marker="o", ms=5, mfc="white", label=track.label)
            for i, v in enumerate(track.values):
                ch = significant.get((name, i))
                if v is None or ch is None:
                    continue
                ax.plot([dates[i]], [v], marker="o", ms=7, color=colour, mec="black", mew=1.2, ls="none")
                ax.annotate(f"{ch.delta:+.1f}", (dates[i], v), textcoords="offset points", xytext=(4, 6),
                            fontsize=7.5, color="0.15")
        if title == "Ejection fraction":
            ax.set_ylim(max(0.0, min([*drawn, 40.0]) - 8.0), max([*drawn, 50.0]) + 8.0)
            ax.axhspan(0, 40, color="#dc2828", alpha=0.08, lw=0)
            ax.axhspan(40, 50, color="#f0a030", alpha=0.10, lw=0)
            ax.axhline(40, color="0.4", lw=0.8, ls=":")
            ax.axhline(50, color="0.4", lw=0.8, ls=":")
        ax.set_title(title, fontsize=9, loc="left")
        ax.set_ylabel(ylab, fontsize=8)
        ax.tick_params(labelsize=7.5)
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize=7, frameon=False)
        ax.margins(x=0.08, y=0.15)  # y: the EF panel's limits are fixed above
    if not panels:
        axes[0].text(0.5, 0.5, "no tracked measurement", transform=axes[0].transAxes, ha="center", va="center")
    if dates and max(dates) == min(dates):  # one study date: a readable month either side
        axes[-1].set_xlim(dates[0] - timedelta(days=30), dates[0] + timedelta(days=30))
    axes[-1].xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m-%d"))
    axes[-1].set_xlabel("study date", fontsize=8)
    for label in axes[-1].get_xticklabels():
        label.set_rotation(20)
        label.set_ha("right")
    who = f"patient {timeline.patient_id}" if timeline.patient_id else "mixed patient ids"
    fig.suptitle(f"Serial CMR, {who}: filled = change beyond scan-rescan variability", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    return figure_png(fig, path)


__all__ = ["PANELS", "timeline_png"]
