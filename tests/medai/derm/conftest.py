"""Fixtures for dermatology tests: synthetic colour images and DICOM objects, a tiny random-weight package."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest


def lesion_like(h: int = 150, w: int = 200, seed: int = 0) -> np.ndarray:
    """A synthetic skin-coloured image with a darker brown blob: ``(h, w, 3) uint8``."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    r = np.hypot((yy - h / 2) / (h / 4), (xx - w / 2) / (w / 5))
    skin = np.array([200, 150, 140], float)
    lesion = np.array([110, 70, 50], float)
    a = np.clip(1.2 - r, 0, 1)[..., None]
    img = skin * (1 - a) + lesion * a + rng.normal(0, 6, (h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def encode(arr: np.ndarray, fmt: str = "PNG", mode: str | None = None) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr, mode=mode).save(buf, format=fmt)
    return buf.getvalue()


def dicom_image(sop_class: str, pixels: np.ndarray, photometric: str = "RGB", modality: str = "XC"):
    """A minimal uncompressed DICOM dataset of ``sop_class`` holding ``pixels``."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = modality
    ds.Rows, ds.Columns = pixels.shape[:2]
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    if pixels.ndim == 3:
        ds.SamplesPerPixel = 3
        ds.PlanarConfiguration = 0
    else:
        ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    return ds


def dicom_bytes(ds) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


@pytest.fixture
def tiny_package(tmp_path: Path) -> Path:
    """A skin-lesion package with random weights of the shipped network at 48 px (fast, no data needed)."""
    import torch

    from medai.derm.labels import CLASS_ORDER, label_table
    from medai.inference.package import ModelMetadata, write_metadata
    from medai.registry import NETWORKS

    torch.manual_seed(0)
    names = [c.value for c in CLASS_ORDER]
    net = NETWORKS.get("derm_resnet_small")(in_channels=3, num_classes=7, width=8)
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    torch.save(net.state_dict(), pkg / "weights.pt")
    (pkg / "inference.json").write_text(
        json.dumps(
            {
                "network": "derm_resnet_small",
                "network_params": {"width": 8},
                "class_names": names,
                "image_size": 48,
                "temperature": 1.5,
            }
        )
    )
    write_metadata(
        pkg,
        ModelMetadata(
            name="skin_derm_lesion_cls",
            version="0.0.1-test",
            predictor="skin_lesion",
            task="classification",
            labels=label_table(names),
        ),
    )
    return pkg


def make_meta_package(pkg: Path, image_size: int = 48, tta: int = 2) -> Path:
    """A v2 skin-lesion package (``efficientnet_meta`` fusing age, sex and site) with random weights."""
    import torch

    from medai.derm.labels import CLASS_ORDER, label_table
    from medai.derm.metadata import MetadataEncoder
    from medai.inference.package import ModelMetadata, write_metadata
    from medai.registry import NETWORKS

    torch.manual_seed(0)
    names = [c.value for c in CLASS_ORDER]
    enc = MetadataEncoder(fields=["age", "sex", "site"], site=["back", "face", "trunk"])
    params = {"backbone": "efficientnet-b0", "meta_dim": enc.dim, "meta_missing": enc.encode_missing().tolist()}
    net = NETWORKS.get("efficientnet_meta")(in_channels=3, num_classes=7, **params)
    with torch.no_grad():  # a visible metadata effect for the tests (random init keeps it small)
        net.fc.weight[:, -64:] *= 20
    pkg.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), pkg / "weights.pt")
    (pkg / "inference.json").write_text(
        json.dumps(
            {
                "network": "efficientnet_meta",
                "network_params": params,
                "class_names": names,
                "image_size": image_size,
                "temperature": 1.0,
                "tta": tta,
                "metadata": enc.model_dump(),
            }
        )
    )
    write_metadata(
        pkg,
        ModelMetadata(
            name="skin_derm_lesion_cls",
            version="2.0.0-test",
            predictor="skin_lesion",
            task="classification",
            labels=label_table(names),
        ),
    )
    return pkg
