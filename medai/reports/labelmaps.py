"""``labels.npz``: the study report's label maps in source geometry, for viewers and reader corrections.

The DICOM SEG is the standard rendering; this file is its lossless working twin: each analysis' label maps with
their label tables, affines, frame times and the SOP Instance UID of the source image of every ``(t, z)`` plane,
so a viewer can lay a plane over the image it came from and a corrected map can be measured again by the same code.
Keys are ``<kind>/<role>/<field>``; ``meta.json`` (a JSON string) lists them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from medai.domain.codes import Code
from medai.domain.volume import LabelMap, SegmentLabel, Volume
from medai.errors import InputValidationError

FORMAT = "medai-labelmaps/1"


def _sops(volume: Volume) -> np.ndarray:
    sops = volume.source_sop_uids
    if sops is None:
        return np.zeros((0,), dtype="U1")
    return np.asarray(sops, dtype=str)


def write_labelmaps(maps: Mapping[str, Mapping[str, LabelMap]], path: Path | str,
                    extras: Mapping[str, Mapping[str, Any]] | None = None) -> Path:
    """Write ``{kind: {role: LabelMap}}`` (plus per-kind JSON ``extras``, e.g. ED/ES frames) to ``path``."""
    arrays: dict[str, np.ndarray] = {}
    meta: dict[str, Any] = {"format": FORMAT, "kinds": {}}
    for kind, roles in maps.items():
        meta["kinds"][kind] = {"roles": {}, "extras": dict((extras or {}).get(kind, {}))}
        for role, lm in roles.items():
            key = f"{kind}/{role}"
            arrays[f"{key}/array"] = np.ascontiguousarray(lm.volume.array, dtype=np.uint8)  # no copy when uint8
            arrays[f"{key}/affine"] = lm.volume.affine
            arrays[f"{key}/sops"] = _sops(lm.volume)
            meta["kinds"][kind]["roles"][role] = {
                "shape": list(lm.volume.array.shape),
                "frame_of_reference_uid": lm.volume.frame_of_reference_uid,
                "frame_times_ms": list(lm.volume.frame_times_ms) if lm.volume.frame_times_ms else None,
                "source_series_uid": lm.volume.source_series_uid,
                "labels": [{**asdict(lab), "property_category": lab.property_category.model_dump(),
                            "property_type": lab.property_type.model_dump(), "color": list(lab.color)}
                           for lab in lm.labels],
            }
    arrays["meta.json"] = np.asarray(json.dumps(meta))
    path = Path(path)
    with path.open("wb") as fh:
        np.savez_compressed(fh, **arrays)
    return path


def read_meta(path: Path | str) -> dict[str, Any]:
    """The ``meta.json`` of a labels file (kinds, roles, shapes, label tables, extras)."""
    with np.load(path, allow_pickle=False) as z:
        return json.loads(str(z["meta.json"]))


def read_labelmap(path: Path | str, kind: str, role: str) -> LabelMap:
    """One label map back from ``labels.npz``.

    Raises:
        InputValidationError: the file holds no such kind/role (the message lists what it holds).
    """
    meta = read_meta(path)
    info = meta["kinds"].get(kind, {}).get("roles", {}).get(role)
    if info is None:
        have = [f"{k}/{r}" for k, v in meta["kinds"].items() for r in v["roles"]]
        raise InputValidationError(f"the report has no {kind}/{role} label map; it has: {', '.join(have) or 'none'}")
    key = f"{kind}/{role}"
    with np.load(path, allow_pickle=False) as z:
        arr, aff, sops = z[f"{key}/array"], z[f"{key}/affine"], z[f"{key}/sops"]
    return labelmap_like(arr, aff, sops, info)


def labelmap_like(array: np.ndarray, affine: np.ndarray, sops: np.ndarray, info: Mapping[str, Any]) -> LabelMap:
    """A :class:`LabelMap` of ``array`` with the geometry and label table described by ``info``."""
    labels = tuple(SegmentLabel(value=int(lab["value"]), name=lab["name"],
                                property_category=Code(**lab["property_category"]),
                                property_type=Code(**lab["property_type"]), color=tuple(lab["color"]))
                   for lab in info["labels"])
    sop_t = tuple(tuple(str(x) for x in row) for row in sops) if sops.ndim == 2 else \
        (tuple(str(x) for x in sops),) if sops.size else None
    times = tuple(info["frame_times_ms"]) if info.get("frame_times_ms") else None
    vol = Volume(array=np.asarray(array, dtype=np.uint8), affine=np.asarray(affine, dtype=float),
                 frame_of_reference_uid=info.get("frame_of_reference_uid", ""), frame_times_ms=times,
                 source_series_uid=info.get("source_series_uid", ""), source_sop_uids=sop_t)
    return LabelMap(volume=vol, labels=labels)


def read_array(path: Path | str, kind: str, role: str) -> np.ndarray:
    """Only the label array (uint8) of one kind/role."""
    with np.load(path, allow_pickle=False) as z:
        key = f"{kind}/{role}/array"
        if key not in z.files:
            raise InputValidationError(f"the report has no {kind}/{role} label map")
        return z[key]


def read_sops(path: Path | str, kind: str, role: str) -> np.ndarray:
    """The source SOP Instance UID of every plane of one label map (``(T, Z)`` or ``(Z,)``)."""
    with np.load(path, allow_pickle=False) as z:
        return z[f"{kind}/{role}/sops"]


def apply_planes(array: np.ndarray, planes: Sequence[tuple[tuple[int, ...], np.ndarray]],
                 allowed: set[int]) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """A copy of ``array`` with whole planes replaced; returns it and a description of each change.

    Args:
        array: ``(T, Z, Y, X)`` or ``(Z, Y, X)`` label array.
        planes: ``(index, plane)`` pairs: ``index`` is ``(t, z)`` or ``(z,)``, ``plane`` a ``(Y, X)`` array.
        allowed: label values a plane may hold (0 and the label table's values).

    Raises:
        InputValidationError: an index out of range, a plane of the wrong shape, or an unknown label value.
    """
    out = array.copy()
    lead = array.shape[:-2]
    changes = []
    for idx, plane in planes:
        if len(idx) != len(lead) or any(not 0 <= i < n for i, n in zip(idx, lead, strict=True)):
            raise InputValidationError(f"plane index {list(idx)} is outside the label map's {list(lead)} planes")
        if plane.shape != array.shape[-2:]:
            raise InputValidationError(f"plane {list(idx)} is {list(plane.shape)}; the label map's planes are "
                                       f"{list(array.shape[-2:])}")
        bad = set(np.unique(plane).tolist()) - allowed
        if bad:
            raise InputValidationError(f"plane {list(idx)} holds label values {sorted(bad)} that the label table "
                                       f"does not define ({sorted(allowed)})")
        before = out[idx]
        changed = before != plane
        changes.append({"plane": list(idx), "pixels_changed": int(changed.sum()),
                        "by_label": {str(v): int((plane[changed] == v).sum()) - int((before[changed] == v).sum())
                                     for v in sorted(allowed) if v}})
        out[idx] = plane
    return out, changes
