"""Published adult reference ranges for cine CMR measurements.

Source: Kawel-Boehm N, Maceira A, Valsangiacomo-Buechel ER, et al. "Normal values for cardiovascular magnetic
resonance in adults and children." J Cardiovasc Magn Reson 2015;17:29 -- pooled weighted means of adult SSFP
studies, range = mean +/- 2 SD, by sex (LV EDV 160+/-27 / 132+/-23 mL, ESV 54+/-14 / 44+/-11 mL, SV 108+/-18 /
87+/-15 mL, EF 67+/-5 / 67+/-5 %, mass 134+/-21 / 98+/-21 g; indexed EDV 81+/-12 / 76+/-10, ESV 26+/-6 / 24+/-5 mL/m2,
mass 67+/-9 / 61+/-10 g/m2; men / women). These values are carried forward in the 2020 update (Kawel-Boehm et al.,
JCMR 2020;22:87). Convention: papillary muscles and trabeculae counted as blood pool (in the volumes), not in the
mass -- what a cavity/myocardium segmentation measures.

RV ranges are not included: we could not verify the published figures when this table was written, so RV values
are reported with flag ``unknown`` rather than against an unverified range.
"""

from __future__ import annotations

from medai.domain.measurement import ReferenceRange

SOURCE = (
    "Kawel-Boehm et al., J Cardiovasc Magn Reson 2015;17:29 (adult SSFP, mean +/- 2 SD; carried into the 2020 "
    "update, JCMR 2020;22:87); papillary muscles in the blood pool, excluded from mass"
)

#: name -> {"M": (mean, sd), "F": (mean, sd)}
_MEAN_SD: dict[str, dict[str, tuple[float, float]]] = {
    "lv_edv": {"M": (160, 27), "F": (132, 23)},
    "lv_esv": {"M": (54, 14), "F": (44, 11)},
    "lv_sv": {"M": (108, 18), "F": (87, 15)},
    "lv_ef": {"M": (67, 5), "F": (67, 5)},
    "lv_mass": {"M": (134, 21), "F": (98, 21)},
    "lv_edvi": {"M": (81, 12), "F": (76, 10)},
    "lv_esvi": {"M": (26, 6), "F": (24, 5)},
    "lv_massi": {"M": (67, 9), "F": (61, 10)},
}

_POP = {"M": "adult male", "F": "adult female"}


def reference_range(name: str, sex: str | None) -> ReferenceRange | None:
    """The adult reference range of measurement ``name`` for ``sex`` (``"M"``/``"F"``; else the union of both).

    Returns:
        The range, or None when no verified published range is tabulated for ``name``.
    """
    table = _MEAN_SD.get(name)
    if table is None:
        return None
    s = (sex or "").upper()[:1]
    if s in table:
        mean, sd = table[s]
        return ReferenceRange(low=round(mean - 2 * sd, 1), high=round(mean + 2 * sd, 1), population=_POP[s],
                              source=SOURCE)
    lows = [m - 2 * sd for m, sd in table.values()]
    highs = [m + 2 * sd for m, sd in table.values()]
    return ReferenceRange(low=round(min(lows), 1), high=round(max(highs), 1),
                          population="adult, sex unknown (widest of the male and female ranges)", source=SOURCE)
