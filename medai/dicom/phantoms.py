"""Synthetic DICOM studies with known ground truth, generated in code (never committed as files).

The main generator, :func:`make_cine_sax_study`, writes a cine short-axis MR study of a beating heart: a left
ventricle (blood pool inside a myocardial ring whose cross-section grows by :data:`SYSTOLIC_AREA_GAIN` in systole, so
the wall thickens as a normal heart's does) and a half-moon right ventricle wrapping the septum, tapering from base
to an apex that closes (:data:`APEX_CLOSURE`). The label map is rasterised first and
the image is painted from it, so the volumes in :class:`PhantomTruth` are *exactly* the label voxel counts times
the voxel volume: EF is known exactly.

The image is made to look like real bSSFP cine to a network trained on it (checked against the ACDC training
images, 1st-99th percentile-scaled, and against the shipped ``heart_mr_cine_seg``): bright blood (RV a little
darker than LV), dark grey myocardium, a trabeculated endocardium whose signal falls towards the wall over the last
few mm inside the cavity contour and two papillary muscles (both inside the cavity label, the ACDC convention), a
thin unlabelled RV free wall, dark pericardium, patchy epicardial fat, and a chest around it (dark lungs with
bright vessels, chest wall with subcutaneous fat, liver, stomach, descending aorta) that follows the contracting
heart; a receive-coil shading, ~1 mm blur and Rician noise. No real image data is used: every tissue is drawn from
parameters in this module.

Smaller examples for tests and demos: :func:`make_ct_volume` (3-D CT / CTA), :func:`make_lge_study` (single-phase
inversion-recovery short-axis stack), :func:`make_echo_multiframe` (ultrasound multi-frame with
``SequenceOfUltrasoundRegions``), :func:`make_brain_mr` (a non-cardiac MR for negative tests) and
:func:`make_photo` (VL photographic / dermoscopic colour image).

Conventions: label values follow :data:`medai.cardiac.preprocess.CINE_LABELS` (ACDC: rv=1, myo=2, lv=3); arrays
are ``(T, Z, Y, X)``; the affine maps ``(z, y, x, 1)`` to LPS mm like :class:`medai.domain.volume.Volume`.
"""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    CTImageStorage,
    DermoscopicPhotographyImageStorage,
    EnhancedCTImageStorage,
    EnhancedMRImageStorage,
    ExplicitVRLittleEndian,
    MRImageStorage,
    UltrasoundMultiFrameImageStorage,
    VLPhotographicImageStorage,
    generate_uid,
)

from medai.cardiac.preprocess import CINE_LABELS
from medai.domain.volume import affine_from_dicom

logger = logging.getLogger(__name__)

#: Myocardial tissue density used for LV mass (g/mL), the value used by SCMR post-processing guidelines.
MYOCARDIAL_DENSITY_G_PER_ML = 1.05


@dataclass(frozen=True)
class PhantomTruth:
    """Exact cardiac volumes of a phantom, computed from its label voxels.

    Attributes:
        lv_edv_ml / lv_esv_ml: LV blood-pool volume at end-diastole / end-systole (mL).
        lv_ef_pct: LV ejection fraction (%), ``100 * (EDV - ESV) / EDV``.
        rv_edv_ml / rv_esv_ml / rv_ef_pct: the same for the RV, at the LV's ED/ES phases.
        lv_mass_g: myocardial volume at ED times 1.05 g/mL.
        ed_phase / es_phase: frame indices of maximal / minimal LV volume.
        lv_volume_ml: LV volume per frame (mL), length ``T``.
        rv_volume_ml: RV volume per frame (mL), length ``T``.
    """

    lv_edv_ml: float
    lv_esv_ml: float
    lv_ef_pct: float
    rv_edv_ml: float
    rv_esv_ml: float
    rv_ef_pct: float
    lv_mass_g: float
    ed_phase: int
    es_phase: int
    lv_volume_ml: tuple[float, ...] = ()
    rv_volume_ml: tuple[float, ...] = ()


@dataclass
class Phantom:
    """A generated DICOM study and what is known about it.

    Attributes:
        datasets: the DICOM instances (complete, with pixel data and file meta).
        paths: where they were written (empty unless ``out_dir`` was given), same order as ``datasets``.
        image: stored pixel values before rescale, ``(T, Z, Y, X)`` (cine), ``(Z, Y, X)`` (3-D),
            ``(T, Y, X, 3)`` (colour ultrasound) or ``(Y, X, 3)`` (photo).
        labels: ``(T, Z, Y, X)`` uint8 label map (cine: rv=1, myo=2, lv=3), ``(Z, Y, X)`` for 3-D phantoms, or None.
        truth: exact volumes (cine phantoms only).
        affine: ``(4, 4)`` ``(z, y, x, 1)`` -> LPS mm of the image grid (slices sorted along the normal).
        frame_times_ms: trigger time of each frame (ms after the R wave) for temporal phantoms.
        layout: free-text note on how the instances are organised (e.g. one series per slice).
    """

    datasets: list[Dataset]
    paths: list[Path] = field(default_factory=list)
    image: np.ndarray | None = None
    labels: np.ndarray | None = None
    truth: PhantomTruth | None = None
    affine: np.ndarray | None = None
    frame_times_ms: tuple[float, ...] | None = None
    layout: str = ""

    @property
    def study_uid(self) -> str:
        """StudyInstanceUID shared by all instances."""
        return str(self.datasets[0].StudyInstanceUID)

    @property
    def series_uids(self) -> list[str]:
        """Distinct SeriesInstanceUIDs in instance order."""
        return list(dict.fromkeys(str(ds.SeriesInstanceUID) for ds in self.datasets))

    def to_bytes(self) -> list[bytes]:
        """Each instance encoded as a DICOM Part 10 file in memory."""
        return [dataset_to_bytes(ds) for ds in self.datasets]


def dataset_to_bytes(ds: Dataset) -> bytes:
    """Encode a dataset (with file meta) as Part 10 bytes (preamble + 'DICM')."""
    buf = io.BytesIO()
    pydicom.dcmwrite(buf, ds, enforce_file_format=True)
    return buf.getvalue()


# ----------------------------------------------------------------------------------------------------------------
# geometry helpers


def _rotation(angles_deg: Sequence[float]) -> np.ndarray:
    """Rotation matrix Rz(a) @ Ry(b) @ Rx(c) (angles in degrees)."""
    a, b, c = (math.radians(v) for v in angles_deg)
    rz = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    ry = np.array([[math.cos(b), 0, math.sin(b)], [0, 1, 0], [-math.sin(b), 0, math.cos(b)]])
    rx = np.array([[1, 0, 0], [0, math.cos(c), -math.sin(c)], [0, math.sin(c), math.cos(c)]])
    return rz @ ry @ rx


#: Offset of the RV free-wall ellipse's centre from the LV centre, as a fraction of the epicardial radius.
RV_CENTRE_OFFSET = 0.5


#: A short-axis-like oblique orientation (rotation angles about S, P, L in degrees).
SAX_ANGLES_DEG = (35.0, -40.0, 25.0)


def _orientation(oblique: bool, angles_deg: Sequence[float] = SAX_ANGLES_DEG) -> tuple[np.ndarray, np.ndarray]:
    """Row and column direction cosines (LPS) of the image plane."""
    if not oblique:
        return np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
    rot = _rotation(angles_deg)
    return rot[:, 0].copy(), rot[:, 1].copy()


def _slice_positions(
    center_lps: Sequence[float],
    row: np.ndarray,
    col: np.ndarray,
    rows: int,
    cols: int,
    spacing_px: float,
    n_slices: int,
    slice_spacing: float,
) -> tuple[np.ndarray, np.ndarray]:
    """ImagePositionPatient of each slice (centred on ``center_lps``) and the unit normal."""
    normal = np.cross(row, col)
    c = np.asarray(center_lps, dtype=float)
    first = c - (cols - 1) / 2 * spacing_px * row - (rows - 1) / 2 * spacing_px * col
    offs = (np.arange(n_slices) - (n_slices - 1) / 2) * slice_spacing
    return first[None, :] + offs[:, None] * normal[None, :], normal


def _ds_str(v: float) -> str:
    """A DS value string of at most 16 characters."""
    s = f"{v:.6g}"
    return s if len(s) <= 16 else f"{v:.4e}"


def _uid(seed: int, *parts: object) -> str:
    """A deterministic valid UID from the seed and ``parts``."""
    return generate_uid(entropy_srcs=["medai-phantom", str(seed), *(str(p) for p in parts)])


def _file_meta(sop_class: str, sop_uid: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    return meta


def _patient_study(
    ds: Dataset,
    seed: int,
    study_uid: str,
    *,
    patient_sex: str,
    height_m: float | None,
    weight_kg: float | None,
    patient_id: str,
    description: str,
) -> None:
    ds.PatientName = "Phantom^Medai"
    ds.PatientID = patient_id
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = patient_sex
    ds.PatientAge = "055Y"
    if height_m is not None:
        ds.PatientSize = _ds_str(height_m)
    if weight_kg is not None:
        ds.PatientWeight = _ds_str(weight_kg)
    ds.StudyInstanceUID = study_uid
    ds.StudyDate = "20240102"
    ds.StudyTime = "101500"
    ds.StudyID = "1"
    ds.AccessionNumber = f"PH{seed:06d}"
    ds.StudyDescription = description
    ds.ReferringPhysicianName = ""
    ds.InstitutionName = "medai phantom hospital"
    ds.Manufacturer = "medai"
    ds.ManufacturerModelName = "phantom"
    ds.SpecificCharacterSet = "ISO_IR 100"


def _image_pixels(ds: Dataset, pixels: np.ndarray, *, bits_stored: int = 12, signed: bool = False) -> None:
    """Attach monochrome pixel data (``(Y, X)`` or ``(F, Y, X)``) as 16-bit."""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = int(pixels.shape[-2]), int(pixels.shape[-1])
    ds.BitsAllocated = 16
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 1 if signed else 0
    arr = pixels.astype(np.int16 if signed else np.uint16)
    ds.PixelData = arr.tobytes()


def _write(datasets: list[Dataset], out_dir: Path | None, subdir_of: dict[int, str] | None = None) -> list[Path]:
    """Write ``datasets`` as ``IM_0001.dcm``... under ``out_dir`` (optionally in sub-folders); [] when None."""
    if out_dir is None:
        return []
    out_dir = Path(out_dir)
    paths: list[Path] = []
    for i, ds in enumerate(datasets):
        folder = out_dir / subdir_of[i] if subdir_of and i in subdir_of else out_dir
        folder.mkdir(parents=True, exist_ok=True)
        p = folder / f"IM_{i + 1:04d}.dcm"
        ds.save_as(p, enforce_file_format=True)
        paths.append(p)
    return paths


# ----------------------------------------------------------------------------------------------------------------
# the beating heart


def _contraction(phase_fraction: np.ndarray, es_fraction: float) -> np.ndarray:
    """Contraction 0 (end-diastole) .. 1 (end-systole) over the cardiac cycle (cosine ramps)."""
    f = np.asarray(phase_fraction, dtype=float)
    up = 0.5 * (1 - np.cos(np.pi * f / es_fraction))
    down = 0.5 * (1 + np.cos(np.pi * (f - es_fraction) / (1 - es_fraction)))
    return np.where(f <= es_fraction, up, down)


@dataclass(frozen=True)
class HeartGeometry:
    """The analytic beating heart behind :func:`heart_labels`, in polar coordinates about the LV centre.

    The LV is two concentric circles. The RV free wall is an ellipse whose centre lies between the LV centre and
    the RV (image angle ``rv_angle``); the RV cavity is what lies inside it and outside the LV epicardium, a
    half-moon that wraps the septum and ends in the two insertion points where the ellipse meets the epicardium.

    Attributes:
        cy, cx: LV centre (pixel row, column).
        pixel_spacing: in-plane spacing (mm).
        above_base_slices: leading slices without ventricle.
        r_endo, r_epi: ``(T, Z')`` endocardial and epicardial LV radius (mm) of the ``Z'`` ventricular slices.
        rv_e: ``(T, Z')`` offset (mm) of the free-wall ellipse's centre from the LV centre towards the RV.
        rv_a, rv_b: ``(T, Z')`` semi-axes (mm) of the free-wall ellipse along and across ``rv_angle`` (0: no RV).
        rv_half_angle: ``(Z',)`` half the angle (rad) between the insertion points at end-diastole (0: no RV).
        rv_angle: image angle (rad, ``atan2(y, x)``) from the LV centre to the middle of the RV.
        contraction: ``(T,)`` 0 (end-diastole, frame 0) .. 1 (end-systole) per frame.
        akinetic_half, akinetic_angle: half the width and the image angle (rad) of an LV sector that neither moves in
            nor thickens (0: none); ``r_endo`` and ``r_epi`` are then those of the moving wall (see :meth:`lv_radii`).
        r_ed, ring_area, shortening, area_gain: the end-diastolic radius and myocardial cross-section per slice,
            the radial shortening and the systolic area gain, from which :meth:`lv_radii` draws the sector.
    """

    cy: float
    cx: float
    pixel_spacing: float
    above_base_slices: int
    r_endo: np.ndarray
    r_epi: np.ndarray
    rv_e: np.ndarray
    rv_a: np.ndarray
    rv_b: np.ndarray
    rv_half_angle: np.ndarray
    rv_angle: float
    contraction: np.ndarray
    akinetic_half: float = 0.0
    akinetic_angle: float = 0.0
    r_ed: np.ndarray | None = None
    ring_area: np.ndarray | None = None
    shortening: float = 0.0
    area_gain: float = 1.0

    def motion_weight(self, phi: np.ndarray) -> np.ndarray:
        """How much of the normal systolic motion the wall makes along ``phi``: 0 in the akinetic sector, 1
        outside it, a cosine ramp over a 20-degree hypokinetic border zone."""
        d = np.abs(np.angle(np.exp(1j * (phi - self.akinetic_angle))))
        x = np.clip((d - self.akinetic_half) / math.radians(20.0), 0.0, 1.0)
        return 0.5 - 0.5 * np.cos(np.pi * x)

    def lv_radii(self, phi: np.ndarray, z: int) -> tuple[np.ndarray, np.ndarray]:
        """Endocardial and epicardial LV radius (mm) along ``phi`` in every frame, each ``(T, *phi.shape)``: the
        wall's inward motion and thickening scale with :meth:`motion_weight`."""
        shape = (len(self.contraction), *([1] * phi.ndim))
        if self.akinetic_half <= 0 or self.r_ed is None or self.ring_area is None:
            return (np.broadcast_to(self.r_endo[:, z].reshape(shape), (shape[0], *phi.shape)),
                    np.broadcast_to(self.r_epi[:, z].reshape(shape), (shape[0], *phi.shape)))
        cw = self.contraction.reshape(shape) * self.motion_weight(phi)[None]
        r_endo = self.r_ed[z] * (1 - self.shortening * cw)
        r_epi = np.sqrt(r_endo**2 + self.ring_area[z] * (1 + (self.area_gain - 1) * cw) / np.pi)
        return r_endo, r_epi

    def polar(self, rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
        """Radius (mm) and image angle (rad) of every pixel about the LV centre, each ``(rows, cols)``."""
        yy, xx = np.mgrid[0:rows, 0:cols].astype(float)
        y_mm, x_mm = (yy - self.cy) * self.pixel_spacing, (xx - self.cx) * self.pixel_spacing
        return np.hypot(y_mm, x_mm), np.arctan2(y_mm, x_mm)

    def rv_radius(self, phi: np.ndarray, t: int, z: int,
                  cos_sin: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        """Distance (mm) from the LV centre to the RV free-wall ellipse along angle ``phi`` (0 where no RV)."""
        e, a, b = float(self.rv_e[t, z]), float(self.rv_a[t, z]), float(self.rv_b[t, z])
        if a <= 0 or b <= 0:
            return np.zeros_like(phi)
        cos_d, sin_d = cos_sin or (np.cos(phi - self.rv_angle), np.sin(phi - self.rv_angle))
        # rho^2 (cos^2/a^2 + sin^2/b^2) - 2 rho e cos/a^2 + e^2/a^2 - 1 = 0; the LV centre is inside (|e| < a)
        qa = (cos_d / a) ** 2 + (sin_d / b) ** 2
        qb = e * cos_d / a**2
        return (qb + np.sqrt(qb**2 - qa * (e**2 / a**2 - 1.0))) / qa

    def outer_radii(self, phi: np.ndarray, z: int, cos_sin: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        """:meth:`outer_radius` of every frame at once, ``(T, *phi.shape)`` (mm)."""
        r_epi = self.r_epi[:, z].reshape(-1, *([1] * phi.ndim))
        if self.rv_a[0, z] <= 0:
            return np.broadcast_to(r_epi, (len(r_epi), *phi.shape)).copy()
        cos_d, sin_d = cos_sin or (np.cos(phi - self.rv_angle), np.sin(phi - self.rv_angle))
        e, a, b = (v[:, z].reshape(r_epi.shape) for v in (self.rv_e, self.rv_a, self.rv_b))
        qa = (cos_d / a) ** 2 + (sin_d / b) ** 2
        qb = e * cos_d / a**2
        return np.maximum(r_epi, (qb + np.sqrt(qb**2 - qa * (e**2 / a**2 - 1.0))) / qa)

    def outer_radius(self, phi: np.ndarray, t: int, z: int,
                     cos_sin: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        """Outer edge (mm) of the labelled heart along angle ``phi``: the RV free wall, else the LV epicardium.

        ``cos_sin``: precomputed ``(cos, sin)`` of ``phi - rv_angle`` (saves time in loops)."""
        return np.maximum(self.r_epi[t, z], self.rv_radius(phi, t, z, cos_sin))

    def insertion_distance(self, phi: np.ndarray, z: int) -> np.ndarray:
        """``|angle from the RV middle| / half the insertion angle``: < 1 on the RV, 1 at the insertion points."""
        half = float(self.rv_half_angle[z]) or math.radians(60.0)
        return np.abs(np.angle(np.exp(1j * (phi - self.rv_angle)))) / half


#: End-systolic / end-diastolic myocardial cross-section of a slice. Above 1 because the ventricle shortens along
#: its long axis and myocardium moves into the slice: the median of the reference ED/ES masks of ACDC's 16 NOR
#: ``train`` patients is 1.18 (1.0, an area-conserving ring, thickens about a third less than a normal heart).
SYSTOLIC_AREA_GAIN = 1.18
#: The LV radius tapers as ``sqrt(1 - (APEX_CLOSURE * zeta)^2)`` from the base (``zeta`` 0) to the apex (1). At 0.99
#: the cavity of the most apical slice of a 10-slice ventricle is 11 % of the largest, the median of ACDC's ``train``
#: stacks (0.92, before, left 24 %: a stack that stops short of the apex).
APEX_CLOSURE = 0.99


@dataclass(frozen=True)
class Phenotype:
    """A preset heart: :func:`heart_geometry` parameters and the ACDC group medians their labels measure."""

    params: dict[str, float]
    median: dict[str, float]


#: The median heart of each ACDC group, for :func:`make_cine_sax_study` (``phenotype=``). Fitted by
#: ``python -m pipelines.dx.phenotypes --data ../shared/data/cardiac/acdc`` to the medians of the reference masks of
#: each group's 16 ``train`` patients (LV EDV/BSA in mL/m², mean ED wall in mm, LV and RV EF in %, RV/LV EDV ratio,
#: ES/ED myocardial cross-section), for a 10-slice ventricle at 8 mm, 1.5 mm pixels and a 1.75 m, 75 kg patient.
#: MINF also has an akinetic LV sector opposite the RV, its width fitted to the group's median thickening and its
#: spread over the AHA segments (the remote wall then moves more, as after an infarct); the other ventricles
#: contract evenly, and HCM's wall is thick all round. A 128-pixel matrix crops the DCM heart's surroundings: use
#: 192.
PHENOTYPES: dict[str, Phenotype] = {
    "NOR": Phenotype(
        params={"lv_radius_mm": 27.184, "wall_mm": 8.051, "radial_shortening": 0.362,
                "rv_width_mm": 48.546, "rv_shortening": 0.37, "systolic_area_gain": 1.179},
        median={"lv_edvi": 65.71, "wt_ed_mean": 7.393, "lv_ef": 59.231,
                "rv_lv_edv_ratio": 1.185, "rv_ef": 56.911, "myo_es_ed": 1.176}),
    "DCM": Phenotype(
        params={"lv_radius_mm": 42.152, "wall_mm": 8.645, "radial_shortening": 0.076,
                "rv_width_mm": 38.598, "rv_shortening": 0.179, "systolic_area_gain": 1.072},
        median={"lv_edvi": 158.007, "wt_ed_mean": 7.958, "lv_ef": 14.668,
                "rv_lv_edv_ratio": 0.581, "rv_ef": 29.101, "myo_es_ed": 1.08}),
    "HCM": Phenotype(
        params={"lv_radius_mm": 28.171, "wall_mm": 11.849, "radial_shortening": 0.444,
                "rv_width_mm": 32.725, "rv_shortening": 0.431, "systolic_area_gain": 1.128},
        median={"lv_edvi": 70.629, "wt_ed_mean": 10.86, "lv_ef": 69.222,
                "rv_lv_edv_ratio": 0.863, "rv_ef": 60.343, "myo_es_ed": 1.138}),
    "MINF": Phenotype(
        params={"lv_radius_mm": 31.746, "wall_mm": 8.152, "radial_shortening": 0.392,
                "rv_width_mm": 34.025, "rv_shortening": 0.208, "systolic_area_gain": 1.309,
                "akinetic_deg": 153.581},
        median={"lv_edvi": 89.399, "wt_ed_mean": 7.538, "lv_ef": 32.785,
                "rv_lv_edv_ratio": 0.697, "rv_ef": 52.242, "myo_es_ed": 1.157,
                "thickening_mean": 0.3, "thickening_std": 0.309}),
    "RV": Phenotype(
        params={"lv_radius_mm": 25.976, "wall_mm": 6.749, "radial_shortening": 0.333,
                "rv_width_mm": 69.69, "rv_shortening": 0.151, "systolic_area_gain": 1.144},
        median={"lv_edvi": 59.629, "wt_ed_mean": 6.242, "lv_ef": 55.171,
                "rv_lv_edv_ratio": 1.828, "rv_ef": 36.874, "myo_es_ed": 1.137}),
}


def heart_geometry(
    n_phases: int,
    n_slices: int,
    rows: int,
    cols: int,
    pixel_spacing: float,
    *,
    lv_radius_mm: float = 27.0,
    wall_mm: float = 9.0,
    radial_shortening: float = 0.36,
    rv_shortening: float = 0.4,
    rv_width_mm: float = 34.0,
    rv_wrap_deg: float = 160.0,
    rv_angle_deg: float = 200.0,
    es_fraction: float = 0.35,
    above_base_slices: int = 0,
    systolic_area_gain: float = SYSTOLIC_AREA_GAIN,
    apex_closure: float = APEX_CLOSURE,
    akinetic_deg: float = 0.0,
    akinetic_angle_deg: float = 20.0,
) -> HeartGeometry:
    """The beating heart's radii per frame and slice (see :func:`heart_labels` for the arguments)."""
    if not 0 <= above_base_slices < n_slices:
        raise ValueError(f"above_base_slices must be in 0..{n_slices - 1}")
    n_v = n_slices - above_base_slices
    zeta = (np.arange(n_v) + 0.5) / n_v  # 0 at the base .. 1 at the apex
    taper = np.sqrt(np.clip(1.0 - (apex_closure * zeta) ** 2, 0.0, None))
    r_ed = lv_radius_mm * taper
    wall = wall_mm * (0.6 + 0.4 * taper)
    ring_area = np.pi * ((r_ed + wall) ** 2 - r_ed**2)
    c = _contraction(np.arange(n_phases) / n_phases, es_fraction)[:, None]
    r_endo = r_ed[None] * (1 - radial_shortening * c)
    r_epi = np.sqrt(r_endo**2 + ring_area[None] * (1 + (systolic_area_gain - 1) * c) / np.pi)
    # the RV free wall follows the epicardium of a ring that keeps its area, so the extra systolic thickening
    # narrows the RV cavity (the septum bulges into it) instead of pushing the free wall out
    r_epi_rv = np.sqrt(r_endo**2 + ring_area[None] / np.pi)
    # the RV is shorter than the LV: it narrows towards the apex and ends at ~85 % of the LV length
    rv_taper = np.sqrt(np.clip(1.0 - (zeta / 0.85) ** 2, 0.0, None))
    # septum to free wall mid-RV; in systole the free wall moves in with the septum and towards it
    width = rv_width_mm * rv_taper[None] * (1 - rv_shortening * c)
    half = np.radians(rv_wrap_deg / 2) * (0.7 + 0.3 * rv_taper)[None] * (1 - 0.08 * c)
    # the ellipse's far vertex (``width`` behind the LV centre at the default offset) must stay inside the LV; an
    # RV wider than that moves the ellipse's centre out into the RV, so a dilated RV grows rounder instead of
    # wrapping round the LV
    far = np.minimum(width, 2 * (1 - RV_CENTRE_OFFSET) * r_epi_rv)
    rv_e = (r_epi_rv + width - far) / 2
    rv_a = (r_epi_rv + width + far) / 2
    # the across semi-axis that puts the insertion points (where the ellipse meets the epicardium) at +-half
    q = np.clip(1.0 - ((r_epi_rv * np.cos(half) - rv_e) / rv_a) ** 2, 1e-6, None)
    rv_b = r_epi_rv * np.sin(half) / np.sqrt(q)
    has_rv = (rv_taper > 0)[None]
    rv_a, rv_b = np.where(has_rv, rv_a, 0.0), np.where(has_rv, rv_b, 0.0)
    return HeartGeometry(
        cy=(rows - 1) / 2 + 3.0,  # LV slightly off centre
        cx=(cols - 1) / 2 + 6.0,
        pixel_spacing=pixel_spacing,
        above_base_slices=above_base_slices,
        r_endo=r_endo,
        r_epi=r_epi,
        rv_e=np.where(has_rv, rv_e, 0.0),
        rv_a=rv_a,
        rv_b=rv_b,
        rv_half_angle=np.where(has_rv[0], half[0], 0.0),
        rv_angle=math.radians(rv_angle_deg),
        contraction=c[:, 0],
        akinetic_half=math.radians(akinetic_deg / 2),
        akinetic_angle=math.radians(akinetic_angle_deg),
        r_ed=r_ed,
        ring_area=ring_area,
        shortening=radial_shortening,
        area_gain=systolic_area_gain,
    )


def heart_labels(
    n_phases: int,
    n_slices: int,
    rows: int,
    cols: int,
    pixel_spacing: float,
    *,
    lv_radius_mm: float = 27.0,
    wall_mm: float = 9.0,
    radial_shortening: float = 0.36,
    rv_shortening: float = 0.4,
    rv_width_mm: float = 34.0,
    rv_wrap_deg: float = 160.0,
    rv_angle_deg: float = 200.0,
    es_fraction: float = 0.35,
    above_base_slices: int = 0,
    systolic_area_gain: float = SYSTOLIC_AREA_GAIN,
    apex_closure: float = APEX_CLOSURE,
    akinetic_deg: float = 0.0,
    akinetic_angle_deg: float = 20.0,
    geometry: HeartGeometry | None = None,
) -> np.ndarray:
    """Rasterise the beating LV/RV label map.

    The LV is a blood pool inside a myocardial ring whose area grows in systole by ``systolic_area_gain``: at the
    default the AHA segments of the labels thicken by 51 % on average (ACDC's NOR reference masks: median 62 %). The
    RV cavity is a half-moon that wraps the septum: inside an elliptical free wall, outside the LV epicardium, ending
    at the two insertion points; the free wall moves towards the septum in systole (see :class:`HeartGeometry`).
    Both taper from base to apex (the RV ends before the apex).

    Args:
        n_phases, n_slices, rows, cols: output shape ``(T, Z, Y, X)``.
        pixel_spacing: in-plane spacing (mm).
        lv_radius_mm: basal LV endocardial radius at end-diastole.
        wall_mm: basal myocardial thickness at end-diastole.
        radial_shortening: fractional endocardial radius reduction at end-systole.
        rv_shortening: fraction of the RV width (septum to free wall) lost at end-systole.
        rv_width_mm: basal RV width at end-diastole, septum to free wall in the middle of the RV (mm).
        rv_wrap_deg: angle between the basal insertion points, seen from the LV centre (degrees).
        rv_angle_deg: image angle (``atan2(y, x)``, degrees) of the middle of the RV; 180 is image left (-x),
            200 turns it a little towards the top of the image (the anterior side of the oblique default plane).
        es_fraction: end-systole as a fraction of the cardiac cycle.
        above_base_slices: the first slices lie above the base (atria level: no ventricle), as in a stack that
            covers the whole LV; the ventricle takes the other ``n_slices - above_base_slices``.
        systolic_area_gain: end-systolic / end-diastolic myocardial cross-section (:data:`SYSTOLIC_AREA_GAIN`).
        apex_closure: how far the LV tapers towards the apex (:data:`APEX_CLOSURE`; 1 closes it at the last slice's
            far edge).
        akinetic_deg: width (degrees) of an LV sector that neither moves in nor thickens, as after an infarct
            (0: none; :meth:`HeartGeometry.lv_radii`); ``akinetic_angle_deg`` is its centre's image angle (20:
            the lateral wall, opposite the RV).
        geometry: a precomputed :func:`heart_geometry` (the other shape arguments are then ignored).

    Returns:
        ``(T, Z, Y, X)`` uint8 labels with values from :data:`CINE_LABELS` (slice 0 is the base, or above it).
    """
    geo = geometry or heart_geometry(
        n_phases, n_slices, rows, cols, pixel_spacing, lv_radius_mm=lv_radius_mm, wall_mm=wall_mm,
        radial_shortening=radial_shortening, rv_shortening=rv_shortening, rv_width_mm=rv_width_mm,
        rv_wrap_deg=rv_wrap_deg, rv_angle_deg=rv_angle_deg, es_fraction=es_fraction,
        above_base_slices=above_base_slices, systolic_area_gain=systolic_area_gain, apex_closure=apex_closure,
        akinetic_deg=akinetic_deg, akinetic_angle_deg=akinetic_angle_deg)
    full = np.zeros((n_phases, n_slices, rows, cols), dtype=np.uint8)
    lab = full[:, geo.above_base_slices :]
    r_mm, phi = geo.polar(rows, cols)
    cs = (np.cos(phi - geo.rv_angle), np.sin(phi - geo.rv_angle))
    for z in range(lab.shape[1]):
        endo, epi = geo.lv_radii(phi, z) if geo.akinetic_half > 0 else (geo.r_endo[:, z], geo.r_epi[:, z])
        for t in range(n_phases):
            sl = lab[t, z]
            r_epi, r_endo = epi[t], endo[t]
            sl[(r_mm > r_epi) & (r_mm <= geo.rv_radius(phi, t, z, cs))] = CINE_LABELS["rv"]
            sl[(r_mm <= r_epi) & (r_mm > r_endo)] = CINE_LABELS["myo"]
            sl[r_mm <= r_endo] = CINE_LABELS["lv"]
    return full


def truth_from_labels(labels: np.ndarray, voxel_ml: float) -> PhantomTruth:
    """Exact volumes from a ``(T, Z, Y, X)`` label map (values from :data:`CINE_LABELS`) and the voxel volume (mL)."""
    flat = labels.reshape(labels.shape[0], -1)
    lv = (flat == CINE_LABELS["lv"]).sum(1) * voxel_ml
    rv = (flat == CINE_LABELS["rv"]).sum(1) * voxel_ml
    myo = (flat == CINE_LABELS["myo"]).sum(1) * voxel_ml
    ed, es = int(np.argmax(lv)), int(np.argmin(lv))
    return PhantomTruth(
        lv_edv_ml=float(lv[ed]),
        lv_esv_ml=float(lv[es]),
        lv_ef_pct=float(100.0 * (lv[ed] - lv[es]) / lv[ed]),
        rv_edv_ml=float(rv[ed]),
        rv_esv_ml=float(rv[es]),
        rv_ef_pct=float(100.0 * (rv[ed] - rv[es]) / rv[ed]) if rv[ed] > 0 else 0.0,
        lv_mass_g=float(myo[ed] * MYOCARDIAL_DENSITY_G_PER_ML),
        ed_phase=ed,
        es_phase=es,
        lv_volume_ml=tuple(float(v) for v in lv),
        rv_volume_ml=tuple(float(v) for v in rv),
    )


def _body_background(rows: int, cols: int, pixel_spacing: float) -> np.ndarray:
    """Simple chest-like background (LGE phantoms): body ~ 380, lungs ~ 60, air ~ 10."""
    yy, xx = np.mgrid[0:rows, 0:cols].astype(float)
    cy, cx = (rows - 1) / 2, (cols - 1) / 2
    bg = np.full((rows, cols), 10.0)
    body = ((yy - cy) / (0.46 * rows)) ** 2 + ((xx - cx) / (0.49 * cols)) ** 2 <= 1
    bg[body] = 380.0
    for side in (-1, 1):  # lungs
        lung = ((yy - cy + 0.05 * rows) / (0.3 * rows)) ** 2 + ((xx - cx - side * 0.3 * cols) / (0.15 * cols)) ** 2 <= 1
        bg[lung] = 60.0
    return bg


#: bSSFP cine signal of the phantom's tissues, as a fraction of the stored scale :data:`CINE_SCALE`. Chosen after
#: ACDC cine statistics (each volume clipped to its 1st-99th percentiles): LV blood ~0.7, RV blood a little darker,
#: myocardium ~0.27, fat the brightest, lungs and air near 0, liver and muscle grey.
CINE_TISSUE = {
    "air": 0.01,
    "lung": 0.04,
    "lung_vessel": 0.6,
    "soft_tissue": 0.22,
    "muscle": 0.2,
    "skin": 0.45,
    "fat": 0.9,
    "liver": 0.27,
    "stomach": 0.15,
    "aorta": 0.85,
    "myocardium": 0.28,
    "pericardium": 0.08,
    "lv_blood": 0.84,
    "rv_blood": 0.68,
}
#: Stored value of signal fraction 1.0 (12-bit data).
CINE_SCALE = 1000.0


def _ellipse(x: np.ndarray, y: np.ndarray, cx: float, cy: float, ax: float, ay: float) -> np.ndarray:
    """Normalised radius ``sqrt(((x-cx)/ax)^2 + ((y-cy)/ay)^2)`` (< 1 inside the ellipse)."""
    return np.hypot((x - cx) / ax, (y - cy) / ay)


def _smooth_field(rng: np.random.Generator, shape: tuple[int, int], sigma_px: float) -> np.ndarray:
    """A zero-mean, unit-SD smooth random field ``(Y, X)`` (white noise low-passed by a Gaussian)."""
    from scipy.ndimage import gaussian_filter

    f = gaussian_filter(rng.standard_normal(shape), max(sigma_px, 0.5), mode="reflect")
    return (f - f.mean()) / (f.std() or 1.0)


def _thorax(geo: HeartGeometry, rows: int, cols: int, zeta: float, rng: np.random.Generator) -> np.ndarray:
    """Static chest around the heart on one slice, ``(Y, X)`` signal fractions (:data:`CINE_TISSUE`).

    Heart-centred mm (x to the LV's lateral side, y towards the image bottom = inferior): body outline with skin,
    subcutaneous fat and chest-wall muscle, the left lung lateral to the LV and the right lung beyond the RV (dark,
    with bright vessels), the liver and stomach below the heart (rising towards
    the apex, ``zeta`` 0 base .. 1 apex) and the descending aorta behind it.
    """
    s = CINE_TISSUE
    yy, xx = np.mgrid[0:rows, 0:cols].astype(float)
    y, x = (yy - geo.cy) * geo.pixel_spacing, (xx - geo.cx) * geo.pixel_spacing
    img = np.full((rows, cols), s["air"])
    rho = _ellipse(x, y, -10.0, 30.0, 175.0, 125.0)
    depth = (1.0 - rho) * 125.0  # ~ mm inside the body surface
    body = rho < 1.0
    img[body] = s["soft_tissue"]
    img[body & (depth < 2.0)] = s["skin"]
    img[body & (depth >= 2.0) & (depth < 13.0)] = s["fat"]
    img[body & (depth >= 13.0) & (depth < 27.0)] = s["muscle"]
    inner = body & (depth >= 27.0)
    lungs = inner & ((_ellipse(x, y, 80.0, -12.0, 52.0, 80.0) < 1) | (_ellipse(x, y, -105.0, -30.0, 42.0, 70.0) < 1))
    img[lungs] = s["lung"]
    img[inner & (_ellipse(x, y, -45.0, 100.0 - 25.0 * zeta, 90.0, 48.0) < 1)] = s["liver"]
    img[inner & (_ellipse(x, y, 55.0, 92.0 - 20.0 * zeta, 30.0, 22.0) < 1)] = s["stomach"]
    img[np.hypot(x - 24.0, y - 60.0) < 11.0] = s["aorta"]
    # lung vessels: small bright dots
    n_dots = 14
    vx, vy = rng.uniform(-100, 130, n_dots), rng.uniform(-95, 60, n_dots)
    vr = rng.uniform(1.2, 2.6, n_dots)
    dots = np.zeros((rows, cols))
    for cxv, cyv, rv in zip(vx, vy, vr, strict=True):
        dots = np.maximum(dots, np.exp(-(((x - cxv) ** 2 + (y - cyv) ** 2) / (2 * rv**2))))
    img = np.where(lungs, img + (s["lung_vessel"] - s["lung"]) * dots, img)
    # tissue texture (not air or lungs): +-8 % smooth variation
    tex = _smooth_field(rng, (rows, cols), 4.0 / geo.pixel_spacing)
    return np.where(body & ~lungs, img * (1.0 + 0.08 * tex), img)


def _coverage(u: np.ndarray, lo: np.ndarray | float, hi: np.ndarray | float, half_px: float) -> np.ndarray:
    """Fraction of a pixel (radial extent ``u +- half_px``, mm) that lies in the shell ``lo < u <= hi``."""
    return np.clip((np.minimum(u + half_px, hi) - np.maximum(u - half_px, lo)) / (2 * half_px), 0.0, 1.0)


def _outside_heart(geo: HeartGeometry, phi: np.ndarray, z: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Thickness (mm, per pixel angle ``phi``) of the shells around the end-diastolic heart on ventricular slice
    ``z``, from the labelled edge outwards: the RV free wall (myocardium, 3.5 mm at end-diastole; not labelled,
    as in ACDC), epicardial fat (in the interventricular grooves just beyond the RV insertion points, and patchy
    over the LV), the pericardium (a thin dark line) and patchy pericardial fat beyond the LV. Bright fat right on
    the RV free wall is left out: ACDC-trained networks then take the wall for RV cavity."""
    half = float(geo.rv_half_angle[z])
    has_rv = half > 0
    half = half or math.radians(60.0)
    d = geo.insertion_distance(phi, z)  # 0 mid-RV, 1 at the insertion points
    # RV myocardium: the free wall, running on past the horns into the insertion points
    rv_wall = np.clip((1.25 - d) / 0.25, 0.0, 1.0) if has_rv else np.zeros_like(phi)
    grooves = np.exp(-(((d - 1.15) * half / 0.3) ** 2)) * (2.0 if has_rv else 1.0)  # mm; little fat at the apex
    patches = np.clip(np.cos(2 * phi + rng.uniform(0, 2 * np.pi)) + 0.6 * np.cos(3 * phi + rng.uniform(0, 2 * np.pi)),
                      0.0, None)
    return {
        "free_wall": 3.5 * rv_wall,
        "epicardial_fat": grooves + 0.8 * patches * (1 - rv_wall),
        "pericardium": np.full(phi.shape, 1.2),
        "pericardial_fat": 1.5 * patches * (1 - rv_wall),
    }


def _above_base(geo: HeartGeometry, base: np.ndarray, r: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """A slice above the ventricles: the atrioventricular groove, grey tissue in a ring of fat, no ventricle."""
    s = CINE_TISSUE
    img = base.copy()
    outer = geo.outer_radius(phi, 0, 0)
    img[r <= outer + 5.0] = s["fat"]
    img[r <= outer - 2.0] = s["soft_tissue"]
    return img


def _trabeculae(phi: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Angular pattern ``(Y, X)`` in ``[0, 1]`` of trabeculae along an endocardium: narrow random ridges."""
    k = np.arange(4, 13)
    ph = rng.uniform(0, 2 * np.pi, len(k))
    w = rng.uniform(0.5, 1.0, len(k))
    f = sum(wi * np.cos(ki * phi + pi) for ki, pi, wi in zip(k, ph, w, strict=True))
    f = f / np.abs(f).max()
    return np.clip(0.5 + 0.9 * f, 0.0, 1.0)


def _paint_cine(labels: np.ndarray, geo: HeartGeometry, rng: np.random.Generator, noise: float) -> np.ndarray:
    """bSSFP-like cine from the label map and the heart it was drawn from; uint16 12-bit ``(T, Z, Y, X)``.

    Blood is bright (the RV a little darker than the LV), myocardium dark grey, fat bright, lungs dark. The
    endocardium is trabeculated (blood darkens over the last few mm towards the wall, more so in systole) and
    mid-ventricular slices have two papillary muscles; both lie inside the cavity labels, the ACDC convention.
    Around the labelled heart lie the shells of :func:`_outside_heart` (drawn with partial-volume edges; the RV
    free wall thickens in systole), and beyond them the chest, pulled in radially as the heart contracts so that
    nothing uncovers. The image is then shaded by a smooth receive-coil field, blurred by 0.6 mm (the acquired
    resolution is coarser than the pixel grid) and given Rician noise (``noise`` = SD on the real and imaginary
    channels, stored units).
    """
    from scipy.ndimage import gaussian_filter, map_coordinates

    s = CINE_TISSUE
    n_t, n_z, rows, cols = labels.shape
    ed = 0
    r, phi = (a.astype(np.float32) for a in geo.polar(rows, cols))  # float32: the (T, Y, X) work is halved
    cos_p, sin_p = np.cos(phi) / geo.pixel_spacing, np.sin(phi) / geo.pixel_spacing
    cs = (np.cos(phi - geo.rv_angle), np.sin(phi - geo.rv_angle))
    img = np.empty(labels.shape, dtype=np.float32)
    n_v = n_z - geo.above_base_slices
    taper_l = 45.0  # mm over which the pull of the contracting heart fades out
    half_px = 0.5 * geo.pixel_spacing
    lv_v, rv_v, myo_v = CINE_LABELS["lv"], CINE_LABELS["rv"], CINE_LABELS["myo"]
    # papillary muscles: anterolateral and inferolateral, opposite the septum
    pm_angles = (geo.rv_angle + np.pi - 0.8, geo.rv_angle + np.pi + 0.9)
    yy, xx = np.mgrid[0:rows, 0:cols].astype(float)
    for z in range(n_z):
        zv = z - geo.above_base_slices
        zeta = (zv + 0.5) / n_v if zv >= 0 else 0.0
        base = _thorax(geo, rows, cols, zeta, rng)
        if zv < 0:
            img[:, z] = _above_base(geo, base, r, phi)
            continue
        shells = _outside_heart(geo, phi, zv, rng)
        shell_ed = sum(shells.values())
        outer_ed = geo.outer_radius(phi, ed, zv, cs)
        trab_lv, trab_rv = _trabeculae(phi, rng), _trabeculae(phi, rng)
        pm_r_ed = 3.5 if 0.25 <= zeta <= 0.8 else 0.0  # mm
        # every frame at once: (T, Y, X) arrays, per-frame radii broadcast from (T, 1, 1)
        c = geo.contraction[:, None, None]
        outer = geo.outer_radii(phi, zv, cs)
        walls = dict(shells, free_wall=shells["free_wall"] * (1 + 0.7 * c))  # the RV free wall thickens
        shell_t = sum(walls.values())
        # the chest beyond the shells, pulled in by how far their outer edge moved in along this angle
        u = r - outer
        shift = (outer_ed + shell_ed) - (outer + shell_t)
        v = np.clip(u - shell_t, 0.0, None)
        r_src = r + shift * np.clip(1.0 - v / taper_l, 0.0, None) ** 2
        sl = map_coordinates(base, [geo.cy + r_src * sin_p, geo.cx + r_src * cos_p], order=1, mode="nearest")
        sl = sl * _coverage(u, shell_t, np.inf, half_px) + s["myocardium"] * _coverage(u, -np.inf, 0.0, half_px)
        lo = np.zeros_like(u)
        for name, value in (("free_wall", s["myocardium"]), ("epicardial_fat", s["fat"]),
                            ("pericardium", s["pericardium"]), ("pericardial_fat", s["fat"])):
            hi = lo + walls[name]
            sl += value * _coverage(u, lo, hi, half_px)
            lo = hi
        lab = labels[:, z]
        r_endo = geo.lv_radii(phi, zv)[0] if geo.akinetic_half > 0 else geo.r_endo[:, zv, None, None]
        # LV: trabeculated rim, deeper in systole, and papillary muscles. The rim is drawn so that the signal
        # across the endocardium follows ACDC's (about half-way from blood to myocardium 1 mm inside the contour,
        # as the ACDC contours include trabeculae)
        dark = np.exp(-np.clip(r_endo - r, 0.0, None) / (1.9 + 2.5 * c)) * (0.7 + 0.3 * trab_lv)
        lv = lab == lv_v
        sl = np.where(lv, s["lv_blood"] - (s["lv_blood"] - s["myocardium"]) * dark, sl)
        if pm_r_ed > 0:
            r_moving = geo.r_endo[:, zv, None, None]  # the moving wall's radius, even next to a still sector
            pm_r = pm_r_ed * np.sqrt(geo.r_endo[ed, zv] / r_moving)  # they thicken as the LV contracts
            d = (r_moving - pm_r - 0.5) / geo.pixel_spacing
            for a in pm_angles:
                pm = np.hypot(yy - geo.cy - d * math.sin(a), xx - geo.cx - d * math.cos(a)) * geo.pixel_spacing
                sl[lv & (pm <= pm_r)] = s["myocardium"] * 1.1
        # RV: trabeculated along the free wall and (less deeply) along the septum
        dark_rv = np.maximum(np.exp(-np.clip(outer - r, 0.0, None) / 3.0) * (0.4 + 0.6 * trab_rv),
                             0.6 * np.exp(-np.clip(r - geo.r_epi[:, zv, None, None], 0.0, None) / 1.6))
        sl = np.where(lab == rv_v, s["rv_blood"] - (s["rv_blood"] - s["myocardium"]) * 0.95 * dark_rv, sl)
        sl[lab == myo_v] = s["myocardium"]
        img[:, z] = sl
    y_mm = (np.arange(rows, dtype=np.float32) - geo.cy) * geo.pixel_spacing
    coil = (1.0 - 0.0015 * np.clip(y_mm, -100.0, 100.0))[:, None]  # brighter anteriorly (top), +-15 %
    img *= CINE_SCALE * coil
    blur_px = 0.9 / geo.pixel_spacing
    if blur_px > 0.25:
        img = gaussian_filter(img, sigma=(0, 0, blur_px, blur_px), mode="nearest")
    n1 = rng.standard_normal(labels.shape, dtype=np.float32) * np.float32(noise)
    n2 = rng.standard_normal(labels.shape, dtype=np.float32) * np.float32(noise)
    img = np.sqrt((img + n1) ** 2 + n2**2)  # magnitude of complex noise: Rician
    return np.clip(np.rint(img), 0, 4095).astype(np.uint16)


def make_cine_sax_study(
    out_dir: Path | None = None,
    *,
    n_slices: int = 10,
    n_phases: int = 20,
    rows: int = 128,
    cols: int = 128,
    pixel_spacing: float = 1.5,
    slice_thickness: float = 8.0,
    slice_gap: float = 0.0,
    heart_rate: float = 60,
    seed: int = 0,
    one_series_per_slice: bool = False,
    oblique: bool = True,
    enhanced: bool = False,
    patient_sex: str = "M",
    height_m: float | None = 1.75,
    weight_kg: float | None = 75,
    patient_id: str | None = None,
    noise: float = 12.0,
    series_description: str = "CINE_SAX_bSSFP",
    center_lps: Sequence[float] = (12.0, 35.0, -40.0),
    orientation_angles: Sequence[float] = SAX_ANGLES_DEG,
    above_base_slices: int = 0,
    phenotype: str | None = None,
) -> Phantom:
    """A cine short-axis bSSFP MR study of a beating heart with exactly known volumes.

    Args:
        out_dir: when given, instances are written there as ``IM_NNNN.dcm`` (per-series sub-folders when
            ``one_series_per_slice``); otherwise they stay in memory.
        n_slices, n_phases, rows, cols: size of the cine ``(T, Z, Y, X)``.
        pixel_spacing: in-plane spacing (mm, square pixels).
        slice_thickness: SliceThickness (mm); slices are ``slice_thickness + slice_gap`` apart.
        slice_gap: gap between slices (mm).
        heart_rate: beats/min; phases are spread evenly over one RR interval (TriggerTime, ms).
        seed: makes UIDs and noise reproducible.
        one_series_per_slice: store each slice position as its own series (Siemens-style) instead of one stack
            series holding all slices and phases (GE/Sunnybrook-style).
        oblique: oblique short-axis ImageOrientationPatient (else axial).
        enhanced: one Enhanced MR Image Storage instance holding all frames (per-frame functional groups).
        patient_sex, height_m, weight_kg, patient_id: patient attributes (for BSA indexing downstream).
        noise: standard deviation of the Gaussian noise on real and imaginary channels (stored units; the LV blood
            pool is ~840, so the default gives a blood SNR of ~70, a good 1.5 T bSSFP cine).
        series_description: SeriesDescription (slice number appended in the one-series-per-slice layout).
        center_lps: position of the volume centre (mm, LPS).
        orientation_angles: rotations (degrees, about S, P, L) of the oblique image plane.
        above_base_slices: slices above the base (no ventricle): 0 cuts the stack at the LV's widest section,
            so the stack looks basally truncated; 1 gives a stack that covers the LV (see :func:`heart_labels`).
        phenotype: the heart of an ACDC group's median patient (:data:`PHENOTYPES`: NOR, DCM, HCM, MINF, RV) instead of
            the default heart; its geometry assumes ``n_slices - above_base_slices`` = 10 ventricular slices 8 mm
            apart.

    Returns:
        The :class:`Phantom`: datasets (instance order is slice-major, phase-minor), labels ``(T, Z, Y, X)``,
        exact :class:`PhantomTruth`, affine, frame times.
    """
    rng = np.random.default_rng(seed)
    spacing = slice_thickness + slice_gap
    if phenotype is not None and phenotype not in PHENOTYPES:
        raise ValueError(f"unknown phenotype {phenotype!r}; choose one of {', '.join(PHENOTYPES)}")
    shape = PHENOTYPES[phenotype].params if phenotype else {}
    geo = heart_geometry(n_phases, n_slices, rows, cols, pixel_spacing, above_base_slices=above_base_slices, **shape)
    labels = heart_labels(n_phases, n_slices, rows, cols, pixel_spacing, geometry=geo)
    image = _paint_cine(labels, geo, rng, noise)
    truth = truth_from_labels(labels, pixel_spacing * pixel_spacing * spacing / 1000.0)

    row, col = _orientation(oblique, orientation_angles)
    ipps, normal = _slice_positions(center_lps, row, col, rows, cols, pixel_spacing, n_slices, spacing)
    iop = [_ds_str(float(v)) for v in (*row, *col)]
    rr_ms = 60000.0 / heart_rate
    times = tuple(round(t * rr_ms / n_phases, 3) for t in range(n_phases))
    affine = affine_from_dicom(ipps[0], [*row, *col], [pixel_spacing, pixel_spacing], normal * spacing)

    study_uid = _uid(seed, "study")
    for_uid = _uid(seed, "for")
    pid = patient_id or f"PHANTOM{seed:04d}"
    common = {
        "patient_sex": patient_sex,
        "height_m": height_m,
        "weight_kg": weight_kg,
        "patient_id": pid,
        "description": "CMR cine phantom",
    }
    if enhanced:
        ds = _enhanced_cine(
            image,
            ipps,
            iop,
            pixel_spacing,
            slice_thickness,
            spacing,
            times,
            rr_ms,
            seed,
            study_uid,
            for_uid,
            series_description,
            common,
        )
        datasets = [ds]
        paths = _write(datasets, out_dir)
        return Phantom(datasets, paths, image, labels, truth, affine, times, layout="enhanced multi-frame")

    datasets: list[Dataset] = []
    subdirs: dict[int, str] = {}
    stack_series_uid = _uid(seed, "series")
    for z in range(n_slices):
        series_uid = _uid(seed, "series", z) if one_series_per_slice else stack_series_uid
        for t in range(n_phases):
            sop_uid = _uid(seed, "sop", z, t)
            ds = Dataset()
            ds.file_meta = _file_meta(MRImageStorage, sop_uid)
            _patient_study(ds, seed, study_uid, **common)
            ds.SOPClassUID = MRImageStorage
            ds.SOPInstanceUID = sop_uid
            ds.Modality = "MR"
            ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "ND"]
            ds.SeriesInstanceUID = series_uid
            ds.SeriesNumber = 100 + z if one_series_per_slice else 10
            ds.SeriesDescription = f"{series_description}_{z + 1}" if one_series_per_slice else series_description
            ds.ProtocolName = series_description
            ds.SeriesDate, ds.SeriesTime = "20240102", "102000"
            ds.AcquisitionNumber = 1
            ds.InstanceNumber = (t + 1) if one_series_per_slice else z * n_phases + t + 1
            ds.FrameOfReferenceUID = for_uid
            ds.PositionReferenceIndicator = ""
            ds.ImagePositionPatient = [_ds_str(float(v)) for v in ipps[z]]
            ds.ImageOrientationPatient = iop
            ds.SliceLocation = _ds_str(float(ipps[z] @ normal))
            ds.PixelSpacing = [_ds_str(pixel_spacing), _ds_str(pixel_spacing)]
            ds.SliceThickness = _ds_str(slice_thickness)
            ds.SpacingBetweenSlices = _ds_str(spacing)
            ds.ScanningSequence = "GR"
            ds.SequenceVariant = ["SS", "SK"]
            ds.ScanOptions = "CG"
            ds.MRAcquisitionType = "2D"
            ds.SequenceName = "*tfi2d1_12"
            ds.RepetitionTime = "3.1"
            ds.EchoTime = "1.3"
            ds.FlipAngle = "55"
            ds.MagneticFieldStrength = "1.5"
            ds.TriggerTime = _ds_str(times[t])
            ds.NominalInterval = str(int(round(rr_ms)))
            ds.HeartRate = str(int(round(heart_rate)))
            ds.CardiacNumberOfImages = n_phases
            ds.WindowCenter = "600"
            ds.WindowWidth = "1200"
            _image_pixels(ds, image[t, z])
            datasets.append(ds)
            if one_series_per_slice:
                subdirs[len(datasets) - 1] = f"series_{z + 1:02d}"
    paths = _write(datasets, out_dir, subdirs)
    layout = "one series per slice" if one_series_per_slice else "one series per stack"
    return Phantom(datasets, paths, image, labels, truth, affine, times, layout=layout)


def _enhanced_cine(
    image: np.ndarray,
    ipps: np.ndarray,
    iop: list[str],
    pixel_spacing: float,
    thickness: float,
    spacing: float,
    times: tuple[float, ...],
    rr_ms: float,
    seed: int,
    study_uid: str,
    for_uid: str,
    description: str,
    common: dict[str, object],
) -> Dataset:
    """One Enhanced MR Image Storage instance with all frames (time-major: frame = t * Z + z)."""
    n_t, n_z = image.shape[:2]
    sop_uid = _uid(seed, "enhanced-sop")
    ds = Dataset()
    ds.file_meta = _file_meta(EnhancedMRImageStorage, sop_uid)
    _patient_study(ds, seed, study_uid, **common)  # type: ignore[arg-type]
    ds.SOPClassUID = EnhancedMRImageStorage
    ds.SOPInstanceUID = sop_uid
    ds.Modality = "MR"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "NONE"]
    ds.SeriesInstanceUID = _uid(seed, "enhanced-series")
    ds.SeriesNumber = 11
    ds.SeriesDescription = description
    ds.InstanceNumber = 1
    ds.FrameOfReferenceUID = for_uid
    ds.ContentDate, ds.ContentTime = "20240102", "102000"
    ds.NumberOfFrames = n_t * n_z
    ds.AcquisitionContrast = "MIXED"
    ds.CardiacSynchronizationTechnique = "REALTIME"

    shared = Dataset()
    pm = Dataset()
    pm.PixelSpacing = [_ds_str(pixel_spacing), _ds_str(pixel_spacing)]
    pm.SliceThickness = _ds_str(thickness)
    pm.SpacingBetweenSlices = _ds_str(spacing)
    shared.PixelMeasuresSequence = DicomSequence([pm])
    po = Dataset()
    po.ImageOrientationPatient = iop
    shared.PlaneOrientationSequence = DicomSequence([po])
    ds.SharedFunctionalGroupsSequence = DicomSequence([shared])

    per_frame = []
    for t in range(n_t):
        for z in range(n_z):
            fg = Dataset()
            pp = Dataset()
            pp.ImagePositionPatient = [_ds_str(float(v)) for v in ipps[z]]
            fg.PlanePositionSequence = DicomSequence([pp])
            fc = Dataset()
            fc.StackID = "1"
            fc.InStackPositionNumber = z + 1
            fc.TemporalPositionIndex = t + 1
            fc.DimensionIndexValues = [1, z + 1, t + 1]
            fg.FrameContentSequence = DicomSequence([fc])
            cs = Dataset()
            cs.NominalCardiacTriggerDelayTime = times[t]
            cs.RRIntervalTimeNominal = rr_ms
            fg.CardiacSynchronizationSequence = DicomSequence([cs])
            per_frame.append(fg)
    ds.PerFrameFunctionalGroupsSequence = DicomSequence(per_frame)
    _image_pixels(ds, image.reshape(n_t * n_z, *image.shape[2:]))
    return ds


# ----------------------------------------------------------------------------------------------------------------
# other small examples


def make_lge_study(
    out_dir: Path | None = None,
    *,
    n_slices: int = 8,
    rows: int = 96,
    cols: int = 96,
    pixel_spacing: float = 1.6,
    slice_thickness: float = 8.0,
    seed: int = 1,
    scar_fraction: float = 0.25,
) -> Phantom:
    """A single-phase late-gadolinium-enhancement short-axis stack (dark nulled myocardium, bright scar).

    Returns:
        Phantom with ``image`` ``(Z, Y, X)`` and ``labels`` ``(Z, Y, X)`` (myo=2 nulled, lv=3, rv=1; scar is the
        first ``scar_fraction`` of the myocardial ring by angle, drawn bright).
    """
    rng = np.random.default_rng(seed)
    lab = heart_labels(1, n_slices, rows, cols, pixel_spacing, lv_radius_mm=22.0)[0]
    yy, xx = np.mgrid[0:rows, 0:cols].astype(float)
    ang = (np.arctan2(yy - (rows - 1) / 2 - 3.0, xx - (cols - 1) / 2) + np.pi) / (2 * np.pi)
    img = np.broadcast_to(_body_background(rows, cols, pixel_spacing) * 0.8, lab.shape).astype(np.float32).copy()
    img[lab == CINE_LABELS["lv"]] = 700.0
    img[lab == CINE_LABELS["rv"]] = 650.0
    img[lab == CINE_LABELS["myo"]] = 40.0
    scar = (lab == CINE_LABELS["myo"]) & (ang[None] < scar_fraction)
    img[scar] = 1100.0
    img = np.clip(np.rint(img + rng.normal(0, 20.0, img.shape)), 0, 4095).astype(np.uint16)

    datasets, affine = lge_series_datasets(img, seed, pixel_spacing, slice_thickness)
    return Phantom(datasets, _write(datasets, out_dir), img, lab, None, affine, None, layout="one stack")


def lge_series_datasets(img: np.ndarray, seed: int, pixel_spacing: float, slice_thickness: float,
                  description: str = "LGE_PSIR_SAX") -> tuple[list[Dataset], np.ndarray]:
    """DICOM MR instances of an LGE short-axis stack ``img`` ``(Z, Y, X)`` uint16 (generated headers: oblique
    short-axis orientation, ``pixel_spacing`` and ``slice_thickness`` in mm, slice ``z`` at ``z * slice_thickness``
    along the normal), and the stack's ``(z, y, x) -> LPS`` affine. Used by the LGE phantoms and to wrap real
    2-D LGE slices (EMIDEC) into a DICOM series."""
    n_slices, rows, cols = img.shape
    row, col = _orientation(True)
    ipps, normal = _slice_positions((12.0, 35.0, -40.0), row, col, rows, cols, pixel_spacing, n_slices, slice_thickness)
    iop = [_ds_str(float(v)) for v in (*row, *col)]
    study_uid, series_uid, for_uid = _uid(seed, "study"), _uid(seed, "lge-series"), _uid(seed, "for")
    datasets = []
    for z in range(n_slices):
        sop_uid = _uid(seed, "lge", z)
        ds = Dataset()
        ds.file_meta = _file_meta(MRImageStorage, sop_uid)
        _patient_study(
            ds,
            seed,
            study_uid,
            patient_sex="F",
            height_m=1.65,
            weight_kg=62,
            patient_id=f"PHANTOM{seed:04d}",
            description="CMR viability phantom",
        )
        ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = MRImageStorage, sop_uid, "MR"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "ND"]
        ds.SeriesInstanceUID, ds.SeriesNumber, ds.SeriesDescription = series_uid, 20, description
        ds.ProtocolName = description
        ds.InstanceNumber = z + 1
        ds.FrameOfReferenceUID = for_uid
        ds.ImagePositionPatient = [_ds_str(float(v)) for v in ipps[z]]
        ds.ImageOrientationPatient = iop
        ds.SliceLocation = _ds_str(float(ipps[z] @ normal))
        ds.PixelSpacing = [_ds_str(pixel_spacing)] * 2
        ds.SliceThickness = _ds_str(slice_thickness)
        ds.ScanningSequence = ["GR", "IR"]
        ds.SequenceVariant = ["SK", "SP", "MP"]
        ds.MRAcquisitionType = "2D"
        ds.InversionTime = "300"
        ds.TriggerTime = "450"
        ds.RepetitionTime, ds.EchoTime, ds.FlipAngle = "700", "3.3", "25"
        _image_pixels(ds, img[z])
        datasets.append(ds)
    affine = affine_from_dicom(ipps[0], [*row, *col], [pixel_spacing] * 2, normal * slice_thickness)
    return datasets, affine




#: Label values of :func:`make_lge_scar_study` (the EMIDEC / ``heart_mr_lge_seg`` convention).
LGE_LABELS = {"lv": 1, "myo": 2, "infarct": 3, "mvo": 4}


def make_lge_scar_study(
    out_dir: Path | None = None,
    *,
    n_slices: int = 8,
    rows: int = 96,
    cols: int = 96,
    pixel_spacing: float = 1.6,
    slice_thickness: float = 8.0,
    seed: int = 1,
    scar_angles_deg: tuple[float, float] = (0.0, 120.0),
    transmural_fraction: float = 0.6,
    scar_slices: tuple[int, int] | None = None,
    mvo_fraction: float = 0.0,
    remote: float = 100.0,
    scar: float = 600.0,
    blood: float = 450.0,
    noise: float = 20.0,
    description: str = "LGE_PSIR_SAX",
) -> Phantom:
    """An LGE short-axis stack with a subendocardial infarct of known extent, for the scar methods.

    The LV ring is :func:`heart_labels`' (end-diastole, no RV). Infarct: myocardium within ``scar_angles_deg``
    (image angle about the LV centre, ``atan2(y, x)``) whose depth from the endocardium is below
    ``transmural_fraction`` of the wall, on slices ``scar_slices`` (``[first, last)``, default all); MVO: its
    innermost ``mvo_fraction`` of the wall, dark. Noise is uniform in ``[-noise, noise]`` (SD ``noise / sqrt(3)``),
    so remote myocardium never exceeds its mean + 2 SD and the n-SD and FWHM thresholds separate scar exactly.

    Returns:
        Phantom with ``image`` ``(Z, Y, X)`` and ``labels`` ``(Z, Y, X)`` in :data:`LGE_LABELS` values.
    """
    rng = np.random.default_rng(seed)
    cine = heart_labels(1, n_slices, rows, cols, pixel_spacing, lv_radius_mm=22.0)[0]
    lab = np.zeros_like(cine)
    ring = cine == CINE_LABELS["myo"]
    lab[cine == CINE_LABELS["lv"]] = LGE_LABELS["lv"]
    lab[ring] = LGE_LABELS["myo"]
    yy, xx = np.mgrid[0:rows, 0:cols].astype(float)
    cy, cx = (rows - 1) / 2 + 3.0, (cols - 1) / 2 + 6.0  # heart_labels' LV centre
    r = np.hypot(yy - cy, xx - cx) * pixel_spacing
    ang = np.rad2deg(np.arctan2(yy - cy, xx - cx)) % 360.0
    a0, a1 = (a % 360.0 for a in scar_angles_deg)
    in_sector = (ang >= a0) & (ang < a1) if a0 <= a1 else (ang >= a0) | (ang < a1)
    z0, z1 = scar_slices or (0, n_slices)
    for z in range(z0, z1):
        m = ring[z]
        if not m.any():
            continue
        cav = cine[z] == CINE_LABELS["lv"]
        r_endo = float(r[cav].max()) if cav.any() else 0.0
        r_epi = float(r[m].max())
        depth = (r - r_endo) / max(r_epi - r_endo, 1e-6)
        lab[z][m & in_sector & (depth < transmural_fraction)] = LGE_LABELS["infarct"]
        lab[z][m & in_sector & (depth < mvo_fraction)] = LGE_LABELS["mvo"]
    img = np.broadcast_to(_body_background(rows, cols, pixel_spacing) * 0.3, lab.shape).astype(np.float32).copy()
    img[lab == LGE_LABELS["lv"]] = blood
    img[lab == LGE_LABELS["myo"]] = remote
    img[lab == LGE_LABELS["infarct"]] = scar
    img[lab == LGE_LABELS["mvo"]] = remote * 0.5
    img = np.clip(np.rint(img + rng.uniform(-noise, noise, img.shape)), 0, 4095).astype(np.uint16)
    datasets, affine = lge_series_datasets(img, seed, pixel_spacing, slice_thickness, description)
    return Phantom(datasets, _write(datasets, out_dir), img, lab, None, affine, None, layout="one stack")


def make_ct_volume(
    out_dir: Path | None = None,
    *,
    n_slices: int = 24,
    rows: int = 64,
    cols: int = 64,
    pixel_spacing: float = 0.7,
    slice_thickness: float = 1.5,
    seed: int = 2,
    contrast: bool = True,
    shuffle: bool = True,
    enhanced: bool = False,
) -> Phantom:
    """A small axial cardiac CT (CTA when ``contrast``): signed 16-bit with RescaleIntercept -1024.

    Instances are stored in shuffled order (``shuffle``) with descending ImagePositionPatient z, so that builders
    must sort along the slice normal (``enhanced``: one Enhanced CT instance whose frames are shuffled, with
    per-frame positions and rescale). ``image`` holds HU ``(Z, Y, X)`` in ascending-normal order; ``labels``
    marks the contrast-filled LV (1).
    """
    rng = np.random.default_rng(seed)
    zz, yy, xx = np.mgrid[0:n_slices, 0:rows, 0:cols].astype(float)
    cy, cx, cz = (rows - 1) / 2, (cols - 1) / 2, (n_slices - 1) / 2
    hu = np.full((n_slices, rows, cols), -1000.0)
    body = ((yy - cy) / (0.45 * rows)) ** 2 + ((xx - cx) / (0.48 * cols)) ** 2 <= 1
    hu[body] = 40.0
    heart = ((yy - cy) / (0.2 * rows)) ** 2 + ((xx - cx) / (0.22 * cols)) ** 2 + (
        (zz - cz) / (0.45 * n_slices)
    ) ** 2 <= 1
    hu[heart] = 50.0
    lv = ((yy - cy) / (0.12 * rows)) ** 2 + ((xx - cx) / (0.13 * cols)) ** 2 + ((zz - cz) / (0.35 * n_slices)) ** 2 <= 1
    hu[lv] = 400.0 if contrast else 45.0
    hu += rng.normal(0, 12.0, hu.shape)
    hu = np.rint(hu)
    stored = (hu + 1024).astype(np.int16)  # RescaleIntercept -1024

    row, col = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
    ipps, normal = _slice_positions((0.0, 10.0, -150.0), row, col, rows, cols, pixel_spacing, n_slices, slice_thickness)
    study_uid, series_uid, for_uid = _uid(seed, "study"), _uid(seed, "ct-series"), _uid(seed, "for")
    datasets = []
    for z in range(n_slices):
        sop_uid = _uid(seed, "ct", z)
        ds = Dataset()
        ds.file_meta = _file_meta(CTImageStorage, sop_uid)
        _patient_study(
            ds,
            seed,
            study_uid,
            patient_sex="M",
            height_m=1.8,
            weight_kg=82,
            patient_id=f"PHANTOM{seed:04d}",
            description="Cardiac CT phantom",
        )
        ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = CTImageStorage, sop_uid, "CT"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.SeriesInstanceUID, ds.SeriesNumber = series_uid, 3
        ds.SeriesDescription = "CTA coronary 0.75 B26f 70%" if contrast else "Calcium score 3.0 Qr36"
        if contrast:
            ds.ContrastBolusAgent = "Iomeprol 400"
        ds.InstanceNumber = n_slices - z  # head-first numbering: descending z
        ds.FrameOfReferenceUID = for_uid
        ds.ImagePositionPatient = [_ds_str(float(v)) for v in ipps[z]]
        ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
        ds.SliceLocation = _ds_str(float(ipps[z][2]))
        ds.PixelSpacing = [_ds_str(pixel_spacing)] * 2
        ds.SliceThickness = _ds_str(slice_thickness)
        ds.KVP = "100"
        ds.RescaleIntercept = "-1024"
        ds.RescaleSlope = "1"
        ds.RescaleType = "HU"
        _image_pixels(ds, stored[z], bits_stored=16, signed=True)
        datasets.append(ds)
    if enhanced:
        datasets = [_enhanced_from_slices(datasets, EnhancedCTImageStorage, seed, shuffle=shuffle, rng=rng)]
    elif shuffle:
        order = rng.permutation(n_slices)
        datasets = [datasets[i] for i in order]
    affine = affine_from_dicom(ipps[0], [*row, *col], [pixel_spacing] * 2, normal * slice_thickness)
    return Phantom(datasets, _write(datasets, out_dir), hu.astype(np.float32), lv.astype(np.uint8), None, affine)


def _enhanced_from_slices(
    slices: list[Dataset], sop_class: str, seed: int, *, shuffle: bool, rng: np.random.Generator
) -> Dataset:
    """Pack single-frame slices into one enhanced multi-frame instance (per-frame position and rescale groups)."""
    order = [int(k) for k in rng.permutation(len(slices))] if shuffle else list(range(len(slices)))
    first = slices[0]
    sop_uid = _uid(seed, "enhanced", sop_class)
    ds = Dataset()
    ds.file_meta = _file_meta(sop_class, sop_uid)
    for kw in (
        "PatientName",
        "PatientID",
        "PatientBirthDate",
        "PatientSex",
        "PatientAge",
        "PatientSize",
        "PatientWeight",
        "StudyInstanceUID",
        "StudyDate",
        "StudyTime",
        "StudyID",
        "AccessionNumber",
        "StudyDescription",
        "ReferringPhysicianName",
        "Manufacturer",
        "SpecificCharacterSet",
        "Modality",
        "SeriesNumber",
        "SeriesDescription",
        "FrameOfReferenceUID",
        "ContrastBolusAgent",
        "ImageType",
    ):
        if kw in first:
            setattr(ds, kw, first.data_element(kw).value)
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, sop_uid
    ds.SeriesInstanceUID = _uid(seed, "enhanced-series", sop_class)
    ds.InstanceNumber = 1
    ds.NumberOfFrames = len(slices)
    shared = Dataset()
    pm = Dataset()
    pm.PixelSpacing = first.PixelSpacing
    pm.SliceThickness = first.SliceThickness
    shared.PixelMeasuresSequence = DicomSequence([pm])
    po = Dataset()
    po.ImageOrientationPatient = first.ImageOrientationPatient
    shared.PlaneOrientationSequence = DicomSequence([po])
    ds.SharedFunctionalGroupsSequence = DicomSequence([shared])
    per_frame = []
    for k in order:
        src = slices[k]
        fg = Dataset()
        pp = Dataset()
        pp.ImagePositionPatient = src.ImagePositionPatient
        fg.PlanePositionSequence = DicomSequence([pp])
        pv = Dataset()
        pv.RescaleIntercept = src.get("RescaleIntercept", "0")
        pv.RescaleSlope = src.get("RescaleSlope", "1")
        pv.RescaleType = src.get("RescaleType", "US")
        fg.PixelValueTransformationSequence = DicomSequence([pv])
        fc = Dataset()
        fc.InStackPositionNumber = k + 1
        fg.FrameContentSequence = DicomSequence([fc])
        per_frame.append(fg)
    ds.PerFrameFunctionalGroupsSequence = DicomSequence(per_frame)
    for kw in (
        "SamplesPerPixel",
        "PhotometricInterpretation",
        "Rows",
        "Columns",
        "BitsAllocated",
        "BitsStored",
        "HighBit",
        "PixelRepresentation",
    ):
        setattr(ds, kw, first.data_element(kw).value)
    ds.PixelData = b"".join(slices[k].PixelData for k in order)
    return ds


def make_brain_mr(
    out_dir: Path | None = None, *, n_slices: int = 12, rows: int = 64, cols: int = 64, seed: int = 3
) -> Phantom:
    """A non-cardiac axial T2 brain-like MR stack (no cardiac gating) for negative tests."""
    rng = np.random.default_rng(seed)
    zz, yy, xx = np.mgrid[0:n_slices, 0:rows, 0:cols].astype(float)
    c = (
        ((yy - rows / 2) / (0.4 * rows)) ** 2
        + ((xx - cols / 2) / (0.33 * cols)) ** 2
        + ((zz - n_slices / 2) / (0.6 * n_slices)) ** 2
    )
    img = np.where(c <= 1, 600.0, 5.0)
    img[c <= 0.5] = 900.0  # "CSF" bright on T2
    img = np.clip(np.rint(img + rng.normal(0, 15, img.shape)), 0, 4095).astype(np.uint16)
    spacing = 0.9
    row, col = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
    ipps, normal = _slice_positions((0.0, 0.0, 40.0), row, col, rows, cols, spacing, n_slices, 5.0)
    study_uid, series_uid, for_uid = _uid(seed, "study"), _uid(seed, "brain-series"), _uid(seed, "for")
    datasets = []
    for z in range(n_slices):
        sop_uid = _uid(seed, "brain", z)
        ds = Dataset()
        ds.file_meta = _file_meta(MRImageStorage, sop_uid)
        _patient_study(
            ds,
            seed,
            study_uid,
            patient_sex="F",
            height_m=None,
            weight_kg=None,
            patient_id=f"PHANTOM{seed:04d}",
            description="MRI head",
        )
        ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = MRImageStorage, sop_uid, "MR"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "NORM"]
        ds.SeriesInstanceUID, ds.SeriesNumber, ds.SeriesDescription = series_uid, 4, "t2_tse_tra_brain"
        ds.ProtocolName = "t2_tse_tra"
        ds.BodyPartExamined = "HEAD"
        ds.InstanceNumber = z + 1
        ds.FrameOfReferenceUID = for_uid
        ds.ImagePositionPatient = [_ds_str(float(v)) for v in ipps[z]]
        ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
        ds.PixelSpacing = [_ds_str(spacing)] * 2
        ds.SliceThickness = "5"
        ds.ScanningSequence = "SE"
        ds.SequenceVariant = ["SK", "SP"]
        ds.MRAcquisitionType = "2D"
        ds.RepetitionTime, ds.EchoTime = "4000", "95"
        _image_pixels(ds, img[z])
        datasets.append(ds)
    affine = affine_from_dicom(ipps[0], [*row, *col], [spacing] * 2, normal * 5.0)
    return Phantom(datasets, _write(datasets, out_dir), img, None, None, affine)


def make_echo_multiframe(
    out_dir: Path | None = None,
    *,
    n_frames: int = 16,
    rows: int = 80,
    cols: int = 96,
    frame_time_ms: float = 33.3,
    delta_cm: float = 0.03,
    seed: int = 4,
    color: bool = True,
    regions: bool = True,
) -> Phantom:
    """An ultrasound multi-frame (apical 4-chamber-like) clip with a calibrated 2-D region.

    Args:
        n_frames, rows, cols: clip size.
        frame_time_ms: FrameTime (ms between frames).
        delta_cm: PhysicalDeltaX/Y of the region (cm per pixel; 0.03 cm = 0.3 mm).
        color: RGB (SamplesPerPixel 3) instead of MONOCHROME2 8-bit.
        regions: include SequenceOfUltrasoundRegions.

    Returns:
        Phantom with ``image`` ``(T, Y, X, 3)`` uint8 (or ``(T, Y, X)``), ``frame_times_ms``.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:rows, 0:cols].astype(float)
    frames = []
    for t in range(n_frames):
        c = 0.5 * (1 - math.cos(2 * math.pi * t / n_frames))
        sector = (np.abs(np.arctan2(xx - cols / 2, yy + 2)) < 0.6) & (yy < rows - 4)
        cav = ((yy - rows * 0.45) / (rows * 0.25 * (1 - 0.2 * c))) ** 2 + ((xx - cols / 2) / (cols * 0.12)) ** 2 <= 1
        g = np.where(sector, 90.0, 0.0)
        g[cav & sector] = 15.0
        g = np.clip(g + rng.normal(0, 12, g.shape) * sector, 0, 255)
        frames.append(g.astype(np.uint8))
    mono = np.stack(frames)
    image = np.repeat(mono[..., None], 3, axis=-1) if color else mono
    if color:  # a colour-Doppler blob
        image = image.copy()
        image[:, 20:30, 40:50, 0] = 200
        image[:, 20:30, 40:50, 2] = 30

    sop_uid = _uid(seed, "us")
    ds = Dataset()
    ds.file_meta = _file_meta(UltrasoundMultiFrameImageStorage, sop_uid)
    _patient_study(
        ds,
        seed,
        _uid(seed, "study"),
        patient_sex="M",
        height_m=1.7,
        weight_kg=70,
        patient_id=f"PHANTOM{seed:04d}",
        description="Echocardiogram phantom",
    )
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = UltrasoundMultiFrameImageStorage, sop_uid, "US"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "CARDIOLOGY", "0001"]
    ds.SeriesInstanceUID, ds.SeriesNumber, ds.SeriesDescription = _uid(seed, "us-series"), 1, "A4C"
    ds.InstanceNumber = 1
    ds.NumberOfFrames = n_frames
    ds.FrameTime = _ds_str(frame_time_ms)
    ds.FrameIncrementPointer = 0x00181063  # FrameTime
    ds.CineRate = int(round(1000 / frame_time_ms))
    ds.BurnedInAnnotation = "YES"
    if regions:
        reg = Dataset()
        reg.RegionSpatialFormat = 1  # 2-D tissue
        reg.RegionDataType = 1
        reg.RegionFlags = 0
        reg.RegionLocationMinX0, reg.RegionLocationMinY0 = 0, 0
        reg.RegionLocationMaxX1, reg.RegionLocationMaxY1 = cols - 1, rows - 1
        reg.PhysicalUnitsXDirection = 3  # cm
        reg.PhysicalUnitsYDirection = 3
        reg.PhysicalDeltaX = delta_cm
        reg.PhysicalDeltaY = delta_cm
        reg.ReferencePixelX0, reg.ReferencePixelY0 = cols // 2, 0
        ds.SequenceOfUltrasoundRegions = DicomSequence([reg])
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    if color:
        ds.SamplesPerPixel = 3
        ds.PhotometricInterpretation = "RGB"
        ds.PlanarConfiguration = 0
    else:
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelData = np.ascontiguousarray(image).tobytes()
    times = tuple(round(i * frame_time_ms, 3) for i in range(n_frames))
    return Phantom([ds], _write([ds], out_dir), image, None, None, None, times, layout="ultrasound multi-frame")


def make_photo(
    out_dir: Path | None = None, *, rows: int = 48, cols: int = 64, dermoscopic: bool = False, seed: int = 5
) -> Phantom:
    """A VL photographic (or dermoscopic) RGB image of a skin-lesion-like blob."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:rows, 0:cols].astype(float)
    img = np.empty((rows, cols, 3), dtype=np.uint8)
    img[...] = (224, 180, 160)
    lesion = ((yy - rows / 2) / (rows * 0.25)) ** 2 + ((xx - cols / 2) / (cols * 0.2)) ** 2 <= 1
    img[lesion] = (110, 70, 50)
    img = np.clip(img.astype(int) + rng.integers(-6, 7, img.shape), 0, 255).astype(np.uint8)
    sop_class = DermoscopicPhotographyImageStorage if dermoscopic else VLPhotographicImageStorage
    sop_uid = _uid(seed, "photo", dermoscopic)
    ds = Dataset()
    ds.file_meta = _file_meta(sop_class, sop_uid)
    _patient_study(
        ds,
        seed,
        _uid(seed, "study"),
        patient_sex="F",
        height_m=None,
        weight_kg=None,
        patient_id=f"PHANTOM{seed:04d}",
        description="Skin lesion photo",
    )
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, sop_uid
    ds.Modality = "DMS" if dermoscopic else "XC"
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.SeriesInstanceUID, ds.SeriesNumber = _uid(seed, "photo-series", dermoscopic), 1
    ds.SeriesDescription = "dermoscopy" if dermoscopic else "clinical photo"
    ds.InstanceNumber = 1
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = img.tobytes()
    return Phantom([ds], _write([ds], out_dir), img, lesion.astype(np.uint8), None, None)
