"""Evaluation of a cine segmentation package on held-out real data, through the predictor's own code path.

``medai evaluate heart_mr_cine_seg --data DIR --format acdc-h5|acdc|sunnybrook [--split val] --out FILE.json``

* ``acdc-h5`` / ``acdc``: every ED and ES volume -> :meth:`CineSegPredictor.segment_volume` (resampled to the
  model spacing when the data has a spacing, as the official NIfTI release has (header pixdim); ACDC HDF5 has
  none, so its grid is used as-is and HD95 is in voxels). For the release root (``acdc/`` holding ``training/``
  and ``splits.csv``), ``--split val`` evaluates the patients of that split only
  -> per-case Dice and HD95 of ``lv``, ``myo``, ``rv``; per patient EF (and EDV/ESV in mL where spacing is known)
  against the reference labels.
* ``sunnybrook``: each patient's whole DICOM study -> :meth:`CineSegPredictor.predict` (exactly what
  ``medai analyze`` runs) -> the predicted label map at the expert-contoured images (matched by SOPInstanceUID)
  -> LV endocardium Dice (``dice.lv``) at ED and ES, myocardium Dice where the epicardium is drawn, HD95 in mm,
  and EF on the contoured slices (the predicted label map restricted to the same slices and phases, an
  apples-to-apples comparison) next to the full-stack model EF.

Writes ``FILE.json`` (mean and per-case metrics) and ``FILE_bland_altman.png`` beside it; logs ``eval/...``
metrics to MLflow when a run is active.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from medai.cardiac.predictor import CineSegPredictor, load_default
from medai.errors import ConfigError

logger = logging.getLogger(__name__)

STRUCTURES = ("lv", "myo", "rv")


def _dice(pred: np.ndarray, ref: np.ndarray) -> float:
    s = int(pred.sum()) + int(ref.sum())
    return 1.0 if s == 0 else 2.0 * float(np.logical_and(pred, ref).sum()) / s


def _hd95(pred: np.ndarray, ref: np.ndarray, spacing: tuple[float, ...] | None) -> float:
    from pipelines.cmr.module import hd95

    return hd95(pred, ref, spacing)


def detect_format(data: Path) -> str:
    """Guess the data format from a folder's content."""
    data = Path(data)
    if (data / "link.csv").is_file() and (data / "dicoms").is_dir():
        return "sunnybrook"
    if any(data.glob("patient*_frame*.h5")):
        return "acdc-h5"
    if any(data.glob("patient*/Info.cfg")) or any(data.glob("training/patient*/Info.cfg")) or (
            data / "Info.cfg").is_file():
        return "acdc"
    raise ConfigError(f"cannot tell the format of {data}; pass --format acdc-h5, acdc or sunnybrook")


def _structure_metrics(pred: np.ndarray, ref: np.ndarray, values_pred: dict[str, int], values_ref: dict[str, int],
                       spacing: tuple[float, ...] | None) -> dict[str, float]:
    out: dict[str, float] = {}
    for name in STRUCTURES:
        if name not in values_ref or name not in values_pred:
            continue
        p, r = pred == values_pred[name], ref == values_ref[name]
        if not r.any():
            continue
        out[f"dice.{name}"] = _dice(p, r)
        out[f"hd95.{name}"] = _hd95(p, r, spacing)
    return out


def _ef(edv: float, esv: float) -> float:
    return 100.0 * (edv - esv) / edv if edv > 0 else float("nan")


def evaluate_acdc(predictor: CineSegPredictor, data: Path, fmt: str, split: str | None = None,
                  patients: list[str] | None = None) -> dict[str, Any]:
    """Per-case Dice/HD95 and per-patient EF/volume errors on ACDC (HDF5 or official release).

    Args:
        split: official release only: the ``splits.csv`` split to evaluate (e.g. ``"val"``); None: every patient.
        patients: official release only: evaluate only these patient ids (a cross-validation fold).
    """
    from medai.datasets.acdc import load_acdc, load_acdc_h5

    if fmt == "acdc-h5" and (split is not None or patients is not None):
        raise ConfigError("--split applies to the official ACDC layout (splits.csv); an HDF5 folder is one split")
    cases = load_acdc_h5(data) if fmt == "acdc-h5" else load_acdc(data, split=split, patients=patients)
    values = predictor.config.labels
    per_case: list[dict[str, Any]] = []
    vols: dict[str, dict[str, dict[str, float]]] = {}
    for case in cases:
        if case.label is None:
            continue
        vol = case.to_volume()
        lm = predictor.segment_volume(vol, resample=case.spacing_mm is not None)
        pred = lm.volume.array
        m = _structure_metrics(pred, case.label, values, case.labels, case.spacing_mm)
        unit_ml = float(np.prod(case.spacing_mm)) / 1000.0 if case.spacing_mm else None
        per_case.append({"case": case.case_id, "patient": case.patient_id, "phase": case.phase.value, **m})
        lv_p = float((pred == values["lv"]).sum())
        lv_r = float((case.label == case.labels["lv"]).sum())
        v = vols.setdefault(case.patient_id, {})
        entry: dict[str, Any] = {"pred": lv_p * (unit_ml or 1.0), "ref": lv_r * (unit_ml or 1.0),
                                 "unit": "mL" if unit_ml else "voxels"}
        for name in ("rv", "myo"):  # RV cavity and LV myocardium volumes, same unit
            if name in values and name in case.labels:
                entry[f"{name}_pred"] = float((pred == values[name]).sum()) * (unit_ml or 1.0)
                entry[f"{name}_ref"] = float((case.label == case.labels[name]).sum()) * (unit_ml or 1.0)
        v[case.phase.value] = entry  # type: ignore[assignment]
    patients = []
    for pid, v in sorted(vols.items()):
        if "ED" not in v or "ES" not in v:
            continue
        ed, es = v["ED"], v["ES"]
        row: dict[str, Any] = {"patient": pid, "ef_pred": _ef(ed["pred"], es["pred"]),
                               "ef_ref": _ef(ed["ref"], es["ref"])}
        row["ef_error"] = row["ef_pred"] - row["ef_ref"]
        if "rv_ref" in ed and "rv_ref" in es and ed["rv_ref"] > 0:
            row.update(rvef_pred=_ef(ed["rv_pred"], es["rv_pred"]), rvef_ref=_ef(ed["rv_ref"], es["rv_ref"]))
            row["rvef_error"] = row["rvef_pred"] - row["rvef_ref"]
        if ed["unit"] == "mL" and "rv_ref" in ed:
            row.update(rv_edv_pred_ml=ed["rv_pred"], rv_edv_ref_ml=ed["rv_ref"],
                       rv_edv_error_ml=ed["rv_pred"] - ed["rv_ref"])
        if ed["unit"] == "mL" and "myo_ref" in ed:
            from medai.measurements.cardiac import MYOCARDIAL_DENSITY_G_PER_ML as rho

            row.update(lv_mass_pred_g=rho * ed["myo_pred"], lv_mass_ref_g=rho * ed["myo_ref"],
                       lv_mass_error_g=rho * (ed["myo_pred"] - ed["myo_ref"]))
        if ed["unit"] == "mL":
            row.update(edv_pred_ml=ed["pred"], edv_ref_ml=ed["ref"], esv_pred_ml=es["pred"], esv_ref_ml=es["ref"],
                       edv_error_ml=ed["pred"] - ed["ref"], esv_error_ml=es["pred"] - es["ref"])
        else:
            row.update(edv_error_pct=100 * (ed["pred"] - ed["ref"]) / ed["ref"],
                       esv_error_pct=100 * (es["pred"] - es["ref"]) / es["ref"])
        patients.append(row)
    return {"cases": per_case, "patients": patients,
            "hd95_unit": "mm" if any(c.spacing_mm for c in cases) else "voxels (ACDC HDF5 has no spacing)"}


def evaluate_sunnybrook(predictor: CineSegPredictor, data: Path) -> dict[str, Any]:
    """LV endocardium Dice at ED and ES (and myocardium where drawn) for every Sunnybrook patient, via predict()."""
    import csv

    import pydicom

    from medai.datasets.sunnybrook import load_sunnybrook_patient, read_link
    from medai.dicom.ingest import ingest
    from medai.dicom.tags import quiet_pydicom

    derived: dict[str, dict[str, str]] = {}
    dpath = Path(data) / "derived_lv_volumes.csv"
    if dpath.is_file():
        with dpath.open() as f:
            derived = {r["patient_id"]: r for r in csv.DictReader(f)}
    values = predictor.config.labels
    per_case: list[dict[str, Any]] = []
    patients: list[dict[str, Any]] = []
    for pid in sorted(read_link(data)):
        t0 = time.perf_counter()
        study = ingest(Path(data) / "dicoms" / pid).studies[0]
        prediction = predictor.predict(study)
        lm = prediction.label_maps["cine_sax"]
        where = {uid: (t, z) for t, row in enumerate(lm.volume.source_sop_uids or ()) for z, uid in enumerate(row)}
        pred_all = lm.volume.array
        lv_ml: dict[str, dict[str, float]] = {}
        with quiet_pydicom():
            cases = load_sunnybrook_patient(data, pid)
        for case in cases:
            idx = []
            for src in case.meta["sources"]:  # type: ignore[union-attr]
                with quiet_pydicom():
                    hdr = pydicom.dcmread(src, stop_before_pixels=True, specific_tags=["SOPInstanceUID"])
                uid = str(hdr.SOPInstanceUID)
                if uid not in where:
                    raise ConfigError(f"{src} (contoured) is not part of the predicted cine of {pid}")
                idx.append(where[uid])
            pred = np.stack([pred_all[t, z] for t, z in idx])
            ref = case.label
            assert ref is not None
            sp = case.spacing_mm
            row: dict[str, Any] = {"case": case.case_id, "patient": pid, "phase": case.phase.value,
                                   "frame": int(idx[0][0]), "n_slices": len(idx)}
            p_lv, r_lv = pred == values["lv"], ref == case.labels["lv"]
            row["dice.lv"] = _dice(p_lv, r_lv)
            row["hd95.lv"] = _hd95(p_lv, r_lv, sp)
            epi = np.asarray(case.meta.get("has_epicardium", []), dtype=bool)
            if epi.any() and "myo" in values:
                pm, rm = pred[epi] == values["myo"], ref[epi] == case.labels["myo"]
                row["dice.myo"] = _dice(pm, rm)
            voxel_ml = lm.volume.voxel_volume_ml
            lv_ml[case.phase.value] = {"pred": float(p_lv.sum()) * voxel_ml, "ref": float(r_lv.sum()) * voxel_ml}
            per_case.append(row)
        by = {m.name: m.value for m in prediction.measurements}
        prow: dict[str, Any] = {"patient": pid, "ef_full_stack_pred": by.get("lv_ef"),
                                "edv_full_stack_pred_ml": by.get("lv_edv"), "esv_full_stack_pred_ml": by.get("lv_esv"),
                                "seconds": time.perf_counter() - t0,
                                "flags": [f.code for f in prediction.flags]}
        if "ED" in lv_ml and "ES" in lv_ml:
            ed, es = lv_ml["ED"], lv_ml["ES"]
            prow.update(edv_pred_ml=ed["pred"], edv_ref_ml=ed["ref"], esv_pred_ml=es["pred"], esv_ref_ml=es["ref"],
                        ef_pred=_ef(ed["pred"], es["pred"]), ef_ref=_ef(ed["ref"], es["ref"]))
            prow["ef_error"] = prow["ef_pred"] - prow["ef_ref"]
            prow["edv_error_ml"] = ed["pred"] - ed["ref"]
            prow["esv_error_ml"] = es["pred"] - es["ref"]
        if pid in derived:
            prow["ef_ref_derived_csv"] = float(derived[pid]["lv_ef_pct_contoured_slices"])
        patients.append(prow)
        logger.info("%s: %s", pid, prow)
    return {"cases": per_case, "patients": patients, "hd95_unit": "mm"}


def summarize(result: dict[str, Any]) -> dict[str, float]:
    """Means over cases (``dice.lv``...) and patients (``ef_error`` mean absolute error, bias)."""
    mean: dict[str, float] = {}
    keys = sorted({k for c in result["cases"] for k in c if k.startswith(("dice.", "hd95."))})
    for k in keys:
        vals = [c[k] for c in result["cases"] if k in c and c[k] is not None and math.isfinite(c[k])]
        if vals:
            mean[k] = float(np.mean(vals))
        for phase in ("ED", "ES"):
            pv = [c[k] for c in result["cases"] if c.get("phase") == phase and k in c and math.isfinite(c[k])]
            if pv:
                mean[f"{k}.{phase.lower()}"] = float(np.mean(pv))
    errs = [p["ef_error"] for p in result["patients"] if "ef_error" in p and math.isfinite(p["ef_error"])]
    if errs:
        mean["ef_mae"] = float(np.mean(np.abs(errs)))
        mean["ef_bias"] = float(np.mean(errs))
    rv = [p["rvef_error"] for p in result["patients"] if "rvef_error" in p and math.isfinite(p["rvef_error"])]
    if rv:
        mean["rvef_mae"] = float(np.mean(np.abs(rv)))
        mean["rvef_bias"] = float(np.mean(rv))
    for k in ("edv_error_ml", "esv_error_ml", "edv_error_pct", "esv_error_pct", "rv_edv_error_ml",
              "lv_mass_error_g"):
        v = [p[k] for p in result["patients"] if k in p and math.isfinite(p[k])]
        if v:
            mean[k.replace("error", "mae")] = float(np.mean(np.abs(v)))
            mean[k.replace("error", "bias")] = float(np.mean(v))
    return mean


def bland_altman(result: dict[str, Any], path: Path, title: str) -> Path | None:
    """Bland-Altman plots (EF, and EDV/ESV in mL when known) of predicted vs reference, one dot per patient."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs = [("LVEF (%)", "ef_pred", "ef_ref"), ("LV EDV (mL)", "edv_pred_ml", "edv_ref_ml"),
             ("RVEF (%)", "rvef_pred", "rvef_ref"), ("LV mass (g)", "lv_mass_pred_g", "lv_mass_ref_g")]
    pairs = [p for p in pairs if any(p[1] in r and p[2] in r for r in result["patients"])]
    if not pairs:
        return None
    fig, axes = plt.subplots(1, len(pairs), figsize=(4.5 * len(pairs), 4), squeeze=False)
    for ax, (label, kp, kr) in zip(axes[0], pairs, strict=True):
        rows = [r for r in result["patients"] if kp in r and kr in r]
        p = np.array([r[kp] for r in rows], float)
        r = np.array([r[kr] for r in rows], float)
        mean, diff = (p + r) / 2, p - r
        bias, sd = float(diff.mean()), float(diff.std(ddof=1)) if len(diff) > 1 else 0.0
        ax.scatter(mean, diff, s=18, color="tab:blue")
        for y, style in ((bias, "-"), (bias + 1.96 * sd, "--"), (bias - 1.96 * sd, "--")):
            ax.axhline(y, color="tab:red", linestyle=style, linewidth=1)
        ax.set_xlabel(f"mean of model and reference {label}")
        ax.set_ylabel(f"model - reference {label}")
        ax.set_title(f"{label}: bias {bias:+.1f}, LoA ±{1.96 * sd:.1f} (n={len(rows)})", fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def evaluate(predictor: CineSegPredictor, data: Path, fmt: str = "auto", split: str | None = None,
             patients: list[str] | None = None) -> dict[str, Any]:
    """Run the evaluation and return the JSON document (without writing it).

    Args:
        split: ACDC official layout only: evaluate this ``splits.csv`` split (``"val"``); None: all of ``data``.
        patients: ACDC official layout only: evaluate only these patient ids (a cross-validation fold).
    """
    data = Path(data)
    fmt = detect_format(data) if fmt == "auto" else fmt
    t0 = time.perf_counter()
    if fmt in ("acdc-h5", "acdc"):
        result = evaluate_acdc(predictor, data, fmt, split, patients)
    elif split is not None or patients is not None:
        raise ConfigError(f"--split is for the official ACDC layout (splits.csv), not for --format {fmt}")
    elif fmt == "sunnybrook":
        result = evaluate_sunnybrook(predictor, data)
    else:
        raise ConfigError(f"unknown --format {fmt!r} for a cine segmentation model; use acdc-h5, acdc or sunnybrook")
    return {
        "model": predictor.ref.model_dump(),
        "data": str(data),
        "format": fmt,
        "split": split,
        **({"patients_selected": sorted(patients)} if patients is not None else {}),
        "n_cases": len(result["cases"]),
        "n_patients": len(result["patients"]),
        "hd95_unit": result["hd95_unit"],
        "tta": predictor.config.tta,
        "mean": summarize(result),
        "cases": result["cases"],
        "patients": result["patients"],
        "seconds": time.perf_counter() - t0,
        "code_path": "CineSegPredictor.predict (sunnybrook) / CineSegPredictor.segment_volume (acdc)",
    }


def _log_mlflow(doc: dict[str, Any], files: list[Path]) -> None:
    try:
        import mlflow
    except ImportError:  # pragma: no cover
        return
    if mlflow.active_run() is None:
        return
    from pipelines.mlflow_utils import log_metrics

    prefix = "eval" if doc["format"] != "sunnybrook" else "eval_sunnybrook"
    log_metrics({f"{prefix}/{k.replace('.', '/')}": v for k, v in doc["mean"].items() if math.isfinite(v)})
    for f in files:
        mlflow.log_artifact(str(f), artifact_path="evaluation")


def evaluate_cli(model: str, data: Path, fmt: str, out: Path, package: Path | None = None,
                 split: str | None = None) -> dict[str, Any]:
    """``medai evaluate`` for cine segmentation models: writes ``out`` JSON and a Bland-Altman PNG beside it."""
    from rich.console import Console
    from rich.table import Table

    predictor = load_default(package or model)
    doc = evaluate(predictor, data, fmt, split)
    doc["command"] = " ".join(["medai evaluate", *sys.argv[2:]]) if sys.argv and "evaluate" in sys.argv else ""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    png = bland_altman({"patients": doc["patients"]}, out.with_name(out.stem + "_bland_altman.png"),
                       f"{predictor.ref.name} {predictor.ref.version} on {doc['format']} ({Path(data).name}"
                       + (f", split {split}" if split else "") + ")")
    if png is not None:
        doc["bland_altman_png"] = str(png)
    out.write_text(json.dumps(doc, indent=2, default=float))
    _log_mlflow(doc, [out] + ([png] if png else []))
    table = Table(title=f"{doc['format']}: {doc['n_cases']} cases, {doc['n_patients']} patients (HD95 in "
                        f"{doc['hd95_unit'].split(' ')[0]})")
    table.add_column("metric")
    table.add_column("mean")
    for k, v in doc["mean"].items():
        table.add_row(k, f"{v:.3f}")
    Console().print(table)
    Console().print(f"wrote {out}" + (f" and {png}" if png else ""))
    return doc
