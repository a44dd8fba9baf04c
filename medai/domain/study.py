"""``Study -> Series -> Instance``, keyed by UIDs, with DICOM keyword names.

Instances keep the parsed header (pixel data deferred) and where the bytes came from; pixel data is decoded only
when a volume is built (see :mod:`medai.dicom.volumes`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydicom import Dataset


class SeriesType(StrEnum):
    """Closed vocabulary of series types recognised by the classification rules (``configs/series/*.yaml``)."""

    CINE_SAX = "cine_sax"
    CINE_2CH = "cine_2ch"
    CINE_3CH = "cine_3ch"
    CINE_4CH = "cine_4ch"
    CINE_LAX = "cine_lax"
    LGE = "lge"
    T1_MAP = "t1_map"
    T2_MAP = "t2_map"
    MAPPING = "mapping"
    MR_OTHER = "mr_other"
    CTA = "cta"
    CT = "ct"
    ECHO = "echo"
    PET = "pet"
    DERMOSCOPIC = "dermoscopic"
    PHOTOGRAPHIC = "photographic"
    SEG = "seg"
    SR = "sr"
    UNKNOWN = "unknown"


@dataclass
class Instance:
    """One DICOM instance (SOP).

    Attributes:
        SOPInstanceUID: the instance UID (key).
        SOPClassUID: the SOP class.
        dataset: the parsed header; pixel data may be deferred.
        source: file path, archive member (``archive.zip!member``) or ``<bytes>`` it came from.
        content_hash: SHA-256 of the bytes, to tell identical duplicates from conflicting ones (computed by
            ingest only when two instances share a SOPInstanceUID; "" until then).
        loader: returns a dataset holding the pixel data when ``dataset`` has it deferred (re-read from the
            file or archive on demand, so ingest stays fast and memory-light); None when ``dataset`` has it.
    """

    SOPInstanceUID: str
    SOPClassUID: str
    dataset: Dataset
    source: str = ""
    content_hash: str = ""
    loader: Callable[[], Dataset] | None = field(default=None, repr=False, compare=False)

    def get(self, keyword: str, default: Any = None) -> Any:
        """A header value by DICOM keyword (``default`` when absent or unreadable)."""
        try:
            return getattr(self.dataset, keyword, default)
        except Exception:  # a malformed value must not break callers that only look
            return default

    def pixel_dataset(self) -> Dataset:
        """A dataset holding this instance's pixel data and pixel-module attributes (loaded on demand)."""
        return self.loader() if self.loader is not None else self.dataset


@dataclass
class Series:
    """A DICOM series: its instances and what the classification rules made of it."""

    SeriesInstanceUID: str
    Modality: str = ""
    SeriesDescription: str = ""
    SeriesNumber: int | None = None
    instances: list[Instance] = field(default_factory=list)
    series_type: SeriesType = SeriesType.UNKNOWN
    problems: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.instances)


@dataclass
class Study:
    """A DICOM study: its series and patient-level attributes (pseudonymised when de-identified)."""

    StudyInstanceUID: str
    PatientID: str = ""
    PatientSex: str = ""
    PatientAge: str = ""
    PatientBirthDate: str = ""
    PatientSize: float | None = None  # m
    PatientWeight: float | None = None  # kg
    StudyDate: str = ""
    StudyDescription: str = ""
    series: list[Series] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def series_of_type(self, *types: SeriesType) -> list[Series]:
        """Series whose classified type is one of ``types``."""
        return [s for s in self.series if s.series_type in types]

    def get_series(self, uid: str) -> Series:
        """The series with SeriesInstanceUID ``uid``."""
        for s in self.series:
            if s.SeriesInstanceUID == uid:
                return s
        raise KeyError(uid)


@dataclass
class IngestProblem:
    """Something that could not be ingested, and why (reported, never raised for a single bad file)."""

    source: str
    reason: str


@dataclass
class IngestResult:
    """What ingest produced: studies and the problems met on the way."""

    studies: list[Study] = field(default_factory=list)
    skipped: list[IngestProblem] = field(default_factory=list)
    root: Path | None = None
