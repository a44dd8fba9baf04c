"""End-diastole / end-systole selection: from the DICOM when it says, otherwise from the LV volume curve."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from medai.domain.study import Series


@dataclass(frozen=True)
class CardiacPhases:
    """Chosen ED/ES frames.

    Attributes:
        ed / es: frame indices into the cine's time axis.
        source: ``"lv_volume_curve"`` or ``"dicom"``.
    """

    ed: int
    es: int
    source: str = "lv_volume_curve"


#: ED (ES) candidates: frames whose LV volume is within this fraction of the curve's maximum (minimum). The
#: predictor re-segments them under its test-time augmentation and picks ED/ES among them on the refined volumes:
#: a frame whose one-pass volume dips by a basal slice must not become ES on that alone.
PHASE_CANDIDATE_MARGIN = 0.03
#: At most this many candidates per phase (the most extreme ones): each costs a frame under the augmentation.
PHASE_CANDIDATES_MAX = 2


def _declared_ok(declared: tuple[int | None, int | None], n: int) -> bool:
    ed_d, es_d = declared
    return ed_d is not None and es_d is not None and 0 <= ed_d < n and 0 <= es_d < n and ed_d != es_d


def phase_candidates(
    lv_volume_ml: Sequence[float], declared: tuple[int | None, int | None] = (None, None),
    margin: float = PHASE_CANDIDATE_MARGIN, limit: int = PHASE_CANDIDATES_MAX,
) -> tuple[list[int], list[int]]:
    """ED and ES candidate frames (ascending): the declared frames when the DICOM declares both, else the frames
    within ``margin`` of the LV curve's maximum (ED) and minimum (ES), the ``limit`` most extreme of each (ties:
    the earliest)."""
    v = np.asarray(lv_volume_ml, dtype=float)
    if v.size == 0:
        raise ValueError("empty LV volume curve")
    if _declared_ok(declared, len(v)):
        return [int(declared[0])], [int(declared[1])]  # type: ignore[arg-type]
    hi, lo = float(v.max()), float(v.min())
    ed = [i for i in np.argsort(-v, kind="stable") if v[i] >= hi - margin * abs(hi)][:limit]
    es = [i for i in np.argsort(v, kind="stable") if v[i] <= lo + margin * abs(lo)][:limit]
    return sorted(int(i) for i in ed), sorted(int(i) for i in es)


def select_phases(
    lv_volume_ml: Sequence[float], declared: tuple[int | None, int | None] = (None, None),
    among: tuple[Sequence[int], Sequence[int]] | None = None,
) -> CardiacPhases:
    """Pick ED (maximal LV volume) and ES (minimal LV volume), unless the DICOM declared them.

    Args:
        lv_volume_ml: LV blood-pool volume per frame (mL), length ``T``.
        declared: ``(ed, es)`` frame indices the DICOM declared (None where it did not).
        among: ``(ED candidates, ES candidates)`` (:func:`phase_candidates`): pick within those frames only.

    Returns:
        :class:`CardiacPhases`; ties go to the earliest frame.
    """
    v = np.asarray(lv_volume_ml, dtype=float)
    if v.size == 0:
        raise ValueError("empty LV volume curve")
    n = len(v)
    if _declared_ok(declared, n):
        return CardiacPhases(int(declared[0]), int(declared[1]), "dicom")  # type: ignore[arg-type]
    if among is not None:
        ed_c, es_c = (np.asarray(sorted(c), dtype=int) for c in among)
        if len(ed_c) and len(es_c):
            return CardiacPhases(int(ed_c[np.argmax(v[ed_c])]), int(es_c[np.argmin(v[es_c])]), "lv_volume_curve")
    return CardiacPhases(int(np.argmax(v)), int(np.argmin(v)), "lv_volume_curve")


def declared_phases(
    series: Series | Sequence[Series], sop_uids: Sequence[Sequence[str]] | None
) -> tuple[int | None, int | None]:
    """ED/ES frames declared in the DICOM (``CardiacCyclePosition`` = ``END_DIASTOLE`` / ``END_SYSTOLE``).

    Args:
        series: the cine series.
        sop_uids: ``source_sop_uids[t][z]`` of the built cine (maps instances to frame indices).

    Returns:
        ``(ed, es)`` frame indices, None where nothing is declared (the usual case for classic MR images).
    """
    if not sop_uids:
        return None, None
    frame_of = {uid: t for t, row in enumerate(sop_uids) for uid in row}
    found: dict[str, int] = {}
    for s in [series] if isinstance(series, Series) else list(series):
        for inst in s.instances:
            pos = str(inst.get("CardiacCyclePosition", "") or "").upper()
            t = frame_of.get(inst.SOPInstanceUID)
            if t is not None and pos in ("END_DIASTOLE", "END_SYSTOLE"):
                found.setdefault(pos, t)
    return found.get("END_DIASTOLE"), found.get("END_SYSTOLE")
