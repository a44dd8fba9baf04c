"""Cohort adapters: the official releases of the stroke and cardiovascular cohorts, mapped onto typed specs.

Each adapter reads the file(s) of one official release and returns a :class:`Cohort`: factors validated against
its :class:`~medai.risk.spec.CohortSpec`, the outcome (structured ``(event, time)`` array for survival, 0/1 for
fixed-horizon classification), grouping by site where the data has one, subgroup columns (sex, age band,
comorbidities) and reference predictions shipped with the data (IST ``EXPD6``...). :func:`load_csv` maps any
hospital CSV onto a spec.

Outcome names (``outcome=``) per cohort are listed in :data:`OUTCOMES`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medai.errors import ConfigError, InputValidationError
from medai.risk.spec import CohortSpec, FeatureSpec, FeatureType

logger = logging.getLogger(__name__)

N, I, B, C = FeatureType.NUMERIC, FeatureType.INTEGER, FeatureType.BINARY, FeatureType.CATEGORICAL  # noqa: E741 - short type aliases for the spec tables
DAYS_PER_MONTH = 365.25 / 12


@dataclass
class Cohort:
    """A cohort ready for modelling.

    Attributes:
        name: cohort name.
        outcome: outcome name (see :data:`OUTCOMES`).
        kind: ``"survival"`` or ``"binary"``.
        spec: the factor specification (model input contract).
        X: (n, n_factors) validated factors, spec column order; float for numeric/binary, str for categorical.
        y: survival -- structured array ``[("event", bool), ("time", float)]`` (time in days);
            binary -- int array of 0/1.
        groups: site / study of each row (for grouped splits), or None.
        subgroups: (n, k) columns used for subgroup metrics (``sex``, ``age_band``, comorbidity flags).
        reference: the data's own predicted risks for comparison (e.g. ``{"EXPD6": array}``).
        horizons: clinically used horizons (days) for survival outcomes.
        time_unit: unit of ``y["time"]`` (always ``"d"``).
        problems: data problems found while loading (cells set to missing), as validation details.
        extra: other outcome columns (e.g. the competing-risks status of IST).
    """

    name: str
    outcome: str
    kind: str
    spec: CohortSpec
    X: pd.DataFrame
    y: np.ndarray
    groups: np.ndarray | None = None
    subgroups: pd.DataFrame = field(default_factory=pd.DataFrame)
    reference: dict[str, np.ndarray] = field(default_factory=dict)
    horizons: list[float] = field(default_factory=list)
    time_unit: str = "d"
    problems: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.X)

    def subset(self, idx: np.ndarray) -> Cohort:
        """Rows ``idx`` (integer positions) of this cohort."""
        return Cohort(
            name=self.name,
            outcome=self.outcome,
            kind=self.kind,
            spec=self.spec,
            X=self.X.iloc[idx].reset_index(drop=True),
            y=self.y[idx],
            groups=None if self.groups is None else self.groups[idx],
            subgroups=self.subgroups.iloc[idx].reset_index(drop=True),
            reference={k: v[idx] for k, v in self.reference.items()},
            horizons=list(self.horizons),
            time_unit=self.time_unit,
            problems=self.problems,
            extra={k: v[idx] for k, v in self.extra.items()},
        )


def surv_y(event: Any, time: Any) -> np.ndarray:
    """Structured survival outcome ``[("event", bool), ("time", float days)]``."""
    y = np.empty(len(event), dtype=[("event", bool), ("time", float)])
    y["event"] = np.asarray(event).astype(bool)
    y["time"] = np.asarray(time, dtype=float)
    return y


def age_band(age: Any) -> np.ndarray:
    """Age bands ``<65``, ``65-79``, ``>=80`` (years); ``unknown`` when missing."""
    a = pd.to_numeric(pd.Series(np.asarray(age)), errors="coerce")
    out = np.where(a < 65, "<65", np.where(a < 80, "65-79", ">=80"))
    return np.where(a.isna(), "unknown", out).astype(object)


def _f(
    name: str,
    type_: FeatureType,
    desc: str,
    unit: str | None = None,
    lo: float | None = None,
    hi: float | None = None,
    cats: list[str] | None = None,
    missing: list[Any] | None = None,
    required: bool = False,
) -> FeatureSpec:
    return FeatureSpec(
        name=name,
        type=type_,
        unit=unit,
        minimum=lo,
        maximum=hi,
        categories=cats,
        missing_codes=missing or [],
        required=required,
        description=desc,
    )


# --------------------------------------------------------------------------------------------------- IST (stroke)
_YN = ["Y", "N"]
_YNC = ["Y", "N", "C"]
_DEFICITS = {
    "RDEF1": "face deficit",
    "RDEF2": "arm/hand deficit",
    "RDEF3": "leg/foot deficit",
    "RDEF4": "dysphasia",
    "RDEF5": "hemianopia",
    "RDEF6": "visuospatial disorder",
    "RDEF7": "brainstem/cerebellar signs",
    "RDEF8": "other deficit",
}
IST_COUNTRIES = [
    "ARGE",
    "AUSL",
    "AUST",
    "BELG",
    "BRAS",
    "CANA",
    "CHIL",
    "CZEC",
    "DENM",
    "EIRE",
    "FINL",
    "FRAN",
    "GERM",
    "GREE",
    "HONG",
    "HUNG",
    "INDI",
    "INDO",
    "ISRA",
    "ITAL",
    "JAPA",
    "MALA",
    "NETH",
    "NEW",
    "NORW",
    "POLA",
    "PORT",
    "ROMA",
    "SING",
    "SLOK",
    "SLOV",
    "SOUT",
    "SPAI",
    "SRI",
    "SWED",
    "SWIT",
    "THAI",
    "TURK",
    "UK",
    "USA",
    "SLOVAK",
    "NZ",
]

IST_SPEC = CohortSpec(
    name="ist",
    description="International Stroke Trial: factors recorded at randomisation (baseline only; no follow-up data).",
    citation="Sandercock P et al. The International Stroke Trial database. Trials 2011;12:101. doi:10.7488/ds/104",
    licence="ODC-By 1.0",
    features=[
        _f("AGE", I, "age at randomisation", "a", 16, 110, required=True),
        _f("SEX", C, "sex (M/F)", cats=["M", "F"], required=True),
        _f("RDELAY", N, "delay between stroke onset and randomisation", "h", 0, 48, required=True),
        _f(
            "RCONSC",
            C,
            "conscious state at randomisation (F fully alert, D drowsy, U unconscious)",
            cats=["F", "D", "U"],
            required=True,
        ),
        _f("RSLEEP", C, "symptoms noted on waking", cats=_YN),
        _f("RATRIAL", C, "atrial fibrillation", cats=_YN),
        _f("RCT", C, "CT before randomisation", cats=_YN),
        _f("RVISINF", C, "infarct visible on CT", cats=_YN),
        _f("RHEP24", C, "heparin within 24 h before randomisation", cats=_YN),
        _f("RASP3", C, "aspirin within 3 days before randomisation", cats=_YN),
        _f("RSBP", N, "systolic blood pressure at randomisation", "mm[Hg]", 50, 300, required=True),
        *[_f(k, C, f"{v} (Y/N/C = can't assess)", cats=_YNC) for k, v in _DEFICITS.items()],
        _f(
            "STYPE",
            C,
            "stroke subtype (Oxfordshire: TACS/PACS/POCS/LACS/OTH)",
            cats=["TACS", "PACS", "POCS", "LACS", "OTH"],
            required=True,
        ),
        _f("RXASP", C, "trial aspirin allocated", cats=_YN),
        _f("RXHEP", C, "trial heparin allocated (M medium, L low, N none; pilot H coded as M)", cats=["M", "L", "N"]),
        _f("COUNTRY", C, "country of the randomising hospital (site effect; optional)"),
    ],
)

#: outcomes per cohort: name -> (kind, description)
OUTCOMES: dict[str, dict[str, tuple[str, str]]] = {
    "ist": {
        "death": ("survival", "death from any cause over follow-up (TD days, DIED)"),
        "death_6m": ("binary", "death by the 6-month follow-up (OCCODE 1 vs 2-4; unknown excluded)"),
        "death_dependency_6m": ("binary", "death or dependency at 6 months (OCCODE 1-2 vs 3-4; unknown excluded)"),
        "recurrence_14d": ("binary", "recurrent ischaemic stroke within 14 days (ISC14)"),
        "recurrence_vs_death_14d": ("competing", "first of recurrent ischaemic stroke / death within 14 days"),
    },
    "estonia": {"death": ("survival", "death (obsmonths, dead)")},
    "heart_failure_299": {"death": ("survival", "death during follow-up (time days, DEATH_EVENT)")},
    "whas500": {"death": ("survival", "death (lenfol days, fstat)")},
    "zigong": {
        "death_6m": ("binary", "death within 6 months of admission"),
        "death_6m_time": (
            "survival",
            "time to death within 6 months of admission (death_within_6_months; days from "
            "time_of_death__days_from_admission, censored at 6 months)",
        ),
        "readmission_6m": ("binary", "readmission within 6 months of admission"),
    },
    "ckd_cardiovascular": {"ckd35": ("survival", "eGFR < 60 / CKD stage 3-5 (TimeToEventMonths, EventCKD35)")},
    "framingham": {"chd_10y": ("binary", "10-year coronary heart disease (TenYearCHD)")},
    "uci_heart_disease": {"cad": ("binary", "angiographic coronary artery disease (num > 0)")},
}
OUTCOMES["zigong_echo"] = dict(OUTCOMES["zigong"])  # the same rows with the echocardiography fields


def _ist(path: Path, outcome: str) -> Cohort:
    f = _locate(path, "stroke", "ist", "IST_dev.csv")
    raw = pd.read_csv(f, low_memory=False)
    return ist_from_frame(raw, outcome)


def ist_from_frame(raw: pd.DataFrame, outcome: str = "death") -> Cohort:
    """IST cohort from a frame in the official release layout (``IST_corrected.csv`` columns)."""
    raw = raw.copy()
    if "RXHEP" in raw:
        raw["RXHEP"] = raw["RXHEP"].replace({"H": "M"})
    if "COUNTRY" in raw:
        raw["COUNTRY"] = raw["COUNTRY"].astype(str).str.strip()
    _need(raw, ["TD", "DIED", "OCCODE", "ISC14"], "IST")
    keep = np.ones(len(raw), bool)
    if outcome in ("death_6m", "death_dependency_6m"):
        keep = raw["OCCODE"].isin([1, 2, 3, 4]).to_numpy()
    if outcome == "death":
        keep = raw["TD"].notna().to_numpy()
    raw = raw.loc[keep].reset_index(drop=True)
    X = IST_SPEC.validate_frame(raw, errors="report")
    if outcome == "death":
        y = surv_y(raw["DIED"] == 1, raw["TD"].clip(lower=0.5))
        kind = "survival"
    elif outcome == "death_6m":
        y, kind = (raw["OCCODE"] == 1).astype(int).to_numpy(), "binary"
    elif outcome == "death_dependency_6m":
        y, kind = raw["OCCODE"].isin([1, 2]).astype(int).to_numpy(), "binary"
    elif outcome == "recurrence_14d":
        y, kind = (raw["ISC14"] == 1).astype(int).to_numpy(), "binary"
    elif outcome == "recurrence_vs_death_14d":
        # competing risks within 14 days: 1 recurrent ischaemic stroke, 2 death without recurrence, 0 neither.
        # The release has no recurrence date for all rows: recurrence is taken as first (events within 14 d).
        died14 = (raw["ID14"] == 1).to_numpy()
        rec = (raw["ISC14"] == 1).to_numpy()
        status = np.where(rec, 1, np.where(died14, 2, 0))
        dates = pd.to_numeric(raw.get("DRSISCD"), errors="coerce").to_numpy() if "DRSISCD" in raw else None
        t = np.where(status == 2, np.minimum(raw["TD"].fillna(14).to_numpy(), 14), 14.0)
        if dates is not None:
            t = np.where((status == 1) & np.isfinite(dates), np.clip(dates, 0.5, 14), t)
        t = np.where((status == 1) & ~np.isfinite(t), 7.0, t)
        y = surv_y(status > 0, np.clip(t, 0.5, 14))
        kind = "competing"
    else:
        raise ConfigError(f"unknown IST outcome {outcome!r}; known: {', '.join(OUTCOMES['ist'])}")
    sub = pd.DataFrame(
        {
            "sex": raw["SEX"].map({"M": "male", "F": "female"}).fillna("unknown"),
            "age_band": age_band(raw["AGE"]),
            "stroke_type": raw["STYPE"].astype(str),
            "atrial_fibrillation": raw["RATRIAL"].map({"Y": "yes", "N": "no"}).fillna("unknown"),
            "conscious_state": raw["RCONSC"].astype(str),
        }
    )
    ref = {k: raw[k].to_numpy(float) for k in ("EXPD6", "EXPD14", "EXPDD") if k in raw}
    extra = {}
    if kind == "competing":
        extra["status"] = status
    return Cohort(
        name="ist",
        outcome=outcome,
        kind=kind,
        spec=IST_SPEC,
        X=X,
        y=y,
        groups=raw["HOSPNUM"].to_numpy() if "HOSPNUM" in raw else None,
        subgroups=sub,
        reference=ref,
        horizons=[14.0, 182.0, 365.0] if kind == "survival" else [14.0 if "14d" in outcome else 182.0],
        problems=X.attrs.get("problems", []),
        extra=extra,
    )


# ------------------------------------------------------------------------------------------------ Tartu (Estonia)
ESTONIA_SPEC = CohortSpec(
    name="estonia",
    description="Tartu (Estonia) stroke registry 1991-93, factors at the stroke.",
    citation="Korv J, Roose M, Kaasik AE. Stroke Registry of Tartu, Estonia. Cerebrovasc Dis 1997;7:154-162 (ISwR)",
    licence="GPL (ISwR)",
    features=[
        _f("age", I, "age at stroke", "a", 0, 110, required=True),
        _f("sex", C, "sex", cats=["Female", "Male"], required=True),
        _f("dgn", C, "diagnosis (ICH, ID unidentified, INF infarction, SAH)", cats=["ICH", "ID", "INF", "SAH"]),
        _f("coma", C, "coma after the stroke", cats=["No", "Yes"]),
        _f("diab", C, "history of diabetes", cats=["No", "Yes"]),
        _f("minf", C, "history of myocardial infarction", cats=["No", "Yes"]),
        _f("han", C, "history of hypertension", cats=["No", "Yes"]),
    ],
)


def _estonia(path: Path, outcome: str) -> Cohort:
    f = _locate(path, "stroke", "estonia", "stroke_ISwR.csv")
    raw = pd.read_csv(f)
    _need(raw, ["obsmonths", "dead"], "Tartu stroke")
    X = ESTONIA_SPEC.validate_frame(raw, errors="report")
    dead = raw["dead"].astype(str).str.lower().isin(["true", "1", "yes"])
    y = surv_y(dead, raw["obsmonths"].clip(lower=0.1) * DAYS_PER_MONTH)
    sub = pd.DataFrame(
        {
            "sex": raw["sex"].str.lower(),
            "age_band": age_band(raw["age"]),
            "diabetes": raw["diab"].str.lower(),
            "previous_mi": raw["minf"].str.lower(),
            "hypertension": raw["han"].str.lower(),
        }
    )
    return Cohort(
        "estonia",
        outcome,
        "survival",
        ESTONIA_SPEC,
        X,
        y,
        subgroups=sub,
        horizons=[30.0, 365.0, 3 * 365.25],
        problems=X.attrs.get("problems", []),
    )


# ----------------------------------------------------------------------------------------------- heart failure 299
HF299_SPEC = CohortSpec(
    name="heart_failure_299",
    description="Heart failure (Faisalabad 2015), factors at enrolment.",
    citation="Ahmad T et al. Survival analysis of heart failure patients. PLoS One 2017;12:e0181001; "
    "Chicco D, Jurman G. BMC Med Inform Decis Mak 2020",
    licence="CC BY 4.0",
    features=[
        _f("age", N, "age", "a", 18, 110, required=True),
        _f("sex", B, "male (1) / female (0)", required=True),
        _f("anaemia", B, "anaemia"),
        _f("diabetes", B, "diabetes"),
        _f("high_blood_pressure", B, "hypertension"),
        _f("smoking", B, "smoker"),
        _f("ejection_fraction", N, "left ventricular ejection fraction", "%", 5, 90, required=True),
        _f("serum_creatinine", N, "serum creatinine", "mg/dL", 0.1, 20, required=True),
        _f("serum_sodium", N, "serum sodium", "mmol/L", 100, 170),
        _f("creatinine_phosphokinase", N, "CPK", "U/L", 1, 20000),
        _f("platelets", N, "platelets", "10*3/mL", 1000, 2000000),
    ],
)


def _hf299(path: Path, outcome: str) -> Cohort:
    f = _locate(path, "cardio", "heart_failure_299", "heart_failure_clinical_records_dataset.csv")
    raw = pd.read_csv(f)
    _need(raw, ["time", "DEATH_EVENT"], "heart_failure_299")
    X = HF299_SPEC.validate_frame(raw, errors="report")
    y = surv_y(raw["DEATH_EVENT"] == 1, raw["time"])
    sub = pd.DataFrame(
        {
            "sex": raw["sex"].map({1: "male", 0: "female"}),
            "age_band": age_band(raw["age"]),
            "diabetes": raw["diabetes"].map({1: "yes", 0: "no"}),
            "anaemia": raw["anaemia"].map({1: "yes", 0: "no"}),
            "hypertension": raw["high_blood_pressure"].map({1: "yes", 0: "no"}),
            "ckd_creatinine_gt_1_5": np.where(raw["serum_creatinine"] > 1.5, "yes", "no"),
            "ef_le_30": np.where(raw["ejection_fraction"] <= 30, "yes", "no"),
        }
    )
    return Cohort(
        "heart_failure_299",
        outcome,
        "survival",
        HF299_SPEC,
        X,
        y,
        subgroups=sub,
        horizons=[30.0, 90.0, 180.0],
        problems=X.attrs.get("problems", []),
    )


# ------------------------------------------------------------------------------------------------------ WHAS500
WHAS_SPEC = CohortSpec(
    name="whas500",
    description="Worcester Heart Attack Study (500 acute MI admissions), factors at admission.",
    citation="Hosmer DW, Lemeshow S, May S. Applied Survival Analysis, 2nd ed. Wiley 2008",
    licence="textbook data",
    features=[
        _f("age", N, "age at admission", "a", 18, 110, required=True),
        _f("gender", B, "female (1) / male (0)", required=True),
        _f("hr", N, "initial heart rate", "/min", 20, 250),
        _f("sysbp", N, "initial systolic blood pressure", "mm[Hg]", 40, 280),
        _f("diasbp", N, "initial diastolic blood pressure", "mm[Hg]", 5, 200),
        _f("bmi", N, "body mass index", "kg/m2", 10, 70),
        _f("cvd", B, "history of cardiovascular disease"),
        _f("afb", B, "atrial fibrillation"),
        _f("sho", B, "cardiogenic shock"),
        _f("chf", B, "congestive heart complications"),
        _f("av3", B, "complete heart block"),
        _f("miord", B, "MI order (1 recurrent)"),
        _f("mitype", B, "MI type (1 Q-wave)"),
    ],
)


def _whas(path: Path, outcome: str) -> Cohort:
    f = _locate(path, "cardio", "whas", "whas500_full.csv")
    raw = pd.read_csv(f)
    _need(raw, ["lenfol", "fstat"], "WHAS500")
    X = WHAS_SPEC.validate_frame(raw, errors="report")
    y = surv_y(raw["fstat"] == 1, raw["lenfol"])
    sub = pd.DataFrame(
        {
            "sex": raw["gender"].map({1: "female", 0: "male"}),
            "age_band": age_band(raw["age"]),
            "history_cvd": raw["cvd"].map({1: "yes", 0: "no"}),
            "heart_failure": raw["chf"].map({1: "yes", 0: "no"}),
            "atrial_fibrillation": raw["afb"].map({1: "yes", 0: "no"}),
        }
    )
    return Cohort(
        "whas500",
        outcome,
        "survival",
        WHAS_SPEC,
        X,
        y,
        groups=raw["year"].to_numpy(),
        subgroups=sub,
        horizons=[30.0, 365.0, 5 * 365.25],
        problems=X.attrs.get("problems", []),
    )


# ------------------------------------------------------------------------------------------------------ Zigong
_ZLABS = {
    "creatinine_enzymatic_method": ("serum creatinine", "umol/L", 5, 3000),
    "urea": ("urea", "mmol/L", 0.5, 100),
    "glomerular_filtration_rate": ("eGFR", "mL/min/{1.73_m2}", 1, 300),
    "cystatin": ("cystatin C", "mg/L", 0.1, 15),
    "brain_natriuretic_peptide": ("BNP", "pg/mL", 0, 35000),
    "high_sensitivity_troponin": ("hs troponin", "ng/mL", 0, 100),
    "hemoglobin": ("haemoglobin", "g/L", 20, 250),
    "white_blood_cell": ("white cells", "10*9/L", 0.1, 100),
    "platelet": ("platelets", "10*9/L", 1, 1500),
    "sodium": ("sodium", "mmol/L", 100, 180),
    "potassium": ("potassium", "mmol/L", 1, 12),
    "albumin": ("albumin", "g/L", 5, 70),
    "total_bilirubin": ("total bilirubin", "umol/L", 0, 800),
    "uric_acid": ("uric acid", "umol/L", 10, 2000),
    "D_dimer": ("D-dimer", "mg/L", 0, 200),
}
_ZCOMORB = {
    "cerebrovascular_disease": "cerebrovascular disease",
    "peptic_ulcer_disease": "peptic ulcer disease",
    "moderate_to_severe_chronic_kidney_disease": "moderate-to-severe chronic kidney disease",
    "solid_tumor": "solid tumour",
    "diabetes": "diabetes",
    "Chronic_obstructive_pulmonary_disease": "COPD",
    "dementia": "dementia",
    "liver_disease": "liver disease",
}
ZIGONG_AGE_BANDS = ["21-29", "29-39", "39-49", "49-59", "59-69", "69-79", "79-89", "89-110"]
ZIGONG_SPEC = CohortSpec(
    name="zigong",
    description="Zigong (Sichuan) hospitalised heart failure 2016-19: admission factors, comorbidities, labs.",
    citation="Zhang Z et al. Electronic healthcare records and external outcome data for hospitalized patients "
    "with heart failure. Sci Data 2021;8:46 (PhysioNet)",
    licence="PhysioNet open access",
    features=[
        _f("age_band", C, "age band at admission (years)", cats=ZIGONG_AGE_BANDS, required=True),
        _f("gender", C, "sex", cats=["Male", "Female"], required=True),
        _f("BMI", N, "body mass index", "kg/m2", 10, 70, missing=[0]),
        _f("NYHA", I, "NYHA functional class", None, 1, 4),
        _f("Killip_grade", I, "Killip class", None, 1, 4),
        _f("LVEF", N, "left ventricular ejection fraction", "%", 5, 90),
        _f("type_of_heart_failure", C, "side of heart failure", cats=["Left", "Right", "Both"]),
        _f("myocardial_infarction", B, "history of myocardial infarction"),
        _f("peripheral_vascular_disease", B, "peripheral vascular disease"),
        *[_f(k, B, v) for k, v in _ZCOMORB.items()],
        _f("CCI_score", N, "Charlson comorbidity index", None, 0, 37),
        _f("GCS", I, "Glasgow coma scale", None, 3, 15),
        _f("systolic_blood_pressure", N, "systolic BP at admission", "mm[Hg]", 40, 300, missing=[0]),
        _f("pulse", N, "pulse at admission", "/min", 20, 250, missing=[0]),
        _f("respiration", N, "respiratory rate at admission", "/min", 5, 60, missing=[0]),
        *[_f(k, N, d, u, lo, hi) for k, (d, u, lo, hi) in _ZLABS.items()],
    ],
)
#: echocardiography fields of the CardiacComplications sheet (LVEF is in ZIGONG_SPEC already): name -> (description,
#: UCUM unit, min, max). The mitral inflow velocities are mostly m/s; the few values in cm/s (> 3) fall outside the
#: range and are reported and set to missing, as are LV diameters recorded in cm.
_ZECHO = {
    "left_ventricular_end_diastolic_diameter_LV": ("LV end-diastolic diameter (echo)", "mm", 20, 100),
    "mitral_valve_EMS": ("mitral inflow E-wave peak velocity (echo)", "m/s", 0.1, 3),
    "mitral_valve_AMS": ("mitral inflow A-wave peak velocity (echo)", "m/s", 0.1, 3),
    "EA": ("mitral E/A ratio (echo)", None, 0.1, 10),
    "tricuspid_valve_return_velocity": ("tricuspid regurgitation peak velocity (echo)", "m/s", 0.5, 7),
    "tricuspid_valve_return_pressure": ("tricuspid regurgitation pressure gradient (echo)", "mm[Hg]", 1, 150),
}
#: Zigong with the echocardiography fields, every factor optional: the input contract of models that handle absent
#: groups of factors themselves (multimodal fusion) and of the baselines compared with them on the same rows.
ZIGONG_ECHO_SPEC = CohortSpec(
    name="zigong_echo",
    description=ZIGONG_SPEC.description.rstrip(".") + "; echocardiography fields (LV diameter, mitral inflow, "
    "tricuspid regurgitation).",
    citation=ZIGONG_SPEC.citation,
    licence=ZIGONG_SPEC.licence,
    features=[f.model_copy(update={"required": False}) for f in ZIGONG_SPEC.features]
    + [_f(k, N, d, u, lo, hi) for k, (d, u, lo, hi) in _ZECHO.items()],
)
ZIGONG_SUBGROUPS = (
    "cerebrovascular_disease",
    "peptic_ulcer_disease",
    "moderate_to_severe_chronic_kidney_disease",
    "solid_tumor",
    "diabetes",
)


def zigong_join(folder: Path) -> pd.DataFrame:
    """Join the Zigong sheets on ``inpatient_number`` (one row per admission)."""
    sheets = [
        "Demography",
        "Hospitalization_Discharge",
        "PatientHistory",
        "CardiacComplications",
        "Labs",
        "Responsivenes",
    ]
    df = None
    for s in sheets:
        part = pd.read_csv(folder / f"{s}.csv")
        if part["inpatient_number"].duplicated().any():
            raise ConfigError(f"Zigong sheet {s}.csv has duplicated inpatient_number; expected one row per admission")
        df = part if df is None else df.merge(part, on="inpatient_number", how="left", suffixes=("", f"__{s}"))
    assert df is not None
    df = df.rename(columns={"NYHA_cardiac_function_classification": "NYHA", "ageCat": "age_band"})
    return df


def zigong_death_time(raw: pd.DataFrame) -> np.ndarray:
    """Time to death within 6 months of admission (structured ``(event, time)``, days).

    The event is ``death_within_6_months``; its time is ``time_of_death__days_from_admission``. For the deaths without
    a recorded time (16 of 57 in the release) the time is the midpoint of the interval given by the 28-day / 3-month /
    6-month death flags (14, 59.6 or 136.9 days). Patients alive at 6 months are censored at 6 months (182.6 days);
    the release has no other censoring.
    """
    cols = ["death_within_6_months", "death_within_28_days", "death_within_3_months"]
    _need(raw, [*cols, "time_of_death__days_from_admission"], "Zigong")
    ev = raw["death_within_6_months"].astype(int).to_numpy() == 1
    six, three = 6 * DAYS_PER_MONTH, 3 * DAYS_PER_MONTH
    t = pd.to_numeric(raw["time_of_death__days_from_admission"], errors="coerce").to_numpy(dtype=float)
    mid = np.where(
        raw["death_within_28_days"].to_numpy() == 1,
        14.0,
        np.where(raw["death_within_3_months"].to_numpy() == 1, (28 + three) / 2, (three + six) / 2),
    )
    bad = ev & (np.isnan(t) | (t > six) | (t < 0))
    t = np.where(ev, np.where(bad, mid, np.maximum(t, 0.5)), six)  # same-day deaths at half a day
    return surv_y(ev, t)


def _zigong(path: Path, outcome: str, spec: CohortSpec = ZIGONG_SPEC) -> Cohort:
    folder = path / "cardio" / "zigong_heart_failure" if (path / "cardio").is_dir() else path
    raw = zigong_join(folder) if folder.is_dir() else pd.read_csv(folder)
    col = {
        "death_6m": "death_within_6_months",
        "death_6m_time": "death_within_6_months",
        "readmission_6m": "re_admission_within_6_months",
    }.get(outcome)
    if col is None:
        raise ConfigError(f"unknown Zigong outcome {outcome!r}; known: {', '.join(OUTCOMES['zigong'])}")
    _need(raw, [col], "Zigong")
    if outcome == "readmission_6m":  # patients who died in hospital cannot be readmitted
        raw = raw[raw["outcome_during_hospitalization"] != "Dead"].reset_index(drop=True)
    X = spec.validate_frame(raw, errors="report")
    y = zigong_death_time(raw) if outcome == "death_6m_time" else raw[col].astype(int).to_numpy()

    def yn(c: str) -> pd.Series:
        return raw[c].map({1: "yes", 0: "no"}).fillna("unknown")

    sub = pd.DataFrame(
        {
            "sex": raw["gender"].str.lower(),
            "age_band": raw["age_band"].map(
                lambda a: "<69" if a in ZIGONG_AGE_BANDS[:5] else ("69-79" if a == "69-79" else ">=79")
            ),
            **{c: yn(c) for c in ZIGONG_SUBGROUPS},
            "charlson_ge_3": np.where(raw["CCI_score"] >= 3, "yes", np.where(raw["CCI_score"].isna(), "unknown", "no")),
            "nyha": "NYHA" + raw["NYHA"].astype("Int64").astype(str),
            "lvef_lt_40": np.where(raw["LVEF"] < 40, "yes", np.where(raw["LVEF"].isna(), "unknown", "no")),
        }
    )
    return Cohort(
        spec.name,
        outcome,
        OUTCOMES["zigong"][outcome][0],
        spec,
        X,
        y,
        subgroups=sub,
        horizons=[182.0],
        problems=X.attrs.get("problems", []),
    )


# ----------------------------------------------------------------------------------------------- CKD cardiovascular
CKD_SPEC = CohortSpec(
    name="ckd_cardiovascular",
    description="Tawam Hospital (UAE) cardiovascular-risk cohort with normal eGFR at baseline.",
    citation="Al-Shamsi S, Regmi D, Govender RD. Chronic kidney disease in patients at high risk of cardiovascular "
    "disease in the United Arab Emirates. PLoS One 2018;13:e0199920",
    licence="CC BY 4.0",
    features=[
        _f("Sex", B, "male (1) / female (0)", required=True),
        _f("AgeBaseline", N, "age at baseline", "a", 18, 110, required=True),
        *[
            _f(k, B, d)
            for k, d in {
                "HistoryDiabetes": "diabetes",
                "HistoryCHD": "coronary heart disease",
                "HistoryVascular": "vascular disease",
                "HistorySmoking": "smoking",
                "HistoryHTN": "hypertension",
                "HistoryDLD": "dyslipidaemia",
                "HistoryObesity": "obesity",
                "DLDmeds": "lipid-lowering drugs",
                "DMmeds": "diabetes drugs",
                "HTNmeds": "antihypertensives",
                "ACEIARB": "ACE inhibitor / ARB",
            }.items()
        ],
        _f("CholesterolBaseline", N, "total cholesterol", "mmol/L", 1, 15),
        _f("TriglyceridesBaseline", N, "triglycerides", "mmol/L", 0.1, 20),
        _f("HgbA1C", N, "HbA1c", "%", 3, 20),
        _f("CreatinineBaseline", N, "creatinine", "umol/L", 5, 500),
        _f("eGFRBaseline", N, "eGFR", "mL/min/{1.73_m2}", 5, 300, required=True),
        _f("sBPBaseline", N, "systolic BP", "mm[Hg]", 60, 260),
        _f("dBPBaseline", N, "diastolic BP", "mm[Hg]", 30, 160),
        _f("BMIBaseline", N, "body mass index", "kg/m2", 10, 80),
    ],
)


def _ckd(path: Path, outcome: str) -> Cohort:
    f = _locate(path, "cardio", "ckd_cardiovascular", "journal.pone.0199920.s002_EDITED.csv")
    raw = pd.read_csv(f)
    raw.columns = [c.strip() for c in raw.columns]
    _need(raw, ["TimeToEventMonths", "EventCKD35"], "CKD-cardiovascular")
    X = CKD_SPEC.validate_frame(raw, errors="report")
    y = surv_y(raw["EventCKD35"] == 1, raw["TimeToEventMonths"].clip(lower=0.5) * DAYS_PER_MONTH)
    sub = pd.DataFrame(
        {
            "sex": raw["Sex"].map({1: "male", 0: "female"}),
            "age_band": age_band(raw["AgeBaseline"]),
            "diabetes": raw["HistoryDiabetes"].map({1: "yes", 0: "no"}),
            "coronary_heart_disease": raw["HistoryCHD"].map({1: "yes", 0: "no"}),
            "vascular_disease": raw["HistoryVascular"].map({1: "yes", 0: "no"}),
        }
    )
    return Cohort(
        "ckd_cardiovascular",
        outcome,
        "survival",
        CKD_SPEC,
        X,
        y,
        subgroups=sub,
        horizons=[2 * 365.25, 5 * 365.25],
        problems=X.attrs.get("problems", []),
    )


# ------------------------------------------------------------------------------------------------------ Framingham
FRAMINGHAM_SPEC = CohortSpec(
    name="framingham",
    description="Framingham teaching copy: 10-year CHD risk factors (tests/teaching only).",
    citation="Framingham Heart Study teaching dataset (NHLBI)",
    licence="teaching copy, tests only",
    features=[
        _f("male", B, "male sex", required=True),
        _f("age", N, "age", "a", 18, 110, required=True),
        _f("education", I, "education level 1-4", None, 1, 4),
        _f("currentSmoker", B, "current smoker"),
        _f("cigsPerDay", N, "cigarettes per day", "/d", 0, 100),
        _f("BPMeds", B, "on BP medication"),
        _f("prevalentStroke", B, "previous stroke"),
        _f("prevalentHyp", B, "hypertension"),
        _f("diabetes", B, "diabetes"),
        _f("totChol", N, "total cholesterol", "mg/dL", 50, 800),
        _f("sysBP", N, "systolic BP", "mm[Hg]", 60, 300, required=True),
        _f("diaBP", N, "diastolic BP", "mm[Hg]", 30, 160),
        _f("BMI", N, "body mass index", "kg/m2", 10, 70),
        _f("heartRate", N, "heart rate", "/min", 30, 200),
        _f("glucose", N, "glucose", "mg/dL", 20, 600),
    ],
)


def _framingham(path: Path, outcome: str) -> Cohort:
    f = _locate(path, "cardio", "framingham", "framingham.csv")
    raw = pd.read_csv(f)
    _need(raw, ["TenYearCHD"], "Framingham")
    X = FRAMINGHAM_SPEC.validate_frame(raw, errors="report")
    sub = pd.DataFrame(
        {
            "sex": raw["male"].map({1: "male", 0: "female"}),
            "age_band": age_band(raw["age"]),
            "diabetes": raw["diabetes"].map({1: "yes", 0: "no"}),
            "prevalent_stroke": raw["prevalentStroke"].map({1: "yes", 0: "no"}),
        }
    )
    return Cohort(
        "framingham",
        outcome,
        "binary",
        FRAMINGHAM_SPEC,
        X,
        raw["TenYearCHD"].astype(int).to_numpy(),
        subgroups=sub,
        horizons=[3652.5],
        problems=X.attrs.get("problems", []),
    )


# ------------------------------------------------------------------------------------------------- UCI heart disease
UCI_COLUMNS = [
    "age",
    "sex",
    "cp",
    "trestbps",
    "chol",
    "fbs",
    "restecg",
    "thalach",
    "exang",
    "oldpeak",
    "slope",
    "ca",
    "thal",
    "num",
]
UCI_SPEC = CohortSpec(
    name="uci_heart_disease",
    description="UCI heart disease (Cleveland, Hungary, Switzerland, VA Long Beach): angiographic CAD.",
    citation="Detrano R et al. Am J Cardiol 1989;64:304-310 (UCI ML repository)",
    licence="CC BY 4.0",
    features=[
        _f("age", N, "age", "a", 18, 110, required=True),
        _f("sex", B, "male (1)", required=True),
        _f(
            "cp", C, "chest pain type (1 typical, 2 atypical, 3 non-anginal, 4 asymptomatic)", cats=["1", "2", "3", "4"]
        ),
        _f("trestbps", N, "resting BP", "mm[Hg]", 60, 250, missing=[0]),
        _f("chol", N, "serum cholesterol", "mg/dL", 50, 700, missing=[0]),
        _f("fbs", B, "fasting glucose > 120 mg/dL"),
        _f("restecg", C, "resting ECG (0 normal, 1 ST-T, 2 LVH)", cats=["0", "1", "2"]),
        _f("thalach", N, "maximum heart rate", "/min", 50, 250),
        _f("exang", B, "exercise-induced angina"),
        _f("oldpeak", N, "ST depression", "mm", -5, 10),
        _f("slope", C, "ST slope (1 up, 2 flat, 3 down)", cats=["1", "2", "3"]),
        _f("ca", I, "vessels coloured by fluoroscopy", None, 0, 3),
        _f("thal", C, "thallium (3 normal, 6 fixed, 7 reversible)", cats=["3", "6", "7"]),
    ],
)


def _uci(path: Path, outcome: str) -> Cohort:
    folder = path / "cardio" / "uci_heart_disease" if path.is_dir() and (path / "cardio").is_dir() else path
    parts = []
    if folder.is_dir():
        for site in ("cleveland", "hungarian", "switzerland", "va"):
            p = pd.read_csv(folder / f"processed.{site}.data", header=None, names=UCI_COLUMNS, na_values="?")
            p["site"] = site
            parts.append(p)
        raw = pd.concat(parts, ignore_index=True)
    else:
        raw = pd.read_csv(folder)
    X = UCI_SPEC.validate_frame(raw, errors="report")
    y = (raw["num"] > 0).astype(int).to_numpy()
    sub = pd.DataFrame(
        {
            "sex": raw["sex"].map({1: "male", 0: "female"}),
            "age_band": age_band(raw["age"]),
            "site": raw.get("site", pd.Series(["unknown"] * len(raw))),
        }
    )
    return Cohort(
        "uci_heart_disease",
        outcome,
        "binary",
        UCI_SPEC,
        X,
        y,
        groups=raw["site"].to_numpy() if "site" in raw else None,
        subgroups=sub,
        horizons=[0.0],
        problems=X.attrs.get("problems", []),
    )


# ----------------------------------------------------------------------------------------------------- registry
ADAPTERS = {
    "ist": _ist,
    "estonia": _estonia,
    "heart_failure_299": _hf299,
    "whas500": _whas,
    "zigong": _zigong,
    "zigong_echo": lambda path, outcome: _zigong(path, outcome, ZIGONG_ECHO_SPEC),
    "ckd_cardiovascular": _ckd,
    "framingham": _framingham,
    "uci_heart_disease": _uci,
}
SPECS = {
    "ist": IST_SPEC,
    "estonia": ESTONIA_SPEC,
    "heart_failure_299": HF299_SPEC,
    "whas500": WHAS_SPEC,
    "zigong": ZIGONG_SPEC,
    "zigong_echo": ZIGONG_ECHO_SPEC,
    "ckd_cardiovascular": CKD_SPEC,
    "framingham": FRAMINGHAM_SPEC,
    "uci_heart_disease": UCI_SPEC,
}


def load_cohort(name: str, outcome: str, path: Path) -> Cohort:
    """Load cohort ``name`` with ``outcome`` from ``path``.

    Args:
        name: one of :data:`ADAPTERS`.
        outcome: one of :data:`OUTCOMES` ``[name]``.
        path: the real-data root (``../shared/data``), the cohort's folder, or a file in the official layout.
    """
    if name not in ADAPTERS:
        raise ConfigError(f"unknown cohort {name!r}; known: {', '.join(ADAPTERS)}")
    if outcome not in OUTCOMES[name]:
        raise ConfigError(f"unknown outcome {outcome!r} for {name}; known: {', '.join(OUTCOMES[name])}")
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path} does not exist; point to the data root or the cohort's official file")
    return ADAPTERS[name](path, outcome)


def load_csv(
    path: Path,
    spec: CohortSpec,
    *,
    event: str,
    time: str | None = None,
    mapping: dict[str, str] | None = None,
    time_unit: str = "d",
    name: str = "csv",
    strict: bool = True,
) -> Cohort:
    """Map any CSV (a hospital export) onto ``spec``.

    Args:
        path: the CSV file.
        spec: the factor specification to map onto.
        event: column of the event indicator (0/1), or of the binary outcome when ``time`` is None.
        time: column of the follow-up time (survival); None for fixed-horizon classification.
        mapping: spec factor name -> CSV column name, for columns named differently.
        time_unit: ``"d"``, ``"mo"`` or ``"a"``; converted to days.
        name: cohort name used in reports.
        strict: raise on out-of-range values and on columns that are neither factors, outcome nor mapped
            (``unknown_column``); when False they are reported in ``problems`` and set to missing.

    Raises:
        InputValidationError: listing each offending column.
    """
    raw = pd.read_csv(path)
    if mapping:
        raw = raw.rename(columns={v: k for k, v in mapping.items()})
    outcome_cols = [c for c in (event, time) if c]
    _need(raw, outcome_cols, name)
    feats = raw.drop(columns=outcome_cols)
    X = spec.validate_frame(feats, allow_extra=not strict, errors="raise" if strict else "report")
    factor = {"d": 1.0, "mo": DAYS_PER_MONTH, "a": 365.25}[time_unit]
    if time:
        y, kind = surv_y(raw[event].astype(float) > 0, raw[time].astype(float) * factor), "survival"
    else:
        y, kind = raw[event].astype(int).to_numpy(), "binary"
    sub = pd.DataFrame(index=raw.index)
    for c in ("sex", "SEX", "gender", "Sex"):
        if c in raw:
            sub["sex"] = raw[c].astype(str)
            break
    for c in ("age", "AGE", "AgeBaseline"):
        if c in raw:
            sub["age_band"] = age_band(raw[c])
            break
    return Cohort(name, event, kind, spec, X, y, subgroups=sub, problems=X.attrs.get("problems", []))


def _locate(path: Path, *parts: str) -> Path:
    """The cohort file: ``path`` itself, ``path/<parts>`` (data root) or ``path/<file name>`` (cohort folder)."""
    if path.is_file():
        return path
    for cand in (path.joinpath(*parts), path / parts[-1]):
        if cand.is_file():
            return cand
    raise ConfigError(f"cannot find {'/'.join(parts)} under {path}; pass the data root, the cohort folder or the file")


def _need(raw: pd.DataFrame, cols: list[str], what: str) -> None:
    missing = [c for c in cols if c not in raw.columns]
    if missing:
        raise InputValidationError(
            f"{what} data lacks outcome column(s) {', '.join(missing)}; is this the official release layout?",
            [
                {"field": c, "problem": "missing_required", "value": None, "message": "outcome column absent"}
                for c in missing
            ],
        )
