"""Samples for the coverage classifier and the segmentation-quality regressors, made through the predictors.

Segmentation quality: each labelled stack is segmented by the cine model as-is and with one simulated artefact
(random class and strength, on ~75 % of its slices), and each structure's features are paired with its real
Dice. Coverage: the clean segmentation of a stack, with 0-2 of its basal or apical LV slices removed (the
reference labels say where the LV ends).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from medai.datasets.base import SegCase
from medai.quality.features import (
    END_CHANNELS,
    END_INPUT_SIZE,
    Structures,
    base_first,
    coverage_features,
    end_slice_inputs,
    seg_features,
)
from medai.quality.simulate import ARTEFACTS, corrupt

#: the structures whose Dice is predicted, by their names in the cine model's labels
STRUCTURES = ("lv", "myo", "rv")


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice of two boolean masks (1 when both are empty)."""
    s = a.sum() + b.sum()
    return 1.0 if s == 0 else float(2 * (a & b).sum() / s)


def corrupted_stack(image: np.ndarray, rng: np.random.Generator, kind: str | None, strength: float,
                    share: float = 0.75) -> np.ndarray:
    """The stack with artefact ``kind`` at ``strength`` on each slice with probability ``share`` (None: clean)."""
    out = []
    for z in image:
        artefacts = (kind,) if kind is not None and rng.random() < share else ()
        x, _ = corrupt(z, rng, artefacts=artefacts, strength=strength, allow_wrap=False)
        out.append(x)
    return np.stack(out)


def segment_case(cine: Any, quality: Any, case: SegCase, image: np.ndarray) -> dict[str, Any]:
    """Segment ``image`` (the case's stack or a corrupted copy): labels, slice stats, artefact score."""
    vol = case.to_volume().with_array(np.asarray(image, dtype=np.float32))
    unc: dict[str, np.ndarray] = {}
    lm = cine.segment_volume(vol, resample=case.spacing_mm is not None, uncertainty=unc)
    stats = unc.get("slice_stats")
    art = quality.score_slices(list(image)).presence.max(0) if quality is not None else None
    return {"labels": lm.volume.array, "stats": stats[0] if stats is not None else None, "artefact": art}


def seg_quality_rows(cine: Any, quality: Any, cases: Iterable[SegCase], variants: int, seed: int,
                     cine_by_patient: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """One row per (case, variant, structure): ``features``, ``dice`` (real), case / variant / artefact ids.

    ``cine_by_patient``: patient id -> the cine predictor that segments that patient (out-of-fold packages of the
    cine CV); ``cine`` segments the others."""
    values = cine.config.labels
    s = Structures(lv=values["lv"], myo=values["myo"], rv=values.get("rv"))
    rows = []
    for ci, case in enumerate(cases):
        if case.label is None:
            continue
        rng = np.random.default_rng(seed * 7919 + ci)
        zs = list(case.label_slices) if case.label_slices is not None else list(range(len(case.image)))
        for v in range(variants):
            kind = None if v == 0 else str(ARTEFACTS[int(rng.integers(0, len(ARTEFACTS)))])
            strength = float(rng.uniform(0.3, 1.0)) if kind else 0.0
            img = corrupted_stack(case.image, rng, kind, strength) if kind else case.image
            seg = segment_case((cine_by_patient or {}).get(case.patient_id, cine), quality, case, img)
            pred = seg["labels"]
            for name in STRUCTURES:
                if name not in values or name not in case.labels:
                    continue
                ref = case.label[zs] == case.labels[name]
                if not ref.any():
                    continue
                spacing = case.spacing_mm or (1.0, 1.0, 1.0)
                f = seg_features(pred, values[name], spacing, seg["stats"], s, seg["artefact"])
                predicted = None
                if getattr(quality, "seg_models", None):
                    predicted = quality.predicted_dice(pred, spacing, seg["stats"], s, {name: values[name]},
                                                       seg["artefact"]).get(name)
                rows.append({"predicted": predicted, "case": case.case_id, "patient": case.patient_id,
                             "variant": v, "artefact": kind,
                             "strength": strength, "structure": name, "features": f.tolist(),
                             "dice": dice(pred[zs] == values[name], ref)})
    return rows


def coverage_rows(cine: Any, cases: Iterable[SegCase], quality: Any = None, with_inputs: bool = False,
                  cine_by_patient: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """One row per (patient, truncation): features of both ends and whether basal / apical LV slices are missing.

    The ED and ES stacks of a patient are segmented as they are and cut at the same positions; the ED reference
    labels say where the LV ends; ``<end>_depth`` is how many LV slices were removed at that end (0: complete).
    With a ``quality`` predictor that has a coverage model, each row also holds its
    probabilities from the images and segmentation (``p_basal``, ``p_apical``) and from the segmentation alone
    (``p_basal_seg_only``, ``p_apical_seg_only``). ``with_inputs``: each row also holds the end-slice CNN's inputs
    (``input_basal``, ``input_apical``: ``(4, S, S)`` arrays, zeros for an end without heart).
    ``cine_by_patient``: patient id -> the cine predictor that segments that patient (as in
    :func:`seg_quality_rows`); ``cine`` segments the others.
    """
    from medai.datasets.base import CardiacPhase

    values = cine.config.labels
    s = Structures(lv=values["lv"], myo=values["myo"], rv=values.get("rv"))
    by_patient: dict[str, dict[str, SegCase]] = {}
    for c in cases:
        if c.label is not None and c.phase in (CardiacPhase.ED, CardiacPhase.ES):
            by_patient.setdefault(c.patient_id, {})[c.phase.value] = c
    rows = []
    for pid, phases in sorted(by_patient.items()):
        case = phases.get("ED")
        if case is None:
            continue
        seg_model = (cine_by_patient or {}).get(pid, cine)
        pred = segment_case(seg_model, None, case, case.image)["labels"]
        es_case = phases.get("ES")
        same_grid = es_case is not None and es_case.image.shape == case.image.shape
        pred_es = segment_case(seg_model, None, es_case, es_case.image)["labels"] if same_grid else None
        image_es = es_case.image if same_grid else None
        ref = np.zeros_like(case.label)
        for name in ("lv", "myo", "rv"):
            if name in case.labels and name in values:
                ref[case.label == case.labels[name]] = values[name]
        z = len(ref)
        heart = ((ref == s.lv) | (ref == s.myo)).reshape(z, -1).any(1)
        if heart.sum() < 3:
            continue
        order = np.arange(z) if base_first(ref, s) else np.arange(z)[::-1]
        lv_idx = [i for i, k in enumerate(order) if heart[k]]
        first, last = lv_idx[0], lv_idx[-1]  # positions along base -> apex
        cuts = [(0, 0)]
        cuts += [(first + k, 0) for k in (1, 2)]          # basal LV slices removed
        cuts += [(0, (z - 1 - last) + k) for k in (1, 2)]  # apical LV slices removed
        if first > 0:
            cuts.append((first, 0))                        # only the slices beyond the base removed: still covered
        if last < z - 1:
            cuts.append((0, z - 1 - last))
        spacing = case.spacing_mm
        for cut_b, cut_a in cuts:
            keep = order[cut_b : z - cut_a]
            if len(keep) < 3:
                continue
            keep = np.sort(keep)
            es = pred_es[keep] if pred_es is not None else None
            images = (case.image[keep], image_es[keep] if image_es is not None else None)
            feats = coverage_features(pred[keep], s, es, spacing)
            row: dict[str, Any] = {"p_basal": None, "p_apical": None}
            if getattr(quality, "coverage_model", None):
                probs = quality.coverage(pred[keep], s, es, spacing, images=images)
                seg_only = quality.coverage(pred[keep], s, es, spacing)
                row = {"p_basal": probs["basal"], "p_apical": probs["apical"],
                       "p_basal_seg_only": seg_only["basal"], "p_apical_seg_only": seg_only["apical"]}
            row.update({"case": case.case_id, "patient": pid, "cut_basal": int(cut_b),
                        "cut_apical": int(cut_a), "basal_missing": bool(cut_b > first),
                        "apical_missing": bool(cut_a > z - 1 - last),
                        "basal_depth": int(max(0, cut_b - first)), "apical_depth": int(max(0, cut_a - (z - 1 - last))),
                        "basal": feats["basal"].tolist(), "apical": feats["apical"].tolist()})
            if with_inputs:
                ins = end_slice_inputs(images[0], images[1], pred[keep], s, spacing)
                for end in ("basal", "apical"):
                    row[f"input_{end}"] = (ins[end] if ins[end] is not None else
                                           np.zeros((len(END_CHANNELS), END_INPUT_SIZE, END_INPUT_SIZE), np.float32))
            rows.append(row)
    return rows
