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


def select_phases(
    lv_volume_ml: Sequence[float], declared: tuple[int | None, int | None] = (None, None)
) -> CardiacPhases:
    """Pick ED (maximal LV volume) and ES (minimal LV volume), unless the DICOM declared them.

    Args:
        lv_volume_ml: LV blood-pool volume per frame (mL), length ``T``.
        declared: ``(ed, es)`` frame indices the DICOM declared (None where it did not).

    Returns:
        :class:`CardiacPhases`; ties go to the earliest frame.
    """
    v = np.asarray(lv_volume_ml, dtype=float)
    if v.size == 0:
        raise ValueError("empty LV volume curve")
    ed_d, es_d = declared
    n = len(v)
    if ed_d is not None and es_d is not None and 0 <= ed_d < n and 0 <= es_d < n and ed_d != es_d:
        return CardiacPhases(int(ed_d), int(es_d), "dicom")
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
