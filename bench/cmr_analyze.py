"""Benchmark: ``medai analyze`` on Sunnybrook SCD0000101 (240 images), by stage, against a plain baseline.

Measured in one process, alternating, ``--repeat`` times (median and min wall time):

* ``medai analyze``: ``ingest(folder)`` -> :func:`medai.cardiac.analysis.run_cine_analysis` with the shipped
  ``heart_mr_cine_seg`` package (model loading excluded: a server keeps it loaded), split into the stages
  ingest, preprocessing (cine volume build + resampling + normalisation), inference (network forward and mapping
  class scores back to the source grid), measurement (consistency cleaning, ED/ES, measurements, flags) and
  rendering (report.json, seg.dcm, sr.dcm, report.pdf);
* ``baseline``: the least a script must do to get a segmentation: ``pydicom.dcmread`` every file, stack the pixel
  arrays, z-score, pad, and run the same network's raw forward pass on all 240 slices (no geometry, resampling,
  cleaning, measurement or reports).

Peak RSS per stage: the largest resident set size (``/proc/self/status`` VmRSS, sampled every 5 ms) seen while the
stage ran; the process peak is ``ru_maxrss``. nnU-Net v2 is not installed in this environment (no network access
to fetch it and its pretrained weights), so no nnU-Net ratio is given.

Usage::

    .venv/bin/python bench/cmr_analyze.py [--path DIR] [--model REF] [--repeat 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from medai.cardiac.analysis import run_cine_analysis
from medai.cardiac.predictor import load_default
from medai.dicom.ingest import ingest
from medai.settings import find_data_dir

STAGES = ("ingest", "preprocessing", "inference", "measurement", "rendering")


class RssSampler:
    """Samples VmRSS in a thread; :meth:`mark` starts a new stage; peaks are kept per stage (MiB)."""

    def __init__(self) -> None:
        self.stage = "setup"
        self.peaks: dict[str, float] = {}
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def rss_mib() -> float:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
        return float("nan")

    def _run(self) -> None:
        while not self._stop.is_set():
            r = self.rss_mib()
            self.peaks[self.stage] = max(self.peaks.get(self.stage, 0.0), r)
            time.sleep(0.005)

    def mark(self, stage: str) -> None:
        self.stage = stage

    def __enter__(self) -> RssSampler:
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()


def run_medai(folder: Path, predictor: Any, out: Path, sampler: RssSampler) -> dict[str, float]:
    sampler.mark("ingest")
    c0 = time.process_time()
    t0 = time.perf_counter()
    study = ingest(folder).studies[0]
    t_ingest = time.perf_counter() - t0
    stage_of = {"postprocessing": "measurement"}
    res = run_cine_analysis(study, out, predictor, progress=lambda s: sampler.mark(stage_of.get(s, s)))
    total = time.perf_counter() - t0
    cpu = time.process_time() - c0
    t = res.timings_s
    return {
        "ingest": t_ingest,
        "preprocessing": t.get("volume", 0.0) + t.get("preprocessing", 0.0),
        "inference": t.get("inference", 0.0),
        "measurement": t.get("postprocessing", 0.0) + t.get("measurement", 0.0),
        "rendering": t.get("rendering", 0.0),
        "total": total,
        "cpu_total": cpu,
        "lv_ef": next((m.value for m in res.report.measurements if m.name == "lv_ef"), float("nan")),
        "files": float(len(res.files)),
    }


def run_baseline(folder: Path, predictor: Any) -> tuple[float, float]:
    import pydicom
    import torch

    from medai.cardiac.preprocess import normalize_intensity, pad_to_divisor

    c0 = time.process_time()
    t0 = time.perf_counter()
    arrays = []
    for f in sorted(folder.glob("*.dcm")):
        arrays.append(pydicom.dcmread(f).pixel_array.astype(np.float32))
    x, _ = pad_to_divisor(normalize_intensity(np.stack(arrays)), predictor.config.size_divisor)
    with torch.inference_mode():
        for i in range(0, len(x), 24):
            predictor.net(torch.from_numpy(np.ascontiguousarray(x[i : i + 24, None]))).argmax(1)
    return time.perf_counter() - t0, time.process_time() - c0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--path", type=Path, default=None, help="Sunnybrook patient folder (default SCD0000101)")
    ap.add_argument("--model", default="heart_mr_cine_seg", help="package folder or shipped name")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    folder = args.path
    if folder is None:
        root = find_data_dir()
        if root is None:
            raise SystemExit("real data not found; pass --path")
        folder = root / "cardiac" / "sunnybrook" / "dicoms" / "SCD0000101"
    console = Console()
    t0 = time.perf_counter()
    predictor = load_default(args.model)
    load_s = time.perf_counter() - t0
    runs: list[dict[str, float]] = []
    base: list[float] = []
    base_cpu: list[float] = []
    peaks: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp, RssSampler() as sampler:
        # warm-up (first-call costs: lazy imports, allocator, thread pools)
        run_medai(folder, predictor, Path(tmp) / "warm", sampler)
        run_baseline(folder, predictor)
        sampler.peaks.clear()
        for i in range(args.repeat):
            runs.append(run_medai(folder, predictor, Path(tmp) / f"run{i}", sampler))
            sampler.mark("baseline")
            wall, cpu = run_baseline(folder, predictor)
            base.append(wall)
            base_cpu.append(cpu)
            sampler.mark("idle")
        peaks = dict(sampler.peaks)
    n_images = len(list(folder.glob("*.dcm")))
    table = Table(title=f"medai analyze on {folder.name} ({n_images} images), {args.repeat} runs, "
                        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB process peak RSS")
    for col in ("stage", "median s", "min s", "peak RSS MiB"):
        table.add_column(col)
    summary: dict[str, Any] = {"folder": str(folder), "n_images": n_images, "model_load_s": load_s, "stages": {}}
    for k in (*STAGES, "total"):
        vals = [r[k] for r in runs]
        summary["stages"][k] = {"median_s": statistics.median(vals), "min_s": min(vals), "peak_rss_mib": peaks.get(k)}
        table.add_row(k, f"{statistics.median(vals):.2f}", f"{min(vals):.2f}",
                      f"{peaks[k]:.0f}" if k in peaks else "")
    bmed = statistics.median(base)
    table.add_row("baseline (dcmread + raw forward)", f"{bmed:.2f}", f"{min(base):.2f}",
                  f"{peaks['baseline']:.0f}" if "baseline" in peaks else "")
    console.print(table)
    load = os.getloadavg()
    console.print(f"machine: {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}, load average during the "
                  f"run {load[0]:.1f} / {load[1]:.1f} (1 / 5 min): other jobs share these cores")
    ratio = summary["stages"]["total"]["median_s"] / bmed
    cpu_med, bcpu_med = statistics.median(r["cpu_total"] for r in runs), statistics.median(base_cpu)
    console.print(f"CPU time (all threads): medai {cpu_med:.2f} s, baseline {bcpu_med:.2f} s, ratio "
                  f"{cpu_med / bcpu_med:.2f} (less sensitive to other jobs than wall time)")
    console.print(f"model load (once) {load_s:.2f} s; LV EF {runs[-1]['lv_ef']:.1f}%; files written "
                  f"{int(runs[-1]['files'])}; medai / baseline wall-time ratio {ratio:.2f}; goal total <= 5 s: "
                  f"{'met' if summary['stages']['total']['median_s'] <= 5 else 'NOT met'}")
    summary.update(cpu_total_median_s=cpu_med, baseline_cpu_median_s=bcpu_med, load_average=load,
                   baseline_median_s=bmed, ratio_vs_baseline=ratio, lv_ef=runs[-1]["lv_ef"],
                   process_peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
