"""Summaries of finished risk runs (``$MEDAI_HOME/risk_runs/<name>/summary.json``) as Markdown tables.

Usage::

    python -m pipelines.risk.report [NAME ...] [--subgroups]

Prints, per run: the 5-fold CV table of every estimator (fold scores, mean ± SD), the held-out result with its
bootstrap CI, the data's own reference scores on the same held-out rows, and optionally the held-out metrics per
subgroup (with calibration slope / intercept).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from medai.settings import get_settings


def _f(v: Any, nd: int = 3) -> str:
    try:
        return f"{float(v):.{nd}f}"
    except (TypeError, ValueError):
        return "-"


def run_table(s: dict[str, Any], subgroups: bool = False) -> str:
    """Markdown summary of one run."""
    if "competing_risks" in s:
        cr = s["competing_risks"]
        lines = [
            f"### {s['name']} (competing risks, {cr['n']} patients)",
            "",
            f"recurrences {cr['recurrences']}, deaths without recurrence {cr['deaths']}; 14-day cumulative "
            f"incidence: recurrence {_f(cr['cif']['recurrence'][-1])}, death {_f(cr['cif']['death'][-1])}",
            "",
        ]
        for k, v in cr.items():
            if k.startswith("cause_specific"):
                lines.append(f"- {k}: held-out C {_f(v['test_c_index'])} ({v['events_test']} events)")
        return "\n".join(lines)
    metric = "c_index" if s["kind"] == "survival" else "auc"
    lines = [
        f"### {s['name']}: {s['cohort']}/{s['outcome']} -- {s['n_dev']} dev / {s['n_test']} held-out "
        f"({s['events_dev']}/{s['events_test']} events), CV grouped by site: {s.get('cv_grouped_by_site')}",
        "",
        f"| model | CV {metric} folds | CV mean ± SD | held-out {metric} [95% CI] | other held-out |",
        "|---|---|---|---|---|",
    ]
    for name, r in s["models"].items():
        if "failed" in r:
            lines.append(f"| {name} | failed to fit | | | |")
            continue
        t = r["test"]
        ci = t.get("c_index_ci") or t.get("auc_ci") or [None, None]
        other = []
        for k in ("uno_c", "ibs", "brier", "mean_auc"):
            if k in t:
                other.append(f"{k} {_f(t[k])}")
        for k, v in t.items():
            if k.startswith("delta_vs_") and not k.endswith("_ci"):
                c2 = t.get(f"{k}_ci", [None, None])
                other.append(f"{k} {_f(v)} [{_f(c2[0])}, {_f(c2[1])}]")
        star = " (shipped)" if name == s.get("shipped") else ""
        lines.append(
            f"| {name}{star} | {' '.join(_f(x) for x in r['cv'][metric])} | {_f(r['cv']['mean'])} ± "
            f"{_f(r['cv']['sd'])} | {_f(t.get(metric))} [{_f(ci[0])}, {_f(ci[1])}] | {'; '.join(other)} |"
        )
    for k, r in s.get("reference_on_test", {}).items():
        v = r.get(metric, r.get("c_index"))
        ci = r.get("auc_ci", [None, None])
        tag = " (same outcome)" if r.get("matches_outcome") else ""
        lines.append(f"| trial score {k}{tag} | | | {_f(v)} [{_f(ci[0])}, {_f(ci[1])}] | same held-out rows |")
    shipped = s["models"].get(s.get("shipped", ""), {})
    if shipped.get("importance"):
        top = ", ".join(f"{r['factor']} ({_f(r['mean'])})" for r in shipped["importance"][:12])
        lines += [
            "",
            f"Permutation importance of {s['shipped']} (drop in {metric}, mean over folds; fold rank "
            f"agreement {_f(shipped.get('importance_fold_agreement'))}): {top}",
        ]
    if subgroups and shipped:
        t = shipped["test"]
        lines += [
            "",
            f"| subgroup ({s['shipped']}, held-out) | n | events | {metric} | calib. slope | calib. intercept |",
            "|---|---|---|---|---|---|",
        ]
        for g, r in t.get("subgroups", {}).items():
            cal = r.get("calibration") or next((v for k, v in r.items() if k.startswith("calibration")), {}) or {}
            lines.append(
                f"| {g} | {r.get('n')} | {r.get('events', '-')} | {_f(r.get(metric))} | "
                f"{_f(cal.get('slope'), 2)} | {_f(cal.get('intercept'), 2)} |"
            )
        cal = t.get("calibration") or next((v for k, v in t.items() if k.startswith("calibration@")), None)
        if cal:
            lines.append(
                f"| overall | {t.get('n')} | {t.get('events')} | {_f(t.get(metric))} | "
                f"{_f(cal.get('slope'), 2)} | {_f(cal.get('intercept'), 2)} |"
            )
    oof = shipped.get("cv_out_of_fold") if subgroups else None
    if oof:
        lines += [
            "",
            f"| subgroup ({s['shipped']}, out-of-fold CV on {s['n_dev']} dev rows) | n | events | {metric} | "
            f"calib. slope | calib. intercept | CITL |",
            "|---|---|---|---|---|---|---|",
        ]
        for g, r in [("overall", oof["overall"]), *oof["subgroups"].items()]:
            cal = r.get("calibration") or {}
            lines.append(
                f"| {g} | {r.get('n')} | {r.get('events', '-')} | {_f(r.get(metric))} | "
                f"{_f(cal.get('slope'), 2)} | {_f(cal.get('intercept'), 2)} | {_f(cal.get('citl'), 3)} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="summaries of finished risk runs")
    ap.add_argument("names", nargs="*")
    ap.add_argument("--subgroups", action="store_true")
    args = ap.parse_args(argv)
    root = get_settings().home / "risk_runs"
    paths = sorted(root.glob("*/summary.json"))
    for p in paths:
        if args.names and p.parent.name not in args.names:
            continue
        sys.stdout.write(run_table(json.loads(p.read_text()), args.subgroups) + "\n\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
