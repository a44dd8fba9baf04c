"""Re-identification at the site boundary: the SEG/SR an analysis of the de-identified working copy wrote are made
to reference the stored (original) study before they leave for the hospital's PACS.

The analysis never sees identities: it runs on a copy de-identified with keyed UIDs (``Deidentifier.remap_uid``)
and pseudonyms. The mapping back is recomputed here, inside the site, from the stored originals and the site
secret; it is never written out. Every UID of a result that is the keyed replacement of an original Study, Series,
SOP Instance or Frame of Reference UID is put back, and the Patient and General Study modules are copied from the
original study, so the SEG lands in the original study and references the original images.
"""

from __future__ import annotations

import io
from typing import Any

import pydicom
from pydicom.dataset import Dataset

from serving.storage import StudyStore

#: Patient and General Study module attributes copied from the original study onto a re-identified result.
IDENTITY_KEYWORDS = (
    "PatientName", "PatientID", "IssuerOfPatientID", "PatientBirthDate", "PatientSex", "OtherPatientIDsSequence",
    "StudyInstanceUID", "StudyDate", "StudyTime", "AccessionNumber", "ReferringPhysicianName", "StudyID",
    "StudyDescription",
)
_UID_KEYWORDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID")
_DEID_KEYWORDS = ("PatientIdentityRemoved", "DeidentificationMethod", "DeidentificationMethodCodeSequence",
                  "LongitudinalTemporalInformationModified")


class SiteMapping:
    """The keyed-UID -> original-UID map of one stored study, and its original identity attributes."""

    def __init__(self, store: StudyStore, study_uid: str) -> None:
        from medai.dicom.deid import Deidentifier, load_site_secret

        deid = Deidentifier(load_site_secret())
        self.uids: dict[str, str] = {}
        self.identity: Dataset | None = None
        for row in store.instances(study_uid):
            if row["derived"]:
                continue
            ds = pydicom.dcmread(store.blobs.path(row["sha256"]), stop_before_pixels=True)
            if self.identity is None:
                self.identity = ds
            for kw in _UID_KEYWORDS:
                value = str(getattr(ds, kw, "") or "")
                if value:
                    self.uids[deid.remap_uid(value)] = value

    def reidentify(self, data: bytes) -> bytes:
        """``data`` (a DICOM instance derived from the de-identified copy) referencing the original study."""
        ds = pydicom.dcmread(io.BytesIO(data))
        for elem in ds.iterall():
            if elem.VR == "UI" and elem.value:
                elem.value = self._map(elem.value)
        if self.identity is not None:
            for kw in IDENTITY_KEYWORDS:
                if kw in self.identity:
                    setattr(ds, kw, self.identity[kw].value)
                elif kw in ds and kw != "StudyInstanceUID":
                    delattr(ds, kw)
        for kw in _DEID_KEYWORDS:
            if kw in ds:
                delattr(ds, kw)
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        return buf.getvalue()

    def _map(self, value: Any) -> Any:
        if isinstance(value, list | tuple | pydicom.multival.MultiValue):
            return [self.uids.get(str(v), str(v)) for v in value]
        return self.uids.get(str(value), str(value))


def for_pacs(store: StudyStore, study_uid: str, deidentify: bool, blobs: list[bytes]) -> list[bytes]:
    """The results to STOW to the hospital: re-identified when the analysis ran on a de-identified copy."""
    if not deidentify:
        return blobs
    mapping = SiteMapping(store, study_uid)
    return [mapping.reidentify(b) for b in blobs]


def original_identity(store: StudyStore, study_uid: str) -> dict[str, str]:
    """The patient and study identity of a stored original study, as labelled for a signed report (the analysis
    ran on a de-identified copy; the clinician signs for the real patient)."""
    rows = [r for r in store.instances(study_uid) if not r["derived"]]
    if not rows:
        return {}
    ds = pydicom.dcmread(store.blobs.path(rows[0]["sha256"]), stop_before_pixels=True)

    def text(kw: str) -> str:
        value = getattr(ds, kw, "") or ""
        return str(value).replace("^", " ").strip() if kw == "PatientName" else str(value).strip()

    labels = (("Patient", "PatientName"), ("Patient ID", "PatientID"), ("Birth date", "PatientBirthDate"),
              ("Study date", "StudyDate"), ("Accession", "AccessionNumber"))
    return {label: text(kw) for label, kw in labels if text(kw)}

