"""EMIDEC (MICCAI 2020) delayed-enhancement (LGE) short-axis MR adapter, and its case-level cross-validation folds.

Layout read (the 2-D PNG re-release of irehmanar/LV_Segmentation_MRI_Dataset_EMIDEC)::

    emidec/
      images/Case_XNNN_sliceKKK.png   LGE slice, 8-bit greyscale (256 x 256 in that release)
      labels/Case_XNNN_sliceKKK.png   mask, same name: 0 bg, 1 LV cavity, 2 healthy myocardium, 3 infarct, 4 MVO

``Case_N*`` are normal hearts (no infarct), ``Case_P*`` pathological (myocardial infarction). Slices of a case are
stacked by ``KKK`` (which, empirically, runs apex -> base; not a fact of the data). No pixel spacing, slice
thickness or orientation survives, so :attr:`SegCase.spacing_mm` is None.

Splits are made on cases (one case = one patient), never on slices: :func:`emidec_folds` gives deterministic,
N/P-stratified folds.

Licence CC BY-NC-SA 4.0 (non-commercial research). Cite: A. Lalande, Z. Chen, T. Decourselle et al., "Emidec: a
database usable for the automatic evaluation of myocardial infarction from delayed-enhancement cardiac MRI",
Data 2020, 5(4):89, doi:10.3390/data5040089.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from medai.datasets.base import SegCase
from medai.errors import ConfigError

logger = logging.getLogger(__name__)

#: EMIDEC label convention (also what the shipped ``heart_mr_lge_seg`` emits).
EMIDEC_LABELS: dict[str, int] = {"lv": 1, "myo": 2, "infarct": 3, "mvo": 4}
#: Labels that together form the myocardium (healthy + infarct + MVO).
MYOCARDIUM_LABELS: tuple[int, ...] = (2, 3, 4)
#: Labels that together form the infarct (infarct + MVO; MVO lies within the infarct).
INFARCT_LABELS: tuple[int, ...] = (3, 4)

#: Seed and number of the case-level cross-validation folds (fixed: the recipes and packages refer to them).
FOLD_SEED = 2020
N_FOLDS = 5

_NAME = re.compile(r"^(Case_([A-Z])\d+)_slice(\d+)\.png$")

CITATION = (
    'A. Lalande, Z. Chen, T. Decourselle et al., "Emidec: a database usable for the automatic evaluation of '
    'myocardial infarction from delayed-enhancement cardiac MRI", Data 2020, 5(4):89, doi:10.3390/data5040089.'
)
LICENCE = "CC BY-NC-SA 4.0"


def case_group(case_id: str) -> str:
    """``"N"`` (normal) or ``"P"`` (pathological, infarct) from an EMIDEC case id such as ``Case_P012``."""
    m = re.match(r"^Case_([NP])", case_id)
    if not m:
        raise ConfigError(f"{case_id!r} is not an EMIDEC case id (Case_N### or Case_P###)")
    return m.group(1)


def _index(root: Path) -> dict[str, list[tuple[int, str]]]:
    images = Path(root) / "images"
    if not images.is_dir() or not (Path(root) / "labels").is_dir():
        raise ConfigError(f"{root} is not an EMIDEC folder: it needs images/ and labels/ (Case_XNNN_sliceKKK.png)")
    out: dict[str, list[tuple[int, str]]] = {}
    for p in images.iterdir():
        m = _NAME.match(p.name)
        if m:
            out.setdefault(m.group(1), []).append((int(m.group(3)), p.name))
    return {k: sorted(v) for k, v in sorted(out.items())}


def emidec_case_ids(root: Path) -> list[str]:
    """The case ids of an EMIDEC folder, sorted (``Case_N006``, ..., ``Case_P099``)."""
    return list(_index(root))


def _read_png(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as img:
        if img.mode not in ("L", "I", "I;16", "P"):
            img = img.convert("L")
        return np.asarray(img)


def read_emidec_case(root: Path, case_id: str) -> SegCase:
    """One EMIDEC case: its slices stacked by slice number.

    Args:
        root: the ``emidec`` folder.
        case_id: e.g. ``"Case_P012"``.

    Returns:
        :class:`SegCase` with ``image`` ``(Z, Y, X)`` float32 (the PNG grey levels 0-255), ``label`` ``(Z, Y, X)``
        uint8 (:data:`EMIDEC_LABELS`), ``patient_id == case_id``, no spacing, and ``meta`` ``group`` (N/P),
        ``slices`` (the KKK numbers) and ``sources`` (image paths).

    Raises:
        ConfigError: the case is absent, a slice has no mask, or slice sizes differ.
    """
    root = Path(root)
    slices = _index(root).get(case_id)
    if not slices:
        raise ConfigError(f"no slices of {case_id} in {root / 'images'}")
    images, labels = [], []
    for _, name in slices:
        lab_path = root / "labels" / name
        if not lab_path.is_file():
            raise ConfigError(f"{case_id}: {name} has no mask in {root / 'labels'}")
        images.append(_read_png(root / "images" / name).astype(np.float32))
        labels.append(_read_png(lab_path).astype(np.uint8))
    if len({a.shape for a in images + labels}) != 1:
        raise ConfigError(f"{case_id}: slices and masks differ in size: {sorted({a.shape for a in images + labels})}")
    label = np.stack(labels)
    if int(label.max()) > max(EMIDEC_LABELS.values()):
        raise ConfigError(f"{case_id}: mask values {sorted(np.unique(label).tolist())} outside 0-4")
    return SegCase(
        case_id=case_id,
        patient_id=case_id,
        image=np.stack(images),
        label=label,
        labels=dict(EMIDEC_LABELS),
        meta={"group": case_group(case_id), "slices": [k for k, _ in slices],
              "sources": [str(root / "images" / n) for _, n in slices]},
    )


def load_emidec(root: Path, cases: Iterable[str] | None = None) -> list[SegCase]:
    """All (or the listed) cases of an EMIDEC folder, sorted by case id.

    Raises:
        ConfigError: a listed case is not in the folder.
    """
    known = emidec_case_ids(root)
    wanted = known if cases is None else sorted(set(cases))
    missing = sorted(set(wanted) - set(known))
    if missing:
        raise ConfigError(f"cases not in {root}: {', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''}")
    return [read_emidec_case(root, c) for c in wanted]


def emidec_folds(case_ids: Sequence[str], n_folds: int = N_FOLDS, seed: int = FOLD_SEED) -> dict[str, int]:
    """Deterministic case-level folds, stratified by group (N / P).

    Within each group the sorted ids are shuffled with ``seed`` and dealt round-robin, the P deal continuing where
    the N deal stopped, so fold sizes differ by at most one and each fold holds N and P cases in the data's ratio.

    Args:
        case_ids: EMIDEC case ids (``Case_N###`` / ``Case_P###``).
        n_folds: number of folds.
        seed: shuffling seed (fixed default :data:`FOLD_SEED`; the shipped package records it).

    Returns:
        case id -> fold index in ``0 .. n_folds - 1``.
    """
    if n_folds < 2:
        raise ValueError("n_folds must be >= 2")
    rng = np.random.default_rng(seed)
    out: dict[str, int] = {}
    start = 0
    for group in ("N", "P"):
        ids = sorted(c for c in set(case_ids) if case_group(c) == group)
        order = rng.permutation(len(ids))
        for i, j in enumerate(order):
            out[ids[j]] = (start + i) % n_folds
        start = (start + len(ids)) % n_folds
    return dict(sorted(out.items()))


def fold_split(
    case_ids: Sequence[str], fold: int, n_folds: int = N_FOLDS, seed: int = FOLD_SEED,
    exclude_folds: Sequence[int] = (),
) -> tuple[list[str], list[str]]:
    """``(train, held_out)`` case ids for held-out ``fold``; cases of ``exclude_folds`` are in neither.

    Raises:
        ValueError: ``fold`` out of range, or held out and excluded at once.
    """
    if not 0 <= fold < n_folds:
        raise ValueError(f"fold must be in 0..{n_folds - 1}, got {fold}")
    if fold in exclude_folds:
        raise ValueError(f"fold {fold} cannot be held out and excluded")
    folds = emidec_folds(case_ids, n_folds, seed)
    train = sorted(c for c, f in folds.items() if f != fold and f not in exclude_folds)
    held = sorted(c for c, f in folds.items() if f == fold)
    return train, held
