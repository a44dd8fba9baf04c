"""The seven HAM10000 / ISIC 2018 diagnosis classes, coded.

SNOMED CT codes are given where they were checked against published value sets (melanoma of skin 93655004, basal
cell carcinoma of skin 254701007, actinic keratosis 201101007 -- DICOM CID 4405). The grouped HAM10000 classes
(``bkl`` = seborrhoeic keratosis + solar lentigo + lichen-planus-like keratosis, ``vasc`` = angiomas, angiokeratomas,
pyogenic granulomas and haemorrhage) have no single SNOMED concept, and ``nv``/``df`` codes could not be verified
offline; these carry local ``99MEDAI`` codes rather than guessed SNOMED ones.
"""

from __future__ import annotations

from enum import StrEnum

from medai.domain.codes import Code


class LesionClass(StrEnum):
    """HAM10000 ``dx`` values, in the model's output order."""

    AKIEC = "akiec"
    BCC = "bcc"
    BKL = "bkl"
    DF = "df"
    MEL = "mel"
    NV = "nv"
    VASC = "vasc"


#: classes in output order (index = logit position)
CLASS_ORDER: tuple[LesionClass, ...] = tuple(LesionClass)

CLASS_CODES: dict[LesionClass, Code] = {
    LesionClass.AKIEC: Code(value="201101007", scheme="SCT", meaning="Actinic keratosis"),
    LesionClass.BCC: Code(value="254701007", scheme="SCT", meaning="Basal cell carcinoma of skin"),
    LesionClass.BKL: Code(value="derm-bkl", scheme="99MEDAI", meaning="Benign keratosis-like lesion"),
    LesionClass.DF: Code(value="derm-df", scheme="99MEDAI", meaning="Dermatofibroma"),
    LesionClass.MEL: Code(value="93655004", scheme="SCT", meaning="Malignant melanoma of skin"),
    LesionClass.NV: Code(value="derm-nv", scheme="99MEDAI", meaning="Melanocytic nevus"),
    LesionClass.VASC: Code(value="derm-vasc", scheme="99MEDAI", meaning="Vascular lesion of skin"),
}

#: classes summed into ``malignant_probability`` (akiec includes intra-epithelial carcinoma / Bowen's disease)
MALIGNANT: frozenset[LesionClass] = frozenset({LesionClass.MEL, LesionClass.BCC, LesionClass.AKIEC})


def label_table(names: list[str] | tuple[str, ...] | None = None) -> list[dict[str, object]]:
    """Coded label table for a package's ``metadata.json`` (``index``, ``name``, ``code``, ``malignant``)."""
    names = list(names) if names is not None else [c.value for c in CLASS_ORDER]
    table: list[dict[str, object]] = []
    for i, n in enumerate(names):
        code = CLASS_CODES.get(LesionClass(n)) if n in LesionClass._value2member_map_ else None
        table.append(
            {
                "index": i,
                "name": n,
                "code": code.model_dump() if code else None,
                "malignant": n in {m.value for m in MALIGNANT},
            }
        )
    return table
