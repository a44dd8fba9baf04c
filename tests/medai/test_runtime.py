"""The allocator setting applied by the entry points (``medai.runtime``)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import medai.runtime as rt

glibc = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt is Linux-only")


def _run(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if k not in ("MEDAI_MMAP_THRESHOLD", rt.GLIBC_ENV)} | env
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=full)


@glibc
def test_default_and_env_and_off() -> None:
    code = "import os, medai.runtime as r; print(r.tune_allocator(), os.environ.get(r.GLIBC_ENV))"
    assert rt.DEFAULT_MMAP_THRESHOLD == 0  # off unless asked for: it costs time (module docstring)
    assert _run(code, {}).stdout.split() == ["None", "None"]
    assert _run(code, {"MEDAI_MMAP_THRESHOLD": "262144"}).stdout.split() == ["262144", "262144"]
    assert _run(code, {"MEDAI_MMAP_THRESHOLD": "0"}).stdout.split() == ["None", "None"]
    # nonsense falls back to the default (off) with a warning, never a crash
    out = _run(code, {"MEDAI_MMAP_THRESHOLD": "lots"})
    assert out.stdout.split() == ["None", "None"] and "not a whole number" in out.stderr
    out = _run(code, {"MEDAI_MMAP_THRESHOLD": str(1 << 30)})
    assert out.stdout.split() == ["None", "None"] and "outside" in out.stderr


@glibc
def test_freed_large_blocks_leave_the_process() -> None:
    """With the threshold fixed, a freed 64 MiB array is returned even after glibc would have raised its threshold."""
    code = """
import numpy as np, sys
import medai.runtime as r
if sys.argv[1] == "1":
    r.tune_allocator(1 << 20)
def rss():
    return int(next(l for l in open('/proc/self/status') if l.startswith('VmRSS')).split()[1]) // 1024
a = np.ones(16 << 20, np.uint8); del a  # first large free: glibc raises its dynamic threshold to 16 MiB
base = rss()
b, pins = [], []
for _ in range(8):  # 64 MiB in 8 MiB blocks: heap (dynamic) or mmap (fixed), each under a small live block
    b.append(np.ones(8 << 20, np.uint8))
    pins.append(np.ones(64 << 10, np.uint8))
del b  # heap holes under live blocks cannot be trimmed; mmapped blocks are unmapped
print(rss() - base)
"""
    kept_dynamic = int(_run(code.replace("sys.argv[1]", '"0"'), {}).stdout)
    kept_fixed = int(_run(code.replace("sys.argv[1]", '"1"'), {}).stdout)
    assert kept_fixed < 8 <= kept_dynamic, (kept_fixed, kept_dynamic)
