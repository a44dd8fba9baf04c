"""``medai train configs/experiment/derm_ham10000.yaml``: skin-lesion classifier on HAM10000 (or a CSV cohort).

Flow: cohort -> lesion-grouped train/val/test split (fixed seed) -> cached ``uint8`` images -> Lightning fit with a
class-weighted loss (or weighted sampler) and dermoscopy augmentation, checkpoint chosen on validation balanced
accuracy -> temperature fitted on the validation split -> one evaluation on the test lesions (never used for any
choice) -> model package (weights, ``inference.json``, ``split.json``, ``metadata.json``, model card) -> MLflow run
with params, per-epoch metrics, test metrics and the package, registered as ``skin_derm_lesion_cls``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import platform
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F

from medai.derm.cohort import ImageCohort, group_split
from medai.derm.labels import label_table
from medai.derm.metadata import MetadataEncoder, drop_fields
from medai.derm.metrics import calibrated_probabilities, classification_report, fit_temperature
from medai.derm.preprocess import dihedral_views
from medai.errors import ConfigError
from medai.inference.package import ModelMetadata, TrainingData, read_metadata, write_metadata
from medai.registry import NETWORKS
from medai.settings import REPO_ROOT
from pipelines.derm.data import (
    AugmentConfig,
    SkinDataModule,
    augment_batch,
    cache_images,
    channel_stats,
)
from pipelines.derm.recipe import SkinLesionRecipe, load_recipe

logger = logging.getLogger(__name__)

HAM10000_CITATION = (
    "Tschandl P, Rosendahl C, Kittler H. The HAM10000 dataset, a large collection of multi-source dermatoscopic "
    "images of common pigmented skin lesions. Sci Data 5, 180161 (2018)."
)
HAM10000_LICENCE = "CC BY-NC-SA 4.0"


def to_input(x_uint8: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """``(B, S, S, 3) uint8`` -> ``(B, 3, S, S) float32`` in [0, 1] (no normalisation yet)."""
    return x_uint8.permute(0, 3, 1, 2).float().div_(255.0)


class LesionClassifier(L.LightningModule):
    """Network + (weighted) cross-entropy + augmentation + validation balanced accuracy.

    Args:
        network / network_params: registry name and keyword arguments of the network.
        num_classes: number of classes.
        class_weights: ``(K,)`` loss weights (ones for an unweighted loss).
        mean / std: per-channel normalisation on the [0, 1] scale.
        augment: augmentation settings.
        lr / weight_decay / warmup_epochs / max_epochs: AdamW with linear warm-up then cosine decay (per step).
        max_time_s: wall-time budget; the cosine follows whichever of step or time progress is further, so a run
            slowed by a shared CPU still anneals fully before the trainer's ``max_time`` stops it.
        label_smoothing: cross-entropy label smoothing.
        meta_slices / meta_dropout: field blocks of the metadata vector and the chance each is hidden in training.
        log_prior / logit_adjust_tau: logit-adjusted loss (Menon et al. 2021): the training loss sees
            ``logits + tau * log(prior)`` of the *sampled* class prior, so the plain logits target balanced error.
    """

    def __init__(
        self,
        network: str,
        network_params: dict[str, Any],
        num_classes: int,
        class_weights: list[float],
        mean: list[float],
        std: list[float],
        augment: dict[str, Any],
        lr: float = 3e-3,
        weight_decay: float = 5e-4,
        warmup_epochs: float = 1.0,
        max_epochs: int = 20,
        label_smoothing: float = 0.0,
        max_time_s: float | None = None,
        meta_slices: list[list[int]] | None = None,
        meta_dropout: float = 0.0,
        log_prior: list[float] | None = None,
        logit_adjust_tau: float = 0.0,
        low_res_size: int | None = None,
        low_res_until: float = 0.0,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = NETWORKS.get(network)(in_channels=3, num_classes=num_classes, **network_params)
        self.uses_meta = bool(getattr(self.net, "meta_dim", 0))
        adjust = torch.tensor(log_prior or [0.0] * num_classes, dtype=torch.float32) * logit_adjust_tau
        self.register_buffer("logit_adjust", adjust.view(1, -1))
        self._elapsed_before = 0.0
        if channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        self.register_buffer("class_weights", torch.tensor(class_weights, dtype=torch.float32))
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))
        self.augment = AugmentConfig.model_validate(augment)
        self._t0: float | None = None
        self._val_logits: list[torch.Tensor] = []
        self._val_y: list[torch.Tensor] = []

    def forward_uint8(self, x: torch.Tensor, meta: torch.Tensor | None = None, train: bool = False) -> torch.Tensor:
        """Logits ``(B, K)`` of ``(B, S, S, 3) uint8`` images and their metadata (augmented when ``train``)."""
        x = x.permute(0, 3, 1, 2).float().div_(255.0)
        if train:
            low = self.hparams.low_res_size if self.progress() < self.hparams.low_res_until else None
            x = augment_batch(x, self.augment, out_size=low)
        x = (x - self.mean) / self.std
        if self.hparams.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if not self.uses_meta:
            return self.net(x)
        if train and meta is not None:
            meta = drop_fields(meta, self.hparams.meta_slices or [], self.hparams.meta_dropout)
        return self.net(x, meta)

    def progress(self) -> float:
        """Training progress in [0, 1]: the further of steps and wall time (the LR schedule's clock)."""
        if self._trainer is None:
            return 1.0
        total = max(1, int(self.trainer.estimated_stepping_batches))
        t = self.trainer.global_step / total
        if self.hparams.max_time_s:
            t = max(t, self.elapsed() / self.hparams.max_time_s)
        return min(1.0, t)

    def elapsed(self) -> float:
        """Training seconds so far, including those before a resume."""
        return self._elapsed_before + (time.time() - self._t0 if self._t0 else 0.0)

    def on_train_start(self) -> None:
        self._t0 = time.time()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["medai_elapsed_s"] = self.elapsed()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._elapsed_before = float(checkpoint.get("medai_elapsed_s", 0.0))

    def training_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        x, meta, y = batch
        if self.hparams.max_time_s and self._t0 and self.elapsed() > self.hparams.max_time_s:
            self.trainer.should_stop = True  # schedule fully annealed: stop at the end of this epoch
        logits = self.forward_uint8(x, meta, train=True) + self.logit_adjust
        loss = F.cross_entropy(logits, y, weight=self.class_weights, label_smoothing=self.hparams.label_smoothing)
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(y))
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> None:
        x, meta, y = batch
        logits = self.forward_uint8(x, meta)
        self._val_logits.append(logits.detach().cpu())
        self._val_y.append(y.cpu())

    def on_validation_epoch_end(self) -> None:
        if not self._val_logits:
            return
        logits = torch.cat(self._val_logits)
        y = torch.cat(self._val_y)
        self._val_logits.clear()
        self._val_y.clear()
        pred = logits.argmax(1)
        recalls = [(pred[y == c] == c).float().mean() for c in torch.unique(y)]
        self.log("val/balanced_accuracy", torch.stack(recalls).mean(), prog_bar=True)
        self.log("val/loss", F.cross_entropy(logits, y))
        self.log("val/accuracy", (pred == y).float().mean())

    def configure_optimizers(self) -> dict[str, Any]:
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        epochs = max(1, self.hparams.max_epochs)
        warm = max(1, int(total * self.hparams.warmup_epochs / epochs))

        def lr_at(step: int) -> float:
            if step < warm:
                return (step + 1) / warm
            t = (step - warm) / max(1, total - warm)
            if self.hparams.max_time_s and self._t0 is not None:
                t = max(t, self.elapsed() / self.hparams.max_time_s)
            return 0.5 * (1 + math.cos(math.pi * min(1.0, t)))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


@torch.no_grad()
def predict_logits(
    net: torch.nn.Module,
    images: np.ndarray,
    mean: list[float],
    std: list[float],
    meta: np.ndarray | None = None,
    tta: int = 1,
    batch: int = 128,
) -> np.ndarray:
    """Logits ``(N, K) float32`` of cached ``(N, S, S, 3) uint8`` images (and their encoded metadata), in batches;
    with ``tta > 1`` the mean logits over that many flips/rotations (:func:`medai.derm.preprocess.dihedral_views`)."""
    net.eval()
    dev = next(net.parameters()).device
    m = torch.tensor(mean, device=dev).view(1, 3, 1, 1)
    s = torch.tensor(std, device=dev).view(1, 3, 1, 1)
    uses_meta = bool(getattr(net, "meta_dim", 0))
    out = []
    for i in range(0, len(images), batch):
        x = torch.from_numpy(images[i : i + batch]).to(dev).permute(0, 3, 1, 2).float() / 255.0
        x = (x - m) / s
        mt = torch.from_numpy(meta[i : i + batch]).to(dev) if (uses_meta and meta is not None) else None
        views = [net(v, mt) if uses_meta else net(v) for v in dihedral_views(x, tta)]
        out.append(torch.stack(views).mean(0).float().cpu())
    return torch.cat(out).numpy()


def metadata_inputs(
    recipe: SkinLesionRecipe, cohort: ImageCohort, train_idx: np.ndarray
) -> tuple[MetadataEncoder | None, np.ndarray | None]:
    """The metadata encoder (vocabularies from the training images only) and the ``(N, D)`` encoded matrix, or
    ``(None, None)`` when the recipe or the cohort has no metadata."""
    if not recipe.data.metadata:
        return None, None
    if cohort.metadata is None:
        raise ConfigError(
            f"data.metadata is on but cohort {cohort.name} carries no metadata columns "
            "(age, sex, site, skin_type); add them to labels.csv or set data.metadata=false"
        )
    encoder = MetadataEncoder.fit([cohort.metadata[i] for i in train_idx], fields=recipe.data.metadata_fields)
    if not encoder.fields:
        raise ConfigError(f"cohort {cohort.name}: every metadata value of the training images is missing")
    return encoder, encoder.encode_many(cohort.metadata)


def sampled_log_prior(y: np.ndarray, k: int, power: float) -> list[float]:
    """log of the class prior the training loader draws (``count^(1 - power)``, normalised)."""
    counts = np.maximum(np.bincount(y, minlength=k).astype(np.float64), 1)
    prior = counts * (counts**-power if power > 0 else 1.0)
    prior = prior / prior.sum()
    return [float(v) for v in np.log(prior)]


def work_dir(recipe: SkinLesionRecipe) -> Path:
    """Checkpoint folder of a recipe (``MEDAI_HOME/work/<name>-<hash of the recipe>``): a rerun of the same recipe
    resumes from its ``last.ckpt``; a changed recipe starts afresh."""
    import hashlib

    from medai.settings import get_settings

    digest = hashlib.sha1(recipe.model_dump_json(exclude={"output"}).encode()).hexdigest()[:12]
    return get_settings().home / "work" / f"{recipe.name}-{digest}"


def class_weights_for(y: np.ndarray, k: int, power: float) -> list[float]:
    """``(n / (k * count_c)) ** power`` per class, normalised to mean 1 over the training images."""
    counts = np.bincount(y, minlength=k).astype(np.float64)
    w = (len(y) / (k * np.maximum(counts, 1))) ** power
    w = w / (w[y].mean())
    return [float(v) for v in w]


def load_cohort(recipe: SkinLesionRecipe) -> ImageCohort:
    """The recipe's cohort (HAM10000 or a CSV cohort), truncated to ``data.limit`` when set."""
    d = recipe.data
    if d.format == "ham10000":
        cohort = ImageCohort.from_ham10000(recipe.data_root(), class_names=d.class_names)
    else:
        if d.labels_csv is None:
            raise ConfigError("data.format csv needs data.labels_csv (columns image, label, group)")
        cohort = ImageCohort.from_csv(d.labels_csv, d.image_dir, class_names=d.class_names)
    if d.limit:
        rng = np.random.default_rng(0)
        idx = np.sort(rng.choice(len(cohort), size=min(d.limit, len(cohort)), replace=False))
        cohort = cohort.subset(idx)
    return cohort


def _hardware() -> str:
    import os

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"CPU only: {cpu}, {os.cpu_count()} logical cores visible, torch threads={torch.get_num_threads()}"


def write_package(
    out: Path,
    recipe: SkinLesionRecipe,
    net: torch.nn.Module,
    cohort: ImageCohort,
    split: dict[str, np.ndarray],
    mean: list[float],
    std: list[float],
    temperature: float,
    val_report: dict[str, Any],
    train_seconds: float,
    hardware: str,
    run_id: str | None,
    encoder: MetadataEncoder | None = None,
    net_params: dict[str, Any] | None = None,
    reproduce: str = "",
) -> Path:
    """Write the model package folder (weights, inference.json, split.json, metadata.json, MODEL_CARD.md);
    ``reproduce`` is the command that trained it (recipe and overrides)."""
    out.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), out / "weights.pt")
    inference = {
        "network": recipe.model.network,
        "network_params": net_params if net_params is not None else recipe.model.params,
        "class_names": cohort.class_names,
        "image_size": recipe.data.image_size,
        "mean": mean,
        "std": std,
        "temperature": temperature,
        "tta": recipe.trainer.tta,
        "metadata": encoder.model_dump() if encoder is not None else None,
        "preprocess": "medai.derm.preprocess.resize_square + normalise (whole image to SxS, bilinear)",
    }
    (out / "inference.json").write_text(json.dumps(inference, indent=2))
    groups = np.asarray(cohort.groups)
    split_doc = {
        "cohort": cohort.name,
        "group": "lesion_id",
        "seed": recipe.data.split.seed,
        "fractions": {"val": recipe.data.split.val_fraction, "test": recipe.data.split.test_fraction},
        "n_images": {k: int(len(v)) for k, v in split.items()},
        "groups": {k: sorted(set(groups[v].tolist())) for k, v in split.items()},
    }
    (out / "split.json").write_text(json.dumps(split_doc))
    metrics: dict[str, float] = {
        "val/balanced_accuracy": val_report["balanced_accuracy"],
        "val/ece": val_report["ece"],
    }
    metrics = {k: float(v) for k, v in metrics.items() if v is not None and not math.isnan(float(v))}
    stale = out / "test_metrics.json"  # v1 packages kept training-time test figures; the evaluation JSON has them now
    stale.unlink(missing_ok=True)
    n_params = sum(p.numel() for p in net.parameters())
    meta = ModelMetadata(
        name=recipe.name,
        version=recipe.version,
        predictor="skin_lesion",
        task="classification",
        description=describe(recipe, cohort, encoder, n_params),
        input_contract={
            "kind": "image",
            "accepts": ["JPEG", "PNG", "DICOM VL Photographic Image", "DICOM Dermoscopic Photography Image"],
            "colour": "RGB required (grayscale refused)",
            "image_type": recipe.data.image_type or ("dermoscopic" if cohort.name == "HAM10000" else "clinical"),
            "min_side_px": 32,
            "preprocess": inference["preprocess"],
        },
        output_contract={
            "classes": "probability per diagnosis (softmax(logits / temperature))",
            "extras.malignant_probability": "P(mel) + P(bcc) + P(akiec)",
            "extras.saliency": "(H, W) float32 in [0, 1], Grad-CAM at the source image size",
            "extras.predicted_class": "arg-max class name",
        },
        labels=label_table(cohort.class_names),
        training_data=[
            TrainingData(
                name=cohort.name,
                description=(
                    f"{len(cohort)} images / {len(set(cohort.groups))} lesions; split by lesion_id "
                    f"(train {len(split['train'])}, val {len(split['val'])}, test {len(split['test'])} images)"
                ),
                licence=HAM10000_LICENCE if cohort.name == "HAM10000" else "",
                n_cases=len(set(cohort.groups)),
                citation=HAM10000_CITATION if cohort.name == "HAM10000" else "",
            )
        ],
        metrics=metrics,
        mlflow_run_id=run_id,
        files=["weights.pt", "inference.json", "split.json", "MODEL_CARD.md", "evaluation/"],
        licence=f"{HAM10000_LICENCE} (inherited from the training data; non-commercial)"
        if cohort.name == "HAM10000"
        else "",
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        hardware=f"{hardware}; training wall time {train_seconds / 60:.1f} min",
        reproduce=reproduce or "medai train configs/experiment/derm_ham10000.yaml",
    )
    write_metadata(out, meta)
    counts = cohort_counts(cohort, split)
    (out / "MODEL_CARD.md").write_text(
        model_card(meta, temperature, train_seconds, hardware, counts, encoder, cohort)
    )
    return out


def cohort_counts(cohort: ImageCohort, split: dict[str, np.ndarray]) -> dict[str, dict[str, int]]:
    """Images per class in each split (``{"train": {"akiec": 170, ...}, ...}``)."""
    labels = np.asarray(cohort.labels)
    return {s: {c: int((labels[idx] == c).sum()) for c in cohort.class_names} for s, idx in split.items()}


def model_card(
    meta: ModelMetadata,
    temperature: float,
    train_seconds: float,
    hardware: str,
    counts: dict[str, dict[str, int]] | None = None,
    encoder: MetadataEncoder | None = None,
    cohort: ImageCohort | None = None,
) -> str:
    """Markdown model card of the image classifier, generated from the cohort it was trained on."""
    td = meta.training_data[0] if meta.training_data else None
    ham = bool(td and td.name == "HAM10000")
    counts = counts or {}
    count_rows = "\n".join(
        f"| {c} | {counts.get('train', {}).get(c, 0)} | {counts.get('val', {}).get(c, 0)} | "
        f"{counts.get('test', {}).get(c, 0)} |"
        for c in (cohort.class_names if cohort else [])
    )
    small = [c for c in (cohort.class_names if cohort else []) if counts.get("test", {}).get(c, 0) < 30]
    use = (
        "Decision support research on dermoscopic images of pigmented lesions of the seven HAM10000 classes; not "
        "for clinical photographs of other diseases, not for screening decisions."
        if ham
        else f"Decision support research on images like those of the {td.name if td else ''} cohort, for its "
        f"{len(cohort.class_names) if cohort else 0} classes only; validate on your own patients before any use."
    )
    meta_line = (
        f"Patient metadata fused: {', '.join(encoder.fields)} (site vocabulary: {', '.join(encoder.site) or 'none'}"
        "); each field may be absent, and with none the model is image-only (it was trained with fields hidden at "
        "random)."
        if encoder
        else "Image only: no patient metadata is used."
    )
    return f"""# {meta.name} {meta.version}

{meta.description}

**Intended use.** {meta.intended_use} {use}

## Cohort
{td.name if td else ""}: {td.description if td else ""}. {meta_line}

| class | train images | val images | test images |
|---|---|---|---|
{count_rows}

## Training data and licence
{td.name if td else ""}: {td.description if td else ""}. Licence of the data: {td.licence if td else ""}; the weights
are a derivative and carry the same licence: **{meta.licence}**. Cite: {td.citation if td else ""}

## Results
Every figure below is from an evaluation JSON under `evaluation/`, produced through the predictor by the command it
names (`medai evaluate`); the temperature ({temperature:.3f}) was fitted on the validation lesions.

{CARD_EVALUATIONS}

Anchors (not directly comparable: other splits, resolutions and pretrained networks): ISIC 2018 task 3 best
balanced accuracy 0.885; DermaMNIST (28 px) best accuracy about 0.77.

## Training
Hardware: {hardware}. Wall time {train_seconds / 60:.1f} min. Reproduce: `{meta.reproduce}`.

## Limitations
Trained from scratch (no pretrained weights can be fetched here) on one cohort
{"(mostly fair skin, Austrian and Australian sites)" if ham else f"({td.name if td else ''})"}; probabilities are
calibrated for this cohort's case mix only.{
        f" Classes with fewer than 30 test images ({', '.join(small)}) have wide uncertainty." if small else ""
    } The test split is from the same source as the training images: expect lower figures on another site's
patients, devices and skin types.
"""


#: where :func:`pipelines.derm.evaluate.update_model_card` puts each evaluation's section
CARD_EVALUATIONS = "<!-- evaluations: medai evaluate writes one section per evaluation JSON here -->"


def test_metrics(report: dict[str, Any]) -> dict[str, float]:
    """``metadata.json`` metrics of a test evaluation (balanced accuracy, AUCs, ECE, per-class AUC/sensitivity)."""
    m: dict[str, Any] = {
        "test/balanced_accuracy": report["balanced_accuracy"],
        "test/accuracy": report["accuracy"],
        "test/macro_auc": report["macro_auc"],
        "test/ece": report["ece"],
    }
    if "melanoma_vs_benign_auc" in report:
        m["test/melanoma_vs_benign_auc"] = report["melanoma_vs_benign_auc"]
        m["test/melanoma_sensitivity_at_90_specificity"] = report["melanoma_at_90_specificity"]["sensitivity"]
    if "image_only" in report:
        m["test/image_only/balanced_accuracy"] = report["image_only"]["balanced_accuracy"]
    for c, d in report["per_class"].items():
        m[f"test/auc/{c}"] = d["auc"]
        m[f"test/sensitivity/{c}"] = d["sensitivity"]
    return {k: float(v) for k, v in m.items() if v is not None and not math.isnan(float(v))}


def evaluate_test_split(recipe: SkinLesionRecipe, package: Path) -> dict[str, Any]:
    """``medai evaluate`` of the fresh package on its own test split, written to
    ``<package>/evaluation/<cohort>_test.json`` (and into the model card)."""
    from pipelines.derm.evaluate import evaluate_cli

    d = recipe.data
    if d.format == "ham10000":
        data, fmt, name, extra = recipe.data_root(), "ham10000-test", "ham10000_test", {}
    else:
        assert d.labels_csv is not None
        data, fmt, name = Path(d.labels_csv).parent, "csv-test", f"{Path(d.labels_csv).stem}_test"
        extra = {"labels_csv": Path(d.labels_csv), "image_dir": d.image_dir}
    return evaluate_cli(
        recipe.name,
        data,
        fmt=fmt,
        out=package / "evaluation" / f"{name}.json",
        package=package,
        command=f"medai evaluate {package} --data {data} --format {fmt} --out {package}/evaluation/{name}.json",
        **extra,
    )


def warm_start(net: torch.nn.Module, ref: str) -> dict[str, int]:
    """Copy a package's weights into ``net`` wherever name and shape match; returns the counts of tensors loaded
    and skipped (a different head or metadata branch stays freshly initialised)."""
    from medai.inference.package import resolve_package

    pkg = resolve_package(ref)
    state = torch.load(pkg / "weights.pt", map_location="cpu", weights_only=True)
    own = net.state_dict()
    match = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not match:
        raise ConfigError(f"model.init_from {ref}: no weight of {pkg} fits network {type(net).__name__}")
    net.load_state_dict(match, strict=False)
    counts = {"loaded": len(match), "skipped": len(own) - len(match)}
    logger.info("warm start from %s: %d tensors loaded, %d initialised afresh", pkg, *counts.values())
    return counts


def describe(recipe: SkinLesionRecipe, cohort: ImageCohort, encoder: MetadataEncoder | None, n_params: int) -> str:
    """The package's one-paragraph description."""
    return (
        f"{recipe.model.network} ({n_params / 1e6:.2f} M parameters) classifying {cohort.name} images into "
        f"{len(cohort.class_names)} classes ({', '.join(cohort.class_names)}) at "
        f"{recipe.data.image_size}x{recipe.data.image_size} px"
        + (f", fused with {', '.join(encoder.fields)} (image-only when absent)" if encoder else "")
        + f", {recipe.trainer.tta}-view test-time augmentation, temperature-scaled probabilities"
        + (", malignant summary (mel+bcc+akiec)" if {"mel", "bcc", "akiec"} & set(cohort.class_names) else "")
        + " and Grad-CAM saliency (captum)."
    )


def rebuild_card(package: Path, recipe_path: str | Path, overrides: list[str] | None = None) -> Path:
    """Regenerate a package's MODEL_CARD.md from its files (metadata, split, inference config) and the recipe's
    cohort, then put back a section per evaluation JSON under ``evaluation/``, and refresh ``metadata.json``'s test
    metrics from ``evaluation/<cohort>_test.json`` -- e.g. after a card template change, without retraining."""
    from pipelines.derm.evaluate import update_model_card

    recipe = load_recipe(recipe_path, overrides)
    package = Path(package)
    meta = read_metadata(package)
    inf = json.loads((package / "inference.json").read_text())
    split_doc = json.loads((package / "split.json").read_text())
    cohort = load_cohort(recipe)
    groups = np.asarray(cohort.groups)
    split = {k: np.flatnonzero(np.isin(groups, v)) for k, v in split_doc["groups"].items()}
    encoder = MetadataEncoder.model_validate(inf["metadata"]) if inf.get("metadata") else None
    net = NETWORKS.get(inf["network"])(in_channels=3, num_classes=len(inf["class_names"]), **inf["network_params"])
    meta.description = describe(recipe, cohort, encoder, sum(p.numel() for p in net.parameters()))
    meta.files = [f for f in meta.files if f != "test_metrics.json"] + (
        [] if "evaluation/" in meta.files else ["evaluation/"]
    )
    meta.input_contract.setdefault(
        "image_type", recipe.data.image_type or ("dermoscopic" if cohort.name == "HAM10000" else "clinical")
    )
    hours = meta.hardware.rsplit("training wall time ", 1)
    minutes = float(hours[1].split()[0]) if len(hours) == 2 else 0.0
    (package / "MODEL_CARD.md").write_text(
        model_card(meta, float(inf["temperature"]), minutes * 60, hours[0].rstrip("; "),
                   cohort_counts(cohort, split), encoder, cohort)
    )
    (package / "test_metrics.json").unlink(missing_ok=True)
    for ev in sorted((package / "evaluation").glob("*.json")):
        doc = json.loads(ev.read_text())
        if doc.get("version") == meta.version:
            update_model_card(package, ev.stem, doc)
            if ev.stem.endswith("_test") and doc.get("is_test_result"):
                meta.metrics = {k: v for k, v in meta.metrics.items() if not k.startswith("test/")}
                meta.metrics.update(test_metrics(doc))
    write_metadata(package, meta)
    return package / "MODEL_CARD.md"


def _mlflow_run(experiment: str) -> Any:
    import mlflow

    from pipelines.mlflow_utils import setup_tracking

    setup_tracking()
    mlflow.set_experiment(experiment)
    return mlflow.start_run()


def register_package(run_id: str, package: Path, name: str, alias: str) -> str | None:
    """Log ``package`` as the active run's ``package/`` artefact and register it as ``name`` with ``alias``
    (:func:`pipelines.mlflow_utils.register_package`)."""
    from pipelines.mlflow_utils import register_package as _register

    return _register(package, name, alias or None)


def train_command(recipe_path: str | Path, overrides: list[str] | None = None) -> str:
    """The ``medai train`` command line of a recipe and its overrides (the recipe path relative to the repository
    when it lies inside it)."""
    path = Path(recipe_path)
    with contextlib.suppress(ValueError):
        path = path.resolve().relative_to(REPO_ROOT)
    return " ".join(["medai train", str(path), *(overrides or [])])


def train_from_recipe(recipe_path: str | Path, overrides: list[str] | None = None) -> dict[str, Any]:
    """Train, calibrate, test once, package and register the skin-lesion classifier.

    Returns:
        ``{"package": path, "test": test report, "val": val report, "temperature": T, "run_id": id}``.
    """
    recipe = load_recipe(recipe_path, overrides)
    tc = recipe.trainer
    torch.set_num_threads(tc.num_threads)
    L.seed_everything(tc.seed, workers=True)

    cohort = load_cohort(recipe)
    split = group_split(
        cohort.labels,
        cohort.groups,
        fractions=(recipe.data.split.val_fraction, recipe.data.split.test_fraction),
        seed=recipe.data.split.seed,
    )
    images = cache_images(cohort, recipe.data.image_size)
    y = cohort.y
    k = len(cohort.class_names)
    mean, std = channel_stats(images[split["train"]])
    weights = (
        class_weights_for(y[split["train"]], k, tc.class_weight_power)
        if tc.imbalance == "class_weighted_loss"
        else [1.0] * k
    )
    encoder, meta = metadata_inputs(recipe, cohort, split["train"])
    net_params = dict(recipe.model.params)
    if encoder is not None:
        net_params.update(meta_dim=encoder.dim, meta_missing=encoder.encode_missing().tolist())
    sampled = tc.imbalance in ("weighted_sampler", "logit_adjusted") and tc.sampler_power > 0
    log_prior = sampled_log_prior(y[split["train"]], k, tc.sampler_power if sampled else 0.0)
    dm = SkinDataModule(
        images,
        y,
        split,
        batch_size=tc.batch_size,
        sampler="weighted" if sampled else "shuffle",
        seed=tc.seed,
        sampler_power=tc.sampler_power,
        meta=meta,
        num_workers=tc.num_workers,
    )
    module = LesionClassifier(
        network=recipe.model.network,
        network_params=net_params,
        num_classes=k,
        class_weights=weights,
        mean=mean,
        std=std,
        augment=recipe.augment.model_dump(),
        lr=tc.lr,
        weight_decay=tc.weight_decay,
        warmup_epochs=tc.warmup_epochs,
        max_epochs=tc.max_epochs,
        label_smoothing=tc.label_smoothing,
        # anneal by 95 % of the budget so the last epochs run at a low learning rate
        max_time_s=0.95 * tc.max_time_min * 60 if tc.max_time_min else None,
        meta_slices=[list(sl) for sl in encoder.field_slices()] if encoder is not None else None,
        meta_dropout=tc.meta_dropout,
        log_prior=log_prior,
        logit_adjust_tau=tc.logit_adjust_tau if tc.imbalance == "logit_adjusted" else 0.0,
        low_res_size=tc.low_res_size,
        low_res_until=tc.low_res_until if tc.low_res_size else 0.0,
        channels_last=tc.channels_last,
    )
    if recipe.model.init_from:
        warm_start(module.net, recipe.model.init_from)
    import mlflow
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import MLFlowLogger

    run = _mlflow_run(recipe.output.experiment)
    run_id = run.info.run_id
    try:
        mlflow.log_params(
            {
                "network": recipe.model.network,
                **{f"net.{k_}": v for k_, v in recipe.model.params.items()},
                "image_size": recipe.data.image_size,
                "n_train": len(split["train"]),
                "n_val": len(split["val"]),
                "n_test": len(split["test"]),
                "split_seed": recipe.data.split.seed,
                "imbalance": tc.imbalance,
                "loss.class_weights": json.dumps([round(w, 3) for w in weights]),
                **{f"trainer.{k_}": v for k_, v in tc.model_dump().items()},
            }
        )
        workdir = work_dir(recipe)
        ckpt = ModelCheckpoint(
            dirpath=workdir,
            filename="best",
            monitor="val/balanced_accuracy",
            mode="max",
            save_top_k=1,
            save_last=True,
        )
        resume_from = workdir / "last.ckpt" if tc.resume and (workdir / "last.ckpt").is_file() else None
        if resume_from:
            logger.info("resuming from %s", resume_from)
            mlflow.set_tag("resumed_from", str(resume_from))
        logger_ = MLFlowLogger(
            experiment_name=recipe.output.experiment, tracking_uri=mlflow.get_tracking_uri(), run_id=run_id
        )
        trainer = L.Trainer(
            max_epochs=tc.max_epochs,
            max_time={"minutes": tc.max_time_min} if tc.max_time_min else None,
            accelerator=tc.accelerator,
            devices=1,
            precision=tc.precision,
            logger=logger_,
            callbacks=[ckpt],
            enable_model_summary=False,
            limit_train_batches=tc.limit_train_batches,
            limit_val_batches=tc.limit_val_batches,
            num_sanity_val_steps=0,
            deterministic=False,
        )
        t0 = time.time()
        trainer.fit(module, datamodule=dm, ckpt_path=resume_from)
        train_seconds = module.elapsed() or (time.time() - t0)
        if ckpt.best_model_path:
            state = torch.load(ckpt.best_model_path, map_location="cpu", weights_only=False)["state_dict"]
            module.load_state_dict(state)
        net = module.net.eval().float().cpu()
        torch.set_num_threads(max(tc.num_threads, torch.get_num_threads()))

        def logits_of(part: str) -> np.ndarray:
            idx = split[part]
            return predict_logits(
                net, images[idx], mean, std, meta=None if meta is None else meta[idx], tta=tc.tta
            )

        val_logits = logits_of("val")
        temperature = fit_temperature(val_logits, y[split["val"]])
        val_report = classification_report(
            calibrated_probabilities(val_logits, temperature), y[split["val"]], cohort.class_names
        )
        hardware = _hardware()
        out = Path(recipe.output.package_dir)
        write_package(
            out,
            recipe,
            net,
            cohort,
            split,
            mean,
            std,
            temperature,
            val_report,
            train_seconds,
            hardware,
            run_id,
            encoder=encoder,
            net_params=net_params,
            reproduce=train_command(recipe_path, overrides),
        )
        # the single look at the test lesions, through the Predictor: nothing below feeds back into training or
        # selection; the evaluation JSON is the package's test result and fills the model card's figures
        test_report = evaluate_test_split(recipe, out)
        meta_doc = read_metadata(out)
        meta_doc.metrics.update(test_metrics(test_report))
        write_metadata(out, meta_doc)
        mlflow.log_metrics(
            {
                "train/wall_time_s": train_seconds,
                "calibration/temperature": temperature,
                **{k_: v for k_, v in json.loads((out / "metadata.json").read_text())["metrics"].items()},
            }
        )
        version = None
        if recipe.output.register_model:
            version = register_package(run_id, out, recipe.name, recipe.output.alias)
        if workdir.exists():
            shutil.rmtree(workdir, ignore_errors=True)
        logger.info("test balanced accuracy %.3f (registered version %s)", test_report["balanced_accuracy"], version)
    finally:
        mlflow.end_run()
    return {"package": out, "test": test_report, "val": val_report, "temperature": temperature, "run_id": run_id}
