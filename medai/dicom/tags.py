"""Tolerant access to DICOM header values.

Real headers carry invalid values (Sunnybrook: ``PatientBirthDate 00000000``, ``StudyDate 20120000``, UIDs with
leading-zero components) and fuzzed or damaged files carry values that raise on conversion. These helpers never
raise: they return ``None`` (or a default) when a value is absent or unusable, so callers decide what to report.
"""

from __future__ import annotations

import contextlib
import logging
import math
import struct
import threading
import warnings
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

from pydicom import config as pydicom_config
from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset

_QUIET_LOCK = threading.Lock()
_QUIET_DEPTH = 0
_QUIET_SAVED: tuple[int, int] | None = None


@contextlib.contextmanager
def quiet_pydicom() -> Iterator[None]:
    """Silence pydicom's validation warnings (reported by medai as problems instead) within the block.

    Re-entrant and thread-safe: pydicom's settings change when the first block opens and are restored when the
    last one closes (cheap when nested, e.g. once per decoded instance inside a volume build).
    """
    global _QUIET_DEPTH, _QUIET_SAVED
    pd_logger = logging.getLogger("pydicom")
    with _QUIET_LOCK:
        if _QUIET_DEPTH == 0:
            _QUIET_SAVED = (pd_logger.level, pydicom_config.settings.reading_validation_mode)
            pd_logger.setLevel(logging.ERROR)
            pydicom_config.settings.reading_validation_mode = pydicom_config.IGNORE
        _QUIET_DEPTH += 1
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        with _QUIET_LOCK:
            _QUIET_DEPTH -= 1
            if _QUIET_DEPTH == 0 and _QUIET_SAVED is not None:
                pd_logger.setLevel(_QUIET_SAVED[0])
                pydicom_config.settings.reading_validation_mode = _QUIET_SAVED[1]
                _QUIET_SAVED = None


_ASCII_VRS = frozenset({"DS", "IS", "CS", "UI", "DA", "TM", "DT", "AS"})
_TEXT_VRS = frozenset({"LO", "SH"})  # multi-valued text whose bytes are Latin-1 in the default/ISO_IR 100 sets
_LATIN1_CHARSETS = (b"", b"ISO_IR 100", b"ISO_IR 6", b"ISO 2022 IR 6", b"ISO 2022 IR 100")
_BINARY_FORMATS = {"US": "H", "SS": "h", "UL": "L", "SL": "l", "FL": "f", "FD": "d"}


@lru_cache(maxsize=512)
def _tag(keyword: str) -> int | None:
    return tag_for_keyword(keyword)


def _default_charset(store: object) -> bool:
    """True when the dataset's SpecificCharacterSet is absent, ASCII or Latin-1 (so bytes decode as Latin-1)."""
    if not isinstance(store, dict):
        return False
    elem = store.get(0x00080005)
    if elem is None:
        return True
    value = getattr(elem, "value", None)
    if isinstance(value, bytes):
        return value.strip(b"\x00 ") in _LATIN1_CHARSETS
    if isinstance(value, str):
        return value.strip().encode() in _LATIN1_CHARSETS
    return False


#: returned by :func:`_raw_values` when the element is not in the dataset at all
ABSENT: tuple[()] = ()


def _raw_values(ds: Dataset | None, keyword: str) -> list[str] | tuple[float, ...] | None:
    """Fast path: the values of a not-yet-converted ASCII or binary numeric element, parsed without pydicom's
    per-value validation; None when the element must go through pydicom (converted already, text in a specific
    character set, sequences...). ``[]`` when the element is present but empty."""
    if ds is None:
        return None
    tag = _tag(keyword)
    if tag is None:
        return None
    try:
        store = getattr(ds, "_dict", None)  # pydicom 3.0's element store: a plain dict lookup, no Tag() coercion
        if isinstance(store, dict):
            elem = store.get(tag)
            if elem is None:
                return ABSENT
        else:
            elem = ds.get_item(tag)
    except Exception:
        return None
    if not isinstance(elem, RawDataElement) or elem.value is None:
        return None
    vr, value = elem.VR, elem.value
    if vr in _TEXT_VRS and _default_charset(store):
        text = value.decode("latin-1").strip("\x00 ")
        return [v.strip("\x00 ") for v in text.split("\\")] if text else []
    if vr in _ASCII_VRS:
        text = value.decode("latin-1").strip("\x00 ")
        return [v.strip("\x00 ") for v in text.split("\\")] if text else []
    fmt = _BINARY_FORMATS.get(vr or "")
    if fmt is not None:
        size = struct.calcsize(fmt)
        if len(value) % size:
            return None
        order = "<" if elem.is_little_endian else ">"
        return struct.unpack(f"{order}{len(value) // size}{fmt}", value)
    return None


def get_value(ds: Dataset | None, keyword: str, default: Any = None) -> Any:
    """The (pydicom-converted) value of ``keyword`` in ``ds``; ``default`` when absent, empty or unreadable."""
    if ds is None:
        return default
    try:
        store = getattr(ds, "_dict", None)
        tag = _tag(keyword)
        if isinstance(store, dict) and tag is not None:
            elem = store.get(tag)
            if elem is None:
                return default
            value = elem.value if isinstance(elem, DataElement) else ds[tag].value
        else:
            value = getattr(ds, keyword, None)
    except Exception:
        return default
    if value is None or (isinstance(value, str | bytes) and len(value) == 0):
        return default
    return value


def get_str(ds: Dataset | None, keyword: str, default: str = "") -> str:
    """``keyword`` as a stripped string ('' when absent); multi-valued values are joined with ``\\``."""
    raw = _raw_values(ds, keyword)
    if raw is not None:
        return "\\".join(str(v) for v in raw) if raw else default
    value = get_value(ds, keyword)
    if value is None:
        return default
    try:
        if isinstance(value, bytes):
            return value.decode("ascii", errors="replace").strip("\x00 ")
        if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
            return "\\".join(str(v) for v in value).strip()
        return str(value).strip("\x00 ")
    except Exception:
        return default


def get_floats(ds: Dataset | None, keyword: str, n: int | None = None) -> tuple[float, ...] | None:
    """``keyword`` as a tuple of finite floats (exactly ``n`` of them when given), None when unusable."""
    raw = _raw_values(ds, keyword)
    value: Any = raw
    if raw is None:
        value = get_value(ds, keyword)
    if value is None:
        return None
    try:
        if isinstance(value, str | bytes | int | float):
            value = [value]
        values = tuple(float(v) for v in value)
    except Exception:
        return None
    if not values or not all(math.isfinite(v) for v in values) or (n is not None and len(values) != n):
        return None
    return values


def get_float(ds: Dataset | None, keyword: str) -> float | None:
    """``keyword`` as a finite float (first value of a multi-value), None when absent or invalid."""
    values = get_floats(ds, keyword)
    return values[0] if values else None


def get_int(ds: Dataset | None, keyword: str) -> int | None:
    """``keyword`` as an int, None when absent or invalid."""
    f = get_float(ds, keyword)
    if f is None or abs(f) > 2**62:
        return None
    return int(f)


def get_strs(ds: Dataset | None, keyword: str) -> tuple[str, ...]:
    """``keyword`` as a tuple of upper-case strings (for CS multi-values such as ImageType)."""
    raw = _raw_values(ds, keyword)
    if raw is not None:
        return tuple(str(v).strip().upper() for v in raw)
    value = get_value(ds, keyword)
    if value is None:
        return ()
    try:
        if isinstance(value, str | bytes):
            value = [value]
        return tuple(str(v).strip().upper() for v in value)
    except Exception:
        return ()


def first_item(ds: Dataset | None, keyword: str) -> Dataset | None:
    """The first item of sequence ``keyword``, None when absent or empty."""
    seq = get_value(ds, keyword)
    try:
        return seq[0] if seq is not None and len(seq) > 0 else None
    except Exception:
        return None


def functional_group_value(shared: Dataset | None, per_frame: Dataset | None, sequence: str, keyword: str) -> Any:
    """A value from an enhanced multi-frame functional group: per-frame first, then shared."""
    for group in (per_frame, shared):
        item = first_item(group, sequence)
        value = get_value(item, keyword)
        if value is not None:
            return value
    return None
