"""Benchmark: peak RSS and time of a warm cine analysis against the pixels per forward pass (issue 16, memory).

Each setting of ``medai.cardiac.predictor.PASS_PIXELS`` runs in a fresh process (the allocator keeps what an
earlier, larger setting freed, so settings cannot share one): models loaded once, then ``--runs`` warm analyses of
SCD0000101 (Sunnybrook, 240 images; the phantom when absent) at ``--threads``; the first is a warm-up. Printed: the
median peak RSS above the trimmed idle process, the median time, and LV EF (the labels must not change). The old
setting (600,000) is the baseline in the same run; settings alternate ``--rounds`` times.

Usage::

    .venv/bin/python bench/cine_pass_memory.py [--pixels 600000,200000] [--threads 2] [--runs 6] [--rounds 2]
        [--json bench/results/cine_pass_memory.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def child(pixels: int, threads: int, runs: int) -> None:
    sys.path.insert(0, str(REPO / "bench"))
    sys.path.insert(0, str(REPO))
    import torch

    torch.set_num_threads(threads)
    from memwatch import RssSampler, trim

    import medai.cardiac.predictor as cine
    from medai.analyses.runner import package_provider, run_study_analyses
    from medai.dicom.ingest import ingest
    from medai.inference.predictor import Predictor
    from medai.settings import find_data_dir

    cine.PASS_PIXELS = pixels
    tmp = Path(tempfile.mkdtemp(prefix="medai-pass-"))
    root = find_data_dir()
    folder = root / "cardiac" / "sunnybrook" / "dicoms" / "SCD0000101" if root else None
    if folder is None or not folder.is_dir():
        from medai.dicom.phantoms import make_cine_sax_study

        folder = tmp / "phantom"
        make_cine_sax_study(folder, rows=192, cols=192, n_slices=12, n_phases=20)
    provider = package_provider({n: Predictor.from_package(n) for n in ("heart_mr_cine_seg", "heart_mr_quality")})
    peaks, times, ef = [], [], float("nan")
    with RssSampler() as s:
        for i in range(runs):
            trim()
            idle = s.rss_mib()
            s.mark("run")
            s.peaks.pop("run", None)
            t0 = time.perf_counter()
            out = run_study_analyses(ingest(folder).studies[0], tmp / f"o{i}", kinds=["cine_function"],
                                     models=provider)
            times.append(time.perf_counter() - t0)
            s.mark("idle")
            peaks.append(s.peaks["run"] - idle)
            ef = next(m.value for m in out.report.measurements if m.name == "lv_ef")
    sys.stdout.write(json.dumps({"pixels": pixels, "peaks_mib": peaks[1:], "times_s": times[1:], "lv_ef": ef}) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pixels", default="600000,200000")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=6)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child is not None:
        child(a.child, a.threads, a.runs)
        return
    from rich.console import Console
    from rich.table import Table

    settings = [int(x) for x in a.pixels.split(",")]
    got: dict[int, dict[str, list[float]]] = {p: {"peaks_mib": [], "times_s": [], "lv_ef": []} for p in settings}
    for _ in range(a.rounds):
        for p in settings:
            out = subprocess.run([sys.executable, __file__, "--child", str(p), "--threads", str(a.threads), "--runs",
                                  str(a.runs)], capture_output=True, text=True, check=True, cwd=REPO)
            doc = json.loads(out.stdout.strip().splitlines()[-1])
            got[p]["peaks_mib"] += doc["peaks_mib"]
            got[p]["times_s"] += doc["times_s"]
            got[p]["lv_ef"].append(doc["lv_ef"])
    base = settings[0]
    table = Table(title=f"warm cine analysis, {a.threads} thread(s), fresh process per setting, {a.rounds} rounds")
    for col in ("pixels per pass", "peak RSS above idle (MiB)", "time (s)", "vs first: RSS", "vs first: time",
                "LV EF"):
        table.add_column(col)
    rows = {}
    for p in settings:
        rss, t = statistics.median(got[p]["peaks_mib"]), statistics.median(got[p]["times_s"])
        rows[p] = {"peak_rss_above_idle_mib": rss, "time_s": t, "lv_ef": got[p]["lv_ef"]}
        table.add_row(f"{p:,}", f"{rss:.0f}", f"{t:.2f}",
                      f"{rss / statistics.median(got[base]['peaks_mib']):.2f}x",
                      f"{t / statistics.median(got[base]['times_s']):.2f}x", f"{got[p]['lv_ef'][0]:.3f}")
    Console().print(table)
    if a.json:
        a.json.write_text(json.dumps({"threads": a.threads, "runs": a.runs, "rounds": a.rounds, "rows": rows},
                                     indent=1) + "\n")


if __name__ == "__main__":
    main()
