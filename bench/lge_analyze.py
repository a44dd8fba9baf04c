"""Benchmark: a warm LGE scar analysis of one study, by stage, against a plain read + raw forward, at 1 and 2 threads.

The study: an EMIDEC case's real slices wrapped into an LGE DICOM series (generated headers, 1.5 mm pixels, 8 mm
slices; ``--case``), or the LGE scar phantom when the data is absent. Measured in one process, alternating,
``--repeat`` times (median and min wall time), model loaded once (a server keeps it loaded):

* ``medai``: :func:`medai.analyses.runner.run_study_analyses` with ``kinds=["lge_scar"]`` on the ingested study:
  series selection, volume, segmentation (resize, normalisation, network, mapping back, post-processing), scar by
  every method (model, n-SD x3, FWHM; transmurality per AHA segment), figures, and the SEG, SR, PDF, FHIR and
  JSON renderings;
* ``ingest``: reading the files into a study (reported apart: a server ingests on upload);
* ``baseline``: ``pydicom.dcmread`` every file, stack, z-score, resize to the network grid and the same network's
  raw forward pass (no geometry, post-processing, measurement or reports).

Goal (issue 9): the warm analysis takes 2 s or less.

Usage::

    .venv/bin/python bench/lge_analyze.py [--case Case_P010] [--repeat 5] [--json out.json]
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

STAGES = ("volume", "preprocessing", "inference", "postprocessing", "measurement", "rendering")


def write_study(folder: Path, case: str) -> str:
    """Write the benchmark study into ``folder``; returns what it is."""
    from medai.dicom.phantoms import dataset_to_bytes, lge_series_datasets, make_lge_scar_study

    root = find_data_dir()
    emidec = root / "cardiac" / "emidec" if root else None
    folder.mkdir(parents=True, exist_ok=True)
    if emidec is not None and (emidec / "images").is_dir():
        from medai.datasets.emidec import read_emidec_case

        c = read_emidec_case(emidec, case)
        datasets, _ = lge_series_datasets(np.rint(c.image).astype(np.uint16), 4242, 1.5, 8.0)
        for i, ds in enumerate(datasets):
            (folder / f"IM{i:03d}.dcm").write_bytes(dataset_to_bytes(ds))
        return f"EMIDEC {case} ({len(datasets)} slices {c.image.shape[1]}x{c.image.shape[2]}, real pixels)"
    make_lge_scar_study(folder, rows=256, cols=256, n_slices=8)
    return "LGE scar phantom (8 slices 256x256; EMIDEC not found)"


def baseline(folder: Path, predictor: Any) -> float:
    """Plain read + raw forward of the same network; seconds."""
    import pydicom
    import torch.nn.functional as F  # noqa: N812

    t0 = time.perf_counter()
    arr = np.stack([pydicom.dcmread(p).pixel_array.astype(np.float32) for p in sorted(folder.glob("*.dcm"))])
    x = torch.from_numpy((arr - arr.mean()) / (arr.std() + 1e-6))[:, None]
    cfg = predictor.config
    x = F.interpolate(x, size=tuple(cfg.canonical_size), mode="bilinear", align_corners=False)
    if cfg.crop_size:
        (h, w), (ch, cw) = cfg.canonical_size, cfg.crop_size
        x = x[..., (h - ch) // 2:(h - ch) // 2 + ch, (w - cw) // 2:(w - cw) // 2 + cw]
    if cfg.in_channels > 1:
        x = x.repeat(1, cfg.in_channels, 1, 1)
    with torch.inference_mode():
        predictor.net(x).argmax(1)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--case", default="Case_P010")
    ap.add_argument("--model", default="heart_mr_lge_seg")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    console = Console()
    tmp = Path(tempfile.mkdtemp(prefix="medai-bench-lge-"))
    what = write_study(tmp / "study", args.case)
    predictor = Predictor.from_package(args.model)
    provider = package_provider({"heart_mr_lge_seg": predictor})
    rows: dict[int, dict[str, Any]] = {}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        t_ing = ingest(tmp / "study")  # warm-up (imports, caches)
        run_study_analyses(t_ing.studies[0], tmp / "warm", kinds=["lge_scar"], models=provider)
        walls, bases, ingests, stages = [], [], [], []
        for i in range(args.repeat):
            t0 = time.perf_counter()
            study = ingest(tmp / "study").studies[0]
            ingests.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            out = run_study_analyses(study, tmp / f"out{i}", kinds=["lge_scar"], models=provider)
            walls.append(time.perf_counter() - t0)
            stages.append(out.timings_s)
            bases.append(baseline(tmp / "study", predictor))
        rows[threads] = {
            "analysis_s_median": statistics.median(walls), "analysis_s_min": min(walls),
            "ingest_s_median": statistics.median(ingests),
            "baseline_s_median": statistics.median(bases), "baseline_s_min": min(bases),
            "ratio_median": statistics.median(walls) / statistics.median(bases),
            "stages_s_median": {k: statistics.median(s.get(k, 0.0) for s in stages) for k in STAGES},
        }
    table = Table(title=f"warm LGE analysis: {what}; {args.repeat} runs each, model loaded once")
    for col in ("threads", "medai analysis (median / min s)", "ingest (s)", "baseline read+forward (s)",
                "ratio", "goal <= 2 s"):
        table.add_column(col)
    for t, r in rows.items():
        table.add_row(str(t), f"{r['analysis_s_median']:.2f} / {r['analysis_s_min']:.2f}",
                      f"{r['ingest_s_median']:.2f}", f"{r['baseline_s_median']:.3f}", f"{r['ratio_median']:.1f}x",
                      "met" if r["analysis_s_median"] <= 2.0 else "NOT met")
    console.print(table)
    st = Table(title="stages (median s)")
    st.add_column("threads")
    for k in STAGES:
        st.add_column(k)
    for t, r in rows.items():
        st.add_row(str(t), *(f"{r['stages_s_median'][k]:.3f}" for k in STAGES))
    console.print(st)
    if args.json:
        args.json.write_text(json.dumps({"study": what, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
