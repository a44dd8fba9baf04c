"""Cohort loaders: HAM10000, a hospital's own image cohort, COPS psoriasis omics, and a hospital's own omics cohort.

The training recipes read cohorts only through these two types, so a new disease (vitiligo, lupus, bullous disease)
trains with the same recipe once its data exists:

* :class:`ImageCohort` -- image files, one label per image, and a *group* per image (the lesion or patient: splits
  are made by group, never by image). ``ImageCohort.from_csv`` reads ``labels.csv`` with columns ``image`` (file
  name relative to the image folder), ``label`` and optionally ``group`` (defaults to one group per image).
* :class:`OmicsCohort` -- a samples x features matrix, one label per sample, a *study* per sample (for
  leave-one-study-out validation) and optionally a patient id. ``OmicsCohort.from_csv`` reads a matrix CSV (samples
  in rows, first column the sample id) and a labels CSV (``sample``, ``label``, optional ``study``, ``patient``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medai.errors import ConfigError, InputValidationError

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".dcm")
# patient metadata columns: field -> column of the HAM10000 release; a hospital labels.csv names them by field, or
# with the HAM10000 / ISIC spellings of the site and age
HAM10000_META = {"age": "age", "sex": "sex", "site": "localization"}
CSV_META = {
    "age": ("age", "age_approx"),
    "sex": ("sex",),
    "site": ("site", "localization", "anatom_site_general"),
    "skin_type": ("skin_type", "fitzpatrick"),
}


def _record(row: dict[str, Any], columns: dict[str, str]) -> dict[str, Any]:
    """One metadata record ``{field: value}`` from a table row (NaN -> ``None``)."""
    out: dict[str, Any] = {}
    for f, c in columns.items():
        v = row.get(c)
        out[f] = None if v is None or (isinstance(v, float) and np.isnan(v)) else v
    return out


@dataclass
class ImageCohort:
    """Labelled images grouped by lesion or patient.

    Attributes:
        paths: image files, one per image.
        labels: label name per image.
        groups: lesion / patient id per image (splits keep a group together).
        image_ids: short id per image (file stem).
        class_names: label vocabulary in output order.
        name: what the cohort is (``"HAM10000"``).
        metadata: per image, the patient record (``age``, ``sex``, ``site``, ``skin_type``; absent keys or ``None``
            values are unknown), or ``None`` when the cohort carries no metadata.
    """

    paths: list[Path]
    labels: list[str]
    groups: list[str]
    image_ids: list[str]
    class_names: list[str]
    name: str = "cohort"
    metadata: list[dict[str, Any]] | None = None

    def __post_init__(self) -> None:
        n = len(self.paths)
        if not (len(self.labels) == len(self.groups) == len(self.image_ids) == n):
            raise ConfigError("ImageCohort: paths, labels, groups and image_ids must have the same length")
        if self.metadata is not None and len(self.metadata) != n:
            raise ConfigError("ImageCohort: metadata must have one record per image")
        unknown = sorted(set(self.labels) - set(self.class_names))
        if unknown:
            raise ConfigError(f"ImageCohort {self.name}: labels {unknown} are not in class_names {self.class_names}")

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def y(self) -> np.ndarray:
        """``(N,) int64`` class index per image."""
        index = {c: i for i, c in enumerate(self.class_names)}
        return np.array([index[c] for c in self.labels], dtype=np.int64)

    def subset(self, idx: np.ndarray | list[int]) -> ImageCohort:
        """The cohort restricted to images ``idx``."""
        idx = list(np.asarray(idx, dtype=int))
        return ImageCohort(
            paths=[self.paths[i] for i in idx],
            labels=[self.labels[i] for i in idx],
            groups=[self.groups[i] for i in idx],
            image_ids=[self.image_ids[i] for i in idx],
            class_names=list(self.class_names),
            name=self.name,
            metadata=[self.metadata[i] for i in idx] if self.metadata is not None else None,
        )

    def to_labels_csv(self, path: str | Path) -> Path:
        """Write the cohort in the hospital ``labels.csv`` layout (``image`` relative to the CSV's folder when
        possible, ``label``, ``group`` and the metadata fields), e.g. HAM10000 repackaged for ``data.format: csv``."""
        path = Path(path)
        base = path.parent.resolve()
        rows = []
        for i, p in enumerate(self.paths):
            rp = Path(p).resolve()
            img = str(rp.relative_to(base)) if rp.is_relative_to(base) else str(rp)
            row: dict[str, Any] = {"image": img, "label": self.labels[i], "group": self.groups[i]}
            if self.metadata is not None:
                row.update({k: v for k, v in self.metadata[i].items() if k in CSV_META})
            rows.append(row)
        path.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(rows).to_csv(path, index=False)
        return path

    @classmethod
    def from_ham10000(cls, root: str | Path, class_names: list[str] | None = None) -> ImageCohort:
        """HAM10000 release layout: ``root/HAM10000_metadata.csv`` and images ``root/images/<image_id>.jpg``.

        Images listed in the metadata but absent on disk are skipped (with a log line); the official release
        split into ``HAM10000_images_part_1/2`` folders is searched too.
        """
        from medai.derm.labels import CLASS_ORDER

        root = Path(root)
        meta = root / "HAM10000_metadata.csv"
        if not meta.is_file():
            raise ConfigError(f"{root} is not a HAM10000 folder: HAM10000_metadata.csv is missing")
        df = pd.read_csv(meta)
        missing_cols = {"lesion_id", "image_id", "dx"} - set(df.columns)
        if missing_cols:
            raise ConfigError(f"{meta} lacks columns {sorted(missing_cols)}")
        folders = [root / "images", root / "HAM10000_images_part_1", root / "HAM10000_images_part_2", root]
        found: dict[str, Path] = {}
        for f in folders:
            if f.is_dir():
                for p in f.iterdir():
                    if p.suffix.lower() in IMAGE_SUFFIXES:
                        found.setdefault(p.stem, p)
        rows = [r for r in df.itertuples(index=False) if r.image_id in found]
        if len(rows) < len(df):
            logger.info("HAM10000: %d of %d listed images found under %s", len(rows), len(df), root)
        if not rows:
            raise ConfigError(f"no HAM10000 images found under {root} (looked in {', '.join(map(str, folders))})")
        return cls(
            paths=[found[r.image_id] for r in rows],
            labels=[str(r.dx) for r in rows],
            groups=[str(r.lesion_id) for r in rows],
            image_ids=[str(r.image_id) for r in rows],
            class_names=class_names or [c.value for c in CLASS_ORDER],
            name="HAM10000",
            metadata=[_record(r._asdict(), HAM10000_META) for r in rows],
        )

    @classmethod
    def from_csv(
        cls,
        labels_csv: str | Path,
        image_dir: str | Path | None = None,
        *,
        image_col: str = "image",
        label_col: str = "label",
        group_col: str | None = "group",
        class_names: list[str] | None = None,
        name: str | None = None,
    ) -> ImageCohort:
        """A hospital's own cohort: a labels CSV (``image``, ``label``, optional ``group``) plus an image folder.

        Args:
            labels_csv: the CSV.
            image_dir: folder the ``image`` column is relative to (default: the CSV's folder).
            image_col / label_col / group_col: column names; a missing ``group_col`` means one group per image.
            class_names: label vocabulary (default: sorted labels found).
            name: cohort name for logs and model cards.
        """
        labels_csv = Path(labels_csv)
        if not labels_csv.is_file():
            raise ConfigError(f"labels CSV {labels_csv} not found")
        df = pd.read_csv(labels_csv, dtype=str)
        for col in (image_col, label_col):
            if col not in df.columns:
                raise ConfigError(f"{labels_csv} has no column {col!r} (columns: {', '.join(df.columns)})")
        base = Path(image_dir) if image_dir else labels_csv.parent
        paths = [base / str(v) for v in df[image_col]]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise InputValidationError(
                f"{len(missing)} images listed in {labels_csv} are missing, e.g. {missing[:3]}",
                details=[{"field": image_col, "problem": "missing", "value": m} for m in missing[:20]],
            )
        has_group = bool(group_col) and group_col in df.columns
        groups = [str(g) for g in df[group_col if has_group else image_col]]
        labels = [str(v) for v in df[label_col]]
        meta_cols = {
            f: next(c for c in cols if c in df.columns) for f, cols in CSV_META.items() if set(cols) & set(df.columns)
        }
        metadata = [_record(r, meta_cols) for r in df.to_dict("records")] if meta_cols else None
        return cls(
            paths=paths,
            labels=labels,
            groups=groups,
            image_ids=[p.stem for p in paths],
            class_names=class_names or sorted(set(labels)),
            name=name or labels_csv.stem,
            metadata=metadata,
        )


def group_split(
    labels: list[str] | np.ndarray,
    groups: list[str] | np.ndarray,
    fractions: tuple[float, float] = (0.15, 0.15),
    seed: int = 20260,
) -> dict[str, np.ndarray]:
    """Split items into ``train``/``val``/``test`` by group, stratified by each group's (majority) label.

    Every group lands in exactly one split; within each label the groups are shuffled with ``seed`` and the first
    ``fractions[1]`` go to test, the next ``fractions[0]`` to val (at least one group each when a label has >= 3).

    Returns:
        ``{"train"|"val"|"test": (n,) int64 item indices}``.
    """
    labels = np.asarray(labels)
    groups = np.asarray(groups)
    df = pd.DataFrame({"label": labels, "group": groups})
    group_label = df.groupby("group")["label"].agg(lambda s: s.value_counts().index[0])
    rng = np.random.default_rng(seed)
    assign: dict[str, str] = {}
    for lab in sorted(group_label.unique()):
        gs = np.array(sorted(group_label.index[group_label == lab]))
        rng.shuffle(gs)
        n = len(gs)
        n_test = int(round(fractions[1] * n))
        n_val = int(round(fractions[0] * n))
        if n >= 3:
            n_test, n_val = max(n_test, 1), max(n_val, 1)
        for g in gs[:n_test]:
            assign[g] = "test"
        for g in gs[n_test : n_test + n_val]:
            assign[g] = "val"
        for g in gs[n_test + n_val :]:
            assign[g] = "train"
    split = np.array([assign[g] for g in groups])
    return {s: np.flatnonzero(split == s).astype(np.int64) for s in ("train", "val", "test")}


@dataclass
class OmicsCohort:
    """Samples x features omics matrix with labels, studies and patients.

    Attributes:
        X: ``(N, F) float64`` features (e.g. module eigengenes).
        feature_names: ``F`` names.
        labels: label per sample (``None`` entries for unlabelled data).
        studies: study (e.g. GEO series) per sample.
        patients: patient id per sample.
        sample_ids: sample id per sample.
        class_names: label vocabulary in output order.
    """

    X: np.ndarray
    feature_names: list[str]
    labels: list[str | None]
    studies: list[str]
    patients: list[str]
    sample_ids: list[str]
    class_names: list[str] = field(default_factory=list)
    name: str = "omics"

    def __len__(self) -> int:
        return int(self.X.shape[0])

    @property
    def y(self) -> np.ndarray:
        """``(N,) int64`` class index per sample (raises when a sample is unlabelled)."""
        index = {c: i for i, c in enumerate(self.class_names)}
        try:
            return np.array([index[str(c)] for c in self.labels], dtype=np.int64)
        except KeyError as exc:
            raise ConfigError(f"{self.name}: sample label {exc} not in {self.class_names}") from None

    @classmethod
    def from_cops_psoriasis(cls, root: str | Path) -> OmicsCohort:
        """COPS psoriasis: ``psoriasis_wgcna_eigengenes_with_labels.csv`` (ME1..ME12, GSE, patient_id, lesional)."""
        path = Path(root) / "psoriasis_wgcna_eigengenes_with_labels.csv"
        if not path.is_file():
            raise ConfigError(f"{path} not found (COPS psoriasis eigengenes)")
        df = pd.read_csv(path)
        feats = [c for c in df.columns if c.startswith("ME")]
        df = df.dropna(subset=["lesional"])
        return cls(
            X=df[feats].to_numpy(np.float64),
            feature_names=feats,
            labels=[str(v) for v in df["lesional"]],
            studies=[str(v) for v in df["GSE"]],
            patients=[str(v) for v in df["patient_id"]],
            sample_ids=[str(v) for v in df.iloc[:, 0]],
            class_names=["lesional", "non_lesional", "healthy_control"],
            name="COPS psoriasis (10 GEO series)",
        )

    @classmethod
    def from_cops_atopic_dermatitis(cls, root: str | Path) -> OmicsCohort:
        """COPS atopic dermatitis microarray z-scores (genes x samples, gzipped) with study ids; **no labels**."""
        root = Path(root)
        mat = pd.read_csv(root / "ad_ge_micro_zscore_genesXsamples.csv.gz", index_col=0)
        studies = pd.read_csv(root / "ad_studies.csv", index_col=0)
        mat = mat.T
        common = [s for s in mat.index if s in studies.index]
        mat = mat.loc[common]
        return cls(
            X=mat.to_numpy(np.float64),
            feature_names=[str(c) for c in mat.columns],
            labels=[None] * len(common),
            studies=[str(studies.loc[s].iloc[0]) for s in common],
            patients=[str(s) for s in common],
            sample_ids=[str(s) for s in common],
            class_names=[],
            name="COPS atopic dermatitis microarray (unlabelled)",
        )

    @classmethod
    def from_csv(
        cls,
        matrix_csv: str | Path,
        labels_csv: str | Path,
        *,
        sample_col: str = "sample",
        label_col: str = "label",
        study_col: str | None = "study",
        patient_col: str | None = "patient",
        class_names: list[str] | None = None,
        name: str | None = None,
    ) -> OmicsCohort:
        """A hospital's own omics cohort: a samples x features matrix CSV plus a labels CSV.

        Samples missing from either file are dropped (logged); a missing study column puts every sample in one
        study (leave-one-study-out then needs at least two studies).
        """
        mat = pd.read_csv(matrix_csv, index_col=0)
        lab = pd.read_csv(labels_csv, dtype=str)
        for col in (sample_col, label_col):
            if col not in lab.columns:
                raise ConfigError(f"{labels_csv} has no column {col!r}")
        lab = lab.set_index(sample_col)
        common = [s for s in mat.index.astype(str) if s in lab.index]
        if not common:
            raise ConfigError(f"no sample ids shared by {matrix_csv} and {labels_csv}")
        mat.index = mat.index.astype(str)
        mat = mat.loc[common]
        lab = lab.loc[common]
        labels = [str(v) for v in lab[label_col]]
        return cls(
            X=mat.to_numpy(np.float64),
            feature_names=[str(c) for c in mat.columns],
            labels=labels,
            studies=[str(v) for v in lab[study_col]] if study_col and study_col in lab else ["study"] * len(common),
            patients=[str(v) for v in lab[patient_col]] if patient_col and patient_col in lab else common,
            sample_ids=common,
            class_names=class_names or sorted(set(labels)),
            name=name or Path(matrix_csv).stem,
        )
