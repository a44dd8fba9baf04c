"""A minimal DICOMweb client for the hospital PACS: QIDO-RS search, WADO-RS retrieve, STOW-RS store."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import httpx

from medai.errors import MedaiError


class PacsError(MedaiError):
    """The PACS could not be reached or refused the request."""

    code = "pacs-error"
    http_status = 502


class DicomWebClient:
    """Talks to a DICOMweb root, e.g. ``http://127.0.0.1:8042/dicom-web``."""

    def __init__(self, root: str, timeout: float = 60.0) -> None:
        self.root = root.rstrip("/")
        self.http = httpx.Client(timeout=timeout)

    def _get(self, path: str, accept: str) -> httpx.Response:
        try:
            r = self.http.get(self.root + path, headers={"Accept": accept})
        except httpx.HTTPError as exc:
            raise PacsError(f"PACS {self.root} unreachable ({type(exc).__name__}); check MEDAI_API_PACS_URL") from exc
        if r.status_code == 404:
            raise PacsError(f"PACS has no {path}", details={"status": 404})
        if r.status_code >= 400:
            raise PacsError(f"PACS answered {r.status_code} to GET {path}")
        return r

    def qido(self, path: str) -> list[dict]:
        """QIDO-RS search (DICOM JSON)."""
        r = self._get(path, "application/dicom+json")
        return r.json() if r.content else []

    def instance_uids(self, study_uid: str) -> Iterator[tuple[str, str]]:
        """(series, SOP instance) UIDs of a study, by QIDO series then instances."""
        for se in self.qido(f"/studies/{study_uid}/series"):
            s_uid = se["0020000E"]["Value"][0]
            for inst in self.qido(f"/studies/{study_uid}/series/{s_uid}/instances"):
                yield s_uid, inst["00080018"]["Value"][0]

    def retrieve(self, study_uid: str, series_uid: str, sop_uid: str) -> bytes:
        """WADO-RS retrieve one instance (Part 10 bytes)."""
        from serving.routers.dicomweb import split_multipart_related

        r = self._get(f"/studies/{study_uid}/series/{series_uid}/instances/{sop_uid}",
                      'multipart/related; type="application/dicom"')
        parts = split_multipart_related(r.content, r.headers.get("content-type", ""))
        if not parts:
            raise PacsError(f"PACS returned no DICOM part for {sop_uid}")
        return parts[0]

    def stow(self, instances: list[bytes]) -> dict:
        """STOW-RS the instances; returns the store response (DICOM JSON)."""
        boundary = "medai-" + secrets.token_hex(8)
        body = b"".join(f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + d + b"\r\n"
                        for d in instances) + f"--{boundary}--\r\n".encode()
        ctype = f'multipart/related; type="application/dicom"; boundary={boundary}'
        try:
            r = self.http.post(self.root + "/studies", content=body,
                               headers={"Content-Type": ctype, "Accept": "application/dicom+json"})
        except httpx.HTTPError as exc:
            raise PacsError(f"PACS {self.root} unreachable ({type(exc).__name__})") from exc
        if r.status_code >= 400:
            raise PacsError(f"PACS refused STOW-RS with {r.status_code}: {r.text[:200]}")
        return r.json() if r.content else {}
