"""Benchmark: the quality gate's cost, per slice and per cine study, at 1 and 2 threads.

* **per slice**: :meth:`QualityPredictor.score_slices` on a batch of real ACDC slices (the phantom's when the data
  is absent), including the resize and normalisation, against the baseline of the shipped cine segmentation
  network's forward pass on the same slices at its own grid (what the gate costs next to the analysis it
  guards). Goal (issue 11): 1 ms or less per slice on 1 thread.
* **per cine study**: :func:`run_study_analyses` of a cine study (Sunnybrook SCD0000101, 12 slices x 20 phases,
  real DICOM; the phantom when absent) with the gate and without it (an empty step folder), warm, alternating,
  ``--repeat`` times; the difference of medians is the added time. Goal: 0.3 s or less.

Usage::

    .venv/bin/python bench/quality.py [--repeat 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from medai.analyses.runner import package_provider, run_study_analyses
from medai.dicom.ingest import ingest
from medai.inference.predictor import Predictor
from medai.settings import find_data_dir


def bench_slices() -> tuple[list[np.ndarray], str]:
    root = find_data_dir()
    acdc = root / "cardiac" / "acdc" if root else None
    if acdc is not None and acdc.is_dir():
        from medai.datasets.acdc import load_acdc_release

        cases = load_acdc_release(acdc, split="val")[:12]
        sl = [z for c in cases for z in c.image][:128]
        return sl, f"{len(sl)} ACDC val slices ({sl[0].shape[0]}x{sl[0].shape[1]}...)"
    rng = np.random.default_rng(0)
    return [rng.random((192, 192)).astype(np.float32) for _ in range(128)], "128 random 192x192 slices"


def study_dir(tmp: Path) -> tuple[Path, str]:
    root = find_data_dir()
    sb = root / "cardiac" / "sunnybrook" / "dicoms" / "SCD0000101" if root else None
    if sb is not None and sb.is_dir():
        return sb, "Sunnybrook SCD0000101 (real cine DICOM, 12 slices x 20 phases)"
    from medai.dicom.phantoms import make_cine_sax_study

    make_cine_sax_study(tmp / "phantom", rows=128, cols=128, n_slices=10, n_phases=20)
    return tmp / "phantom", "cine phantom (10 slices x 20 phases, 128x128)"


def per_slice(quality: Any, cine: Any, slices: list[np.ndarray], repeat: int) -> dict[str, float]:
    from medai.cardiac.preprocess import normalize_intensity, pad_to_divisor
    from medai.quality.preprocess import prepare_slices

    quality.score_slices(slices[:8])
    q, net = [], []
    prepared = torch.from_numpy(prepare_slices(slices))
    for _ in range(repeat):
        t0 = time.perf_counter()
        quality.score_slices(slices)
        q.append((time.perf_counter() - t0) / len(slices))
        t0 = time.perf_counter()
        with torch.inference_mode():
            for i in range(0, len(prepared), 64):
                quality.net(prepared[i : i + 64])
        net.append((time.perf_counter() - t0) / len(slices))
    x, _ = pad_to_divisor(np.stack([normalize_intensity(s, cine.config.p_low, cine.config.p_high)
                                    for s in slices if s.shape == slices[0].shape]), cine.config.size_divisor)
    t = torch.from_numpy(np.ascontiguousarray(x[:, None], dtype=np.float32))
    b = []
    with torch.inference_mode():
        cine.net(t[:4])
        for _ in range(repeat):
            t0 = time.perf_counter()
            for i in range(0, len(t), 24):
                cine.net(t[i : i + 24])
            b.append((time.perf_counter() - t0) / len(t))
    return {"quality_ms": 1000 * statistics.median(q), "quality_net_ms": 1000 * statistics.median(net),
            "seg_forward_ms": 1000 * statistics.median(b)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    console = Console()
    tmp = Path(tempfile.mkdtemp(prefix="medai-bench-quality-"))
    quality = Predictor.from_package("heart_mr_quality")
    cine = Predictor.from_package("heart_mr_cine_seg")
    provider = package_provider({"heart_mr_quality": quality, "heart_mr_cine_seg": cine})
    slices, what_slices = bench_slices()
    folder, what_study = study_dir(tmp)
    no_steps = tmp / "no_steps"
    no_steps.mkdir()
    study = ingest(folder).studies[0]
    rows: dict[int, dict[str, Any]] = {}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        r: dict[str, Any] = per_slice(quality, cine, slices, args.repeat)
        for d in (None, no_steps):
            run_study_analyses(study, tmp / "warm", kinds=["cine_function"], models=provider, step_dir=d)
        with_gate, without, gate_stage = [], [], []
        for i in range(args.repeat):
            t0 = time.perf_counter()
            out = run_study_analyses(study, tmp / f"g{i}", kinds=["cine_function"], models=provider)
            with_gate.append(time.perf_counter() - t0)
            gate_stage.append(out.results[0].timings_s.get("quality", 0.0))
            t0 = time.perf_counter()
            run_study_analyses(study, tmp / f"n{i}", kinds=["cine_function"], models=provider, step_dir=no_steps)
            without.append(time.perf_counter() - t0)
        r.update(study_with_gate_s=statistics.median(with_gate), study_without_gate_s=statistics.median(without),
                 added_s=statistics.median(with_gate) - statistics.median(without),
                 gate_stage_s=statistics.median(gate_stage))
        rows[threads] = r
    t1 = Table(title=f"quality gate per slice: {what_slices}")
    for col in ("threads", "CNN forward (ms/slice)", "with resize + normalise (ms/slice)",
                "baseline: cine seg forward (ms/slice)", "ratio (with preprocessing)", "goal <= 1 ms (CNN / all)"):
        t1.add_column(col)
    for t, r in rows.items():
        t1.add_row(str(t), f"{r['quality_net_ms']:.3f}", f"{r['quality_ms']:.3f}", f"{r['seg_forward_ms']:.3f}",
                   f"{r['quality_ms'] / r['seg_forward_ms']:.2f}x",
                   f"{'met' if r['quality_net_ms'] <= 1.0 else 'NOT met'} / "
                   f"{'met' if r['quality_ms'] <= 1.0 else 'NOT met'}")
    console.print(t1)
    t2 = Table(title=f"quality gate per cine study: {what_study}; warm, {args.repeat} runs each")
    for col in ("threads", "with gate (s)", "without (s)", "added (s)", "gate stages (s)", "goal <= 0.3 s"):
        t2.add_column(col)
    for t, r in rows.items():
        t2.add_row(str(t), f"{r['study_with_gate_s']:.2f}", f"{r['study_without_gate_s']:.2f}",
                   f"{r['added_s']:.3f}", f"{r['gate_stage_s']:.3f}", "met" if r["added_s"] <= 0.3 else "NOT met")
    console.print(t2)
    if args.json:
        args.json.write_text(json.dumps({"slices": what_slices, "study": what_study, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
