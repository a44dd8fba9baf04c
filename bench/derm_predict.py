"""Per-image latency and throughput of the shipped skin-lesion classifier on CPU (1 and 2 threads).

    python bench/derm_predict.py [--model skin_derm_lesion_cls] [--n 200] [--out bench_derm.json]

Times the full public predict path (JPEG bytes -> validation -> resize/normalise -> network -> calibrated
probabilities), with and without the Grad-CAM saliency map, on real HAM10000 images when the data folder is found
(else on synthetic colour images, said in the output). Reports median and p90 latency per image and images/s.
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np


def _images(n: int) -> tuple[list[bytes], str]:
    from medai.settings import find_data_dir

    root = find_data_dir()
    folder = root / "derm" / "ham10000" / "images" if root else None
    if folder and folder.is_dir():
        files = sorted(folder.glob("*.jpg"))[:n]
        return [f.read_bytes() for f in files], f"HAM10000 JPEG 200x150 ({len(files)} images)"
    from PIL import Image

    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        arr = rng.integers(0, 255, (150, 200, 3), dtype=np.uint8)
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format="JPEG")
        out.append(buf.getvalue())
    return out, f"synthetic JPEG 200x150 ({n} images; real data not found)"


def bench(model: str, n: int, threads: int, saliency: bool, images: list[bytes]) -> dict[str, float]:
    """Latency statistics of ``predict`` over ``images`` with ``threads`` torch threads."""
    import torch

    from medai.inference.predictor import Predictor

    torch.set_num_threads(threads)
    pred = Predictor.from_package(model, saliency=saliency)
    for b in images[:5]:  # warm-up
        pred.predict(b)
    lat = []
    t_all = time.perf_counter()
    for b in images[:n]:
        t = time.perf_counter()
        pred.predict(b)
        lat.append(time.perf_counter() - t)
    total = time.perf_counter() - t_all
    lat.sort()
    return {
        "threads": threads,
        "saliency": saliency,
        "n": len(lat),
        "median_ms": 1000 * statistics.median(lat),
        "p90_ms": 1000 * lat[int(0.9 * (len(lat) - 1))],
        "images_per_s": len(lat) / total,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="skin_derm_lesion_cls")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    from rich.console import Console
    from rich.table import Table

    images, source = _images(args.n)
    rows = [bench(args.model, args.n, t, s, images) for t in (1, 2) for s in (False, True)]
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(
            ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines() if "model name" in ln
        )
    except (OSError, StopIteration):
        pass
    table = Table(title=f"{args.model} predict on CPU ({cpu}); inputs: {source}")
    for col in ("threads", "saliency", "n", "median ms/image", "p90 ms/image", "images/s"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(
            str(r["threads"]),
            "grad-cam" if r["saliency"] else "off",
            str(r["n"]),
            f"{r['median_ms']:.1f}",
            f"{r['p90_ms']:.1f}",
            f"{r['images_per_s']:.1f}",
        )
    Console().print(table)
    if args.out:
        args.out.write_text(json.dumps({"model": args.model, "cpu": cpu, "inputs": source, "results": rows}, indent=2))


if __name__ == "__main__":
    main()
