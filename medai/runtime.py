"""Process-wide runtime settings applied once by the entry points (``medai`` CLI, the API app, job workers).

:func:`tune_allocator` bounds how much freed memory glibc keeps. By default glibc serves a large block from
``mmap`` and gives it back on ``free``, but after the first such free it raises its mmap threshold (up to 32 MiB)
so that later blocks of that size come from the heap, where freed memory stays resident. A cine analysis frees and
re-allocates image-sized arrays stage after stage (quality slices, the 4-D volume, resampled slices, probabilities,
label maps), so the heap keeps their high-water mark. A fixed threshold keeps blocks of ``MEDAI_MMAP_THRESHOLD``
bytes or more on ``mmap`` (returned to the system when freed); smaller ones still come from the heap.

It is a trade, so it is **off by default**: ``bench/cine_pass_memory.py --mmap glibc,1048576`` (warm cine analysis
of a 240-image study, 2-CPU machine) measured peak RSS above idle 139 -> 113 MiB at 2 threads and 140 -> 115 MiB at
1, but 1.41x and 1.33x the time (every large array is then a fresh, zero-filled mapping). Set
``MEDAI_MMAP_THRESHOLD=1048576`` where memory, not time, is short (many workers on one host).
Unset or 0 leaves glibc's dynamic behaviour. Other C libraries (musl, macOS) are left alone.
"""

from __future__ import annotations

import ctypes
import logging
import os

logger = logging.getLogger(__name__)

#: glibc ``mallopt`` parameter number of ``M_MMAP_THRESHOLD`` (``<malloc.h>``).
M_MMAP_THRESHOLD = -3
#: Default: 0, glibc's dynamic threshold (see the module docstring for the measured trade of a fixed one).
DEFAULT_MMAP_THRESHOLD = 0
#: The glibc environment variable read at process start; set for child processes (uvicorn workers, pools).
GLIBC_ENV = "MALLOC_MMAP_THRESHOLD_"

_applied: int | None = None


def _threshold_from_env() -> int:
    raw = os.environ.get("MEDAI_MMAP_THRESHOLD", "").strip()
    if not raw:
        return DEFAULT_MMAP_THRESHOLD
    try:
        value = int(raw)
    except ValueError:
        logger.warning("MEDAI_MMAP_THRESHOLD=%r is not a whole number of bytes; using %d", raw,
                       DEFAULT_MMAP_THRESHOLD)
        return DEFAULT_MMAP_THRESHOLD
    if value < 0 or value > 32 << 20:  # glibc's own ceiling for the threshold is 32 MiB
        logger.warning("MEDAI_MMAP_THRESHOLD=%d is outside 0..33554432; using %d", value, DEFAULT_MMAP_THRESHOLD)
        return DEFAULT_MMAP_THRESHOLD
    return value


def tune_allocator(threshold: int | None = None) -> int | None:
    """Fix glibc's mmap threshold (see the module docstring); idempotent.

    Args:
        threshold: bytes; None reads ``MEDAI_MMAP_THRESHOLD`` (unset: :data:`DEFAULT_MMAP_THRESHOLD`, off); 0
            leaves glibc's dynamic threshold.

    Returns:
        The threshold now in force, or None when nothing was changed (0, or not glibc).
    """
    global _applied
    value = _threshold_from_env() if threshold is None else int(threshold)
    if value <= 0:
        return None
    if _applied == value:
        return value
    try:
        libc = ctypes.CDLL("libc.so.6")
        ok = libc.mallopt(M_MMAP_THRESHOLD, ctypes.c_int(value))
    except (OSError, AttributeError):  # not glibc
        return None
    if not ok:
        logger.warning("mallopt(M_MMAP_THRESHOLD, %d) was refused; glibc's dynamic threshold stays", value)
        return None
    os.environ.setdefault(GLIBC_ENV, str(value))  # processes started from here (uvicorn workers) inherit it
    _applied = value
    return value
