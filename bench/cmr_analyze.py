"""Benchmark: the warm cine analysis of Sunnybrook SCD0000101 by stage, against nnU-Net v2 in the same run.

For each torch thread count (``--threads 1,2``), in one process with the models loaded once (as a server keeps
them, :func:`medai.analyses.runner.package_provider`):

* **medai** (``--repeat`` runs, median and min): ``ingest(folder)`` -> ``run_study_analyses(kinds=[cine_function])``:
  ingest, volume (4-D cine build), preprocessing (in-plane resampling + normalisation), inference (network + class
  scores mapped back to the source grid), postprocessing (3-D consistency cleaning), measurement, quality (the
  image-quality gate and segmentation-quality estimate), rendering (report.json, SEG, SR, PDF, FHIR, label maps);
  once per engine: ``float32`` (torch eager, the reference and the warm default), ``onnx`` (the package's ONNX
  export under ONNX Runtime, :mod:`medai.inference.compiled`: what ``medai analyze`` runs) and, where the CPU has
  native bf16, ``bfloat16`` (torch autocast, ``MEDAI_PRECISION=bfloat16``);
* **nnU-Net v2** (:mod:`bench.baselines.nnunet_cine`, a subprocess between medai's runs): its own 2-D plan for an
  ACDC-like dataset, random weights, no mirroring, ``predict_single_npy_array`` per phase. It segments only, so the
  like-for-like ratio is against medai's segmentation (volume + preprocessing + inference); the ratio against the
  whole analysis is printed too.

Then: peak RSS of a warm analysis above the idle process (heap trimmed first) against ``2 x`` the study's float32
bytes plus the model, and the numpy + Python allocation peak of one run (``tracemalloc``); ``medai analyze`` cold
(a fresh process, models loaded from disk) ``--cold`` times; and the Dice check: ACDC val (``splits.csv``) through
the predictor (each engine) against the committed
``models/packages/heart_mr_cine_seg/evaluation/acdc_val.json`` (must not move by more than 0.002).

Usage::

    .venv/bin/python bench/cmr_analyze.py [--path DIR] [--repeat 5] [--threads 1,2] [--no-nnunet] [--no-dice]
        [--cold 2] [--json out.json]

nnU-Net v2 is not a medai dependency: ``pip install nnunetv2 torch==2.13.0`` then ``pip uninstall torchvision``
(its wheel is built for the CUDA torch and breaks imports next to the CPU build; nnU-Net's predictor does not need
it). Without it the nnU-Net row is skipped with that message.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from memwatch import RssSampler, trim  # bench/memwatch.py, beside this script
from rich.console import Console
from rich.table import Table

from medai.analyses.runner import package_provider, run_study_analyses
from medai.dicom.ingest import ingest
from medai.settings import REPO_ROOT as REPO
from medai.settings import find_data_dir

#: report stages (``report.summary.timings_s`` keys) in the order they run
STAGES = ("ingest", "volume", "preprocessing", "inference", "postprocessing", "measurement", "quality", "rendering")
SEGMENTATION = ("volume", "preprocessing", "inference")
DICE_KEYS = ("dice.lv", "dice.myo", "dice.rv")
DICE_TOL = 0.002


def run_medai(folder: Path, provider: Any, out: Path, sampler: RssSampler) -> dict[str, float]:
    """One warm analysis; stage seconds (``report.summary.timings_s``), total, and the run's peak RSS (MiB)."""
    trim()
    idle = sampler.rss_mib()
    sampler.mark("run")
    sampler.peaks.pop("run", None)
    t0 = time.perf_counter()
    study = ingest(folder).studies[0]
    t_ingest = time.perf_counter() - t0
    res = run_study_analyses(study, out, kinds=["cine_function"], models=provider,
                             extra_timings={"ingest": t_ingest})
    total = time.perf_counter() - t0
    sampler.mark("idle")
    row = {k: float(res.timings_s.get(k, 0.0)) for k in STAGES}
    row["segmentation"] = sum(row[k] for k in SEGMENTATION)
    row["total"] = total
    row["peak_above_idle_mib"] = sampler.peaks.get("run", float("nan")) - idle
    row["lv_ef"] = next((m.value for m in res.report.measurements if m.name == "lv_ef"), float("nan"))
    return row


def traced_peak(folder: Path, provider: Any, out: Path) -> float:
    """Peak MiB of numpy and Python allocations (``tracemalloc``) during one warm analysis: what medai holds,
    without torch's own allocator (network activations) or memory the C allocator keeps."""
    import tracemalloc

    tracemalloc.start()
    try:
        run_study_analyses(ingest(folder).studies[0], out, kinds=["cine_function"], models=provider)
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def nnunet(folder: Path, plan_dir: Path, threads: int) -> dict[str, Any]:
    r = subprocess.run([sys.executable, "-m", "bench.baselines.nnunet_cine", "--plan-dir", str(plan_dir),
                        "--study", str(folder), "--threads", str(threads), "--repeat", "1"],
                       cwd=REPO, capture_output=True, text=True, timeout=1800)
    if r.returncode != 0:
        raise RuntimeError(r.stderr[-2000:])
    return json.loads(r.stdout.strip().splitlines()[-1])


#: the engines a run compares: runtime and precision passed to the cine predictor's ``load``
ENGINES: dict[str, dict[str, str]] = {"onnx": {"runtime": "onnx", "precision": "float32"},
                                      "float32": {"runtime": "torch", "precision": "float32"},
                                      "bfloat16": {"runtime": "torch", "precision": "bfloat16"}}
SHORT = {"onnx": "onnx", "float32": "torch f32", "bfloat16": "torch bf16"}
#: what a server runs warm (``MEDAI_RUNTIME=auto``: torch for the cine U-Net, measured faster warm than ONNX Runtime)
DEFAULT_ENGINE = "float32"


def dice_check(console: Console, precisions: list[str]) -> dict[str, Any]:
    from medai.cardiac.predictor import load_default
    from pipelines.cmr.evaluate import evaluate

    root = find_data_dir()
    acdc = root / "cardiac" / "acdc" if root else None
    ref_path = REPO / "models" / "packages" / "heart_mr_cine_seg" / "evaluation" / "acdc_val.json"
    if acdc is None or not acdc.is_dir():
        return {"skipped": "ACDC not found"}
    ref = json.loads(ref_path.read_text())["mean"]
    out: dict[str, Any] = {"reference": str(ref_path.relative_to(REPO)), "tolerance": DICE_TOL}
    for prec in precisions:
        doc = evaluate(load_default("heart_mr_cine_seg", **ENGINES[prec]), acdc, "acdc", "val")
        deltas = {k: doc["mean"][k] - ref[k] for k in DICE_KEYS}
        ok = all(abs(d) <= DICE_TOL for d in deltas.values())
        out[prec] = {"dice": {k: doc["mean"][k] for k in DICE_KEYS}, "delta": deltas, "ok": ok,
                     "n_cases": doc["n_cases"], "seconds": doc["seconds"]}
        console.print(f"Dice check ({prec}, ACDC val, {doc['n_cases']} cases): "
                      + ", ".join(f"{k} {doc['mean'][k]:.4f} ({deltas[k]:+.5f})" for k in DICE_KEYS)
                      + f" vs the committed evaluation: {'within' if ok else 'OUTSIDE'} {DICE_TOL}")
    return out


def cold(folder: Path, n: int, runtime: str | None = None) -> list[float]:
    """``n`` cold ``medai analyze`` runs; ``runtime`` sets ``MEDAI_RUNTIME`` (None: the command's own choice,
    ``fast-start``)."""
    secs = []
    exe = Path(sys.executable).with_name("medai")
    env = dict(os.environ)
    env.pop("MEDAI_RUNTIME", None)
    if runtime:
        env["MEDAI_RUNTIME"] = runtime
    for _ in range(n):
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            r = subprocess.run([str(exe), "analyze", str(folder), "--out", tmp + "/out"], capture_output=True,
                               text=True, timeout=600, env=env)
            secs.append(time.perf_counter() - t0)
            if r.returncode != 0:
                raise RuntimeError(r.stderr[-2000:])
    return secs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--path", type=Path, default=None, help="Sunnybrook patient folder (default SCD0000101)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--no-bf16", action="store_true", help="skip the bfloat16 rows")
    ap.add_argument("--no-nnunet", action="store_true")
    ap.add_argument("--no-dice", action="store_true")
    ap.add_argument("--cold", type=int, default=2, help="cold `medai analyze` runs (0: none)")
    ap.add_argument("--plan-dir", type=Path, default=REPO / ".medai" / "bench" / "nnunet_plan")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    folder = args.path
    if folder is None:
        root = find_data_dir()
        if root is None:
            raise SystemExit("real data not found; pass --path")
        folder = root / "cardiac" / "sunnybrook" / "dicoms" / "SCD0000101"
    console = Console(width=150)
    threads = [int(t) for t in args.threads.split(",")]
    bf16 = not args.no_bf16 and (torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    have_nnunet = not args.no_nnunet and importlib.util.find_spec("nnunetv2") is not None
    if not args.no_nnunet and not have_nnunet:
        console.print("[yellow]nnU-Net v2 is not installed: pip install nnunetv2 torch==2.13.0 && pip uninstall -y "
                      "torchvision; its row is skipped[/]")
    from medai.cardiac.predictor import load_default

    precisions = ["float32", "onnx"] + (["bfloat16"] if bf16 else [])
    t0 = time.perf_counter()
    providers = {p: package_provider({"heart_mr_cine_seg": load_default("heart_mr_cine_seg", **ENGINES[p])})
                 for p in precisions}
    load_s = time.perf_counter() - t0
    n_images = len(list(folder.glob("*.dcm")))
    summary: dict[str, Any] = {"folder": folder.name, "n_images": n_images, "cpus": os.cpu_count(),
                               "model_load_s": load_s, "repeat": args.repeat, "runs": {}, "nnunet": {}}
    study_bytes = None
    with tempfile.TemporaryDirectory() as tmp, RssSampler() as sampler:
        for n_threads in threads:
            torch.set_num_threads(n_threads)
            for prec in precisions:
                run_medai(folder, providers[prec], Path(tmp) / "warm", sampler)  # first-call costs
            rows: dict[str, list[dict[str, float]]] = {p: [] for p in precisions}
            half = (args.repeat + 1) // 2
            for i in range(args.repeat):
                for prec in precisions:
                    rows[prec].append(run_medai(folder, providers[prec], Path(tmp) / f"r{n_threads}{prec}{i}",
                                                sampler))
                if i == half - 1 and have_nnunet:  # nnU-Net between medai's runs, same machine state
                    console.print(f"nnU-Net v2 at {n_threads} thread(s)...")
                    summary["nnunet"][n_threads] = nnunet(folder, args.plan_dir, n_threads)
            summary["runs"][n_threads] = {p: rows[p] for p in precisions}
        if study_bytes is None:
            from medai.dicom.volumes import build_cine

            study = ingest(folder).studies[0]
            vol = build_cine(max(study.series, key=lambda s: len(s.instances)))
            study_bytes = int(np.prod(vol.array.shape)) * 4
            summary["study_shape"] = list(vol.array.shape)
    net = providers["float32"]("heart_mr_cine_seg").net
    model_bytes = sum(p.numel() * p.element_size() for p in net.parameters())

    def med(rs: list[dict[str, float]], k: str) -> float:
        return statistics.median(r[k] for r in rs)

    table = Table(title=f"warm cine analysis of {folder.name} ({n_images} images, study "
                        f"{'x'.join(map(str, summary['study_shape']))}), median (min) of {args.repeat} runs, seconds")
    cols = [f"{t} thr {SHORT[p]}" for t in threads for p in precisions]
    table.add_column("stage")
    for c in cols:
        table.add_column(c, justify="right")
    for k in (*STAGES, "segmentation", "total"):
        cells = []
        for t in threads:
            for p in precisions:
                rs = summary["runs"][t][p]
                cells.append(f"{med(rs, k):.2f} ({min(r[k] for r in rs):.2f})")
        table.add_row(k, *cells)
    for t in threads:
        if t in summary["nnunet"]:
            nn = summary["nnunet"][t]
            nn_s = nn["seconds"][0]
            cells = []
            for tt in threads:
                for p in precisions:
                    cells.append(f"{nn_s:.1f}" if tt == t and p == DEFAULT_ENGINE else "")
            table.add_row(f"nnU-Net v2 2d ({nn['phases']}x{nn['slices']} slices)", *cells)
    console.print(table)
    ratios: dict[str, float] = {}
    for t in threads:
        if t not in summary["nnunet"]:
            continue
        nn_s = summary["nnunet"][t]["seconds"][0]
        for p in precisions:
            rs = summary["runs"][t][p]
            ratios[f"seg_{t}thr_{p}"] = nn_s / med(rs, "segmentation")
            ratios[f"total_{t}thr_{p}"] = nn_s / med(rs, "total")
    if summary["nnunet"]:
        plan = next(iter(summary["nnunet"].values()))["plan"]
        console.print(f"nnU-Net v2 {next(iter(summary['nnunet'].values()))['nnunetv2']}: its 2d plan "
                      f"{plan['network']} {plan['stages']} stages, {plan['parameters'] / 1e6:.1f} M parameters, "
                      f"patch {plan['patch_size']}, random weights, no mirroring")
        console.print("nnU-Net time / medai time (segmentation is like for like; total adds quality, measurement "
                      "and SEG/SR/PDF): " + ", ".join(f"{k} {v:.1f}x" for k, v in ratios.items()))
    summary["ratios_vs_nnunet"] = ratios
    budget_mib = (2 * study_bytes + model_bytes) / 2**20
    mem = {}
    for t in threads:
        rs = summary["runs"][t][DEFAULT_ENGINE]
        mem[t] = {"median": med(rs, "peak_above_idle_mib"), "max": max(r["peak_above_idle_mib"] for r in rs)}
        console.print(f"memory at {t} thread(s): peak RSS of a warm analysis above the trimmed idle process: median "
                      f"{mem[t]['median']:.0f} MiB, max {mem[t]['max']:.0f} MiB; goal <= 2 x study "
                      f"{study_bytes / 2**20:.0f} MiB + model {model_bytes / 2**20:.1f} MiB = {budget_mib:.0f} MiB: "
                      f"{'met' if mem[t]['max'] <= budget_mib else 'NOT met'}")
    with tempfile.TemporaryDirectory() as tmp:
        traced = traced_peak(folder, providers[DEFAULT_ENGINE], Path(tmp) / "traced")
    console.print(f"numpy + Python allocations (tracemalloc) peak during a warm analysis: {traced:.0f} MiB "
                  f"(the rest of the RSS peak is the network's activations and allocator slack)")
    summary["memory"] = {"study_float32_mib": study_bytes / 2**20, "model_mib": model_bytes / 2**20,
                         "budget_mib": budget_mib, "rss_peak_above_idle_mib": mem, "traced_peak_mib": traced}
    t2 = max(threads)
    total2 = med(summary["runs"][t2][DEFAULT_ENGINE], "total")
    console.print(f"warm total at {t2} threads ({SHORT[DEFAULT_ENGINE]}, the default): {total2:.2f} s, goal <= 5 s: "
                  f"{'met' if total2 <= 5 else 'NOT met'}; LV EF "
                  f"{summary['runs'][t2][DEFAULT_ENGINE][-1]['lv_ef']:.1f}%")
    speed = {f"{t}thr": med(summary["runs"][t]["float32"], "inference") / med(summary["runs"][t]["onnx"], "inference")
             for t in threads}
    summary["inference_speedup_onnx_vs_torch"] = speed
    console.print("inference stage, torch float32 / ONNX Runtime (same run): "
                  + ", ".join(f"{k} {v:.2f}x" for k, v in speed.items()))
    if args.cold:
        secs, torch_secs = [], []
        for _ in range(args.cold):  # alternated: the command's default (fast-start), then all-torch
            secs += cold(folder, 1)
            torch_secs += cold(folder, 1, runtime="torch")
        summary["cold_s"] = secs
        summary["cold_torch_s"] = torch_secs
        console.print(f"cold `medai analyze` (fresh process: imports, model loads, cine + diagnosis analyses; "
                      f"MEDAI_RUNTIME=fast-start, its default): median {statistics.median(secs):.1f} s of {len(secs)}, "
                      f"goal <= 15 s: {'met' if statistics.median(secs) <= 15 else 'NOT met'}; with "
                      f"MEDAI_RUNTIME=torch in the same run: {statistics.median(torch_secs):.1f} s")
    if not args.no_dice:
        summary["dice_check"] = dice_check(console, precisions)
    load = os.getloadavg()
    summary["load_average"] = load
    summary["process_peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    console.print(f"machine: {os.cpu_count()} CPUs; load average {load[0]:.1f} / {load[1]:.1f} (1 / 5 min); "
                  f"models loaded once in {load_s:.1f} s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=1, default=float))


if __name__ == "__main__":
    main()
