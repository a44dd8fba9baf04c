"""Sign-off renderings of a clinician-signed report version: a VERIFIED DICOM SR and a signed PDF.

medai writes its SR UNVERIFIED and PRELIMINARY (:mod:`medai.reports.sr`) and its PDF unsigned
(:mod:`medai.reports.pdf`). Once a clinician signs a report version, these functions derive the signed copies
from the files already written, without re-rendering the report:

* :func:`verify_sr` -- a new SR instance in the same series: VerificationFlag ``VERIFIED`` with the verifying
  observer, ``FINAL`` and ``COMPLETE``, and a Predecessor Documents Sequence referencing the unverified SR
  (PS3.3 C.17.2: a verified document that replaces another references it);
* :func:`sign_pdf` -- every page stamped with a "Signed by ..." footer line, plus a final "Electronic signature"
  page.

Both write atomically (temporary file in the destination folder, then ``os.replace``).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medai.errors import InputValidationError
from medai.fileio import atomic_write
from medai.reports.sr import LOCAL_SCHEME

if TYPE_CHECKING:
    from pydicom import Dataset

logger = logging.getLogger(__name__)

#: The sentence of the signature page: a signed version never changes.
LOCKED_SENTENCE = "This report version is locked; corrections create a new version."

#: SOP classes of the SR family (SR Document General module, hence VerificationFlag).
_SR_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.88.11": "Basic Text SR",
    "1.2.840.10008.5.1.4.1.1.88.22": "Enhanced SR",
    "1.2.840.10008.5.1.4.1.1.88.33": "Comprehensive SR",
    "1.2.840.10008.5.1.4.1.1.88.34": "Comprehensive 3D SR",
    "1.2.840.10008.5.1.4.1.1.88.35": "Extensible SR",
}


def _person_name(name: str) -> str:
    """A DICOM PN: ``name`` as given (a name without ``^`` is all family-name component), PN delimiters removed."""
    return name.replace("\\", " ").replace("=", " ")  # multi-value and component-group delimiters


def _dicom_dt(when: datetime) -> tuple[str, str, str]:
    """``(DT, DA, TM)`` of ``when``: its own wall-clock time; DT carries the UTC offset when ``when`` has one."""
    dt = when.strftime("%Y%m%d%H%M%S") + (f".{when.microsecond:06d}" if when.microsecond else "")
    if when.utcoffset() is not None:
        dt += when.strftime("%z")
    tm = when.strftime("%H%M%S") + (f".{when.microsecond:06d}" if when.microsecond else "")
    return dt, when.strftime("%Y%m%d"), tm


def _read_sr(src: Path) -> Dataset:
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(src)
    except (InvalidDicomError, OSError, ValueError) as exc:
        raise InputValidationError(f"{src} is not a readable DICOM file ({exc}); verify_sr needs a DICOM SR",
                                   details=[{"field": "src", "problem": "not DICOM", "value": str(src)}]) from exc
    sop_class = str(ds.get("SOPClassUID", ""))
    if sop_class not in _SR_SOP_CLASSES or "VerificationFlag" not in ds:
        name = getattr(ds.get("SOPClassUID"), "name", sop_class) or "no SOP class"
        raise InputValidationError(
            f"{src} is not a DICOM structured report (SOP class {name}"
            f"{'' if 'VerificationFlag' in ds else ', no VerificationFlag'}); verify_sr needs the SR medai wrote",
            details=[{"field": "src", "problem": "not an SR", "value": sop_class}])
    return ds


def _observer_code(observer_id: str, observer_name: str) -> Dataset:
    from highdicom.sr import CodedConcept

    return CodedConcept(value=observer_id, scheme_designator=LOCAL_SCHEME, meaning=observer_name[:64])


def _declare_local_scheme(ds: Dataset) -> None:
    """Add :data:`~medai.reports.sr.LOCAL_SCHEME` to the CodingSchemeIdentificationSequence unless declared."""
    from pydicom import Dataset as _Dataset
    from pydicom.sequence import Sequence as DicomSequence

    schemes = ds.get("CodingSchemeIdentificationSequence") or DicomSequence([])
    if any(item.get("CodingSchemeDesignator") == LOCAL_SCHEME for item in schemes):
        return
    item = _Dataset()
    item.CodingSchemeDesignator = LOCAL_SCHEME
    item.CodingSchemeName = "medai local codes"
    item.CodingSchemeResponsibleOrganization = "medai project"
    schemes.append(item)
    ds.CodingSchemeIdentificationSequence = schemes


def verify_sr(
    src: Path | str,
    dst: Path | str,
    *,
    observer_name: str,
    organization: str,
    when: datetime,
    observer_id: str | None = None,
) -> Dataset:
    """Write a VERIFIED, FINAL copy of the unverified SR ``src`` to ``dst`` (a new instance in the same series).

    The copy gets a new SOPInstanceUID (also in the file meta), VerificationFlag ``VERIFIED`` with one
    VerifyingObserverSequence item (name, organization, ``when``, and a local code ``observer_id`` when given),
    PreliminaryFlag ``FINAL``, CompletionFlag ``COMPLETE``, InstanceCreation and Content date/time ``when``, and
    a Predecessor Documents Sequence referencing ``src`` (study, series, SOP class and instance). Everything
    else, the content tree included, is copied unchanged.

    Args:
        src: the SR medai wrote (``sr.dcm``).
        dst: output file (may be ``src``: the write is atomic).
        observer_name: the verifying clinician; a DICOM PN (``Family^Given``) is kept as given, any other
            name becomes the family-name component.
        organization: the verifying observer's organization (VerifyingOrganization).
        when: time of the verification; its own wall-clock time is written, the UTC offset (when it has one)
            only in VerificationDateTime.
        observer_id: the clinician's local identifier (code of scheme ``99MEDAI``); None leaves
            VerifyingObserverIdentificationCodeSequence empty.

    Returns:
        The verified dataset, as written.

    Raises:
        InputValidationError: ``src`` is not a DICOM SR, or ``observer_name`` or ``organization`` is empty.
    """
    from pydicom import Dataset as _Dataset
    from pydicom.sequence import Sequence as DicomSequence
    from pydicom.uid import generate_uid

    src, dst = Path(src), Path(dst)
    observer_name = (observer_name or "").strip()
    organization = (organization or "").strip()
    if not observer_name:
        raise InputValidationError("verify_sr needs the verifying observer's name; none was given",
                                   details=[{"field": "observer_name", "problem": "empty", "value": observer_name}])
    if not organization:
        raise InputValidationError("verify_sr needs the verifying observer's organization; none was given",
                                   details=[{"field": "organization", "problem": "empty", "value": organization}])
    ds = _read_sr(src)
    old_sop = str(ds.SOPInstanceUID)
    dt, da, tm = _dicom_dt(when)

    ref_sop = _Dataset()
    ref_sop.ReferencedSOPClassUID = ds.SOPClassUID
    ref_sop.ReferencedSOPInstanceUID = old_sop
    ref_series = _Dataset()
    ref_series.SeriesInstanceUID = ds.SeriesInstanceUID
    ref_series.ReferencedSOPSequence = DicomSequence([ref_sop])
    predecessor = _Dataset()
    predecessor.StudyInstanceUID = ds.StudyInstanceUID
    predecessor.ReferencedSeriesSequence = DicomSequence([ref_series])
    ds.PredecessorDocumentsSequence = DicomSequence([predecessor])

    observer = _Dataset()
    observer.VerifyingObserverName = _person_name(observer_name)
    observer.VerifyingObserverIdentificationCodeSequence = DicomSequence(
        [_observer_code(observer_id.strip(), observer_name)] if observer_id and observer_id.strip() else [])
    observer.VerifyingOrganization = organization[:64]
    observer.VerificationDateTime = dt
    if observer.VerifyingObserverIdentificationCodeSequence:
        _declare_local_scheme(ds)

    ds.VerificationFlag = "VERIFIED"
    ds.VerifyingObserverSequence = DicomSequence([observer])
    ds.PreliminaryFlag = "FINAL"
    ds.CompletionFlag = "COMPLETE"
    new_sop = generate_uid()
    ds.SOPInstanceUID = new_sop
    ds.file_meta.MediaStorageSOPInstanceUID = new_sop
    ds.InstanceCreationDate, ds.InstanceCreationTime = da, tm
    ds.ContentDate, ds.ContentTime = da, tm

    atomic_write(dst, lambda fh: ds.save_as(fh, enforce_file_format=True))
    logger.info("wrote verified SR %s (predecessor %s, verified by %s)", dst, old_sop, observer_name)
    return ds


def _utc_minute(when: datetime) -> str:
    """``when`` in UTC to the minute (ISO 8601, ``2024-05-01T14:30Z``); a naive ``when`` is taken as UTC."""
    utc = when.replace(tzinfo=UTC) if when.utcoffset() is None else when.astimezone(UTC)
    return f"{utc:%Y-%m-%dT%H:%M}Z"


def _overlay(width: float, height: float, draw: Callable[[Any], None]) -> Any:
    """A one-page PDF of size ``width`` x ``height`` drawn by ``draw(canvas)``, as a pypdf page."""
    from pypdf import PdfReader
    from reportlab.pdfgen import canvas as rl_canvas

    buf = io.BytesIO()
    c = rl_canvas.Canvas(buf, pagesize=(width, height))
    draw(c)
    c.showPage()
    c.save()
    buf.seek(0)
    return PdfReader(buf).pages[0]


def sign_pdf(
    src: Path | str,
    dst: Path | str,
    *,
    signer: str,
    role: str,
    when: datetime,
    version: int,
    patient: Mapping[str, str] | None = None,
) -> Path:
    """Write a signed copy of the report PDF ``src`` to ``dst``.

    Every page gets the footer line ``Signed by <signer> (<role>) on <when, UTC minute> - report version
    <version>`` (below medai's own footer), and one page "Electronic signature" is appended with the signer,
    role, time and version and the statement that the version is locked. With ``patient`` (the identity of the
    stored original study, put back at the site boundary when the analysis ran on a de-identified copy), the footer
    names the patient and the signature page lists the identity the clinician signed for.

    Args:
        src: the PDF medai wrote (``report.pdf``).
        dst: output file (may be ``src``: the write is atomic).
        signer: the signing clinician's name.
        role: the signer's role (e.g. ``"cardiologist"``).
        when: time of signing (shown in UTC to the minute; a naive time is taken as UTC).
        version: the report version signed (1 or more).
        patient: ``{"Patient": ..., "Patient ID": ..., "Birth date": ..., "Study date": ..., "Accession": ...}``
            (the labels shown; empty values are left out), or None.

    Returns:
        ``dst``.

    Raises:
        InputValidationError: ``src`` is not a readable PDF, ``signer`` is empty or ``version`` is below 1.
    """
    from pypdf import PdfReader, PdfWriter
    from pypdf.errors import PdfReadError
    from reportlab.lib.units import mm

    src, dst = Path(src), Path(dst)
    signer, role = (signer or "").strip(), (role or "").strip()
    if not signer:
        raise InputValidationError("sign_pdf needs the signer's name; none was given",
                                   details=[{"field": "signer", "problem": "empty", "value": signer}])
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise InputValidationError(f"report version must be an integer >= 1, got {version!r}",
                                   details=[{"field": "version", "problem": "not >= 1", "value": version}])
    try:
        reader = PdfReader(src)
        pages = list(reader.pages)
    except (PdfReadError, OSError, ValueError) as exc:
        raise InputValidationError(f"{src} is not a readable PDF ({exc}); sign_pdf needs the report PDF",
                                   details=[{"field": "src", "problem": "not a PDF", "value": str(src)}]) from exc
    if not pages:
        raise InputValidationError(f"{src} has no pages", details=[{"field": "src", "problem": "no pages"}])
    stamp_time = _utc_minute(when)
    line = f"Signed by {signer}{f' ({role})' if role else ''} on {stamp_time} - report version {version}"
    who = [(k, str(v)) for k, v in (patient or {}).items() if str(v or "").strip()]
    if who:
        line += " - patient " + ", ".join(v for _, v in who[:2])

    def footer(c: Any) -> None:
        c.setFont("Helvetica-Bold", 7)
        c.setFillColorRGB(0.1, 0.1, 0.1)
        c.drawString(15 * mm, 5 * mm, line)

    # pypdf 7 merges only into pages that belong to a writer: clone the document (keeps metadata), then stamp
    writer = PdfWriter(clone_from=reader)
    for page in writer.pages:
        box = page.mediabox
        stamp = _overlay(float(box.width), float(box.height), footer)
        if box.left or box.bottom:
            from pypdf import Transformation

            page.merge_transformed_page(stamp, Transformation().translate(float(box.left), float(box.bottom)))
        else:
            page.merge_page(stamp)

    width, height = float(pages[-1].mediabox.width), float(pages[-1].mediabox.height)

    def signature_page(c: Any) -> None:
        y = height - 30 * mm
        c.setFont("Helvetica-Bold", 16)
        c.drawString(20 * mm, y, "Electronic signature")
        rows = (*who, ("Signed by", signer), ("Role", role or "-"), ("Signed on (UTC)", stamp_time),
                ("Report version", str(version)))
        for label, value in rows:
            y -= 9 * mm
            c.setFont("Helvetica-Bold", 10)
            c.drawString(20 * mm, y, f"{label}:")
            c.setFont("Helvetica", 10)
            c.drawString(60 * mm, y, value)
        y -= 14 * mm
        c.setFont("Helvetica", 10)
        c.drawString(20 * mm, y, LOCKED_SENTENCE)
        footer(c)

    writer.add_page(_overlay(width, height, signature_page))
    atomic_write(dst, writer.write)
    logger.info("wrote signed PDF %s (version %d, %d pages + signature page)", dst, version, len(pages))
    return dst


__all__ = ["LOCKED_SENTENCE", "sign_pdf", "verify_sr"]
