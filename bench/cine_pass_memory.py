"""Benchmark: peak RSS and time of a warm cine analysis against the pixels per forward pass and glibc's mmap
threshold (issue 16, memory).

Each setting -- ``medai.cardiac.predictor.PASS_PIXELS`` x :func:`medai.runtime.tune_allocator` threshold -- runs in
a fresh process (the allocator keeps what an earlier, larger setting freed, so settings cannot share one): models
loaded once, then ``--runs`` warm analyses of SCD0000101 (Sunnybrook, 240 images; the phantom when absent) at
``--threads``; the first is a warm-up. Printed: the median peak RSS above the trimmed idle process, the median time,
and LV EF (the labels must not change). The first setting is the baseline in the same run (``--mmap glibc``: the
allocator untouched, glibc's dynamic threshold); settings alternate ``--rounds`` times.

Usage::

    .venv/bin/python bench/cine_pass_memory.py [--pixels 600000,200000] [--mmap glibc,1048576] [--threads 2]
        [--runs 6] [--rounds 2] [--json bench/results/cine_pass_memory.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def child(pixels: int, threads: int, runs: int, mmap: int) -> None:
    sys.path.insert(0, str(REPO / "bench"))
    sys.path.insert(0, str(REPO))
    import torch

    from medai.runtime import tune_allocator

    if mmap > 0 and tune_allocator(mmap) != mmap:
        raise SystemExit(f"could not set the mmap threshold to {mmap}")

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
    ap.add_argument("--mmap", default="glibc", help="glibc (untouched) or thresholds in bytes, comma-separated")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=6)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--child-mmap", type=int, default=0, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child is not None:
        child(a.child, a.threads, a.runs, a.child_mmap)
        return
    from rich.console import Console
    from rich.table import Table

    mmaps = [0 if x.strip() == "glibc" else int(x) for x in a.mmap.split(",")]
    settings = [(int(p), m) for p in a.pixels.split(",") for m in mmaps]

    def label(s: tuple[int, int]) -> str:
        return f"{s[0]:,} px, mmap {'glibc dynamic' if not s[1] else f'{s[1]:,} B'}"

    got: dict[tuple[int, int], dict[str, list[float]]] = {
        s: {"peaks_mib": [], "times_s": [], "lv_ef": []} for s in settings}
    env = {k: v for k, v in os.environ.items() if k not in ("MALLOC_MMAP_THRESHOLD_", "MEDAI_MMAP_THRESHOLD")}
    for _ in range(a.rounds):
        for s in settings:
            out = subprocess.run([sys.executable, __file__, "--child", str(s[0]), "--child-mmap", str(s[1]),
                                  "--threads", str(a.threads), "--runs", str(a.runs)],
                                 capture_output=True, text=True, check=True, cwd=REPO, env=env)
            doc = json.loads(out.stdout.strip().splitlines()[-1])
            got[s]["peaks_mib"] += doc["peaks_mib"]
            got[s]["times_s"] += doc["times_s"]
            got[s]["lv_ef"].append(doc["lv_ef"])
    base = settings[0]
    table = Table(title=f"warm cine analysis, {a.threads} thread(s), fresh process per setting, {a.rounds} rounds")
    for col in ("setting", "peak RSS above idle (MiB)", "time (s)", "vs first: RSS", "vs first: time", "LV EF"):
        table.add_column(col)
    rows = {}
    for s in settings:
        rss, t = statistics.median(got[s]["peaks_mib"]), statistics.median(got[s]["times_s"])
        rows[label(s)] = {"pixels": s[0], "mmap_threshold": s[1] or None, "peak_rss_above_idle_mib": rss,
                          "time_s": t, "lv_ef": got[s]["lv_ef"]}
        table.add_row(label(s), f"{rss:.0f}", f"{t:.2f}",
                      f"{rss / statistics.median(got[base]['peaks_mib']):.2f}x",
                      f"{t / statistics.median(got[base]['times_s']):.2f}x", f"{got[s]['lv_ef'][0]:.3f}")
    Console().print(table)
    if a.json:
        a.json.write_text(json.dumps({"threads": a.threads, "runs": a.runs, "rounds": a.rounds, "rows": rows},
                                     indent=1) + "\n")


if __name__ == "__main__":
    main()
