"""A generic dataset manifest (CSV or JSON) so a hospital's own labelled data plugs into training and evaluation.

Columns / fields (one row per labelled volume):

========  =========================================================================================
case      unique case id (e.g. ``"p0012_ED"``)
image     path to the image: NIfTI (``.nii``/``.nii.gz``), NumPy (``.npy``, ``(Z, Y, X)``) or an ACDC-style HDF5
label     path to the label map (same formats; integer values per the recipe's label table); empty = unlabelled
split     ``train`` / ``val`` / ``test`` (made by patient: see :func:`medai.datasets.base.split_by_patient`)
site      acquiring site or scanner (for per-site evaluation)
patient   patient id (defaults to ``case``); all cases of a patient must share one split
phase     optional ``ED`` / ``ES``
========  =========================================================================================

Relative paths are resolved against the manifest's folder. The manifest itself is validated by
:class:`Manifest` (pydantic), and :func:`write_manifest` / :func:`read_manifest` round-trip.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field, ValidationError, model_validator

from medai.datasets.base import CardiacPhase, SegCase
from medai.errors import ConfigError

FIELDS = ("case", "image", "label", "split", "site", "patient", "phase")


class ManifestEntry(BaseModel):
    """One row of a manifest."""

    case: str
    image: str
    label: str = ""
    split: str = "train"
    site: str = ""
    patient: str = ""
    phase: str = ""

    @model_validator(mode="after")
    def _defaults(self) -> ManifestEntry:
        if not self.patient:
            self.patient = self.case
        return self


class Manifest(BaseModel):
    """A validated manifest: unique case ids, and every patient in exactly one split."""

    entries: list[ManifestEntry] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> Manifest:
        seen: set[str] = set()
        split_of: dict[str, str] = {}
        for e in self.entries:
            if e.case in seen:
                raise ValueError(f"duplicate case id {e.case!r}")
            seen.add(e.case)
            if split_of.setdefault(e.patient, e.split) != e.split:
                raise ValueError(
                    f"patient {e.patient!r} appears in splits {split_of[e.patient]!r} and {e.split!r}; "
                    "splits must be made by patient"
                )
        return self

    def split(self, name: str) -> list[ManifestEntry]:
        """Entries of one split."""
        return [e for e in self.entries if e.split == name]


def read_manifest(path: Path) -> Manifest:
    """Read a CSV (header row) or JSON (list of objects, or ``{"entries": [...]}``) manifest.

    Raises:
        ConfigError: unreadable file, missing ``case``/``image`` columns, duplicate cases, a patient in two splits.
    """
    path = Path(path)
    try:
        if path.suffix.lower() == ".json":
            raw = json.loads(path.read_text())
            rows = raw["entries"] if isinstance(raw, dict) else raw
        else:
            with path.open(newline="") as f:
                rows = [{k: (v or "").strip() for k, v in r.items() if k} for r in csv.DictReader(f)]
        return Manifest(entries=[ManifestEntry.model_validate(r) for r in rows])
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ConfigError(f"cannot read manifest {path}: {exc}") from exc
    except ValidationError as exc:
        raise ConfigError(f"invalid manifest {path} (needs at least columns case, image): {exc}") from exc


def write_manifest(manifest: Manifest, path: Path) -> Path:
    """Write a manifest as CSV or JSON (by suffix)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".json":
        path.write_text(manifest.model_dump_json(indent=2))
    else:
        with path.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(FIELDS))
            w.writeheader()
            for e in manifest.entries:
                w.writerow(e.model_dump())
    return path


def read_array(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """Read a ``(Z, Y, X)`` array and its LPS affine (None when the format has no geometry)."""
    path = Path(path)
    name = path.name.lower()
    if name.endswith((".nii", ".nii.gz")):
        from medai.datasets.acdc import nifti_to_zyx

        return nifti_to_zyx(path)
    if name.endswith(".npy"):
        return np.load(path), None
    if name.endswith((".h5", ".hdf5")):
        import h5py

        with h5py.File(path, "r") as f:
            key = "label" if "label" in f and "image" not in f else "image"
            arr = f[key][()]
            scale = float(f[key].attrs.get("scale", 1.0))
        return (arr.astype(np.float32) * scale if key == "image" else arr), None
    raise ConfigError(f"{path}: unsupported format (use .nii, .nii.gz, .npy or .h5)")


def _resolve(base: Path, p: str) -> Path:
    q = Path(p)
    return q if q.is_absolute() else base / q


def load_manifest_cases(path: Path, split: str | None = None, labels: dict[str, int] | None = None) -> list[SegCase]:
    """Load the cases of a manifest (optionally one split) as :class:`SegCase`.

    Args:
        path: manifest file.
        split: keep only this split (None = all).
        labels: label table of the label maps (default: the cine labels rv=1, myo=2, lv=3).
    """
    from medai.cardiac.preprocess import CINE_LABELS

    path = Path(path)
    man = read_manifest(path)
    entries = man.entries if split is None else man.split(split)
    cases = []
    for e in entries:
        image, aff = read_array(_resolve(path.parent, e.image))
        label = None
        if e.label:
            lab, _ = read_array(_resolve(path.parent, e.label))
            label = np.asarray(lab).astype(np.uint8)
            if label.shape != image.shape:
                raise ConfigError(f"manifest case {e.case}: label shape {label.shape} != image shape {image.shape}")
        spacing = tuple(float(np.linalg.norm(aff[:3, i])) for i in range(3)) if aff is not None else None
        phase = CardiacPhase(e.phase) if e.phase in {p.value for p in CardiacPhase} else CardiacPhase.OTHER
        cases.append(SegCase(
            case_id=e.case, patient_id=e.patient, image=np.asarray(image, dtype=np.float32), label=label, phase=phase,
            spacing_mm=spacing, affine=aff, labels=dict(labels or CINE_LABELS),  # type: ignore[arg-type]
            meta={"site": e.site, "split": e.split},
        ))
    return cases
