"""Benchmark: building the Sunnybrook 4-D cine with medai vs a plain ``pydicom.dcmread`` loop, in the same run.

Compared (same files, same process, alternating, min and median of ``--repeat`` runs; CPU and wall time):

* ``medai``: ``ingest(folder)`` (validation, de-duplication, grouping, classification) + ``build_cine(series)``
  -> ``(T, Z, Y, X)`` float32 Volume with affine, frame times and source UIDs.
* ``plain read+decode``: ``[pydicom.dcmread(f).pixel_array for f in files]`` (the brief's baseline).
* ``plain 4-D``: the same loop, then sort by (SliceLocation, TriggerTime) and stack into ``(T, Z, Y, X)`` float32
  -- what the plain loop needs to produce the same array (no geometry checks, no affine).

Peak memory is measured in separate runs with ``tracemalloc`` (Python and NumPy allocations).

Usage::

    .venv/bin/python bench/ingest.py [--path FOLDER] [--repeat 7] [--json out.json]
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time
import tracemalloc
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
from rich.console import Console
from rich.table import Table

from medai.dicom.ingest import ingest
from medai.dicom.volumes import build_cine
from medai.settings import find_data_dir


def medai_cine(folder: Path) -> np.ndarray:
    result = ingest(folder)
    (series,) = result.studies[0].series
    return build_cine(series).array


def plain_decode(files: list[Path]) -> list[np.ndarray]:
    return [pydicom.dcmread(f).pixel_array for f in files]


def plain_4d(files: list[Path]) -> np.ndarray:
    items = []
    for f in files:
        ds = pydicom.dcmread(f)
        items.append((float(ds.SliceLocation), float(ds.TriggerTime), ds.pixel_array))
    items.sort(key=lambda x: (x[0], x[1]))
    n_z = len({round(x[0], 3) for x in items})
    n_t = len(items) // n_z
    stack = np.stack([x[2] for x in items]).astype(np.float32)
    return stack.reshape(n_z, n_t, *stack.shape[1:]).transpose(1, 0, 2, 3)


def _time(fn: Callable[[], object]) -> tuple[float, float]:
    gc.collect()
    c0, w0 = time.process_time(), time.perf_counter()
    fn()
    return time.process_time() - c0, time.perf_counter() - w0


def _peak(fn: Callable[[], object]) -> float:
    gc.collect()
    tracemalloc.start()
    out = fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del out
    return peak / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", type=Path, default=None, help="Sunnybrook study folder (default: SCD0000101)")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args()
    console = Console()
    folder = args.path
    if folder is None:
        root = find_data_dir()
        if root is None:
            raise SystemExit("real data not found: pass --path or set MEDAI_DATA_DIR")
        folder = root / "cardiac" / "sunnybrook" / "dicoms" / "SCD0000101"
    files = sorted(folder.rglob("*.dcm"))
    warnings.simplefilter("ignore")  # Sunnybrook's invalid UIDs make pydicom warn in the plain loop

    # correctness first: both produce the same 4-D array
    ours, ref = medai_cine(folder), plain_4d(files)
    same = ours.shape == ref.shape and bool(np.array_equal(ours, ref))

    cases: dict[str, Callable[[], object]] = {
        "medai ingest + build_cine": lambda: medai_cine(folder),
        "plain read+decode": lambda: plain_decode(files),
        "plain 4-D (read+decode+sort+stack)": lambda: plain_4d(files),
    }
    for fn in cases.values():  # warm the page cache and imports
        fn()
    cpu: dict[str, list[float]] = {k: [] for k in cases}
    wall: dict[str, list[float]] = {k: [] for k in cases}
    with console.status("timing...") as status:
        for r in range(args.repeat):
            for name, fn in cases.items():  # alternate, so background load hits every case alike
                c, w = _time(fn)
                cpu[name].append(c)
                wall[name].append(w)
            status.update(f"timing... run {r + 1}/{args.repeat}")
    peaks = {name: _peak(fn) for name, fn in cases.items()}

    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    min_cpu = {k: min(v) for k, v in cpu.items()}
    med_wall = {k: statistics.median(v) for k, v in wall.items()}
    ours_key = "medai ingest + build_cine"
    table = Table(title=f"{len(files)} files from {folder} -> {ours.shape} float32 (identical arrays: {same})")
    for col in (
        "pipeline",
        "CPU s min / median",
        "wall s median",
        "peak MiB",
        "CPU ratio min / median",
        "wall ratio",
        "mem ratio",
    ):
        table.add_column(col, justify="right" if col != "pipeline" else "left")
    for name in cases:
        table.add_row(
            name,
            f"{min_cpu[name]:.3f} / {med_cpu[name]:.3f}",
            f"{med_wall[name]:.3f}",
            f"{peaks[name]:.1f}",
            f"{min_cpu[ours_key] / min_cpu[name]:.2f}x / {med_cpu[ours_key] / med_cpu[name]:.2f}x",
            f"{med_wall[ours_key] / med_wall[name]:.2f}x",
            f"{peaks[ours_key] / peaks[name]:.2f}x",
        )
    console.print(table)
    console.print(
        "ratios are medai / baseline (goal <= 1.1x against the plain dcmread loop); min is the least noisy "
        "estimate on a shared machine. medai's peak is dominated by its float32 output (T*Z*Y*X*4 bytes = "
        f"{ours.nbytes / 2**20:.1f} MiB) where the plain loop keeps int16 arrays."
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "files": len(files),
                    "shape": list(ours.shape),
                    "identical": same,
                    "repeat": args.repeat,
                    "cpu_s_median": med_cpu,
                    "cpu_s_min": min_cpu,
                    "wall_s_median": med_wall,
                    "peak_mib": peaks,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
