"""Resident-memory measurement shared by the benches (imported by the scripts beside it: ``python bench/X.py``).

- :func:`rss_mib`: this process's VmRSS now.
- :func:`trim`: hand freed heap pages back (glibc ``malloc_trim``), so an idle reading is the true floor rather than
  whatever the allocator kept from the previous run (that made "peak above idle" swing by 60 MiB).
- :class:`RssSampler`: VmRSS sampled every 5 ms in a thread, peaks kept per stage (:meth:`RssSampler.mark`).
- :class:`Peak`: the peak above a trimmed idle floor while in a ``with`` block.
"""

from __future__ import annotations

import threading
import time


def rss_mib() -> float:
    """VmRSS of this process in MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def trim() -> None:
    """glibc ``malloc_trim(0)`` (a no-op elsewhere), then a moment for the kernel to account for it."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:  # not glibc
        pass
    time.sleep(0.05)


class RssSampler:
    """Samples VmRSS in a thread; :meth:`mark` starts a new stage; peaks are kept per stage (MiB)."""

    def __init__(self) -> None:
        self.stage = "setup"
        self.peaks: dict[str, float] = {}
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    rss_mib = staticmethod(rss_mib)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            time.sleep(0.005)

    def _sample(self) -> None:
        self.peaks[self.stage] = max(self.peaks.get(self.stage, 0.0), rss_mib())

    def mark(self, stage: str) -> None:
        self.stage = stage

    def __enter__(self) -> RssSampler:
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()
        self._sample()


class Peak(RssSampler):
    """``with Peak() as p: ...`` -> ``p.idle`` (trimmed floor before) and ``p.peak`` (highest during), MiB."""

    def __enter__(self) -> Peak:
        trim()
        self.idle = rss_mib()
        super().__enter__()
        return self

    @property
    def peak(self) -> float:
        return max([self.idle, *self.peaks.values()])
