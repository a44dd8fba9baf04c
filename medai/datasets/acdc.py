"""ACDC (Automated Cardiac Diagnosis Challenge, MICCAI 2017) adapters.

Two layouts are read:

* the **official release**: ``training/patientNNN/`` folders holding ``Info.cfg`` (``ED``, ``ES``, ``Group``,
  ``Height`` in cm, ``Weight`` in kg, ``NbFrame``), ``patientNNN_frameXX.nii.gz`` images and
  ``patientNNN_frameXX_gt.nii.gz`` masks, where ``XX`` are the ED/ES frame numbers of ``Info.cfg`` (not always 01:
  patient090 has ED 4, ES 11); optionally a ``splits.csv`` (``patient,group,split``) beside ``training/`` that
  names a fixed train/val split (:func:`load_acdc_release`, :func:`read_acdc_splits`). The files' affine carries no
  spacing (sform ``diag(-1, -1, 1)``), so the voxel size is read from the header's ``pixdim``
  (:func:`nifti_to_zyx`);
* the **HDF5 form** (``patientNNN_frame01.h5`` = ED, ``_frame02.h5`` = ES, datasets ``image`` uint16 with attribute
  ``scale`` and ``label`` uint8; no spacing survives) (:func:`load_acdc_h5`).

Labels follow the ACDC convention (:data:`ACDC_LABELS`): 0 background, 1 RV cavity, 2 LV myocardium, 3 LV cavity.
Licence CC BY-NC-SA 4.0 (non-commercial research); cite Bernard et al., IEEE TMI 37(11):2514-2525, 2018.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from medai.datasets.base import CardiacPhase, SegCase
from medai.errors import ConfigError

logger = logging.getLogger(__name__)

#: ACDC label convention (also the shipped cine model's output).
ACDC_LABELS: dict[str, int] = {"rv": 1, "myo": 2, "lv": 3}

#: Diagnosis group by patient number (1-20 DCM, 21-40 HCM, 41-60 MINF, 61-80 NOR, 81-100 ARV).
_GROUPS = ((20, "DCM"), (40, "HCM"), (60, "MINF"), (80, "NOR"), (100, "RV"))

_H5_PATTERN = re.compile(r"(patient\d{3})_frame(\d{2})\.h5$")


def acdc_group(patient_id: str) -> str:
    """Diagnosis group from an ACDC patient id (``patient042`` -> ``"MINF"``); ``""`` when out of range."""
    m = re.search(r"(\d+)", patient_id)
    if not m:
        return ""
    n = int(m.group(1))
    for upper, name in _GROUPS:
        if n <= upper:
            return name
    return ""


def read_acdc_h5(path: Path) -> SegCase:
    """Read one ACDC HDF5 file.

    Args:
        path: ``patientNNN_frame01.h5`` (ED) or ``patientNNN_frame02.h5`` (ES).

    Returns:
        A case with ``image`` ``(Z, Y, X)`` float32 (the original min-max normalised intensity, ``image * scale``),
        ``label`` ``(Z, Y, X)`` uint8 (ACDC labels) and no spacing.
    """
    import h5py

    path = Path(path)
    m = _H5_PATTERN.search(path.name)
    if not m:
        raise ConfigError(f"{path.name} is not an ACDC HDF5 file name (expected patientNNN_frame01.h5 or _frame02.h5)")
    patient, frame = m.group(1), int(m.group(2))
    phase = {1: CardiacPhase.ED, 2: CardiacPhase.ES}.get(frame, CardiacPhase.OTHER)
    with h5py.File(path, "r") as f:
        if "image" not in f:
            raise ConfigError(f"{path} has no 'image' dataset; is it an ACDC HDF5 file?")
        img = f["image"]
        scale = float(img.attrs.get("scale", 1.0))
        image = img[()].astype(np.float32) * np.float32(scale)
        label = f["label"][()].astype(np.uint8) if "label" in f else None
    if image.ndim != 3:
        raise ConfigError(f"{path}: expected a (Z, Y, X) image, got shape {image.shape}")
    return SegCase(
        case_id=f"{patient}_{phase.value}",
        patient_id=patient,
        image=image,
        label=label,
        phase=phase,
        labels=dict(ACDC_LABELS),
        meta={"group": acdc_group(patient), "source": str(path)},
    )


def iter_acdc_h5(folder: Path) -> Iterator[SegCase]:
    """Yield every case of an ACDC HDF5 folder (e.g. ``acdc/train``), sorted by file name."""
    folder = Path(folder)
    files = sorted(folder.glob("patient*_frame*.h5"))
    if not files:
        raise ConfigError(f"no ACDC HDF5 files (patientNNN_frameXX.h5) in {folder}")
    for p in files:
        yield read_acdc_h5(p)


def load_acdc_h5(folder: Path) -> list[SegCase]:
    """All cases of an ACDC HDF5 folder (see :func:`iter_acdc_h5`)."""
    return list(iter_acdc_h5(folder))


# ----------------------------------------------------------------------------------------- official release


def read_info_cfg(path: Path) -> dict[str, str]:
    """Parse an ACDC ``Info.cfg`` (``Key: value`` lines) into a dict of strings."""
    out: dict[str, str] = {}
    for line in Path(path).read_text().splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            out[k.strip()] = v.strip()
    return out


def nifti_to_zyx(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Load a NIfTI image as a ``(Z, Y, X)`` array with its ``(z, y, x, 1) -> LPS`` affine, at the header's spacing.

    NIfTI stores ``(i, j, k)`` = ``(X, Y, Z)`` with a RAS affine; the array is transposed and the affine's columns
    reordered to ``(k, j, i)`` and its first two rows negated (RAS -> LPS).

    The voxel size is the header's ``pixdim`` (``header.get_zooms()``), as ITK/SimpleITK read it; the affine only
    gives the orientation and origin. Some files (every ACDC file: sform ``diag(-1, -1, 1)``, qform 0) have an
    affine whose column lengths are 1 mm whatever the true spacing; their columns are rescaled to ``pixdim``.

    Returns:
        The array (``(Z, Y, X)`` or ``(T, Z, Y, X)``, dtype as stored) and a ``(4, 4)`` affine, mm, LPS, whose
        column norms are the ``(dz, dy, dx)`` spacing.
    """
    import nibabel as nib

    img = nib.load(str(path))
    data = np.asarray(img.dataobj)
    if data.ndim == 4:
        data = np.transpose(data, (3, 2, 1, 0))  # (T, Z, Y, X)
    elif data.ndim == 3:
        data = np.transpose(data, (2, 1, 0))
    else:
        raise ConfigError(f"{path}: expected a 3-D or 4-D NIfTI image, got {data.ndim}-D")
    ras = np.asarray(img.affine, dtype=float).copy()
    zooms = np.asarray(img.header.get_zooms()[:3], dtype=float)
    norms = np.linalg.norm(ras[:3, :3], axis=0)
    if np.all(zooms > 0) and np.all(norms > 0) and not np.allclose(norms, zooms, rtol=1e-4, atol=1e-6):
        logger.debug("%s: affine voxel size %s differs from pixdim %s; using pixdim", path, norms, zooms)
        ras[:3, :3] = ras[:3, :3] / norms * zooms
    aff = np.eye(4)
    aff[:, :3] = ras[:, [2, 1, 0]]
    aff[:, 3] = ras[:, 3]
    aff[:2, :] *= -1.0  # RAS -> LPS
    aff[3] = (0, 0, 0, 1)
    return data, aff


def read_acdc_patient(folder: Path) -> list[SegCase]:
    """Read the ED and ES cases of one patient folder of the official ACDC release.

    Args:
        folder: ``.../patientNNN`` holding ``Info.cfg`` and ``patientNNN_frameXX[_gt].nii.gz``.

    Returns:
        Two cases (ED then ES, frames as ``Info.cfg`` names them) with ``(Z, Y, X)`` float32 images, the true
        ``(dz, dy, dx)`` spacing in mm (header ``pixdim``) and the LPS affine at that spacing; the label is None
        when the ``_gt`` mask is absent (the official test set before its release). Height (cm), weight (kg), the
        group and the frame number go to ``meta``.
    """
    folder = Path(folder)
    info_path = folder / "Info.cfg"
    if not info_path.is_file():
        raise ConfigError(f"{folder} has no Info.cfg; expected the official ACDC patient folder layout")
    info = read_info_cfg(info_path)
    try:
        frames = {CardiacPhase.ED: int(info["ED"]), CardiacPhase.ES: int(info["ES"])}
    except (KeyError, ValueError) as exc:
        raise ConfigError(f"{info_path} lacks valid ED/ES frame numbers: {exc}") from exc
    pid = folder.name
    meta: dict[str, object] = {"group": info.get("Group", acdc_group(pid))}
    for key, name in (("Height", "height_cm"), ("Weight", "weight_kg")):
        if key in info:
            try:
                meta[name] = float(info[key])
            except ValueError:
                logger.warning("%s: unreadable %s %r", info_path, key, info[key])
    cases = []
    for phase, frame in frames.items():
        img_path = folder / f"{pid}_frame{frame:02d}.nii.gz"
        if not img_path.is_file():
            raise ConfigError(f"{img_path} is missing (Info.cfg says {phase.value} is frame {frame})")
        image, aff = nifti_to_zyx(img_path)
        gt_path = folder / f"{pid}_frame{frame:02d}_gt.nii.gz"
        label = nifti_to_zyx(gt_path)[0].astype(np.uint8) if gt_path.is_file() else None
        if label is not None and label.shape != image.shape:
            raise ConfigError(f"{gt_path} shape {label.shape} differs from image {image.shape}")
        spacing = tuple(float(np.linalg.norm(aff[:3, i])) for i in range(3))  # (dz, dy, dx): pixdim
        cases.append(
            SegCase(
                case_id=f"{pid}_{phase.value}",
                patient_id=pid,
                image=image.astype(np.float32),
                label=label,
                phase=phase,
                spacing_mm=spacing,  # type: ignore[arg-type]
                affine=aff,
                labels=dict(ACDC_LABELS),
                meta={**meta, "frame": frame, "source": str(img_path)},
            )
        )
    return cases


#: The split file of an ACDC folder (not part of the release): ``patient,group,split``.
SPLITS_FILE = "splits.csv"
#: Sub-folders of the official release that hold patient folders.
_RELEASE_SUBDIRS = ("training", "testing")


def _patient_dirs(root: Path) -> list[Path]:
    """Patient folders of a release root (``training/``, ``testing/``) or of a folder that holds them directly."""
    subdirs = [root / d for d in _RELEASE_SUBDIRS if (root / d).is_dir()]
    return sorted((p for d in (subdirs or [root]) for p in d.glob("patient*") if p.is_dir()), key=lambda p: p.name)


def find_acdc_splits(root: Path) -> Path | None:
    """The ``splits.csv`` of an ACDC folder: in ``root`` (the release root) or beside it (``root`` = ``training/``)."""
    root = Path(root)
    for cand in (root / SPLITS_FILE, root.parent / SPLITS_FILE):
        if cand.is_file():
            return cand
    return None


def read_acdc_splits(path: Path) -> dict[str, str]:
    """Read an ACDC ``splits.csv`` (``patient,group,split``) into patient id -> split name (``train``/``val``)."""
    import csv

    path = Path(path)
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or not {"patient", "split"} <= set(reader.fieldnames):
            raise ConfigError(f"{path} must have the columns patient,split (and group); got {reader.fieldnames}")
        out = {row["patient"].strip(): row["split"].strip() for row in reader if row.get("patient")}
    if not out:
        raise ConfigError(f"{path} lists no patients")
    return out


def acdc_split_patients(root: Path, split: str) -> list[str]:
    """Patient ids of one split (e.g. ``"val"``) of the ``splits.csv`` of an ACDC folder, sorted."""
    path = find_acdc_splits(root)
    if path is None:
        raise ConfigError(f"split {split!r} asked for, but there is no {SPLITS_FILE} in {root} or its parent")
    splits = read_acdc_splits(path)
    ids = sorted(p for p, s in splits.items() if s == split)
    if not ids:
        known = ", ".join(sorted(set(splits.values())))
        raise ConfigError(f"{path} has no patient in split {split!r} (splits: {known})")
    return ids


#: seed of the patient folds shared by medai's ACDC cross-validations (cine segmentation and diagnosis)
FOLD_SEED = 2017


def acdc_folds(root: Path, n_folds: int = 5, seed: int = FOLD_SEED) -> dict[str, int]:
    """Patient id -> fold (``0 .. n_folds - 1``) of every patient of an official-layout folder whose ``Info.cfg``
    names its group: scikit-learn's ``StratifiedKFold(n_folds, shuffle=True, random_state=seed)`` over the sorted
    ids, stratified by group (5 folds of the 100 training patients: 4 per group in each).

    Raises:
        ConfigError: no patient folders, or too few patients per group for ``n_folds`` folds.
    """
    from sklearn.model_selection import StratifiedKFold

    dirs = _patient_dirs(Path(root))
    groups = {d.name: read_info_cfg(d / "Info.cfg").get("Group", "") for d in dirs if (d / "Info.cfg").is_file()}
    ids = [p for p, g in groups.items() if g]
    if not ids:
        raise ConfigError(f"no patientNNN/Info.cfg with a Group in {root}; expected the official ACDC layout")
    y = [groups[p] for p in ids]
    smallest = min(y.count(g) for g in set(y))
    if n_folds < 2 or smallest < n_folds:
        raise ConfigError(f"{n_folds}-fold cross-validation needs at least {max(n_folds, 2)} patients per group; "
                          f"{root} has {smallest} in its smallest group",
                          details=[{"field": "n_folds", "problem": "too many folds", "value": n_folds}])
    skf = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    out: dict[str, int] = {}
    for k, (_, held) in enumerate(skf.split(np.zeros(len(ids)), y)):
        out.update({ids[i]: k for i in held})
    return dict(sorted(out.items()))


def load_acdc_release(
    root: Path, split: str | None = None, patients: Iterable[str] | None = None
) -> list[SegCase]:
    """ED/ES cases of an official ACDC release folder.

    Args:
        root: the release root (holding ``training/`` and optionally ``testing/`` and ``splits.csv``) or a folder
            of ``patientNNN`` folders (e.g. ``training/``).
        split: keep the patients of this split of ``splits.csv`` (``"train"`` or ``"val"``); the file is looked
            up in ``root`` and its parent. None: every patient.
        patients: keep only these patient ids (e.g. a few for a quick check); combined with ``split``.

    Returns:
        Two cases per patient (ED then ES), patients sorted by id (see :func:`read_acdc_patient`).
    """
    root = Path(root)
    dirs = _patient_dirs(root)
    if not dirs:
        raise ConfigError(f"no patientNNN folders in {root}; expected the official ACDC release layout")
    by_id = {p.name: p for p in dirs}
    wanted: list[str] = sorted(by_id)
    if split is not None:
        wanted = acdc_split_patients(root, split)
    if patients is not None:
        keep = set(patients)
        wanted = [p for p in wanted if p in keep]
        if not wanted:
            raise ConfigError(f"none of the patients {sorted(keep)} is in {root}"
                              + (f" (split {split!r})" if split else ""))
    missing = [p for p in wanted if p not in by_id]
    if missing:
        raise ConfigError(f"{len(missing)} patient(s) of split {split!r} are missing from {root}: {missing[:5]}")
    return [c for p in wanted for c in read_acdc_patient(by_id[p])]


def load_acdc(path: Path, split: str | None = None, patients: Iterable[str] | None = None) -> list[SegCase]:
    """Load ACDC from either layout, detected from the folder content.

    Args:
        path: a folder of HDF5 files (``acdc-h5``: the folder is the split), one patient folder, a folder of
            patient folders or the release root.
        split / patients: selection of the official layout (see :func:`load_acdc_release`); an HDF5 folder or a
            single patient folder takes neither.
    """
    path = Path(path)
    if any(path.glob("patient*_frame*.h5")):
        if split is not None or patients is not None:
            raise ConfigError(f"{path} is an ACDC HDF5 folder: it is one split already; select no split/patients")
        return load_acdc_h5(path)
    if (path / "Info.cfg").is_file():
        if split is not None or patients is not None:
            raise ConfigError(f"{path} is a single ACDC patient folder; select no split/patients")
        return read_acdc_patient(path)
    return load_acdc_release(path, split=split, patients=patients)
