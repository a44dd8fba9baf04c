"""The nnU-Net v2 baseline for ``bench/cmr_analyze.py``: its own 2-D plan for an ACDC-like dataset, random weights.

nnU-Net's pretrained ACDC weights cannot be fetched here, and this is a speed comparison, so the network is the one
nnU-Net's planner picks for ACDC (fingerprint + ``ExperimentPlanner`` on ACDC training cases, ``2d`` configuration)
with random weights, run by nnU-Net's own predictor (``nnUNetPredictor``: resampling to the plan's spacing,
z-scoring, sliding-window Gaussian tiling, resampling back), without test-time mirroring. Each of the study's
phases is one ``predict_single_npy_array`` call (Z slices of the 2-D configuration), as a user of its API would.

Run as a subprocess (its threads and memory stay out of the caller's figures)::

    python -m bench.baselines.nnunet_cine --plan-dir DIR --study FOLDER --threads 2 --repeat 1

prints one JSON line: ``{"seconds": [...], "phases", "slices", "plan": {...}}``. ``--plan-dir`` is reused when it
holds a plan already (planning takes about a minute).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

DATASET_ID = 927
DATASET_NAME = f"Dataset{DATASET_ID}_ACDCSpeed"
N_PLAN_CASES = 20  # the fingerprint (spacings, shapes, intensities) of 20 ACDC patients' ED/ES frames


def _env(plan_dir: Path) -> None:
    for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        (plan_dir / name).mkdir(parents=True, exist_ok=True)
        os.environ[name] = str(plan_dir / name)


def plan(plan_dir: Path, acdc_root: Path) -> Path:
    """Write an nnU-Net raw dataset of ACDC frames, run nnU-Net's fingerprint extraction and planner; the plans file."""
    _env(plan_dir)
    plans = plan_dir / "nnUNet_preprocessed" / DATASET_NAME / "nnUNetPlans.json"
    if plans.exists():
        return plans
    import nibabel as nib

    raw = plan_dir / "nnUNet_raw" / DATASET_NAME
    (raw / "imagesTr").mkdir(parents=True, exist_ok=True)
    (raw / "labelsTr").mkdir(parents=True, exist_ok=True)
    n = 0
    for patient in sorted((acdc_root / "training").glob("patient*"))[:N_PLAN_CASES]:
        for gt in sorted(patient.glob("*_frame??_gt.nii.gz")):
            img = gt.with_name(gt.name.replace("_gt", ""))
            case = img.name.replace(".nii.gz", "")
            (raw / "imagesTr" / f"{case}_0000.nii.gz").write_bytes(img.read_bytes())
            lab = nib.load(gt)  # labels as uint8 (nnU-Net checks that they are integers)
            nib.save(nib.Nifti1Image(np.asarray(lab.dataobj).astype(np.uint8), lab.affine, lab.header),
                     raw / "labelsTr" / f"{case}.nii.gz")
            n += 1
    (raw / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "cineMRI"}, "labels": {"background": 0, "RV": 1, "MLV": 2, "LVC": 3},
        "numTraining": n, "file_ending": ".nii.gz"}))
    from nnunetv2.experiment_planning.plan_and_preprocess_api import extract_fingerprints, plan_experiments

    extract_fingerprints([DATASET_ID], num_processes=2, check_dataset_integrity=True, clean=True, verbose=False)
    plan_experiments([DATASET_ID])
    return plans


def predictor(plans_path: Path, threads: int) -> Any:
    """nnU-Net's predictor with its ``2d`` network built from the plan, random weights, no mirroring, on CPU."""
    import torch
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    dataset_json = json.loads((plans_path.parents[2] / "nnUNet_raw" / DATASET_NAME / "dataset.json").read_text())
    pm = PlansManager(str(plans_path))
    cm = pm.get_configuration("2d")
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    net = nnUNetTrainer.build_network_architecture(pm, cm, 1, pm.get_label_manager(dataset_json).num_segmentation_heads,
                                                   enable_deep_supervision=False)
    p = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=False,
                        perform_everything_on_device=False, device=torch.device("cpu"), verbose=False,
                        verbose_preprocessing=False, allow_tqdm=False)
    p.manual_initialization(net, pm, cm, [net.state_dict()], dataset_json, "nnUNetTrainer", None)
    return p


def load_study(folder: Path) -> tuple[np.ndarray, tuple[float, float, float]]:
    """The cine study as ``(T, Z, Y, X)`` float32 and its ``(z, y, x)`` spacing, read with medai's ingest (the same
    pixels medai analyses; reading is not part of nnU-Net's time)."""
    from medai.dicom.ingest import ingest
    from medai.dicom.volumes import build_cine

    study = ingest(folder).studies[0]
    series = max(study.series, key=lambda s: len(s.instances))
    vol = build_cine(series)
    arr = np.asarray(vol.array, dtype=np.float32)
    return arr, tuple(float(s) for s in vol.spacing)  # type: ignore[return-value]


def main() -> None:
    ap = argparse.ArgumentParser(description="nnU-Net v2 2-D predictor on a cine study (random weights)")
    ap.add_argument("--plan-dir", type=Path, required=True)
    ap.add_argument("--acdc", type=Path, default=None, help="ACDC release root (default: <data>/cardiac/acdc)")
    ap.add_argument("--study", type=Path, required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=1)
    a = ap.parse_args()
    acdc = a.acdc
    if acdc is None:
        from medai.settings import find_data_dir

        root = find_data_dir()
        if root is None:
            raise SystemExit("ACDC not found; pass --acdc")
        acdc = root / "cardiac" / "acdc"
    t0 = time.perf_counter()
    plans = plan(a.plan_dir, acdc)
    plan_s = time.perf_counter() - t0
    p = predictor(plans, a.threads)
    arr, spacing = load_study(a.study)
    props = {"spacing": list(spacing)}
    p.predict_single_npy_array(arr[0][None], props, None, None, False)  # warm-up (one phase)
    secs = []
    for _ in range(a.repeat):
        t0 = time.perf_counter()
        for t in range(arr.shape[0]):
            p.predict_single_npy_array(arr[t][None], props, None, None, False)
        secs.append(time.perf_counter() - t0)
    cm = p.configuration_manager
    n_params = sum(x.numel() for x in p.network.parameters())
    sys.stdout.write(json.dumps({
        "seconds": secs, "threads": a.threads, "phases": int(arr.shape[0]), "slices": int(arr.shape[1]),
        "plan_s": plan_s, "nnunetv2": __import__("importlib.metadata").metadata.version("nnunetv2"),
        "plan": {"configuration": "2d", "network": cm.network_arch_class_name.rsplit(".", 1)[-1],
                 "stages": cm.network_arch_init_kwargs.get("n_stages"), "patch_size": list(cm.patch_size),
                 "spacing": list(cm.spacing), "parameters": n_params}}) + "\n")


if __name__ == "__main__":
    main()
