"""Sunnybrook Cardiac Data (2009 MICCAI LV segmentation challenge): DICOM + expert contour text files -> masks.

Layout (the public re-packaging)::

    dicoms/<SCD id>/<N>.dcm
    contourfiles/<SC-HF-I-n>/i-contours/IM-0001-<NNNN>-icontour-manual.txt   # LV endocardium (ED and ES)
    contourfiles/<SC-HF-I-n>/o-contours/IM-0001-<NNNN>-ocontour-manual.txt   # LV epicardium (ED)
    link.csv                                                                 # patient_id,original_id

Contour ``NNNN`` is DICOM ``<N>.dcm``; with 20 phases per slice position, ``slice = (N-1)//20`` and
``phase = (N-1)%20 + 1``. Each line of a contour file is one ``x y`` point in pixel coordinates (``x`` = column,
``y`` = row, pixel centres at integer coordinates). Masks are filled polygons (pixel centres inside the contour).
The epicardium is drawn at ED, so the phase holding o-contours is ED and the other contoured phase is ES.

Labels follow the cine convention: LV cavity = 3 (``lv``), LV myocardium = 2 (``myo``, between o- and i-contour,
only on slices with both). Licence CC0 1.0; cite Radau et al., MIDAS Journal 2009.
"""

from __future__ import annotations

import csv
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medai.datasets.base import CardiacPhase, SegCase
from medai.domain.volume import affine_from_dicom
from medai.errors import ConfigError

logger = logging.getLogger(__name__)

#: Phases per slice position in the Sunnybrook cine series.
PHASES_PER_SLICE = 20
SUNNYBROOK_LABELS: dict[str, int] = {"myo": 2, "lv": 3}

_CONTOUR = re.compile(r"IM-0001-(\d{4})-([io])contour-manual\.txt$")


@dataclass(frozen=True)
class ContourFile:
    """One expert contour: which image it belongs to and which boundary it draws."""

    path: Path
    image_number: int
    kind: str  # "i" (endocardium) or "o" (epicardium)

    @property
    def slice_index(self) -> int:
        """0-based slice position: ``(N - 1) // 20``."""
        return (self.image_number - 1) // PHASES_PER_SLICE

    @property
    def phase(self) -> int:
        """1-based cardiac phase: ``(N - 1) % 20 + 1``."""
        return (self.image_number - 1) % PHASES_PER_SLICE + 1


def parse_contour_name(path: Path) -> ContourFile:
    """Parse ``IM-0001-NNNN-{i,o}contour-manual.txt``."""
    m = _CONTOUR.search(Path(path).name)
    if not m:
        raise ConfigError(f"{path} is not a Sunnybrook contour file (IM-0001-NNNN-icontour-manual.txt)")
    return ContourFile(Path(path), int(m.group(1)), m.group(2))


def read_contour(path: Path) -> np.ndarray:
    """Read a contour file as ``(N, 2)`` float64 ``(x, y)`` pixel coordinates (x = column)."""
    pts = np.loadtxt(path, dtype=float, ndmin=2)
    if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) < 3:
        raise ConfigError(f"{path}: expected at least 3 lines of 'x y', got shape {pts.shape}")
    return pts


def contour_to_mask(points_xy: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Fill a closed polygon: True where the pixel centre ``(row, col)`` lies inside.

    Args:
        points_xy: ``(N, 2)`` ``(x = column, y = row)`` pixel coordinates.
        shape: ``(rows, columns)`` of the image.

    Returns:
        ``(rows, columns)`` bool mask.
    """
    from matplotlib.path import Path as MplPath

    rows, cols = shape
    x0, y0 = np.floor(points_xy.min(0)).astype(int)
    x1, y1 = np.ceil(points_xy.max(0)).astype(int)
    x0, y0 = max(x0, 0), max(y0, 0)
    x1, y1 = min(x1, cols - 1), min(y1, rows - 1)
    mask = np.zeros(shape, bool)
    if x1 < x0 or y1 < y0:
        return mask
    yy, xx = np.mgrid[y0 : y1 + 1, x0 : x1 + 1]
    inside = MplPath(points_xy).contains_points(np.column_stack([xx.ravel(), yy.ravel()]))
    mask[y0 : y1 + 1, x0 : x1 + 1] = inside.reshape(yy.shape)
    return mask


def read_link(root: Path) -> dict[str, str]:
    """``link.csv``: DICOM folder id (``SCD0000101``) -> contour folder (``SC-HF-I-1``)."""
    path = Path(root) / "link.csv"
    if not path.is_file():
        raise ConfigError(f"{path} is missing; expected the Sunnybrook layout (dicoms/, contourfiles/, link.csv)")
    with path.open() as f:
        return {row["patient_id"]: row["original_id"] for row in csv.DictReader(f)}


def _phase_case(root: Path, patient: str, contour_dir: str, phase: int, cardiac: CardiacPhase,
                contours: list[ContourFile]) -> SegCase:
    import pydicom

    by_slice: dict[int, dict[str, ContourFile]] = {}
    for c in contours:
        if c.phase == phase:
            by_slice.setdefault(c.slice_index, {})[c.kind] = c
    slices = sorted(by_slice)
    images, labels, positions, sops = [], [], [], []
    orientation = spacing = None
    for s in slices:
        n = s * PHASES_PER_SLICE + phase
        dcm_path = root / "dicoms" / patient / f"{n}.dcm"
        if not dcm_path.is_file():
            raise ConfigError(f"{dcm_path} is missing although image {n} has an expert contour")
        ds = pydicom.dcmread(dcm_path)
        arr = ds.pixel_array.astype(np.float32) * float(getattr(ds, "RescaleSlope", 1) or 1) + float(
            getattr(ds, "RescaleIntercept", 0) or 0)
        lab = np.zeros(arr.shape, np.uint8)
        if "o" in by_slice[s] and "i" in by_slice[s]:
            lab[contour_to_mask(read_contour(by_slice[s]["o"].path), arr.shape)] = SUNNYBROOK_LABELS["myo"]
        if "i" in by_slice[s]:
            lab[contour_to_mask(read_contour(by_slice[s]["i"].path), arr.shape)] = SUNNYBROOK_LABELS["lv"]
        images.append(arr)
        labels.append(lab)
        positions.append(np.asarray(ds.ImagePositionPatient, float))
        orientation = [float(v) for v in ds.ImageOrientationPatient]
        spacing = [float(v) for v in ds.PixelSpacing]
        sops.append(str(dcm_path))
    if len(slices) > 1:
        step = (positions[-1] - positions[0]) / (slices[-1] - slices[0])
    else:
        normal = np.cross(orientation[:3], orientation[3:])  # type: ignore[index]
        step = normal * 10.0
    # slices may skip positions (only contoured images exist): the affine uses the per-position step
    aff = affine_from_dicom(positions[0], orientation, spacing, step)  # type: ignore[arg-type]
    gaps = np.diff(slices)
    if len(gaps) and (gaps != 1).any():
        logger.info("%s phase %d: contoured slices %s are not contiguous", patient, phase, slices)
    return SegCase(
        case_id=f"{patient}_{cardiac.value}",
        patient_id=patient,
        image=np.stack(images),
        label=np.stack(labels),
        phase=cardiac,
        spacing_mm=(float(np.linalg.norm(step)), float(spacing[0]), float(spacing[1])),  # type: ignore[index]
        affine=aff if not (len(gaps) and (gaps != 1).any()) else None,
        labels=dict(SUNNYBROOK_LABELS),
        meta={"contour_folder": contour_dir, "phase": phase, "slice_positions": slices, "sources": sops,
              "has_epicardium": [("o" in by_slice[s]) for s in slices]},
    )


def load_sunnybrook_patient(root: Path, patient: str) -> list[SegCase]:
    """The contoured ED and ES stacks of one Sunnybrook patient (``SCD0000101``...).

    Returns:
        ``[ED case, ES case]``: ``image`` ``(Z, Y, X)`` float32 of the contoured slice positions (sorted),
        ``label`` uint8 (lv=3 inside the endocardium; myo=2 between epi- and endocardium where drawn),
        ``spacing_mm`` ``(dz, dy, dx)``; ``meta["slice_positions"]`` lists the 0-based slice indices.
    """
    root = Path(root)
    link = read_link(root)
    if patient not in link:
        raise ConfigError(f"{patient} is not in {root / 'link.csv'} ({', '.join(sorted(link))})")
    cdir = root / "contourfiles" / link[patient]
    contours = [parse_contour_name(p) for p in sorted(cdir.glob("*-contours/IM-0001-*-*contour-manual.txt"))]
    if not contours:
        raise ConfigError(f"no contour files under {cdir}")
    phases = sorted({c.phase for c in contours if c.kind == "i"})
    o_phases = {c.phase for c in contours if c.kind == "o"}
    ed = next(iter(o_phases)) if len(o_phases) == 1 else max(phases)
    others = [p for p in phases if p != ed]
    cases = [_phase_case(root, patient, link[patient], ed, CardiacPhase.ED, contours)]
    if others:
        cases.append(_phase_case(root, patient, link[patient], others[0], CardiacPhase.ES, contours))
    return cases


def load_sunnybrook(root: Path) -> list[SegCase]:
    """ED and ES cases of every patient listed in ``link.csv`` (see :func:`load_sunnybrook_patient`)."""
    root = Path(root)
    return [c for pid in sorted(read_link(root)) for c in load_sunnybrook_patient(root, pid)]
