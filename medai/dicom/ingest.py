"""Ingest DICOM from files, folders (recursive), zip archives, gzipped files and in-memory bytes.

``ingest(sources) -> IngestResult`` groups what it finds into ``Study -> Series -> Instance``. It never stops on a
single bad input: non-DICOM files, truncated or malformed files, unsupported transfer syntaxes, missing pixel data,
absurd image sizes and conflicting duplicates are *reported* (:class:`IngestProblem`) and skipped. Only when nothing
usable was found does it raise :class:`medai.errors.IngestError`, listing why.

Speed and memory: headers are parsed with pixel data deferred. For files on disk the pixel data is read later by
seeking into the file (:attr:`Instance.loader`); zip members are re-read from the archive on demand, so an archive
is never held in memory. Content hashes (SHA-256) are computed only when two inputs share a SOPInstanceUID.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import logging
import os
import re
import struct
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import Tag
from pydicom.uid import UID

from medai.dicom.tags import get_float, get_int, get_str, quiet_pydicom
from medai.domain.study import IngestProblem, IngestResult, Instance, Series, Study
from medai.errors import IngestError

logger = logging.getLogger(__name__)

PIXEL_TAGS = (Tag(0x7FE0, 0x0010), Tag(0x7FE0, 0x0008), Tag(0x7FE0, 0x0009))  # PixelData, Float, DoubleFloat
PIXEL_DATA = PIXEL_TAGS[0]
#: Elements larger than this are not read while parsing headers (bytes).
DEFER_SIZE = 2048
MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"
_GZIP_MAGIC = b"\x1f\x8b"
_ZIP_MAGIC = b"PK\x03\x04"

Source = str | os.PathLike[str] | bytes | bytearray | memoryview


@dataclass(frozen=True)
class IngestLimits:
    """Limits that protect ingest against absurd or hostile input (all in bytes unless stated).

    Attributes:
        max_file_bytes: larger files (or archive members, or decompressed ``.gz``) are skipped.
        max_pixel_bytes: Rows x Columns x frames x samples x bytes per sample above this is skipped as absurd.
        max_frames: NumberOfFrames above this is skipped as absurd.
        max_archive_members: members read from one zip archive at most.
        max_archive_depth: how deep zips inside zips are opened.
    """

    max_file_bytes: int = 4 * 1024**3
    max_pixel_bytes: int = 2 * 1024**3
    max_frames: int = 20_000
    max_archive_members: int = 200_000
    max_archive_depth: int = 2


class _Skip(Exception):
    """An input that is reported and skipped (not raised to the caller)."""


#: bytes copied at a time when an upload is unpacked to disk
_CHUNK = 1 << 20


def _copy_capped(src: Any, dst: Path, cap: int, what: str) -> None:
    """Stream ``src`` into the new file ``dst`` (0600), at most ``cap`` bytes (else :class:`_Skip`)."""
    n = 0
    fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        while chunk := src.read(_CHUNK):
            n += len(chunk)
            if n > cap:
                raise _Skip(f"{what} inflates past {cap / 1e9:.2f} GB; not read (IngestLimits.max_file_bytes)")
            out.write(chunk)


def unpack_upload(fileobj: Any, name: str, scratch: Path,
                  limits: IngestLimits | None = None) -> Iterator[tuple[str, Path | None, str]]:
    """One uploaded file as DICOM candidates on disk, one at a time, within ``limits``: a zip archive yields its
    members (nested zips to ``max_archive_depth``, at most ``max_archive_members``, ``.gz`` members inflated),
    anything else itself. Each candidate is streamed to a private file under ``scratch`` (never held whole in
    memory: a small zip that inflates to gigabytes costs disk up to ``max_file_bytes``, not RAM) and removed when
    the caller asks for the next one.

    Yields:
        ``(source, path, "")`` for a candidate (the caller may move ``path`` away), or ``(source, None, why)``
        for an input that was skipped.
    """
    limits = limits or IngestLimits()
    scratch.mkdir(parents=True, exist_ok=True)
    counter = iter(range(1 << 62))

    def tmp() -> Path:
        return scratch / f"up-{os.getpid()}-{next(counter)}"

    def emit(path: Path, source: str, depth: int) -> Iterator[tuple[str, Path | None, str]]:
        try:
            with open(path, "rb") as fh:
                head = fh.read(4)
            if head[:2] == _GZIP_MAGIC:
                inflated = tmp()
                try:
                    with gzip.open(path, "rb") as gz:
                        _copy_capped(gz, inflated, limits.max_file_bytes, "gzip member")
                except (_Skip, OSError, EOFError) as exc:
                    inflated.unlink(missing_ok=True)
                    yield source, None, str(exc) if isinstance(exc, _Skip) else f"unreadable gzip: {exc}"[:300]
                    return
                path.unlink(missing_ok=True)
                path = inflated
                with open(path, "rb") as fh:
                    head = fh.read(4)
            if head == _ZIP_MAGIC:
                yield from archive(path, source, depth + 1)
            else:
                yield source, path, ""
        finally:
            path.unlink(missing_ok=True)

    def archive(path: Path, source: str, depth: int) -> Iterator[tuple[str, Path | None, str]]:
        if depth > limits.max_archive_depth:
            yield source, None, f"zip nested deeper than {limits.max_archive_depth} levels; not opened"
            return
        try:
            zf = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as exc:
            raise IngestError(f"{source} looks like a zip archive but cannot be read ({exc}); upload a valid "
                              "zip") from exc
        with zf:
            infos = [i for i in zf.infolist() if not i.is_dir()]
            if len(infos) > limits.max_archive_members:
                yield source, None, (f"zip has {len(infos)} members; only the first {limits.max_archive_members} "
                                     "are read")
                infos = infos[: limits.max_archive_members]
            for info in infos:
                member = f"{source}:{info.filename}"
                if info.flag_bits & 0x1:
                    yield member, None, "encrypted archive member; cannot read"
                    continue
                if info.file_size > limits.max_file_bytes:
                    yield member, None, (f"archive member of {info.file_size / 1e9:.2f} GB exceeds "
                                         f"{limits.max_file_bytes / 1e9:.2f} GB (IngestLimits.max_file_bytes)")
                    continue
                out = tmp()
                try:
                    with zf.open(info) as src:
                        _copy_capped(src, out, limits.max_file_bytes, "archive member")
                except (_Skip, zipfile.BadZipFile, OSError, EOFError) as exc:
                    out.unlink(missing_ok=True)
                    yield member, None, str(exc) if isinstance(exc, _Skip) else f"unreadable member: {exc}"[:300]
                    continue
                yield from emit(out, member, depth)

    first = tmp()
    try:
        _copy_capped(fileobj, first, limits.max_file_bytes, "upload")
    except _Skip as exc:
        first.unlink(missing_ok=True)
        yield name, None, str(exc)
        return
    yield from emit(first, name, 0)


# ----------------------------------------------------------------------------------------------------------------
# sniffing


def looks_like_dicom(head: bytes) -> bool:
    """True for a Part 10 file ('DICM' at byte 128) or a raw little-endian dataset starting with a group 2/8 tag."""
    if len(head) >= 132 and head[128:132] == b"DICM":
        return True
    if len(head) >= 8:
        group, element = struct.unpack("<HH", head[:4])
        if group in (0x0002, 0x0008) and element < 0x2000:
            vr = head[4:6]
            # explicit VR (two upper-case letters) or implicit VR (a 4-byte length)
            return vr.isalpha() and vr.isupper() or struct.unpack("<I", head[4:8])[0] < 0x10000
    return False


def _describe_sources(sources: Any) -> str:
    if isinstance(sources, bytes | bytearray | memoryview):
        return "<bytes>"
    if isinstance(sources, str | os.PathLike):
        return str(sources)
    return "the given inputs"


# ----------------------------------------------------------------------------------------------------------------
# readers


@dataclass
class _PixelRef:
    """Where the deferred pixel data of a file lives."""

    path: str
    offset: int
    length: int
    vr: str


class _FilePixelLoader:
    """Loads the pixel data of a file-backed instance by seeking to it; returns a small pixel-only dataset."""

    def __init__(self, header: Dataset, ref: _PixelRef) -> None:
        self.header = header
        self.ref = ref

    def read_pixel_bytes(self) -> bytes:
        """The raw (native or encapsulated) pixel data bytes, read by one seek into the file."""
        with open(self.ref.path, "rb") as f:
            f.seek(self.ref.offset)
            data = f.read(self.ref.length)
        if len(data) != self.ref.length:
            raise OSError(f"{self.ref.path}: pixel data truncated ({len(data)} of {self.ref.length} bytes)")
        return data

    def __call__(self) -> Dataset:
        return pixel_only_dataset(self.header, DataElement(PIXEL_DATA, self.ref.vr, self.read_pixel_bytes()))


def pixel_only_dataset(header: Dataset, pixel_element: DataElement | RawDataElement) -> Dataset:
    """A dataset holding the image pixel module of ``header`` (group 0x0028) and ``pixel_element``."""
    small = Dataset()
    small.file_meta = header.file_meta if hasattr(header, "file_meta") else pydicom.dataset.FileMetaDataset()
    for tag in list(header.keys()):
        if tag.group == 0x0028:
            small[tag] = header[tag]
    small[pixel_element.tag] = pixel_element
    small.set_original_encoding(
        header.original_encoding[0] if header.original_encoding[0] is not None else False,
        header.original_encoding[1] if header.original_encoding[1] is not None else True,
    )
    return small


class _Archive:
    """A zip archive opened lazily and kept open while members are read (re-opened on demand afterwards)."""

    def __init__(self, opener: Callable[[], zipfile.ZipFile]) -> None:
        self.opener = opener
        self._zf: zipfile.ZipFile | None = None

    def zipfile(self) -> zipfile.ZipFile:
        if self._zf is None:
            self._zf = self.opener()
        return self._zf

    def read(self, member: str) -> bytes:
        return self.zipfile().read(member)

    def close(self) -> None:
        if self._zf is not None:
            self._zf.close()
            self._zf = None


class _LazyMember(io.RawIOBase):
    """A read-only file-like over one archive member, loaded on first access.

    Set as the header dataset's ``buffer`` so that pydicom's deferred reads (large elements, pixel data) of an
    archive member still work after ingest, without holding the member's bytes until someone asks.
    """

    def __init__(self, archive: _Archive, member: str) -> None:
        super().__init__()
        self.archive = archive
        self.member = member
        self._buf: io.BytesIO | None = None

    def _load(self) -> io.BytesIO:
        if self._buf is None:
            data = self.archive.read(self.member)
            if data[:2] == _GZIP_MAGIC:
                data = gzip.decompress(data)
            self._buf = io.BytesIO(data)
        return self._buf

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        return self._load().read(size)

    def readinto(self, b: Any) -> int:
        return self._load().readinto(b)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._load().seek(offset, whence)

    def tell(self) -> int:
        return self._load().tell()

    def __deepcopy__(self, memo: dict[int, Any]) -> _LazyMember:
        return self  # read-only: copies of the dataset may share it


class _ZipMemberLoader:
    """Re-reads one archive member and parses it fully (the archive is never kept in memory)."""

    def __init__(self, archive: _Archive, member: str) -> None:
        self.archive = archive
        self.member = member

    def read_bytes(self) -> bytes:
        data = self.archive.read(self.member)
        if data[:2] == _GZIP_MAGIC:
            data = gzip.decompress(data)
        return data

    def __call__(self) -> Dataset:
        with quiet_pydicom():
            return pydicom.dcmread(io.BytesIO(self.read_bytes()), force=True)


def _is_deflated(ds: Dataset) -> bool:
    ts = get_str(getattr(ds, "file_meta", None), "TransferSyntaxUID")
    try:
        return bool(ts) and UID(ts).is_deflated
    except Exception:
        return False


def _pixel_bytes_expected(ds: Dataset) -> int | None:
    rows, cols = get_int(ds, "Rows"), get_int(ds, "Columns")
    if rows is None or cols is None:
        return None
    frames = get_int(ds, "NumberOfFrames") or 1
    samples = get_int(ds, "SamplesPerPixel") or 1
    bits = get_int(ds, "BitsAllocated") or 8
    n = rows * cols * frames * samples
    return (n * bits + 7) // 8


def _is_image_sop_class(sop_class: str) -> bool:
    try:
        name = UID(sop_class).name
    except Exception:
        return False
    return "Image Storage" in name


def _validate(ds: Dataset, size: int, limits: IngestLimits) -> tuple[str, str]:
    """Check a parsed header; returns ``(SOPInstanceUID, SOPClassUID)`` or raises :class:`_Skip`."""
    sop_uid = get_str(ds, "SOPInstanceUID")
    if not sop_uid:
        raise _Skip("not a DICOM instance: no SOPInstanceUID")
    sop_class = get_str(ds, "SOPClassUID") or get_str(getattr(ds, "file_meta", None), "MediaStorageSOPClassUID")
    if sop_class == MEDIA_STORAGE_DIRECTORY:
        raise _Skip("DICOMDIR (a media index, not an instance); the files it lists are read directly")
    ts = get_str(getattr(ds, "file_meta", None), "TransferSyntaxUID")
    if ts and not UID(ts).is_transfer_syntax:
        raise _Skip(f"unknown transfer syntax {ts!r}: cannot decode; re-export the file with a standard syntax")

    pixel_tag = next((t for t in PIXEL_TAGS if t in ds), None)
    if pixel_tag is None:
        if _is_image_sop_class(sop_class):
            raise _Skip(f"no pixel data in an image instance ({UID(sop_class).name})")
        return sop_uid, sop_class

    rows, cols = get_int(ds, "Rows"), get_int(ds, "Columns")
    if not rows or not cols or rows < 0 or cols < 0:
        raise _Skip(f"pixel data without a valid Rows/Columns ({rows}x{cols})")
    frames = get_int(ds, "NumberOfFrames") or 1
    if frames < 1 or frames > limits.max_frames:
        raise _Skip(f"absurd NumberOfFrames {frames} (limit {limits.max_frames})")
    bits = get_int(ds, "BitsAllocated")
    if bits not in (1, 8, 16, 32, 64):
        raise _Skip(f"unsupported BitsAllocated {bits}")
    samples = get_int(ds, "SamplesPerPixel") or 1
    if samples not in (1, 3, 4):
        raise _Skip(f"unsupported SamplesPerPixel {samples}")
    expected = _pixel_bytes_expected(ds) or 0
    if expected > limits.max_pixel_bytes:
        raise _Skip(
            f"absurd image size: {rows}x{cols}x{frames} frames x {samples} samples = {expected / 1e9:.2f} GB "
            f"(limit {limits.max_pixel_bytes / 1e9:.2f} GB, see IngestLimits.max_pixel_bytes)"
        )
    try:
        raw = ds.get_item(pixel_tag, keep_deferred=True)
    except Exception as exc:  # damaged element
        raise _Skip(f"unreadable pixel data element: {exc}") from exc
    length = raw.length if raw is not None else 0
    tsu = UID(ts) if ts else None
    encapsulated = tsu is not None and tsu.is_compressed
    undefined = raw is not None and (getattr(raw, "is_undefined_length", False) or length == 0xFFFFFFFF)
    if not encapsulated and not undefined and length != 0xFFFFFFFF:
        if length < expected:
            raise _Skip(
                f"pixel data too short: {length} bytes for {rows}x{cols}x{frames} frames (needs {expected}); "
                "the file is truncated or its header is wrong"
            )
        value = getattr(raw, "value", None)
        if isinstance(value, bytes | bytearray) and len(value) < expected:  # read, but the file ended early
            raise _Skip(f"truncated file: pixel data has {len(value)} of the {expected} bytes it needs")
        value_tell = getattr(raw, "value_tell", None)
        if value is None and value_tell is not None and value_tell + length > size:  # deferred: check the size
            raise _Skip(f"truncated file: pixel data needs {value_tell + length} bytes, file has {size}")
    if encapsulated and not undefined:
        raise _Skip(
            f"transfer syntax {tsu.name} declares compressed (encapsulated) pixel data, but the pixel data is stored "
            "natively: the file meta information is wrong; re-export the file"
        )
    if undefined and not encapsulated and pixel_tag == PIXEL_DATA:
        raise _Skip(
            f"pixel data is encapsulated (compressed) but the transfer syntax {tsu.name if tsu else '(none)'} is "
            "native: the file meta information is wrong; re-export the file"
        )
    if tsu is not None and tsu.is_compressed:
        from pydicom.pixels import get_decoder

        try:
            decoder = get_decoder(tsu)
        except Exception as exc:
            raise _Skip(f"no decoder for transfer syntax {tsu.name} ({tsu})") from exc
        if not decoder.is_available:
            raise _Skip(f"no installed plugin can decode {tsu.name} ({tsu}); install the pylibjpeg codecs")
    return sop_uid, sop_class


# ----------------------------------------------------------------------------------------------------------------
# the walk


class _Collector:
    """Accumulates instances and problems; de-duplicates by SOPInstanceUID."""

    def __init__(self, limits: IngestLimits, progress: Callable[[int], None] | None = None) -> None:
        self.limits = limits
        self.progress = progress
        self.n_seen = 0
        self.instances: dict[str, Instance] = {}
        self.hashers: dict[str, Callable[[], str]] = {}
        self.skipped: list[IngestProblem] = []
        self.conflicts: list[IngestProblem] = []

    def tick(self) -> None:
        self.n_seen += 1
        if self.progress is not None:
            self.progress(self.n_seen)

    def skip(self, source: str, reason: str) -> None:
        logger.debug("skipped %s: %s", source, reason)
        self.skipped.append(IngestProblem(source=source, reason=reason))

    def add(self, inst: Instance, hasher: Callable[[], str]) -> None:
        uid = inst.SOPInstanceUID
        first = self.instances.get(uid)
        if first is None:
            self.instances[uid] = inst
            self.hashers[uid] = hasher
            return
        if not first.content_hash:
            first.content_hash = self.hashers[uid]()
        inst.content_hash = hasher()
        if inst.content_hash == first.content_hash:
            logger.debug("identical duplicate of %s at %s ignored", uid, inst.source)
            return
        problem = IngestProblem(
            source=inst.source,
            reason=(
                f"conflicting duplicate: SOPInstanceUID {uid} was already read from {first.source} with different "
                "content; kept the first, refused this one"
            ),
        )
        self.skipped.append(problem)
        self.conflicts.append(problem)

    # -- sources ----------------------------------------------------------------------------------------------

    def source(self, src: Any) -> None:
        if isinstance(src, bytes | bytearray | memoryview):
            self.buffer(bytes(src), "<bytes>", depth=0)
        elif isinstance(src, str | os.PathLike):
            self.path(Path(src))
        elif isinstance(src, Iterable):
            for i, item in enumerate(src):
                if isinstance(item, bytes | bytearray | memoryview):
                    self.buffer(bytes(item), f"<bytes #{i}>", depth=0)
                elif isinstance(item, str | os.PathLike):
                    self.path(Path(item))
                else:
                    self.skip(repr(item)[:80], f"unsupported source type {type(item).__name__}")
        else:
            self.skip(repr(src)[:80], f"unsupported source type {type(src).__name__}")

    def path(self, path: Path) -> None:
        if path.is_dir():
            for root, dirs, files in os.walk(path):
                dirs.sort()
                for name in sorted(files, key=_natural_key):
                    self.file(Path(root) / name)
        elif path.is_file():
            self.file(path)
        else:
            self.skip(str(path), "no such file or directory")

    def file(self, path: Path) -> None:
        source = str(path)
        self.tick()
        try:
            size = path.stat().st_size
            if size > self.limits.max_file_bytes:
                raise _Skip(
                    f"file of {size / 1e9:.1f} GB exceeds the limit ({self.limits.max_file_bytes / 1e9:.1f} GB)"
                )
            with open(path, "rb") as f:
                head = f.read(132)
            if head[:4] == _ZIP_MAGIC:
                self.archive(lambda: zipfile.ZipFile(path), source, depth=1)
                return
            if head[:2] == _GZIP_MAGIC:
                self.buffer(self._gunzip(path.read_bytes(), source), source, depth=0)
                return
            if not looks_like_dicom(head):
                raise _Skip("not DICOM: no 'DICM' marker at byte 128 and no DICOM header at the start")
            with quiet_pydicom():
                ds = pydicom.dcmread(source, defer_size=DEFER_SIZE, force=True)
                if _is_deflated(ds):  # offsets refer to the inflated stream: read it whole instead of deferring
                    ds = pydicom.dcmread(source, force=True)
                    size = 1 << 62
                sop_uid, sop_class = _validate(ds, size, self.limits)
                loader = None
                pixel_tag = next((t for t in PIXEL_TAGS if t in ds), None)
                if pixel_tag is not None:
                    raw = ds.get_item(pixel_tag, keep_deferred=True)
                    if (
                        isinstance(raw, RawDataElement)
                        and raw.value is None
                        and pixel_tag == PIXEL_DATA
                        and raw.length != 0xFFFFFFFF  # encapsulated: pydicom's own deferred read parses the items
                    ):
                        loader = _FilePixelLoader(ds, _PixelRef(source, raw.value_tell, raw.length, raw.VR or "OW"))
            inst = Instance(sop_uid, sop_class, ds, source=source, loader=loader)
            self.add(inst, lambda: _sha256_file(path))
        except _Skip as exc:
            self.skip(source, str(exc))
        except Exception as exc:  # never crash on one bad file
            self.skip(source, f"unreadable: {type(exc).__name__}: {exc}"[:500])

    def _gunzip(self, data: bytes, source: str) -> bytes:
        limit = self.limits.max_file_bytes
        out = io.BytesIO()
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as gz:
            while chunk := gz.read(1 << 20):
                out.write(chunk)
                if out.tell() > limit:
                    raise _Skip(f"gzip expands beyond the limit ({limit / 1e9:.1f} GB)")
        return out.getvalue()

    def buffer(self, data: bytes, source: str, depth: int) -> None:
        """One in-memory input: DICOM, gzip or zip bytes."""
        self.tick()
        try:
            if data[:4] == _ZIP_MAGIC:
                self.archive(lambda: zipfile.ZipFile(io.BytesIO(data)), source, depth=depth + 1)
                return
            if data[:2] == _GZIP_MAGIC:
                data = self._gunzip(data, source)
            if not looks_like_dicom(data[:132]):
                raise _Skip("not DICOM: no 'DICM' marker at byte 128 and no DICOM header at the start")
            with quiet_pydicom():
                ds = pydicom.dcmread(io.BytesIO(data), force=True)
                sop_uid, sop_class = _validate(ds, len(data), self.limits)
            self.add(Instance(sop_uid, sop_class, ds, source=source), lambda: hashlib.sha256(data).hexdigest())
        except _Skip as exc:
            self.skip(source, str(exc))
        except Exception as exc:
            self.skip(source, f"unreadable: {type(exc).__name__}: {exc}"[:500])

    def archive(self, opener: Callable[[], zipfile.ZipFile], source: str, depth: int) -> None:
        """A zip archive: members are parsed one at a time; pixel data is re-read from the archive on demand."""
        if depth > self.limits.max_archive_depth:
            self.skip(source, f"zip nested deeper than {self.limits.max_archive_depth} levels; not opened")
            return
        arc = _Archive(opener)
        try:
            infos = [i for i in arc.zipfile().infolist() if not i.is_dir()]
        except Exception as exc:
            self.skip(source, f"unreadable zip archive: {type(exc).__name__}: {exc}"[:500])
            return
        if len(infos) > self.limits.max_archive_members:
            self.skip(source, f"zip has {len(infos)} members; only the first {self.limits.max_archive_members} read")
            infos = infos[: self.limits.max_archive_members]
        infos.sort(key=lambda i: _natural_key(i.filename))
        try:
            for info in infos:
                member_source = f"{source}!{info.filename}"
                self.tick()
                try:
                    if info.file_size > self.limits.max_file_bytes:
                        raise _Skip(f"archive member of {info.file_size / 1e9:.1f} GB exceeds the limit")
                    if info.flag_bits & 0x1:
                        raise _Skip("encrypted archive member; cannot read")
                    data = arc.read(info.filename)
                    if data[:4] == _ZIP_MAGIC:
                        inner = data
                        self.archive(lambda inner=inner: zipfile.ZipFile(io.BytesIO(inner)), member_source, depth + 1)
                        continue
                    if data[:2] == _GZIP_MAGIC:
                        data = self._gunzip(data, member_source)
                    self.member(data, member_source, _ZipMemberLoader(arc, info.filename))
                except _Skip as exc:
                    self.skip(member_source, str(exc))
                except Exception as exc:
                    self.skip(member_source, f"unreadable: {type(exc).__name__}: {exc}"[:500])
        finally:
            arc.close()  # loaders re-open it when pixel data is needed

    def member(self, data: bytes, source: str, loader: _ZipMemberLoader) -> None:
        """An archive member: keep the header only; pixel data is re-read through ``loader``."""
        if not looks_like_dicom(data[:132]):
            raise _Skip("not DICOM: no 'DICM' marker at byte 128 and no DICOM header at the start")
        with quiet_pydicom():
            ds = pydicom.dcmread(io.BytesIO(data), defer_size=DEFER_SIZE, force=True)
            size = len(data)
            if _is_deflated(ds):  # offsets refer to the inflated stream: keep it whole
                ds = pydicom.dcmread(io.BytesIO(data), force=True)
                size = 1 << 62
            sop_uid, sop_class = _validate(ds, size, self.limits)
            has_deferred = any(
                t in ds and getattr(ds.get_item(t, keep_deferred=True), "value", b"") is None for t in PIXEL_TAGS
            )
        if has_deferred:
            # drop the member's bytes; deferred elements are re-read from the archive on demand
            ds.filename = None
            with contextlib.suppress(AttributeError):
                ds.buffer = _LazyMember(loader.archive, loader.member)
        digest = hashlib.sha256(data).hexdigest()
        self.add(
            Instance(sop_uid, sop_class, ds, source=source, loader=loader if has_deferred else None), lambda: digest
        )


def _natural_key(name: str) -> list[Any]:
    """Sort key so that ``2.dcm`` comes before ``10.dcm``."""
    return [int(p) if p.isdigit() else p.lower() for p in re.split(r"(\d+)", name)]


def _sha256_file(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


# ----------------------------------------------------------------------------------------------------------------
# grouping


def _valid_date(value: str) -> bool:
    import datetime

    try:
        datetime.datetime.strptime(value, "%Y%m%d")
    except ValueError:
        return False
    return True


def _patient_size_m(ds: Dataset, problems: list[str]) -> float | None:
    raw = get_str(ds, "PatientSize")
    if not raw:
        return None
    v = get_float(ds, "PatientSize")
    if v is not None and 0.3 <= v <= 2.6:
        return v
    if v is not None and 30 <= v <= 260:
        problems.append(f"PatientSize {raw!r} looks like centimetres (DICOM uses metres); read as {v / 100:.2f} m")
        return v / 100
    problems.append(f"PatientSize {raw!r} is not a plausible height in metres; ignored")
    return None


def _patient_weight_kg(ds: Dataset, problems: list[str]) -> float | None:
    raw = get_str(ds, "PatientWeight")
    if not raw:
        return None
    v = get_float(ds, "PatientWeight")
    if v is not None and 0.3 <= v <= 500:
        return v
    problems.append(f"PatientWeight {raw!r} is not a plausible weight in kg; ignored")
    return None


def _study_from(uid: str, instances: list[Instance]) -> Study:
    ds = instances[0].dataset
    problems: list[str] = []
    study = Study(
        StudyInstanceUID=uid,
        PatientID=get_str(ds, "PatientID"),
        PatientSex=get_str(ds, "PatientSex").upper(),
        PatientAge=get_str(ds, "PatientAge"),
        PatientBirthDate=get_str(ds, "PatientBirthDate"),
        PatientSize=_patient_size_m(ds, problems),
        PatientWeight=_patient_weight_kg(ds, problems),
        StudyDate=get_str(ds, "StudyDate"),
        StudyDescription=get_str(ds, "StudyDescription"),
        problems=problems,
    )
    if study.PatientSex and study.PatientSex not in ("M", "F", "O"):
        problems.append(f"PatientSex {study.PatientSex!r} is not M, F or O; ignored")
        study.PatientSex = ""
    for kw in ("StudyDate", "PatientBirthDate"):
        value = getattr(study, kw)
        if value and not _valid_date(value):
            problems.append(f"{kw} {value!r} is not a valid date (YYYYMMDD)")
    ids = {get_str(i.dataset, "PatientID") for i in instances}
    if len(ids) > 1:
        problems.append(f"instances of this study carry {len(ids)} different PatientIDs: {sorted(ids)[:5]}")
    if uid.startswith("unknown-study"):
        problems.append("instances without a StudyInstanceUID were grouped into one study")
    return study


def _series_from(uid: str, instances: list[Instance]) -> Series:
    ds = instances[0].dataset
    series = Series(
        SeriesInstanceUID=uid,
        Modality=get_str(ds, "Modality").upper(),
        SeriesDescription=get_str(ds, "SeriesDescription"),
        SeriesNumber=get_int(ds, "SeriesNumber"),
        instances=sorted(instances, key=lambda i: (get_int(i.dataset, "InstanceNumber") or 0, _natural_key(i.source))),
    )
    if uid.startswith("unknown-series"):
        series.problems.append("instances without a SeriesInstanceUID were grouped into one series")
    modalities = {get_str(i.dataset, "Modality").upper() for i in instances}
    if len(modalities) > 1:
        series.problems.append(f"mixed modalities in one series: {sorted(modalities)}")
    return series


def group_instances(instances: Iterable[Instance]) -> list[Study]:
    """Group instances into studies and series (ordered by StudyDate, then SeriesNumber)."""
    by_study: dict[str, dict[str, list[Instance]]] = {}
    for inst in instances:
        study_uid = get_str(inst.dataset, "StudyInstanceUID") or "unknown-study"
        series_uid = get_str(inst.dataset, "SeriesInstanceUID") or f"unknown-series-{study_uid}"
        by_study.setdefault(study_uid, {}).setdefault(series_uid, []).append(inst)
    studies = []
    for study_uid, series_map in by_study.items():
        all_instances = [i for insts in series_map.values() for i in insts]
        study = _study_from(study_uid, all_instances)
        study.series = sorted(
            (_series_from(uid, insts) for uid, insts in series_map.items()),
            key=lambda s: (s.SeriesNumber if s.SeriesNumber is not None else 1 << 30, s.SeriesInstanceUID),
        )
        studies.append(study)
    return sorted(studies, key=lambda s: (s.StudyDate, s.StudyInstanceUID))


def ingest(
    sources: Source | Iterable[Source],
    *,
    classify: bool = True,
    rules: Path | None = None,
    limits: IngestLimits | None = None,
    progress: Callable[[int], None] | None = None,
) -> IngestResult:
    """Read DICOM instances from ``sources`` into studies.

    Args:
        sources: a path (file or folder, read recursively), a zip archive (zips inside folders and archives are
            opened too), a ``.gz`` gzipped DICOM file, raw ``bytes`` (DICOM, zip or gzip), or an iterable of those.
        classify: classify each series by the rules (:mod:`medai.dicom.classify`).
        rules: a user rules YAML overriding/extending ``configs/series/rules.yaml``.
        limits: size limits against absurd input (:class:`IngestLimits`).
        progress: called with the number of inputs seen so far, after each file or archive member.

    Returns:
        :class:`IngestResult` with studies and the skipped inputs (each with a reason). Byte-identical duplicates
        are dropped silently; a second instance with the same SOPInstanceUID but different content is refused and
        listed in ``skipped`` (and in the study's problems).

    Raises:
        IngestError: nothing usable was found; the message lists why the inputs were skipped.
    """
    limits = limits or IngestLimits()
    col = _Collector(limits, progress)
    with quiet_pydicom():
        col.source(sources)
    root = Path(sources) if isinstance(sources, str | os.PathLike) else None
    if not col.instances:
        reasons = "; ".join(f"{p.source}: {p.reason}" for p in col.skipped[:10])
        more = f" (and {len(col.skipped) - 10} more)" if len(col.skipped) > 10 else ""
        msg = (
            f"No usable DICOM instances in {_describe_sources(sources)}."
            + (f" Skipped {len(col.skipped)} input(s): {reasons}{more}." if col.skipped else " No files were found.")
            + " Provide DICOM Part 10 files, a folder or zip of them."
        )
        raise IngestError(msg, details=[{"source": p.source, "reason": p.reason} for p in col.skipped])
    with quiet_pydicom():
        studies = group_instances(col.instances.values())
        for conflict in col.conflicts:
            uid = conflict.reason.split("SOPInstanceUID ")[1].split(" ")[0]
            for study in studies:
                if any(i.SOPInstanceUID == uid for s in study.series for i in s.instances):
                    study.problems.append(f"{conflict.source}: {conflict.reason}")
        if classify:
            from medai.dicom.classify import classify_study, load_rules

            rule_set = load_rules(rules)
            for study in studies:
                classify_study(study, rule_set)
    return IngestResult(studies=studies, skipped=col.skipped, root=root)


def full_dataset(inst: Instance) -> Dataset:
    """The complete dataset of an instance, pixel data included, re-read from its source when it was deferred.

    Use this where a whole source image is needed (e.g. writing a DICOM SEG that references it); volume builders
    use the lighter :meth:`Instance.pixel_dataset`.
    """
    if isinstance(inst.loader, _ZipMemberLoader):
        return inst.loader()
    if isinstance(inst.loader, _FilePixelLoader):
        with quiet_pydicom():
            return pydicom.dcmread(inst.loader.ref.path, force=True)
    return inst.dataset


def iter_instances(result: IngestResult) -> Iterator[Instance]:
    """All instances of an ingest result."""
    for study in result.studies:
        for series in study.series:
            yield from series.instances
