"""Scale curve: time and memory of the warm cine analysis against study size, and of batch risk prediction against
the number of patients, with the growth exponent of each (the slope of log time on log size; 1.0 is linear).

* **Cine**: generated cine SAX phantoms (:func:`medai.dicom.phantoms.make_cine_sax_study`, 160x160 at 1.6 mm) of
  ``--slices`` x ``--phases`` (default 6, 12, 24 slices x 20, 30, 40 phases), each ingested from DICOM bytes and
  analysed by ``run_study_analyses(kinds=[cine_function])`` with the shipped model loaded once (a warm server),
  smallest first; peak RSS above the idle process (heap trimmed first), sampled every 5 ms.
* **Risk**: ``RiskPredictor.predict_batch`` of ``stroke_ist_death_6m`` (compiled) on 1 to 100,000 IST patients
  (the real cohort's rows, resampled with replacement past its size), best of ``--repeat``.

Usage::

    .venv/bin/python bench/scale_curve.py [--slices 6,12,24] [--phases 20,30,40] [--rows 1,10,...] [--json F]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from memwatch import Peak  # bench/memwatch.py, beside this script
from rich.console import Console
from rich.table import Table

#: the exponent goal of the issue (linear, with a little room for cache effects)
GOAL = 1.1


def exponent(sizes: list[float], secs: list[float]) -> float:
    """Least-squares slope of log(seconds) on log(size)."""
    return float(np.polyfit(np.log(sizes), np.log(secs), 1)[0])


def cine_curve(slices: list[int], phases: list[int], console: Console) -> list[dict[str, Any]]:
    from medai.analyses.runner import package_provider, run_study_analyses
    from medai.cardiac.predictor import load_default
    from medai.dicom.ingest import ingest
    from medai.dicom.phantoms import make_cine_sax_study

    provider = package_provider({"heart_mr_cine_seg": load_default("heart_mr_cine_seg")})

    def study_bytes(z: int, t: int) -> list[bytes]:
        return make_cine_sax_study(n_slices=z, n_phases=t, rows=160, cols=160, pixel_spacing=1.6,
                                   seed=z * 100 + t).to_bytes()

    with tempfile.TemporaryDirectory() as tmp:
        run_study_analyses(ingest(study_bytes(4, 10)).studies[0], Path(tmp) / "warm", kinds=["cine_function"],
                           models=provider)
        out = []
        for z, t in sorted(((z, t) for z in slices for t in phases), key=lambda p: p[0] * p[1]):
            data = study_bytes(z, t)
            with Peak() as pk:
                t0 = time.perf_counter()
                run_study_analyses(ingest(data).studies[0], Path(tmp) / f"s{z}x{t}", kinds=["cine_function"],
                                   models=provider)
                secs = time.perf_counter() - t0
            row = {"slices": z, "phases": t, "images": z * t, "voxels": z * t * 160 * 160, "seconds": secs,
                   "peak_above_idle_mib": pk.peak - pk.idle, "study_float32_mib": z * t * 160 * 160 * 4 / 2**20}
            console.print(f"  cine {z:2d} slices x {t} phases: {secs:5.2f} s, peak +{row['peak_above_idle_mib']:.0f} "
                          f"MiB", highlight=False)
            out.append(row)
    return out


def risk_curve(rows: list[int], repeat: int, console: Console) -> list[dict[str, Any]]:
    from medai.inference.predictor import Predictor
    from medai.risk.cohorts import load_cohort
    from medai.settings import find_data_dir

    p = Predictor.from_package("stroke_ist_death_6m")
    c = load_cohort(p.config.cohort, p.config.outcome, find_data_dir())
    rng = np.random.default_rng(0)
    X = c.X.iloc[rng.integers(0, len(c.X), size=max(rows))].reset_index(drop=True)
    recs = [{k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in r.items()}
            for r in X.to_dict(orient="records")]
    p.predict_batch(recs[:10])
    out = []
    for n in rows:
        secs, peak = [], 0.0
        for _ in range(repeat if n < 10_000 else 1):
            with Peak() as pk:
                t0 = time.perf_counter()
                res = p.predict_batch(recs[:n])
                secs.append(time.perf_counter() - t0)
            peak = max(peak, pk.peak - pk.idle)
            assert len(res) == n
            del res
        row = {"rows": n, "seconds": min(secs), "us_per_row": min(secs) / n * 1e6, "peak_above_idle_mib": peak}
        console.print(f"  risk {n:>7,d} rows: {row['seconds']:8.4f} s ({row['us_per_row']:.0f} us/row), peak "
                      f"+{peak:.0f} MiB", highlight=False)
        out.append(row)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--slices", default="6,12,24")
    ap.add_argument("--phases", default="20,30,40")
    ap.add_argument("--rows", default="1,10,100,1000,10000,100000")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-cine", action="store_true")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    console = Console(width=140)
    import torch

    doc: dict[str, Any] = {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "goal_exponent": GOAL}
    if not a.no_cine:
        cine = cine_curve([int(x) for x in a.slices.split(",")], [int(x) for x in a.phases.split(",")], console)
        doc["cine"] = cine
        doc["cine_time_exponent"] = exponent([r["voxels"] for r in cine], [r["seconds"] for r in cine])
        doc["cine_memory_exponent"] = exponent([r["voxels"] for r in cine],
                                               [max(r["peak_above_idle_mib"], 1.0) for r in cine])
    risk = risk_curve([int(x) for x in a.rows.split(",")], a.repeat, console)
    doc["risk"] = risk
    big = [r for r in risk if r["rows"] >= 100]  # below that, fixed per-call costs dominate (not growth)
    doc["risk_time_exponent"] = exponent([r["rows"] for r in big], [r["seconds"] for r in big])
    doc["risk_time_exponent_range"] = [big[0]["rows"], big[-1]["rows"]]

    if not a.no_cine:
        t = Table(title="cine analysis vs study size (warm, 160x160)")
        for col in ("slices", "phases", "images", "seconds", "s per 100 images", "peak RSS +MiB", "study f32 MiB"):
            t.add_column(col, justify="right")
        for r in doc["cine"]:
            t.add_row(str(r["slices"]), str(r["phases"]), str(r["images"]), f"{r['seconds']:.2f}",
                      f"{r['seconds'] / r['images'] * 100:.2f}", f"{r['peak_above_idle_mib']:.0f}",
                      f"{r['study_float32_mib']:.0f}")
        console.print(t)
    t = Table(title="batch risk prediction (stroke_ist_death_6m, compiled)")
    for col in ("rows", "seconds", "us per row", "peak RSS +MiB"):
        t.add_column(col, justify="right")
    for r in risk:
        t.add_row(f"{r['rows']:,}", f"{r['seconds']:.4f}", f"{r['us_per_row']:.1f}", f"{r['peak_above_idle_mib']:.0f}")
    console.print(t)
    lines = []
    if not a.no_cine:
        lines.append(f"cine time exponent {doc['cine_time_exponent']:.2f}, memory exponent "
                     f"{doc['cine_memory_exponent']:.2f}")
    lines.append(f"risk time exponent {doc['risk_time_exponent']:.2f} ({big[0]['rows']:,}-{big[-1]['rows']:,} rows)")
    ok = all(doc[k] <= GOAL for k in ("cine_time_exponent", "risk_time_exponent") if k in doc)
    console.print("; ".join(lines) + f"; goal <= {GOAL}: {'met' if ok else 'NOT met'}", highlight=False)
    doc["median_load_average"] = statistics.median(os.getloadavg())
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(doc, indent=1))


if __name__ == "__main__":
    main()
