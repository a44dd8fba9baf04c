"""The one place library warnings become study problems.

pydicom and highdicom report what they dislike about real files (a malformed date, a non-conformant VR, an
unexpected value) twice: as a Python warning and as a ``WARNING`` log record. Printed raw, a single real study
fills a clinician's terminal with dozens of lines nobody can act on, and a server's log with lines that name no
study. Inside :func:`capture` both channels are collected instead: counted once per distinct message (its quoted
values masked: they may identify the patient, see :func:`mask`), logged at
INFO (``medai.libwarnings``, with the count), and turned into INFO quality flags of the study's report by
:meth:`Caught.flags`, so they sit with the study they concern and are not lost either.

The collector is per context (a :class:`contextvars.ContextVar`): concurrent analyses in a server's job threads
each collect their own. Outside a capture, warnings and records pass through unchanged. Repeats of a message are
counted, not hidden: the libraries' warnings are set to ``always`` (Python would otherwise show each only once per
process, so a server's second study would lose its problems).
"""

from __future__ import annotations

import contextvars
import logging
import re
import sys
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from medai.domain.prediction import QualityFlag, Severity

logger = logging.getLogger(__name__)

#: the libraries whose warnings and ``WARNING`` records are collected (top-level package names)
LIBRARIES = ("pydicom", "highdicom")
#: at most this many distinct messages become flags; the rest are summed into one
MAX_FLAGS = 12

_current: contextvars.ContextVar[Caught | None] = contextvars.ContextVar("medai_libwarnings", default=None)
_install_lock = threading.Lock()


@dataclass
class Caught:
    """What the libraries reported inside one capture: ``(library, message) -> count`` per channel."""

    _warned: dict[tuple[str, str], int] = field(default_factory=dict)
    _logged: dict[tuple[str, str], int] = field(default_factory=dict)
    _category: dict[tuple[str, str], str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, library: str, message: str, category: str, channel: str) -> None:
        key = (library, mask(message))
        with self._lock:
            box = self._warned if channel == "warning" else self._logged
            box[key] = box.get(key, 0) + 1
            if channel == "warning" or key not in self._category:  # the warning's class names it best
                self._category[key] = category

    def items(self) -> list[dict[str, Any]]:
        """Distinct messages, most frequent first: ``{library, category, message, count}``.

        A message seen on both channels (pydicom's ``warn_and_log``) counts once per occurrence: the larger of its
        two counts."""
        with self._lock:
            keys = set(self._warned) | set(self._logged)
            out = [{"library": lib, "category": self._category[(lib, msg)], "message": msg,
                    "count": max(self._warned.get((lib, msg), 0), self._logged.get((lib, msg), 0))}
                   for lib, msg in keys]
        return sorted(out, key=lambda d: (-d["count"], d["library"], d["message"]))

    def __len__(self) -> int:
        return sum(d["count"] for d in self.items())

    def flags(self) -> list[QualityFlag]:
        """INFO flags, one per distinct message (at most :data:`MAX_FLAGS`, the rest summed into one)."""
        items = self.items()
        out = [QualityFlag(code=f"{d['library']}_warning", severity=Severity.INFO,
                           message=f"{d['library']} reported: {d['message']}"
                                   + (f" ({d['count']} times)" if d["count"] > 1 else "")
                                   + "; the data were read anyway, check the source files if a value looks wrong")
               for d in items[:MAX_FLAGS]]
        rest = items[MAX_FLAGS:]
        if rest:
            out.append(QualityFlag(code="library_warnings_more", severity=Severity.INFO,
                                   message=f"{sum(d['count'] for d in rest)} more library warnings "
                                           f"({len(rest)} distinct messages) are in the log"))
        return out

    def log(self, context: str = "") -> None:
        """One INFO log line per distinct message (with ``context``, e.g. the study's id)."""
        for d in self.items():
            logger.info("%s%s %s: %s (x%d)", f"{context}: " if context else "", d["library"], d["category"],
                        d["message"], d["count"])


_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")


def mask(message: str) -> str:
    """``message`` on one line with its quoted values replaced by ``'…'``: the libraries quote the offending value,
    which may be a patient's name or an identifier, and must not reach logs; and 240 "invalid UID" warnings that
    differ only in the UID are one problem."""
    return " ".join(_QUOTED.sub("'…'", message).split())


def is_library_flag(code: str) -> bool:
    """Whether a quality flag's ``code`` is one of :meth:`Caught.flags`'."""
    return code == "library_warnings_more" or (code.endswith("_warning") and code[: -len("_warning")] in LIBRARIES)


def _library(name: str) -> str | None:
    top = name.split(".", 1)[0]
    return top if top in LIBRARIES else None


def _issuer(depth: int = 16) -> str | None:
    """The library whose code is on the stack that issued the warning being shown (a warning may be attributed to
    its caller's line with ``stacklevel``, so the filename alone does not tell)."""
    f = sys._getframe(2)
    for _ in range(depth):
        if f is None:
            return None
        lib = _library(f.f_globals.get("__name__", ""))
        if lib is not None:
            return lib
        f = f.f_back
    return None


class _RecordFilter(logging.Filter):
    """On the libraries' loggers: inside a capture, a ``WARNING`` record is collected and not emitted."""

    def filter(self, record: logging.LogRecord) -> bool:
        caught = _current.get()
        if caught is None or record.levelno != logging.WARNING:
            return True
        caught.add(_library(record.name) or record.name, record.getMessage(), "log", "log")
        return False


def _showwarning(message: Warning | str, category: type[Warning], filename: str, lineno: int, file: Any = None,
                 line: str | None = None) -> None:
    caught = _current.get()
    lib = _issuer() if caught is not None else None
    if caught is None or lib is None:
        _pass_on(message, category, filename, lineno, file, line)
        return
    caught.add(lib, str(message), category.__name__, "warning")


def _pass_on(message: Warning | str, category: type[Warning], filename: str, lineno: int, file: Any,
             line: str | None) -> None:
    """Show a warning that is not ours the way it would have been shown without us."""
    fallback = _fallback
    if fallback is None or fallback is warnings._showwarning_orig:  # type: ignore[attr-defined]
        # the default path, which ``catch_warnings(record=True)`` (pytest, pytest.warns) redirects
        warnings._showwarnmsg_impl(  # type: ignore[attr-defined]
            warnings.WarningMessage(message, category, filename, lineno, file, line))
    else:
        fallback(message, category, filename, lineno, file, line)


_fallback: Any = None
_record_filter_added = False


def install() -> None:
    """Route the libraries' warnings and records through the collector (done by every :func:`capture`).

    Checked on every capture, not once: ``warnings.catch_warnings`` (used by test runners and by libraries) puts
    back the hook and filters that were in place when it was entered."""
    global _fallback, _record_filter_added
    with _install_lock:
        if not _record_filter_added:
            for lib in LIBRARIES:
                logging.getLogger(lib).addFilter(_RecordFilter())
            _record_filter_added = True
        # counted every time, not once per process (the module is the one the warning is attributed to)
        for pattern in [rf"{lib}(\.|$)" for lib in LIBRARIES] + [r"medai(\.|$)"]:
            if not any(f[0] == "always" and f[3] is not None and f[3].pattern == pattern for f in warnings.filters):
                warnings.filterwarnings("always", module=pattern)
        if warnings.showwarning is not _showwarning:
            _fallback = warnings.showwarning
            warnings.showwarning = _showwarning


@contextmanager
def capture() -> Iterator[Caught]:
    """Collect the libraries' warnings and ``WARNING`` records in this context. A nested capture joins the outer
    one (so ``medai analyze`` collects ingest and analysis into one report)."""
    install()
    outer = _current.get()
    if outer is not None:
        yield outer
        return
    caught = Caught()
    token = _current.set(caught)
    try:
        yield caught
    finally:
        _current.reset(token)
