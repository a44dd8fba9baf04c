"""Fit the cine phantom's heart to the median heart of each ACDC group: :data:`medai.dicom.phantoms.PHENOTYPES`.

    python -m pipelines.dx.phenotypes --data ../shared/data/cardiac/acdc --out /tmp/phenotypes.json
    python -m pipelines.dx.phenotypes --gallery pipelines/dx/docs/phenotype_phantoms.png

For each group of the 80 ``train`` patients (never ``val``), the medians of six features of the reference ED/ES
masks (:func:`medai.cardiac.dx_features.cine_dx_features`): LV EDV indexed to BSA, mean ED wall thickness, LV EF,
RV/LV EDV ratio, RV EF and the ES/ED myocardial cross-section. Then six parameters of
:func:`medai.dicom.phantoms.heart_geometry` (LV radius, wall, radial shortening, RV width, RV shortening, systolic
area gain) are fitted by least squares so that the phantom's own labels (a 10-slice ventricle, 8 mm apart, at
1.5 mm pixels, for a 1.75 m, 75 kg patient, the phantom's default) measure those medians. MINF also fits the width
of an akinetic sector against its median thickening and the thickening's spread over the AHA segments. Only masks
are read: no model is involved, so the presets say what a typical heart of each group looks like, not what a model
answers.
``--gallery`` then analyses each preset's phantom with the shipped models and draws what they make of it.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

#: The features matched, and the size of a unit residual of each.
TARGETS = {"lv_edvi": 5.0, "wt_ed_mean": 0.3, "lv_ef": 2.0, "rv_lv_edv_ratio": 0.05, "rv_ef": 2.0, "myo_es_ed": 0.02}
PARAMS = ("lv_radius_mm", "wall_mm", "radial_shortening", "rv_width_mm", "rv_shortening", "systolic_area_gain")
_START = (27.0, 9.0, 0.36, 34.0, 0.4, 1.18)
_LOW = (15.0, 4.0, 0.02, 10.0, 0.05, 1.0)
_HIGH = (50.0, 20.0, 0.6, 80.0, 0.6, 1.4)
#: MINF is defined by a regional wall-motion defect: its preset also fits the width (degrees) of an akinetic LV
#: sector, opposite the RV, against the group's median thickening and its spread over the AHA segments.
REGIONAL = ("akinetic_deg", 60.0, 0.0, 180.0)
REGIONAL_GROUPS = ("MINF",)
REGIONAL_TARGETS = {"thickening_mean": 0.02, "thickening_std": 0.05}
#: The phantom the presets are fitted for (see :func:`medai.dicom.phantoms.make_cine_sax_study`).
N_SLICES, SLICE_MM, PIXEL_MM, MATRIX, HEIGHT_M, WEIGHT_KG = 10, 8.0, 1.5, 192, 1.75, 75.0


def _labels() -> tuple[Any, ...]:
    from medai.cardiac.preprocess import CINE_LABELS
    from medai.domain.volume import ANATOMICAL_STRUCTURE, SegmentLabel

    return tuple(SegmentLabel(v, n, ANATOMICAL_STRUCTURE, ANATOMICAL_STRUCTURE) for n, v in CINE_LABELS.items())


def mask_features(ed_es: np.ndarray, spacing_zyx: tuple[float, float, float], height_m: float | None,
                  weight_kg: float | None) -> dict[str, float]:
    """The diagnosis features of a ``(2, Z, Y, X)`` ED/ES mask pair (ACDC label values), plus ``myo_es_ed``."""
    from medai.cardiac.dx_features import cine_dx_features
    from medai.domain.volume import LabelMap, Volume
    from medai.measurements.cardiac import PatientInfo

    affine = np.diag([*spacing_zyx, 1.0])
    vol = Volume(array=np.zeros(ed_es.shape, np.float32), affine=affine, frame_times_ms=(0.0, 1.0))
    lm = LabelMap(volume=vol.with_array(ed_es.astype(np.uint8)), labels=_labels())
    f = cine_dx_features(lm, 0, 1, PatientInfo(height_m=height_m, weight_kg=weight_kg))
    f["myo_es_ed"] = f["myo_es_volume"] / (f["lv_mass"] / 1.05)
    return f


def group_medians(root: Path) -> dict[str, dict[str, float]]:
    """Per ACDC group, the medians of :data:`TARGETS` over the reference masks of the ``train`` patients."""
    from pipelines.dx.data import acdc_patient_dirs, read_dx_case

    rows: dict[str, list[dict[str, float]]] = {}
    for d in acdc_patient_dirs(root, split="train"):
        c = read_dx_case(d)
        if c.reference is None or c.group is None:
            continue
        sp = tuple(float(v) for v in c.ed.spacing)[-3:]
        f = mask_features(c.reference, sp, c.patient.height_m, c.patient.weight_kg)  # type: ignore[arg-type]
        rows.setdefault(c.group, []).append(f)
    keys = [*TARGETS, *REGIONAL_TARGETS]
    return {g: {k: float(np.nanmedian([r[k] for r in rs])) for k in keys} | {"n": float(len(rs))}
            for g, rs in sorted(rows.items())}


def phantom_features(params: dict[str, float]) -> dict[str, float]:
    """The features of the phantom's ED/ES labels for ``params`` (:data:`PARAMS`)."""
    from medai.dicom.phantoms import heart_labels

    lab = heart_labels(20, N_SLICES, MATRIX, MATRIX, PIXEL_MM, **params)
    es = int(np.argmin((lab == 3).sum((1, 2, 3))))
    return mask_features(lab[[0, es]], (SLICE_MM, PIXEL_MM, PIXEL_MM), HEIGHT_M, WEIGHT_KG)


def fit(target: dict[str, float], regional: bool = False) -> dict[str, float]:
    """Least-squares :data:`PARAMS` whose phantom labels measure ``target``; with ``regional``, also the width of an
    akinetic sector (:data:`REGIONAL`) against the regional targets."""
    from scipy.optimize import least_squares

    names, start, low, high = list(PARAMS), list(_START), list(_LOW), list(_HIGH)
    targets = dict(TARGETS)
    if regional:
        names.append(REGIONAL[0])
        start.append(REGIONAL[1])
        low.append(REGIONAL[2])
        high.append(REGIONAL[3])
        targets.update(REGIONAL_TARGETS)

    def residuals(p: np.ndarray) -> np.ndarray:
        f = phantom_features(dict(zip(names, (float(v) for v in p), strict=True)))
        return np.array([(f[k] - target[k]) / s for k, s in targets.items()])

    res = least_squares(residuals, np.array(start), bounds=(np.array(low), np.array(high)), diff_step=0.03,
                        max_nfev=80)
    return {k: round(float(v), 3) for k, v in zip(names, res.x, strict=True)}


def gallery(out_png: Path, seed: int = 0) -> list[dict[str, Any]]:
    """Analyse each preset's phantom with the shipped models (as ``medai analyze``) and draw its mid-ventricular ED
    and ES slice with the model's contours and the suggested class. Returns one row per preset."""
    import tempfile

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from medai.analyses.runner import run_study_analyses
    from medai.cardiac.preprocess import CINE_LABELS
    from medai.dicom.ingest import ingest
    from medai.dicom.phantoms import PHENOTYPES, make_cine_sax_study

    colours = {"lv": "#e8453c", "myo": "#3cb371", "rv": "#3c7be8"}
    fig, axes = plt.subplots(2, len(PHENOTYPES), figsize=(2.6 * len(PHENOTYPES), 5.6), squeeze=False)
    rows = []
    for col, group in enumerate(PHENOTYPES):
        with tempfile.TemporaryDirectory() as tmp:
            ph = make_cine_sax_study(Path(tmp) / "study", phenotype=group, rows=MATRIX, cols=MATRIX, seed=seed)
            out = run_study_analyses(ingest(Path(tmp) / "study").studies[0], Path(tmp) / "out")
        pred = out.results[0].prediction
        labels = pred.label_maps["cine_sax"].volume.array
        image = pred.extras["image"].array
        dx = out.report.section("cine_diagnosis")
        got = {m.name: m.value for m in out.report.measurements}
        tr = ph.truth
        row = {"group": group, "suggested": dx.summary["predicted_class"],
               "probability": round(float(dx.summary["probability"]), 3),
               "review": out.report.review.required,
               "lv_ef": [round(got["lv_ef"], 1), round(tr.lv_ef_pct, 1)],  # type: ignore[union-attr]
               "rv_ef": [round(got["rv_ef"], 1), round(tr.rv_ef_pct, 1)],  # type: ignore[union-attr]
               "lv_edv": [round(got["lv_edv"], 1), round(tr.lv_edv_ml, 1)],  # type: ignore[union-attr]
               "rv_edv": [round(got["rv_edv"], 1), round(tr.rv_edv_ml, 1)]}  # type: ignore[union-attr]
        rows.append(row)
        z = labels.shape[1] // 2
        heart = np.argwhere(labels[pred.extras["ed_frame"], z] > 0)
        (y0, x0), (y1, x1) = heart.min(0) - 12, heart.max(0) + 12
        for r, (phase, frame) in enumerate((("ED", pred.extras["ed_frame"]), ("ES", pred.extras["es_frame"]))):
            ax = axes[r][col]
            sl = image[frame, z, max(y0, 0):y1, max(x0, 0):x1]
            ax.imshow(sl, cmap="gray", vmin=float(np.percentile(sl, 1)), vmax=float(np.percentile(sl, 99.5)))
            lab = labels[frame, z, max(y0, 0):y1, max(x0, 0):x1]
            for name, value in CINE_LABELS.items():
                if (lab == value).any():
                    ax.contour(lab == value, levels=[0.5], colors=colours[name], linewidths=1.0)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{group} median heart" if r == 0 else
                         f"suggested {row['suggested']} {row['probability']:.2f}", fontsize=9)
            ax.set_ylabel(phase)
        axes[1][col].set_xlabel(f"LVEF {row['lv_ef'][0]:.0f} % (truth {row['lv_ef'][1]:.0f})\n"
                                f"RVEF {row['rv_ef'][0]:.0f} % (truth {row['rv_ef'][1]:.0f})", fontsize=8)
        logger.info("%s: %s", group, row)
    fig.suptitle("Phantoms of each ACDC group's median heart, read by the shipped cine + diagnosis models "
                 "(mid slice; red LV, green myocardium, blue RV)", fontsize=9)
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, help="ACDC release folder (patientNNN/ + splits.csv): fit the presets")
    ap.add_argument("--out", type=Path, help="write the medians, fitted parameters and achieved features here")
    ap.add_argument("--gallery", type=Path, help="analyse the shipped presets and draw them into this PNG")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logger.setLevel(logging.INFO)
    if args.gallery:
        rows = gallery(args.gallery)
        sys.stdout.write(json.dumps(rows, indent=1) + "\n")
    if not args.data:
        if not args.gallery:
            ap.error("give --data (fit the presets) and/or --gallery")
        return
    out: dict[str, Any] = {}
    for group, target in group_medians(args.data).items():
        regional = group in REGIONAL_GROUPS
        params = fit(target, regional)
        got = phantom_features(params)
        keys = [*TARGETS, *(REGIONAL_TARGETS if regional else ())]
        out[group] = {"train_patients": int(target["n"]), "median": {k: round(target[k], 3) for k in keys},
                      "params": params, "phantom": {k: round(got[k], 3) for k in keys}}
        logger.info("%s: %s -> %s", group, out[group]["median"], params)
    text = json.dumps(out, indent=1)
    if args.out:
        args.out.write_text(text + "\n")
    sys.stdout.write(text + "\n")


if __name__ == "__main__":
    main()
