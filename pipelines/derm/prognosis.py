"""Dermatology prognosis from any subset of image, clinical data and omics, through the fusion survival head.

A hospital cohort folder holds ``labels.csv`` -- one row per patient: ``patient``, ``time`` (follow-up, > 0),
``event`` (0/1), optionally ``image`` (a photograph or dermoscopic image, relative to the folder) and clinical
columns -- and optionally ``matrix.csv`` (samples x genes, first column the ``patient`` id). Any modality may be
absent for a patient (no image, no transcriptome): :class:`models.fusion.estimators.FusionSurvival` masks it out.

Per fold of a patient-grouped K-fold (nothing of a test patient is seen in any fitted step):

* image: the skin package's pooled features (:meth:`SkinLesionPredictor.embed_batch`), reduced by a PCA fitted on
  the fold's training images;
* omics: :class:`medai.derm.modules.ModuleEigengenes` fitted on the fold's training transcriptomes;
* clinical: the named columns as they are (the fusion wrapper imputes, standardises and one-hot encodes in-fold).

Reported: the out-of-fold C-index of the fusion model, and the C-index of the same out-of-fold predictions with
only one modality kept per patient (the others masked) -- how each modality holds on its own.

``medai evaluate skin_derm_lesion_cls --data DIR --format prognosis --clinical age,crp --out F.json``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medai.derm.image import load_skin_image
from medai.derm.modules import ModuleEigengenes
from medai.errors import ConfigError

logger = logging.getLogger(__name__)


def read_prognosis_cohort(folder: Path, clinical: list[str]) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """``labels.csv`` (checked) and ``matrix.csv`` aligned to its patients (``None`` when there is none)."""
    folder = Path(folder)
    try:
        lab = pd.read_csv(folder / "labels.csv", dtype={"patient": str, "image": str})
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{folder}/labels.csv is unreadable: {exc}") from exc
    need = {"patient", "time", "event"} - set(lab.columns)
    if need:
        raise ConfigError(f"{folder}/labels.csv lacks columns {sorted(need)} (patient, time, event are required)")
    absent = [c for c in clinical if c not in lab.columns]
    if absent:
        raise ConfigError(f"clinical columns {absent} are not in {folder}/labels.csv")
    if lab["patient"].duplicated().any():
        raise ConfigError("labels.csv must have one row per patient for prognosis")
    t = pd.to_numeric(lab["time"], errors="coerce")
    if t.isna().any() or (t <= 0).any():
        raise ConfigError("follow-up times must be positive numbers (labels.csv column time)")
    lab["time"] = t.astype(float)
    lab["event"] = pd.to_numeric(lab["event"], errors="coerce").fillna(0).astype(bool)
    omics = None
    if (folder / "matrix.csv").is_file():
        m = pd.read_csv(folder / "matrix.csv", index_col=0)
        m.index = m.index.astype(str)
        omics = m.reindex(lab["patient"])  # patients without a transcriptome: all-NaN rows
    return lab, omics


def cv_multimodal_prognosis(
    folder: Path,
    package: Path | str,
    clinical: list[str] | None = None,
    n_folds: int = 5,
    n_pcs: int = 8,
    seed: int = 0,
    fusion_params: dict[str, Any] | None = None,
    module_params: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Patient-grouped K-fold fusion survival on image + clinical + omics (see the module docstring)."""
    from sklearn.decomposition import PCA
    from sklearn.model_selection import KFold
    from sksurv.metrics import concordance_index_censored
    from sksurv.util import Surv

    from medai.inference.predictor import Predictor
    from models.fusion.estimators import FusionSurvival

    clinical = list(clinical or [])
    lab, omics = read_prognosis_cohort(folder, clinical)
    n = len(lab)
    if lab["event"].sum() < 5:
        raise ConfigError(f"only {int(lab['event'].sum())} events: a prognosis model needs at least 5")
    has_img = lab["image"].notna().to_numpy() if "image" in lab.columns else np.zeros(n, bool)
    emb = None
    if has_img.any():
        pred = Predictor.from_package(package, saliency=False)
        pixels = [load_skin_image(Path(folder) / str(p)).pixels for p in lab.loc[has_img, "image"]]
        e = pred.embed_batch(pixels)
        emb = np.full((n, e.shape[1]), np.nan)
        emb[has_img] = e
    has_omics = omics.notna().all(axis=1).to_numpy() if omics is not None else np.zeros(n, bool)
    y = Surv.from_arrays(lab["event"].to_numpy(), lab["time"].to_numpy())
    risk = np.full(n, np.nan)
    single: dict[str, np.ndarray] = {}
    fold_modalities: list[dict[str, int]] = []
    folds = KFold(n_splits=min(n_folds, n), shuffle=True, random_state=seed)  # one row per patient
    for train, test in folds.split(np.arange(n)):
        cols: dict[str, pd.Series | np.ndarray] = {c: lab[c].to_numpy() for c in clinical}
        modalities: dict[str, list[str]] = {"clinical": list(clinical)} if clinical else {}
        if emb is not None and has_img[train].sum() >= 3:
            k = int(min(n_pcs, has_img[train].sum() - 1, emb.shape[1]))
            pca = PCA(k, random_state=seed).fit(emb[train][has_img[train]])
            pcs = np.full((n, k), np.nan)
            pcs[has_img] = pca.transform(emb[has_img])
            for j in range(k):
                cols[f"img_pc{j + 1}"] = pcs[:, j]
            modalities["image"] = [f"img_pc{j + 1}" for j in range(k)]
        if omics is not None and has_omics[train].sum() >= 5:
            mods = ModuleEigengenes(**(module_params or {})).fit(omics.to_numpy(float)[train][has_omics[train]])
            me = np.full((n, len(mods.feature_names_)), np.nan)
            me[has_omics] = mods.transform(omics.to_numpy(float)[has_omics])
            for j, name in enumerate(mods.feature_names_):
                cols[name] = me[:, j]
            modalities["omics"] = list(mods.feature_names_)
        if not modalities:
            raise ConfigError("no modality to learn from: name clinical columns, or add images or matrix.csv")
        X = pd.DataFrame(cols)
        params = {"max_epochs": 80, "n_members": 3, "seed": seed, "n_threads": 2, **(fusion_params or {})}
        model = FusionSurvival(modalities=modalities, **params).fit(X.iloc[train], y[train])
        Xt = X.iloc[test]
        keep = ~Xt[[c for cs in modalities.values() for c in cs]].isna().all(axis=1).to_numpy()
        r = np.full(len(test), np.nan)
        r[keep] = model.predict(Xt[keep])
        risk[test] = r
        for m, mcols in modalities.items():  # the same model with only modality m left
            only = Xt.copy()
            for other, ocols in modalities.items():
                if other != m:
                    only[ocols] = np.nan
            ok = ~only[mcols].isna().all(axis=1).to_numpy()
            arr = single.setdefault(m, np.full(n, np.nan))
            arr[test[ok]] = model.predict(only[ok])
        fold_modalities.append({m: len(c) for m, c in modalities.items()})
    ev, tm = lab["event"].to_numpy(), lab["time"].to_numpy()

    def cidx(s: np.ndarray) -> dict[str, Any]:
        ok = ~np.isnan(s)
        if ok.sum() < 2 or not ev[ok].any():
            return {"c_index": float("nan"), "n": int(ok.sum())}
        return {"c_index": float(concordance_index_censored(ev[ok], tm[ok], s[ok])[0]), "n": int(ok.sum())}

    return {
        "protocol": "patient-level K-fold; PCA of image embeddings, co-expression modules and the fusion survival "
        "model (imputation, scaling, encoding) fitted on the training patients of each fold only",
        "n": n,
        "n_events": int(ev.sum()),
        "modalities_present": {"image": int(has_img.sum()), "omics": int(has_omics.sum()),
                               "clinical": n if clinical else 0},
        "fusion": cidx(risk),
        "single_modality": {m: cidx(s) for m, s in single.items()},
        "features_per_fold": fold_modalities,
        "package": str(package),
    }
