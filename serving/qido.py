"""QIDO-RS matching (PS3.18 8.3.4, PS3.4 C.2.2.2): query keys by keyword or tag, single-value, wildcard (``*``,
``?``), UID-list and date/time range matching, ``limit``/``offset``, ``includefield``, and the return attributes
of each level. Unknown query keys are refused with a 400 that lists the supported ones (silently ignoring a filter
would return other patients' studies).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydicom.datadict import dictionary_keyword, keyword_for_tag, tag_for_keyword

from serving.problems import ApiProblem


@dataclass(frozen=True)
class Attr:
    """A queryable/returned attribute: its keyword, VR and how to read it from a row."""

    keyword: str
    vr: str
    get: Callable[[Mapping[str, Any]], Any]

    @property
    def tag(self) -> str:
        return f"{tag_for_keyword(self.keyword):08X}"


def attrs(*spec: tuple[str, str, str]) -> dict[str, Attr]:
    """``(keyword, VR, row key)`` triples as attributes by keyword."""
    return {kw: Attr(kw, vr, (lambda k: lambda r: r.get(k))(key)) for kw, vr, key in spec}


def _keyword(param: str) -> str:
    """``PatientID`` or ``00100020`` -> ``PatientID``."""
    if re.fullmatch(r"[0-9A-Fa-f]{8}", param):
        try:
            return keyword_for_tag(int(param, 16)) or dictionary_keyword(int(param, 16))
        except KeyError:
            return param
    return param


def _wild(pattern: str, value: str, fold: bool) -> bool:
    rx = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(rx, value, re.IGNORECASE if fold else 0) is not None


def _range(pattern: str, value: str) -> bool:
    lo, _, hi = pattern.partition("-")
    v = value.replace(":", "")
    return (not lo or v >= lo.replace(":", "")) and (not hi or v[: len(hi.replace(":", ""))] <= hi.replace(":", ""))


def matches(attr: Attr, pattern: str, row: Mapping[str, Any]) -> bool:
    """Whether ``row`` matches ``pattern`` for ``attr`` (PS3.4 C.2.2.2 matching types)."""
    value = attr.get(row)
    values = [str(v) for v in value] if isinstance(value, list | tuple | set) else [str(value if value is not None
                                                                                         else "")]
    if pattern == "":
        return True  # universal matching: a return key
    if attr.vr == "UI":
        wanted = set(re.split(r"[,\\]", pattern))
        return any(v in wanted for v in values)
    if attr.vr in ("DA", "TM", "DT") and "-" in pattern:
        return any(v and _range(pattern, v) for v in values)
    fold = attr.vr == "PN"  # person names match case-insensitively (PS3.4 C.2.2.2.4 "may")
    if "*" in pattern or "?" in pattern:
        return any(_wild(pattern, v.replace("^", " ") if fold else v, fold) or _wild(pattern, v, fold)
                   for v in values)
    if attr.vr == "PN":
        return any(v.lower() in (pattern.lower(), pattern.lower().replace(" ", "^")) for v in values)
    if attr.vr == "CS" and "\\" in pattern:
        return any(v in pattern.split("\\") for v in values)
    return pattern in values


def _element(attr: Attr, row: Mapping[str, Any]) -> dict[str, Any]:
    value = attr.get(row)
    vals = [v for v in (value if isinstance(value, list | tuple) else [value]) if v not in (None, "")]
    if not vals:
        return {"vr": attr.vr}
    if attr.vr == "PN":
        return {"vr": "PN", "Value": [{"Alphabetic": str(v)} for v in vals]}
    if attr.vr in ("IS", "US", "UL"):
        return {"vr": attr.vr, "Value": [int(v) for v in vals]}
    return {"vr": attr.vr, "Value": [str(v) for v in vals]}


def search(rows: Iterable[Mapping[str, Any]], params: list[tuple[str, str]], table: Mapping[str, Attr],
           returned: Iterable[str]) -> list[dict[str, Any]]:
    """Filter ``rows`` by the query ``params`` and render the DICOM JSON of the matches.

    Raises:
        ApiProblem: 400 for an unsupported query key, a bad ``limit``/``offset`` or an unknown ``includefield``.
    """
    filters: list[tuple[Attr, str]] = []
    include: set[str] = set(returned)
    limit, offset = None, 0
    for name, value in params:
        if name in ("limit", "offset"):
            try:
                n = int(value)
                if n < 0:
                    raise ValueError
            except ValueError:
                raise ApiProblem(400, "bad-query", f"{name} must be a non-negative integer, not {value!r}") from None
            limit, offset = (n, offset) if name == "limit" else (limit, n)
            continue
        if name == "fuzzymatching":
            continue
        if name == "includefield":
            for f in value.split(","):
                if f == "all":
                    include |= set(table)
                elif _keyword(f) in table:
                    include.add(_keyword(f))
                else:
                    raise ApiProblem(400, "bad-query", f"includefield {f!r} is not an attribute this level returns: "
                                     + ", ".join(sorted(table)))
            continue
        kw = _keyword(name)
        if kw not in table:
            raise ApiProblem(400, "unsupported-query-key", f"query key {name!r} is not supported at this level; "
                             "supported: " + ", ".join(sorted(table)) + ", limit, offset, includefield")
        filters.append((table[kw], value))
        include.add(kw)
    out = [r for r in rows if all(matches(a, p, r) for a, p in filters)]
    out = out[offset:] if limit is None else out[offset: offset + limit]
    attrs_out = [table[k] for k in sorted(include, key=lambda k: table[k].tag)]
    return [{a.tag: _element(a, r) for a in attrs_out} for r in out]


__all__ = ["Attr", "attrs", "matches", "search"]
