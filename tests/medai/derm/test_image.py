"""Image loading and validation: what is accepted, converted or refused, with which message."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from medai.derm.image import (
    DERMOSCOPIC_PHOTOGRAPHY,
    MAX_PIXELS,
    MIN_SIDE,
    VL_PHOTOGRAPHIC,
    load_skin_image,
)
from medai.errors import InputValidationError
from tests.medai.derm.conftest import dicom_bytes, dicom_image, encode, lesion_like

MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"


def _problem(exc: pytest.ExceptionInfo[InputValidationError]) -> str:
    return exc.value.details[0]["problem"]


def test_png_and_jpeg_bytes_load_as_rgb_uint8() -> None:
    arr = lesion_like()
    for fmt in ("PNG", "JPEG"):
        img = load_skin_image(encode(arr, fmt))
        assert img.pixels.shape == (150, 200, 3) and img.pixels.dtype == np.uint8
        assert img.format == fmt
    assert np.array_equal(load_skin_image(encode(arr, "PNG")).pixels, arr)  # lossless round trip


def test_real_ham10000_jpeg_loads(data_dir: Path) -> None:
    path = next((data_dir / "derm" / "ham10000" / "images").glob("*.jpg"))
    img = load_skin_image(path)
    assert img.size == (150, 200)
    assert img.source == str(path)


def test_rgba_is_converted_and_noted() -> None:
    arr = lesion_like()
    rgba = np.concatenate([arr, np.full(arr.shape[:2] + (1,), 255, np.uint8)], axis=2)
    img = load_skin_image(encode(rgba, "PNG"))
    assert img.pixels.shape[2] == 3
    assert any("RGBA" in n for n in img.notes)


@pytest.mark.parametrize("payload", [b"%PDF-1.4 not an image at all" * 10, b"hello,world\n1,2\n" * 20, bytes(300)])
def test_non_image_bytes_are_refused_clearly(payload: bytes) -> None:
    with pytest.raises(InputValidationError, match="not a readable image") as exc:
        load_skin_image(payload)
    assert _problem(exc) == "not_an_image"


def test_text_file_and_missing_path_and_empty_bytes(tmp_path: Path) -> None:
    f = tmp_path / "notes.txt"
    f.write_text("this is a clinical note, not a photograph\n" * 5)
    with pytest.raises(InputValidationError, match="JPEG or PNG"):
        load_skin_image(f)
    with pytest.raises(InputValidationError, match="no such file"):
        load_skin_image(tmp_path / "absent.jpg")
    with pytest.raises(InputValidationError, match="empty"):
        load_skin_image(b"")


def test_tiny_image_is_refused() -> None:
    with pytest.raises(InputValidationError, match=f"at least {MIN_SIDE}x{MIN_SIDE}") as exc:
        load_skin_image(encode(lesion_like(20, 24), "PNG"))
    assert _problem(exc) == "too_small"


def _png_with_claimed_size(width: int, height: int) -> bytes:
    """A real 40x40 PNG whose IHDR claims ``width`` x ``height`` (valid CRC): a decompression-bomb header."""
    data = bytearray(encode(lesion_like(40, 40), "PNG"))
    ihdr = 8  # after the signature: length(4) type(4) data(13) crc(4)
    body = bytearray(data[ihdr + 8 : ihdr + 8 + 13])
    body[0:8] = struct.pack(">II", width, height)
    data[ihdr + 8 : ihdr + 8 + 13] = body
    data[ihdr + 21 : ihdr + 25] = struct.pack(">I", zlib.crc32(b"IHDR" + bytes(body)) & 0xFFFFFFFF)
    return bytes(data)


@pytest.mark.parametrize("size", [(10_000, 8_000), (40_000, 40_000)])  # above our limit; above PIL's too
def test_huge_image_is_refused_from_its_header_before_decoding(size: tuple[int, int]) -> None:
    bomb = _png_with_claimed_size(*size)
    assert len(bomb) < 100_000 and size[0] * size[1] > MAX_PIXELS  # a tiny file claiming a huge image
    with pytest.raises(InputValidationError, match="decompression bomb") as exc:
        load_skin_image(bomb)
    assert _problem(exc) == "too_large"


def test_grayscale_is_refused_both_single_channel_and_replicated() -> None:
    grey = lesion_like().mean(2).astype(np.uint8)
    with pytest.raises(InputValidationError, match="grayscale") as exc:
        load_skin_image(encode(grey, "PNG"))
    assert _problem(exc) == "grayscale"
    with pytest.raises(InputValidationError, match="identical"):
        load_skin_image(encode(np.repeat(grey[..., None], 3, axis=2), "PNG"))


@pytest.mark.parametrize("sop", [VL_PHOTOGRAPHIC, DERMOSCOPIC_PHOTOGRAPHY])
def test_dicom_photographs_load_from_dataset_and_bytes(sop: str) -> None:
    arr = lesion_like(64, 80)
    ds = dicom_image(sop, arr)
    img = load_skin_image(ds)
    assert img.format == "DICOM" and img.sop_class_uid == sop
    assert np.array_equal(img.pixels, arr)
    img2 = load_skin_image(dicom_bytes(ds))
    assert np.array_equal(img2.pixels, arr)


def test_wrong_kind_of_dicom_is_refused_with_its_sop_class() -> None:
    mr = dicom_image(MR_IMAGE_STORAGE, (np.arange(64 * 64) % 255).astype(np.uint8).reshape(64, 64), "MONOCHROME2", "MR")
    with pytest.raises(InputValidationError, match="MR Image Storage") as exc:
        load_skin_image(dicom_bytes(mr))
    assert _problem(exc) == "wrong_dicom_kind"
    assert "Dermoscopic Photography" in str(exc.value)


def test_monochrome_vl_photograph_is_refused_as_grayscale() -> None:
    ds = dicom_image(VL_PHOTOGRAPHIC, lesion_like(64, 64).mean(2).astype(np.uint8), "MONOCHROME2")
    with pytest.raises(InputValidationError, match="MONOCHROME2"):
        load_skin_image(ds)


def test_unsupported_input_type() -> None:
    with pytest.raises(InputValidationError, match="unsupported input type"):
        load_skin_image(12345)  # type: ignore[arg-type]
