"""``medai evaluate skin_derm_lesion_cls --data DIR --out FILE.json``: the shipped (or given) classifier on images.

``DIR`` is a HAM10000-layout folder (``HAM10000_metadata.csv`` + ``images/``) or, with ``--format csv``, a hospital
cohort (``labels.csv`` with ``image``, ``label``, ``group``). Every image goes through the one predict path
(:class:`medai.derm.predictor.SkinLesionPredictor`).

Which images count (``--format``):

* ``ham10000-test`` (default, also ``auto``): only the lesions the package's ``split.json`` holds out as *test* --
  never used for training, checkpoint selection or temperature fitting. This is the test result.
* ``ham10000-heldout``: test lesions plus lesions the package never saw at all (absent from every split, e.g. the
  20 % of HAM10000 outside this copy).
* ``ham10000-val``: the validation lesions (used for model selection and calibration: *not* a test result).
* ``ham10000-all``: every image, including training images -- reported with ``"is_test_result": false``.
* ``csv``: every image of an external cohort (a test result when the cohort is new to the model).
* ``prognosis``: time-to-event from any subset of image, clinical columns (``--clinical``) and omics
  (``matrix.csv``) of a patient cohort, through the fusion survival head (:mod:`pipelines.derm.prognosis`).
* ``csv-test`` / ``csv-heldout`` / ``csv-val`` / ``csv-all``: the subsets above of the ``labels.csv`` cohort the
  package was trained on (``medai train`` with ``data.format: csv``), by its split's patient groups.

An output inside the package's ``evaluation/`` folder also writes that evaluation's section of ``MODEL_CARD.md``
(:func:`update_model_card`): the card's figures come only from these JSON files.

Writes the metrics JSON (``balanced_accuracy``, per-class AUC / sensitivity / specificity, confusion matrix,
``ece`` + reliability bins), and beside it ``<out>.confusion.png`` and ``<out>.reliability.png``.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np

from medai.derm.cohort import ImageCohort
from medai.derm.image import load_skin_image
from medai.derm.metrics import classification_report
from medai.errors import ConfigError
from medai.inference.package import read_metadata, resolve_package

logger = logging.getLogger(__name__)

SUBSETS = {"ham10000-test", "ham10000-heldout", "ham10000-val", "ham10000-all"}
#: the same subsets of a labels.csv cohort the package was trained on (its split.json groups are patients)
CSV_SUBSETS = {"csv-test", "csv-heldout", "csv-val", "csv-all"}


def select_subset(cohort: ImageCohort, split_doc: dict[str, Any], subset: str) -> tuple[np.ndarray, dict[str, Any]]:
    """Indices of ``cohort`` in ``subset`` and a description of what they are."""
    groups = np.asarray(cohort.groups)
    known = {k: set(v) for k, v in split_doc.get("groups", {}).items()}
    seen = set().union(*known.values()) if known else set()
    if subset == "ham10000-test":
        m = np.isin(groups, list(known.get("test", set())))
        desc = "test lesions of the package's lesion-grouped split (never used for training, selection or calibration)"
        is_test = True
    elif subset == "ham10000-heldout":
        m = np.isin(groups, list(known.get("test", set()))) | ~np.isin(groups, list(seen))
        desc = "test lesions plus lesions absent from every split of the package (never seen)"
        is_test = True
    elif subset == "ham10000-val":
        m = np.isin(groups, list(known.get("val", set())))
        desc = "validation lesions: used for checkpoint selection and temperature fitting (NOT a test result)"
        is_test = False
    else:
        m = np.ones(len(groups), bool)
        desc = "all images, including the training images (NOT a test result)"
        is_test = False
    n_train_overlap = int(np.isin(groups[m], list(known.get("train", set())) + list(known.get("val", set()))).sum())
    return np.flatnonzero(m), {
        "subset": subset,
        "description": desc,
        "is_test_result": is_test and not n_train_overlap,
        "images_from_train_or_val_lesions": n_train_overlap,
    }


def plot_confusion(cm: list[list[int]], labels: list[str], path: Path, title: str) -> Path:
    """Confusion matrix PNG (rows = truth, columns = prediction; cells show counts, colour = row-normalised)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    a = np.asarray(cm, float)
    norm = a / np.maximum(a.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(6, 5.2))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, int(a[i, j]), ha="center", va="center", color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_reliability(rel: dict[str, list], ece: float, path: Path, title: str) -> Path:
    """Reliability diagram PNG (top-label confidence vs accuracy per bin, bar width = bin, counts annotated)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lo, hi = np.asarray(rel["bin_lower"]), np.asarray(rel["bin_upper"])
    acc, conf, n = np.asarray(rel["accuracy"]), np.asarray(rel["confidence"]), np.asarray(rel["count"])
    ok = n > 0
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.bar(lo[ok], acc[ok], width=(hi - lo)[ok], align="edge", edgecolor="k", alpha=0.7, label="accuracy")
    ax.plot(conf[ok], acc[ok], "o", color="C1", label="accuracy at mean confidence")
    ax.plot([0, 1], [0, 1], "k--", lw=1)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (top-label probability)")
    ax.set_ylabel("accuracy")
    ax.set_title(f"{title}\nECE = {ece:.3f}", fontsize=9)
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


HEADLINE = (
    "balanced_accuracy",
    "accuracy",
    "macro_auc",
    "melanoma_vs_benign_auc",
    "melanoma_at_90_specificity",
    "bootstrap",
)


def classify(
    predictor: Any, cohort: ImageCohort, idx: np.ndarray, fused: bool, chunk: int = 64
) -> tuple[np.ndarray, np.ndarray | None]:
    """Probabilities of the images ``idx`` through the predictor (with their metadata when ``fused``; then also
    the image-only probabilities), decoded ``chunk`` images at a time, with a progress bar."""
    from rich.progress import Progress

    probs, alone = [], []
    with Progress() as bar:
        task = bar.add_task(f"classifying {len(idx)} images", total=len(idx))
        for s in range(0, len(idx), chunk):
            part = idx[s : s + chunk]
            pixels = [load_skin_image(cohort.paths[i]).pixels for i in part]
            recs = [cohort.metadata[i] for i in part] if fused and cohort.metadata is not None else None
            p, a = predictor.predict_proba_batch(pixels, recs, image_only=fused)
            probs.append(p)
            if a is not None:
                alone.append(a)
            bar.advance(task, len(part))
    return np.concatenate(probs), (np.concatenate(alone) if alone else None)


def summarise(
    probs: np.ndarray, y: np.ndarray, groups: np.ndarray, class_names: list[str], n_boot: int
) -> dict[str, Any]:
    """Classification report + malignant and melanoma figures + lesion-level bootstrap intervals."""
    from medai.derm.metrics import binary_auc, bootstrap_ci, melanoma_report

    report = classification_report(probs, y, class_names)
    malignant = [class_names.index(c) for c in ("mel", "bcc", "akiec") if c in class_names]
    if malignant:
        report["malignant_vs_benign_auc"] = binary_auc(probs[:, malignant].sum(1), np.isin(y, malignant))
    report.update(melanoma_report(probs, y, class_names))
    if n_boot:
        report["bootstrap"] = bootstrap_ci(probs, y, groups, class_names, n_boot=n_boot)
    return report


def per_value(probs: np.ndarray, y: np.ndarray, values: list[Any]) -> dict[str, dict[str, float]]:
    """Balanced accuracy and accuracy per value of one metadata field (e.g. Fitzpatrick skin type); ``{}`` when
    the field is never filled in."""
    from sklearn.metrics import balanced_accuracy_score

    vals = np.asarray(["" if v is None else str(v) for v in values])
    out: dict[str, dict[str, float]] = {}
    for v in sorted(set(vals) - {""}):
        m = vals == v
        pred = probs[m].argmax(1)
        out[v] = {
            "n": int(m.sum()),
            "balanced_accuracy": float(balanced_accuracy_score(y[m], pred)),
            "accuracy": float((pred == y[m]).mean()),
        }
    return out


def evaluate_cli(
    model: str,
    data: Path,
    fmt: str = "auto",
    out: Path = Path("evaluation.json"),
    package: Path | None = None,
    use_metadata: bool = True,
    n_boot: int = 1000,
    labels_csv: Path | None = None,
    image_dir: Path | None = None,
    command: str | None = None,
    clinical: list[str] | None = None,
) -> dict[str, Any]:
    """Evaluate a skin-lesion package on ``data`` (see the module docstring); returns the written metrics.

    A package that fuses patient metadata gets each image's record from the cohort (``use_metadata``), and the
    result also holds the image-only figures of the same images (``image_only``).
    """
    from medai.inference.predictor import Predictor

    pkg = resolve_package(package or model)
    meta = read_metadata(pkg)
    fmt = "ham10000-test" if fmt in ("auto", "ham10000") else fmt
    data = Path(data)
    if fmt == "prognosis":  # image + clinical + omics -> time to event (pipelines.derm.prognosis)
        from pipelines.derm.prognosis import cv_multimodal_prognosis

        doc = {"model": meta.name, "version": meta.version, "data": str(data), "format": fmt,
               "is_test_result": True, **cv_multimodal_prognosis(data, pkg, clinical),
               "command": command or " ".join(["medai evaluate", *sys.argv[2:]])}
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(doc, indent=2, default=float))
        return doc
    predictor = Predictor.from_package(pkg, saliency=False)
    class_names = list(predictor.config.class_names)
    if fmt in SUBSETS or fmt in CSV_SUBSETS:
        if fmt in SUBSETS:
            cohort = ImageCohort.from_ham10000(data, class_names=class_names)
        else:
            cohort = ImageCohort.from_csv(labels_csv or data / "labels.csv", image_dir or data, class_names=class_names)
        split_path = pkg / "split.json"
        split_doc = json.loads(split_path.read_text()) if split_path.is_file() else {}
        if not split_doc and not fmt.endswith("-all"):
            raise ConfigError(f"{pkg} has no split.json: cannot tell its test lesions apart; use --format csv/all")
        idx, subset = select_subset(cohort, split_doc, fmt.replace("csv-", "ham10000-"))
        subset["subset"] = fmt
    elif fmt == "csv":
        cohort = ImageCohort.from_csv(labels_csv or data / "labels.csv", image_dir or data, class_names=class_names)
        idx = np.arange(len(cohort))
        subset = {"subset": "csv", "description": f"all images of the external cohort {data}", "is_test_result": True}
    else:
        raise ConfigError(
            f"unknown --format {fmt!r}: use {', '.join(sorted(SUBSETS | CSV_SUBSETS))} or csv (a new cohort)"
        )
    if len(idx) == 0:
        raise ConfigError(f"no images of {data} fall in {fmt}")
    fused = bool(getattr(predictor, "metadata_fields", [])) and cohort.metadata is not None and use_metadata
    probs, alone = classify(predictor, cohort, idx, fused)
    y = cohort.y[idx]
    groups = np.asarray(cohort.groups)[idx]
    report = summarise(probs, y, groups, class_names, n_boot)
    if fused and alone is not None:
        only = summarise(alone, y, groups, class_names, n_boot)
        report["image_only"] = {k: only[k] for k in HEADLINE if k in only}
        report["metadata_used"] = list(predictor.metadata_fields)
    else:
        report["metadata_used"] = []
    if cohort.metadata is not None:
        report["per_skin_type"] = per_value(probs, y, [cohort.metadata[i].get("skin_type") for i in idx])
    result: dict[str, Any] = {
        "model": meta.name,
        "version": meta.version,
        "package": str(pkg),
        "data": str(data),
        **subset,
        "n_lesions": int(len(set(np.asarray(cohort.groups)[idx]))),
        **report,
        "command": command
        or (" ".join(["medai evaluate", *sys.argv[2:]]) if sys.argv and "evaluate" in sys.argv else ""),
    }
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    stem = out.with_suffix("")
    title = f"{meta.name} {meta.version} on {subset['subset']} (n={len(idx)})"
    result["confusion_png"] = str(
        plot_confusion(
            report["confusion_matrix"]["rows_true_cols_pred"], class_names, Path(f"{stem}.confusion.png"), title
        )
    )
    result["reliability_png"] = str(
        plot_reliability(report["reliability"], report["ece"], Path(f"{stem}.reliability.png"), title)
    )
    out.write_text(json.dumps(result, indent=2, default=float))
    if out.resolve().parent == (pkg / "evaluation").resolve():
        update_model_card(pkg, out.stem, result)
    _log_to_active_mlflow_run(result, out)
    return result


def _f(v: Any) -> str:
    return "n/a" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.3f}"


def card_section(name: str, r: dict[str, Any]) -> str:
    """The model-card section of one evaluation JSON (every figure read from ``r``)."""
    ci = r.get("bootstrap", {}).get("intervals", {})

    def with_ci(key: str, v: Any) -> str:
        c = ci.get(key)
        return f"{_f(v)} (95 % CI {_f(c['low'])}-{_f(c['high'])})" if c else _f(v)

    lines = [
        f"### {name}: {r.get('description', r.get('subset', ''))}",
        f"`{r.get('command', '')}`",
        "",
        f"n = {r['n']} images of {r.get('n_lesions', '?')} lesions; test result: {r.get('is_test_result')}. "
        f"Balanced accuracy **{with_ci('balanced_accuracy', r['balanced_accuracy'])}**, accuracy "
        f"{_f(r['accuracy'])}, macro AUC {with_ci('macro_auc', r['macro_auc'])}, ECE {_f(r['ece'])}.",
    ]
    if "melanoma_vs_benign_auc" in r:
        m90 = r["melanoma_at_90_specificity"]
        lines.append(
            f"Melanoma vs benign AUC {with_ci('melanoma_vs_benign_auc', r['melanoma_vs_benign_auc'])}; melanoma "
            f"sensitivity at 90 % specificity "
            f"{with_ci('melanoma_sensitivity_at_90_specificity', m90['sensitivity'])}."
        )
    if r.get("image_only"):
        io_ = r["image_only"]
        lines.append(
            f"Fused with {', '.join(r.get('metadata_used', []))}; the same images without metadata (image-only "
            f"path): balanced accuracy {_f(io_['balanced_accuracy'])}, macro AUC {_f(io_['macro_auc'])}."
        )
    lines += ["", "| class | n | AUC | sensitivity | specificity |", "|---|---|---|---|---|"]
    for c, d in r["per_class"].items():
        lines.append(f"| {c} | {d['n']} | {_f(d['auc'])} | {_f(d['sensitivity'])} | {_f(d['specificity'])} |")
    if r.get("per_skin_type"):
        lines += ["", "| skin type | n | balanced accuracy |", "|---|---|---|"]
        lines += [f"| {t} | {d['n']} | {_f(d['balanced_accuracy'])} |" for t, d in r["per_skin_type"].items()]
    return "\n".join(lines)


def update_model_card(pkg: Path, name: str, result: dict[str, Any]) -> Path | None:
    """Put (or replace) the section of evaluation ``name`` in the package's MODEL_CARD.md, at the card's
    evaluations marker (or at its end)."""
    from pipelines.derm.train import CARD_EVALUATIONS

    card = pkg / "MODEL_CARD.md"
    if not card.is_file():
        return None
    text = card.read_text()
    start, end = f"<!-- evaluation:{name} -->", f"<!-- /evaluation:{name} -->"
    block = f"{start}\n{card_section(name, result)}\n{end}"
    if start in text and end in text:
        text = text[: text.index(start)] + block + text[text.index(end) + len(end) :]
    elif CARD_EVALUATIONS in text:
        text = text.replace(CARD_EVALUATIONS, f"{block}\n\n{CARD_EVALUATIONS}")
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    card.write_text(text)
    return card


def _log_to_active_mlflow_run(result: dict[str, Any], out: Path) -> None:
    """Log the headline metrics and files when an MLflow run is active (``medai evaluate`` inside a run)."""
    try:
        import mlflow
    except ImportError:  # pragma: no cover
        return
    if mlflow.active_run() is None:
        return
    prefix = "test" if result.get("is_test_result") else "eval"
    mlflow.log_metrics({f"{prefix}/balanced_accuracy": result["balanced_accuracy"], f"{prefix}/ece": result["ece"]})
    mlflow.log_artifact(str(out))
