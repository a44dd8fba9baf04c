"""Generated ACDC folders for tests (also imported by tests/pipelines/cmr): no real data is needed or written.

* :func:`write_acdc_release`: the official NIfTI layout (``training/patientNNN/{Info.cfg, _frameXX[_gt].nii.gz}``
  plus ``splits.csv``) with the headers of the real files: sform ``diag(-1, -1, 1)`` (1 mm in the affine),
  qform 0, the true spacing only in ``pixdim``;
* :func:`write_acdc_h5`: the HDF5 form (``patientNNN_frame01.h5`` = ED, ``_frame02.h5`` = ES; ``image`` uint16
  with a ``scale`` attribute, ``label`` uint8).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medai.dicom.phantoms import make_cine_sax_study

#: sform of every real ACDC file: RAS ``diag(-1, -1, 1)``, i.e. 1 mm voxels as far as the affine goes.
ACDC_SFORM = np.diag([-1.0, -1.0, 1.0, 1.0])


def _save_acdc_nifti(array_zyx: np.ndarray, spacing_zyx: tuple[float, float, float], path: Path) -> None:
    """Write a ``(Z, Y, X)`` array as an ACDC-style NIfTI (``(X, Y, Z)`` on disk, spacing only in pixdim)."""
    import nibabel as nib

    img = nib.Nifti1Image(np.transpose(array_zyx, (2, 1, 0)), ACDC_SFORM)
    dz, dy, dx = spacing_zyx
    img.header.set_zooms((dx, dy, dz))
    img.header.set_qform(None, code=0)
    img.set_sform(ACDC_SFORM, code=2)
    nib.save(img, path)


def write_acdc_release(
    root: Path,
    patients: dict[str, str] | None = None,
    *,
    frames: dict[str, tuple[int, int]] | None = None,
    shape: tuple[int, int, int] = (4, 48, 48),
    pixel_spacing: float = 1.8,
    slice_step: float = 10.0,
) -> Path:
    """Write a tiny official-layout ACDC folder (phantom hearts) with a ``splits.csv``.

    Args:
        root: the release root to create (``root/training/...``, ``root/splits.csv``).
        patients: patient id -> split (default: patient001, patient090 train; patient061 val).
        frames: patient id -> (ED, ES) frame numbers (default ``(1, 5)``; patient090 ``(4, 11)`` as in the release).
        shape: ``(Z, Y, X)`` of every frame.
        pixel_spacing, slice_step: in-plane pixel size and slice step (mm), written to ``pixdim`` only.

    Returns:
        ``root``.
    """
    from medai.datasets.acdc import acdc_group

    patients = patients or {"patient001": "train", "patient090": "train", "patient061": "val"}
    frames = {"patient090": (4, 11), **(frames or {})}
    nz, ny, nx = shape
    rows = ["patient,group,split"]
    for i, (pid, split) in enumerate(sorted(patients.items())):
        ed, es = frames.get(pid, (1, 5))
        group = acdc_group(pid)
        folder = root / "training" / pid
        folder.mkdir(parents=True)
        (folder / "Info.cfg").write_text(
            f"ED: {ed}\nES: {es}\nGroup: {group}\nHeight: 172.0\nNbFrame: {max(es, 12)}\nWeight: 70.5\n")
        ph = make_cine_sax_study(n_slices=nz, n_phases=8, rows=ny, cols=nx, pixel_spacing=pixel_spacing,
                                 slice_thickness=slice_step, seed=i + 1)
        for frame, t in ((ed, ph.truth.ed_phase), (es, ph.truth.es_phase)):
            spacing = (slice_step, pixel_spacing, pixel_spacing)
            _save_acdc_nifti(ph.image[t].astype(np.int16), spacing, folder / f"{pid}_frame{frame:02d}.nii.gz")
            _save_acdc_nifti(ph.labels[t].astype(np.uint8), spacing, folder / f"{pid}_frame{frame:02d}_gt.nii.gz")
        rows.append(f"{pid},{group},{split}")
    (root / "splits.csv").write_text("\n".join(rows) + "\n")
    return root


def write_acdc_h5(folder: Path, n_patients: int = 2, shape: tuple[int, int, int] = (4, 48, 48), first: int = 1) -> Path:
    """Write ``n_patients`` phantom patients (``patient<first>``...) in the ACDC HDF5 form into ``folder``."""
    import h5py

    folder.mkdir(parents=True, exist_ok=True)
    nz, ny, nx = shape
    for i in range(n_patients):
        ph = make_cine_sax_study(n_slices=nz, n_phases=8, rows=ny, cols=nx, seed=i + 1)
        for frame, t in ((1, ph.truth.ed_phase), (2, ph.truth.es_phase)):
            with h5py.File(folder / f"patient{first + i:03d}_frame{frame:02d}.h5", "w") as f:
                d = f.create_dataset("image", data=ph.image[t].astype(np.uint16))
                d.attrs["scale"] = 1.0 / 4095
                f.create_dataset("label", data=ph.labels[t].astype(np.uint8))
    return folder
