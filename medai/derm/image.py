"""Load and validate skin images: JPEG/PNG (bytes or path) and DICOM VL photographic / dermoscopic images.

Everything becomes a :class:`SkinImage`: ``(H, W, 3) uint8`` RGB pixels, row 0 at the top, no physical spacing
assumed. Validation raises :class:`~medai.errors.InputValidationError` with a message that says what was wrong:

* not an image at all (unreadable bytes, a text file, a PDF...);
* too small (either side < :data:`MIN_SIDE` px) -- nothing lesion-scale survives;
* too large (> :data:`MAX_PIXELS` pixels) -- refused from the header, *before* decoding (decompression bombs);
* DICOM of the wrong kind -- only the VL Photographic and Dermoscopic Photography image IODs are accepted; an MR,
  CT or secondary-capture object is refused with the SOP class it had;
* grayscale -- **refused**. Dermoscopic diagnosis relies on colour (pigment network, blue-white veil, vessels), the
  classifier was trained on colour images only, and a grayscale image replicated to three channels would be a
  silent out-of-distribution input. Single-channel images (PIL modes ``1``/``L``/``I``/``F``, DICOM ``MONOCHROME1/2``)
  and RGB images whose three channels are identical are refused. Palette, RGBA, CMYK and YCbCr images are converted
  to RGB (alpha dropped).
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medai.errors import InputValidationError

logger = logging.getLogger(__name__)

#: smallest accepted side, px
MIN_SIDE = 32
#: largest accepted image, pixels (about 8k x 6k); larger is refused before decoding
MAX_PIXELS = 50_000_000

#: SOP classes accepted from DICOM: VL Photographic Image Storage, Dermoscopic Photography Image Storage
VL_PHOTOGRAPHIC = "1.2.840.10008.5.1.4.1.1.77.1.4"
DERMOSCOPIC_PHOTOGRAPHY = "1.2.840.10008.5.1.4.1.1.77.1.7"
ACCEPTED_SOP_CLASSES: dict[str, str] = {
    VL_PHOTOGRAPHIC: "VL Photographic Image Storage",
    DERMOSCOPIC_PHOTOGRAPHY: "Dermoscopic Photography Image Storage",
}


@dataclass
class SkinImage:
    """A validated skin image.

    Attributes:
        pixels: ``(H, W, 3) uint8`` RGB, row 0 at the top.
        source: where it came from (path, ``"<bytes>"`` or the SOP Instance UID).
        format: ``"JPEG"``, ``"PNG"``, ``"DICOM"``, ...
        sop_class_uid: for DICOM input, the SOP Class UID.
        notes: conversions applied (e.g. ``"RGBA converted to RGB"``).
        metadata: patient fields the file itself carries (DICOM PatientAge, PatientSex), for metadata fusion.
        device: camera make and model (EXIF, or DICOM Manufacturer / ManufacturerModelName).
    """

    pixels: np.ndarray
    source: str = ""
    format: str = ""
    sop_class_uid: str | None = None
    notes: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    device: str = ""

    @property
    def size(self) -> tuple[int, int]:
        """``(height, width)`` in pixels."""
        return int(self.pixels.shape[0]), int(self.pixels.shape[1])


def _fail(field_name: str, problem: str, message: str, value: Any = None) -> InputValidationError:
    return InputValidationError(message, details=[{"field": field_name, "problem": problem, "value": value}])


def _check_size(h: int, w: int, source: str) -> None:
    if h < MIN_SIDE or w < MIN_SIDE:
        raise _fail(
            "image",
            "too_small",
            f"{source}: image is {w}x{h} px; at least {MIN_SIDE}x{MIN_SIDE} px is needed. Send the original "
            "photograph or dermoscopy image, not a thumbnail.",
            [w, h],
        )
    if h * w > MAX_PIXELS:
        raise _fail(
            "image",
            "too_large",
            f"{source}: image is {w}x{h} px ({h * w / 1e6:.0f} Mpx), above the {MAX_PIXELS / 1e6:.0f} Mpx limit "
            "(possible decompression bomb). Downscale it before sending.",
            [w, h],
        )


def _check_colour(rgb: np.ndarray, source: str) -> None:
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise _fail("image", "grayscale", f"{source}: image is not colour (shape {rgb.shape}); see grayscale rule.")
    r, g, b = rgb[..., 0].astype(np.int16), rgb[..., 1].astype(np.int16), rgb[..., 2].astype(np.int16)
    if max(int(np.abs(r - g).max()), int(np.abs(r - b).max())) <= 2:
        raise _grayscale(source, "its three colour channels are identical")


def _grayscale(source: str, why: str) -> InputValidationError:
    return _fail(
        "image",
        "grayscale",
        f"{source}: grayscale image ({why}). The skin-lesion classifier needs a colour (RGB) photograph or "
        "dermoscopy image; colour carries the diagnostic features and the model was trained on colour only.",
    )


def _from_pil_bytes(data: bytes, source: str) -> SkinImage:
    from PIL import Image, UnidentifiedImageError

    try:
        img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:  # PIL's own header check (> 2x its pixel limit)
        raise _fail(
            "image",
            "too_large",
            f"{source}: image header claims an enormous size ({exc}); refused as a possible decompression bomb. "
            "Downscale it before sending.",
        ) from exc
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        head = data[:16]
        raise _fail(
            "image",
            "not_an_image",
            f"{source}: not a readable image ({len(data)} bytes starting {head!r}). Send a JPEG or PNG file, or a "
            "DICOM VL photographic / dermoscopic image.",
        ) from exc
    w, h = img.size  # read from the header only: nothing is decoded yet
    _check_size(h, w, source)
    fmt = img.format or ""
    try:
        exif = img.getexif()
        device = " ".join(str(exif.get(t, "")).strip() for t in (0x010F, 0x0110)).strip()  # Make, Model
    except Exception:  # noqa: BLE001 -- a broken EXIF block must not refuse a readable image
        device = ""
    notes: list[str] = []
    if img.mode in {"1", "L", "LA", "I", "I;16", "I;16B", "F"}:
        raise _grayscale(source, f"PIL mode {img.mode}")
    try:
        if img.mode == "P":
            img = img.convert("RGBA")
            notes.append("palette converted to RGB")
        if img.mode != "RGB":
            notes.append(f"{img.mode} converted to RGB")
            img = img.convert("RGB")
        rgb = np.asarray(img, dtype=np.uint8)
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise _fail("image", "corrupt", f"{source}: the {fmt or 'image'} data could not be decoded: {exc}") from exc
    _check_colour(rgb, source)
    return SkinImage(pixels=np.ascontiguousarray(rgb), source=source, format=fmt, notes=notes, device=device)


def _from_dicom(ds: Any, source: str) -> SkinImage:
    sop = str(getattr(ds, "SOPClassUID", "") or "")
    if sop not in ACCEPTED_SOP_CLASSES:
        modality = getattr(ds, "Modality", "?")
        try:
            from pydicom.uid import UID

            sop_name = UID(sop).name if sop else "no SOP Class UID"
        except Exception:  # pragma: no cover - pydicom naming is best effort
            sop_name = sop
        raise _fail(
            "image",
            "wrong_dicom_kind",
            f"{source}: DICOM object is {sop_name} (modality {modality}), not a skin photograph. Accepted: "
            + ", ".join(f"{v} ({k})" for k, v in ACCEPTED_SOP_CLASSES.items())
            + ".",
            sop,
        )
    rows, cols = int(getattr(ds, "Rows", 0) or 0), int(getattr(ds, "Columns", 0) or 0)
    _check_size(rows, cols, source)
    photometric = str(getattr(ds, "PhotometricInterpretation", ""))
    if photometric.startswith("MONOCHROME"):
        raise _grayscale(source, f"PhotometricInterpretation {photometric}")
    if int(getattr(ds, "NumberOfFrames", 1) or 1) > 1:
        raise _fail("image", "multi_frame", f"{source}: multi-frame DICOM image; send one photograph per object.")
    try:
        arr = ds.pixel_array
    except Exception as exc:  # pydicom raises many types for missing codecs / pixel data
        raise _fail("image", "corrupt", f"{source}: DICOM pixel data could not be decoded: {exc}") from exc
    notes: list[str] = []
    if photometric.startswith("YBR"):
        from pydicom.pixels import convert_color_space

        # pydicom converts YBR_FULL_422 JPEG data to RGB itself (ds.pixel_array); only raw YBR needs converting
        if not (getattr(ds.file_meta, "TransferSyntaxUID", None) and ds.file_meta.TransferSyntaxUID.is_compressed):
            arr = convert_color_space(arr, photometric, "RGB")
            notes.append(f"{photometric} converted to RGB")
    elif photometric == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut

        arr = apply_color_lut(arr, ds)
        notes.append("palette converted to RGB")
    arr = np.asarray(arr)
    if arr.ndim != 3 or arr.shape[-1] != 3:
        raise _grayscale(source, f"pixel array of shape {arr.shape}")
    if arr.dtype != np.uint8:
        bits = int(getattr(ds, "BitsStored", 8) or 8)
        arr = np.clip(arr.astype(np.float32) / (2**bits - 1) * 255.0 + 0.5, 0, 255).astype(np.uint8)
        notes.append(f"{bits}-bit samples rescaled to 8 bit")
    _check_colour(arr, source)
    meta = {k: str(v) for k, v in (("age", ds.get("PatientAge")), ("sex", ds.get("PatientSex"))) if v}
    device = " ".join(str(ds.get(k, "") or "") for k in ("Manufacturer", "ManufacturerModelName")).strip()
    return SkinImage(
        pixels=np.ascontiguousarray(arr),
        source=source,
        format="DICOM",
        sop_class_uid=sop,
        notes=notes,
        metadata=meta,
        device=device,
    )


def _is_dicom_bytes(data: bytes) -> bool:
    return len(data) > 132 and data[128:132] == b"DICM"


def load_skin_image(src: bytes | str | Path | Any) -> SkinImage:
    """Load and validate one skin image.

    Args:
        src: JPEG/PNG/DICOM file content (``bytes``), a file path, or a ``pydicom.Dataset``.

    Returns:
        The validated :class:`SkinImage` (``(H, W, 3) uint8`` RGB).

    Raises:
        InputValidationError: the input is not a usable colour skin image (see the module docstring).
    """
    if isinstance(src, bytes | bytearray | memoryview):
        data, source = bytes(src), "<bytes>"
    elif isinstance(src, str | Path):
        p = Path(src)
        if not p.is_file():
            raise _fail("image", "missing", f"{p}: no such file", str(p))
        data, source = p.read_bytes(), str(p)
    else:
        try:
            from pydicom import Dataset
        except ImportError:  # pragma: no cover
            Dataset = ()  # type: ignore[assignment,misc]
        if isinstance(src, Dataset):
            return _from_dicom(src, str(getattr(src, "SOPInstanceUID", "<dataset>")))
        raise _fail(
            "image", "bad_type", f"unsupported input type {type(src).__name__}: send bytes, a path or a pydicom Dataset"
        )
    if not data:
        raise _fail("image", "empty", f"{source}: empty file")
    if _is_dicom_bytes(data):
        import pydicom
        from pydicom.errors import InvalidDicomError

        try:
            ds = pydicom.dcmread(io.BytesIO(data))
        except (InvalidDicomError, OSError, ValueError, EOFError) as exc:
            raise _fail("image", "corrupt", f"{source}: unreadable DICOM: {exc}") from exc
        return _from_dicom(ds, source)
    return _from_pil_bytes(data, source)


#: makers and product names of dermatoscopes and dermoscopy cameras (EXIF / DICOM device strings, lower case)
DERMATOSCOPE_DEVICES = ("dermlite", "3gen", "fotofinder", "heine", "molemax", "dermogenius", "handyscope", "canfield",
                        "vectra", "dermscan", "illuco", "firefly", "delta 20", "welch allyn")


def image_type(img: SkinImage) -> tuple[str, str]:
    """``("dermoscopic" | "clinical" | "unknown", reason)`` of an image, from the strongest evidence available.

    1. DICOM: the SOP class (Dermoscopic Photography vs VL Photographic Image);
    2. the device (EXIF or DICOM): a dermatoscope maker or product name means dermoscopic; a phone or camera
       maker alone is not evidence either way;
    3. the picture: dermoscopy through a contact lens often leaves a dark circular vignette (three or four corners
       much darker than the centre). Its absence proves nothing (most HAM10000 images are cropped inside the lens),
       so such an image is ``unknown``: no photograph set of clinical images can be used here to train a real
       dermoscopic-vs-clinical classifier, and a guess is not offered as one.
    """
    if img.sop_class_uid == DERMOSCOPIC_PHOTOGRAPHY:
        return "dermoscopic", "DICOM Dermoscopic Photography Image"
    dev = img.device.lower()
    if any(d in dev for d in DERMATOSCOPE_DEVICES):
        return "dermoscopic", f"device {img.device!r} is a dermatoscope"
    if img.sop_class_uid == VL_PHOTOGRAPHIC:
        return "clinical", "DICOM VL Photographic Image (not the dermoscopic SOP class)"
    if img.format == "DICOM":
        return "unknown", f"DICOM SOP class {img.sop_class_uid} names no photograph type"
    grey = img.pixels.astype(np.float32).mean(2)
    h, w = grey.shape
    c = max(2, min(h, w) // 10)
    corners = [grey[:c, :c], grey[:c, -c:], grey[-c:, :c], grey[-c:, -c:]]
    centre = grey[h // 3 : 2 * h // 3, w // 3 : 2 * w // 3].mean()
    dark = sum(float(q.mean()) < 0.45 * centre for q in corners)
    if dark >= 3:
        return "dermoscopic", f"{dark} of 4 corners dark against the centre (dermatoscope vignette)"
    return "unknown", "no DICOM class, no dermatoscope device and no dermatoscope vignette"


def pick_skin_model(kind: str) -> tuple[str | None, str]:
    """The shipped skin-lesion package for an image type (its ``input_contract.image_type``), and why; ``None``
    when no shipped package takes that type."""
    from medai.inference.package import read_metadata, shipped_packages

    candidates: dict[str, str] = {}
    for name, path in shipped_packages().items():
        try:
            meta = read_metadata(path)
        except Exception:  # noqa: BLE001 -- one unreadable package must not hide the others
            continue
        if meta.predictor == "skin_lesion":
            candidates[name] = str(meta.input_contract.get("image_type", "dermoscopic"))
    want = "dermoscopic" if kind == "unknown" else kind
    matches = sorted(n for n, t in candidates.items() if t == want)
    if not matches:
        return None, f"no shipped skin model takes {want} images (shipped: {candidates or 'none'})"
    pick = "skin_derm_lesion_cls" if "skin_derm_lesion_cls" in matches else matches[0]
    return pick, f"{pick} takes {want} images"
