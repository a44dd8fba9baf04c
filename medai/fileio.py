"""Durable file writes: a temporary file in the destination folder, flushed and fsynced, then ``os.replace``d onto
the destination, so a reader (or a crash) sees the old file or the whole new one, never half of it."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def atomic_write(dst: Path | str, write: Callable[[BinaryIO], object]) -> Path:
    """Write ``dst`` through ``write(fh)`` on a temporary sibling, fsync it, then rename it onto ``dst``."""
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dst
