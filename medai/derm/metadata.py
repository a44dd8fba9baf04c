"""Patient metadata of a skin image (age, sex, anatomical site, skin type) as a fixed-length network input.

The lesion classifier fuses the image with what the request (or the cohort's labels file) says about the patient.
Every field may be absent, and the whole record may be absent: each field has a *missing* indicator, the network is
trained with fields dropped at random, and an all-missing vector is the image-only path. So one package serves a
PACS image with full DICOM demographics and a bare JPEG alike.

Vector layout (:meth:`MetadataEncoder.encode`): ``[age / 100, age_missing, sex one-hot..., sex_missing,
site one-hot..., site_missing, skin_type one-hot..., skin_type_missing]`` -- the vocabularies are fixed at training
time and stored in the package's ``inference.json`` (``metadata`` section). An unknown site or sex value counts as
missing and is reported, never guessed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from medai.errors import InputValidationError

FIELDS = ("age", "sex", "site", "skin_type")
MISSING_STRINGS = {"", "unknown", "nan", "none", "null", "na", "n/a", "other"}
# DICOM PatientSex and common spellings
SEX_ALIASES = {"m": "male", "male": "male", "f": "female", "female": "female"}
FITZPATRICK = ["I", "II", "III", "IV", "V", "VI"]


def _clean(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, float) and math.isnan(v):
        return None
    s = str(v).strip().lower().replace("_", " ")
    return None if s in MISSING_STRINGS else s


def parse_age(v: Any) -> float | None:
    """Age in years from a number, a numeric string or a DICOM age string (``045Y``, ``006M``); ``None`` if absent.

    Raises:
        InputValidationError: not an age, or outside 0-120 years.
    """
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    s = str(v).strip().upper()
    if s.lower() in MISSING_STRINGS:
        return None
    factor = 1.0
    if s and s[-1] in "DWMY" and s[:-1].isdigit():
        factor = {"D": 1 / 365.25, "W": 7 / 365.25, "M": 1 / 12, "Y": 1.0}[s[-1]]
        s = s[:-1]
    try:
        age = float(s) * factor
    except ValueError:
        raise InputValidationError(
            f"age {v!r} is not a number of years (send e.g. 54 or the DICOM form 054Y)",
            details=[{"field": "age", "problem": "not_a_number", "value": str(v)[:40]}],
        ) from None
    if not (0 <= age <= 120) or math.isnan(age):
        raise InputValidationError(
            f"age {v!r} is outside 0-120 years",
            details=[{"field": "age", "problem": "out_of_range", "value": str(v)[:40]}],
        )
    return age


class MetadataEncoder(BaseModel):
    """Vocabularies of the metadata vector (stored in ``inference.json`` under ``metadata``)."""

    fields: list[str] = Field(default_factory=lambda: ["age", "sex", "site"])
    sex: list[str] = Field(default_factory=lambda: ["male", "female"])
    site: list[str] = Field(default_factory=list)
    skin_type: list[str] = Field(default_factory=lambda: list(FITZPATRICK))

    @classmethod
    def fit(cls, records: Sequence[Mapping[str, Any]], fields: Sequence[str] | None = None) -> MetadataEncoder:
        """Vocabularies from training records; a field absent from every record is left out of the vector."""
        present = [f for f in FIELDS if any(_clean(r.get(f)) is not None for r in records)]
        use = [f for f in (fields or present) if f in present]
        sites = sorted({s for r in records if (s := _clean(r.get("site"))) is not None})
        return cls(fields=use, site=sites)

    @property
    def dim(self) -> int:
        """Length of the encoded vector."""
        n = 0
        for f in self.fields:
            n += 2 if f == "age" else len(getattr(self, f)) + 1
        return n

    def encode(self, record: Mapping[str, Any] | None) -> tuple[np.ndarray, list[str]]:
        """``(dim,) float32`` vector of one record (``None`` = image only) and notes on values treated as missing."""
        rec = record or {}
        out: list[float] = []
        notes: list[str] = []
        for f in self.fields:
            raw = rec.get(f)
            if f == "age":
                age = parse_age(raw)
                out += [0.0, 1.0] if age is None else [age / 100.0, 0.0]
                continue
            vocab = getattr(self, f)
            val = _clean(raw)
            if f == "sex" and val is not None:
                val = SEX_ALIASES.get(val, val)
            if f == "skin_type" and val is not None:
                val = val.upper().replace("TYPE ", "")
            onehot = [0.0] * len(vocab)
            if val is not None and val in vocab:
                onehot[vocab.index(val)] = 1.0
                out += [*onehot, 0.0]
            else:
                if val is not None:
                    notes.append(f"{f} {str(raw)[:40]!r} is not one of {', '.join(vocab)}: treated as unknown")
                out += [*onehot, 1.0]
        return np.asarray(out, np.float32), notes

    def encode_many(self, records: Sequence[Mapping[str, Any] | None]) -> np.ndarray:
        """``(N, dim) float32`` matrix of records."""
        if not records:
            return np.zeros((0, self.dim), np.float32)
        return np.stack([self.encode(r)[0] for r in records])

    def missing_mask(self) -> np.ndarray:
        """``(dim,)`` bool: positions of the missing indicators (used by field dropout in training)."""
        m: list[bool] = []
        for f in self.fields:
            m += [False, True] if f == "age" else [False] * len(getattr(self, f)) + [True]
        return np.asarray(m)

    def field_slices(self) -> list[tuple[int, int]]:
        """``[(start, stop)]`` of each field's block in the vector, in :attr:`fields` order."""
        out, i = [], 0
        for f in self.fields:
            n = 2 if f == "age" else len(getattr(self, f)) + 1
            out.append((i, i + n))
            i += n
        return out

    def encode_missing(self) -> np.ndarray:
        """The all-missing vector (image-only path)."""
        return self.encode(None)[0]


def drop_fields(meta: Any, slices: Sequence[Sequence[int]], p: float, generator: Any = None) -> Any:
    """Training-time field dropout on a ``(B, dim)`` tensor: each field (``slices`` from
    :meth:`MetadataEncoder.field_slices`) of each row is set to *missing* with probability ``p``, and the whole
    record with probability ``p / 2``, so the network learns every subset, the image-only path included."""
    import torch

    if p <= 0 or meta.numel() == 0:
        return meta
    meta = meta.clone()
    b = meta.shape[0]
    whole = torch.rand(b, generator=generator, device=meta.device) < p / 2
    for start, stop in slices:
        drop = (torch.rand(b, generator=generator, device=meta.device) < p) | whole
        meta[drop, start:stop] = 0.0
        meta[drop, stop - 1] = 1.0
    return meta
