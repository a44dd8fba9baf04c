"""scikit-learn / scikit-survival compatible wrappers of :class:`~models.fusion.network.FusionNet` on tables.

Every wrapper takes ``modalities``: modality name -> feature column names of a pandas DataFrame ``X``.

Preprocessing (fitted on the training rows, stored as plain numbers in the model state):

* a modality is **absent** in a row when all of its columns are missing (NaN / None); absent modalities are masked
  out of the fusion (pooling weight 0). A row with no modality present cannot be predicted (``ValueError``).
* numeric columns (numeric or bool dtype): NaNs *inside a present modality* are imputed with the training median
  (over the rows where that modality is present); a 0/1 missing indicator is appended for every column that had
  missing values in those training rows. Values are then standardised with the training mean / SD and clipped to
  ``+-clip`` SD (heavy-tailed labs).
* other columns (object / category / string) are categorical: one-hot over the training categories; missing or
  unseen values are all-zero.

Training: ``n_members`` networks (a seed ensemble: seeds ``seed``, ``seed + 1``...; outputs and pooling weights
averaged, which steadies small-data fits), each trained with AdamW for at most ``max_epochs`` epochs, with
``torch.set_num_threads(n_threads)`` for the duration of each call (restored afterwards). Modality dropout: in every
training batch each present modality of each row is dropped with probability ``modality_dropout``, never all of them
(a row that would lose every modality keeps one at random). With ``early_stopping`` (default) a stratified
``val_fraction`` of the training rows is held out internally: the weights of the epoch with the lowest validation
loss are kept and training stops after ``patience`` epochs without improvement; the network is *not* refitted on the
held-out rows. The classifier's temperature is fitted on those rows; the survival model's Breslow baseline uses every
training row. Without early stopping every row trains for exactly ``max_epochs`` epochs (a fixed budget).

Persistence without pickling code: :meth:`to_state` returns ``(config, tensors)`` -- a JSON-able dict (registry
name, parameters, preprocessing statistics, fitted constants) and the network's ``state_dict``; :meth:`save` writes
them as ``fusion.json`` + ``weights.pt`` (loadable with ``torch.load(weights_only=True)``); :func:`load_fusion`
rebuilds any of the wrappers from such a folder.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.model_selection import train_test_split

from models.fusion.network import FusionEnsemble, FusionNet

logger = logging.getLogger(__name__)

CONFIG_FILE = "fusion.json"
WEIGHTS_FILE = "weights.pt"
FORMAT_VERSION = 1
_CHUNK = 4096


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(n)``, restoring the previous setting afterwards."""
    old = torch.get_num_threads()
    torch.set_num_threads(max(1, int(n)))
    try:
        yield
    finally:
        torch.set_num_threads(old)


# ----------------------------------------------------------------------------------------------- preprocessing
def _is_numeric(col: pd.Series) -> bool:
    return bool(pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col))


def fit_encoding(X: pd.DataFrame, modalities: dict[str, list[str]]) -> dict[str, list[dict[str, Any]]]:
    """Training statistics of every column, per modality (JSON-able).

    Args:
        X: (n, k) training table holding every column named in ``modalities``.
        modalities: modality name -> column names.

    Returns:
        modality -> list of column entries: ``{"name", "kind": "numeric", "median", "mean", "std", "indicator"}``
        or ``{"name", "kind": "categorical", "categories"}``.
    """
    enc: dict[str, list[dict[str, Any]]] = {}
    for m, cols in modalities.items():
        present = ~X[cols].isna().all(axis=1).to_numpy()
        entries: list[dict[str, Any]] = []
        for c in cols:
            col = X[c][present]
            if _is_numeric(X[c]):
                v = pd.to_numeric(col, errors="coerce").astype(float)
                med = float(v.median()) if v.notna().any() else 0.0
                filled = v.fillna(med)
                mean = float(filled.mean()) if len(filled) else 0.0
                std = float(filled.std(ddof=0)) if len(filled) > 1 else 1.0
                entries.append(
                    {
                        "name": c,
                        "kind": "numeric",
                        "median": med,
                        "mean": mean,
                        "std": std if std > 1e-12 and math.isfinite(std) else 1.0,
                        "indicator": bool(v.isna().any()),
                    }
                )
            else:
                cats = sorted({str(x) for x in col.dropna().tolist()})
                entries.append({"name": c, "kind": "categorical", "categories": cats})
        width = sum((1 + e["indicator"]) if e["kind"] == "numeric" else len(e["categories"]) for e in entries)
        if width == 0:
            raise ValueError(f"modality {m!r} has no usable feature in the training data")
        enc[m] = entries
    return enc


def encode(
    X: pd.DataFrame, encoding: dict[str, list[dict[str, Any]]], clip: float
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Encode ``X`` with fitted statistics.

    Returns:
        ``(features, present)``: modality -> ``(n, d_m)`` float32 array, and ``(n, M)`` bool presence (modality order
        of ``encoding``).

    Raises:
        ValueError: ``X`` lacks columns named in the encoding.
    """
    need = [e["name"] for ents in encoding.values() for e in ents]
    missing = [c for c in need if c not in X.columns]
    if missing:
        raise ValueError(f"X lacks column(s) {', '.join(missing)}")
    feats: dict[str, np.ndarray] = {}
    present = np.zeros((len(X), len(encoding)), dtype=bool)
    for j, (m, ents) in enumerate(encoding.items()):
        cols = [e["name"] for e in ents]
        present[:, j] = ~X[cols].isna().all(axis=1).to_numpy()
        parts: list[np.ndarray] = []
        for e in ents:
            col = X[e["name"]]
            if e["kind"] == "numeric":
                v = pd.to_numeric(col, errors="coerce").to_numpy(dtype=float)
                na = np.isnan(v)
                z = np.clip((np.where(na, e["median"], v) - e["mean"]) / e["std"], -clip, clip)
                parts.append(z[:, None])
                if e["indicator"]:
                    parts.append(na[:, None].astype(float))
            else:
                s = col.astype(object).where(col.notna(), None).map(lambda x: None if x is None else str(x))
                parts.append(
                    np.stack([(s == c).to_numpy(dtype=float) for c in e["categories"]], axis=1)
                    if e["categories"]
                    else np.zeros((len(X), 0))
                )
        arr = np.concatenate(parts, axis=1).astype(np.float32)
        arr[~present[:, j]] = 0.0
        feats[m] = arr
    return feats, present


# ----------------------------------------------------------------------------------------------- losses
def cox_breslow_loss(log_risk: torch.Tensor, time: torch.Tensor, event: torch.Tensor) -> torch.Tensor:
    """Negative Cox partial log-likelihood with Breslow ties, averaged over events.

    Args:
        log_risk: ``(B,)`` float log-risk.
        time: ``(B,)`` float follow-up time.
        event: ``(B,)`` bool event indicator.

    Returns:
        Scalar loss (0 when the batch has no event).
    """
    order = torch.argsort(time, descending=True)
    r, t, e = log_risk[order], time[order], event[order].bool()
    lse = torch.logcumsumexp(r, dim=0)  # log sum over {j: t_j >= t_i} once ties are resolved below
    _, inverse, counts = torch.unique_consecutive(t, return_inverse=True, return_counts=True)
    last = torch.cumsum(counts, dim=0) - 1  # tied times share the risk set of the whole tie group (Breslow)
    lse = lse[last[inverse]]
    n_ev = e.sum()
    if int(n_ev) == 0:
        return log_risk.sum() * 0.0
    return -((r - lse)[e]).sum() / n_ev


# ----------------------------------------------------------------------------------------------- base
class FusionEstimator(BaseEstimator):
    """Common machinery of the fusion wrappers (see module docstring); use a subclass.

    Args:
        modalities: modality name -> column names of ``X``.
        d_model: token width of :class:`FusionNet`.
        hidden: hidden width of the encoders and head.
        dropout: dropout probability.
        pooling: ``"attention"`` or ``"gated"``.
        modality_dropout: probability of dropping each present modality of a training row per batch.
        lr / weight_decay: AdamW settings.
        max_epochs: epoch budget.
        batch_size: rows per batch; None = the class default (64; survival 256, for enough events per batch).
        early_stopping: hold out ``val_fraction`` of the rows and keep the best epoch (see module docstring).
        val_fraction: share of the training rows held out internally.
        patience: epochs without validation improvement before stopping.
        clip: standardised values are clipped to ``+-clip``.
        seed: seed of the initialisation, split, shuffling and modality dropout.
        n_threads: torch threads during fit / predict.
        n_members: networks in the seed ensemble (outputs and pooling weights averaged).
    """

    registry_name: ClassVar[str] = ""
    default_batch_size: ClassVar[int] = 64

    def __init__(
        self,
        modalities: dict[str, list[str]] | None = None,
        d_model: int = 32,
        hidden: int = 64,
        dropout: float = 0.1,
        pooling: str = "attention",
        modality_dropout: float = 0.2,
        lr: float = 3e-3,
        weight_decay: float = 1e-2,
        max_epochs: int = 60,
        batch_size: int | None = None,
        early_stopping: bool = True,
        val_fraction: float = 0.15,
        patience: int = 10,
        clip: float = 5.0,
        seed: int = 0,
        n_threads: int = 1,
        n_members: int = 1,
    ) -> None:
        self.modalities = modalities
        self.d_model = d_model
        self.hidden = hidden
        self.dropout = dropout
        self.pooling = pooling
        self.modality_dropout = modality_dropout
        self.lr = lr
        self.weight_decay = weight_decay
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.early_stopping = early_stopping
        self.val_fraction = val_fraction
        self.patience = patience
        self.clip = clip
        self.seed = seed
        self.n_threads = n_threads
        self.n_members = n_members

    # ---------------------------------------------------------------------------------- hooks of subclasses
    def _n_out(self) -> int:
        raise NotImplementedError

    def _targets(self, y: Any) -> dict[str, torch.Tensor]:
        """Training targets as tensors (one entry per row)."""
        raise NotImplementedError

    def _loss(self, out: torch.Tensor, tgt: dict[str, torch.Tensor], idx: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _stratify(self, y: Any) -> np.ndarray | None:
        return None

    def _after_fit(self, feats: dict[str, np.ndarray], present: np.ndarray, y: Any, val: np.ndarray) -> None:
        """Fitted constants (temperature, baseline hazard) once the network is trained."""

    def _fitted_state(self) -> dict[str, Any]:
        return {}

    def _set_fitted_state(self, state: dict[str, Any]) -> None:
        pass

    # ---------------------------------------------------------------------------------- checks / helpers
    def _check(self) -> dict[str, list[str]]:
        mods = self.modalities
        if not mods or not isinstance(mods, dict) or not all(isinstance(v, list | tuple) and v for v in mods.values()):
            raise ValueError("modalities must be a non-empty dict of modality name -> non-empty list of columns")
        if not 0.0 <= float(self.modality_dropout) < 1.0:
            raise ValueError("modality_dropout must be in [0, 1)")
        return {str(k): [str(c) for c in v] for k, v in mods.items()}

    @property
    def modality_names(self) -> list[str]:
        """Modality names in model order."""
        return list(self.encoding_)

    def _as_frame(self, X: Any) -> pd.DataFrame:
        if not isinstance(X, pd.DataFrame):
            raise TypeError("X must be a pandas DataFrame whose columns are named in `modalities`")
        return X

    def _tensors(
        self, feats: dict[str, np.ndarray], present: np.ndarray, idx: np.ndarray | slice
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        return {m: torch.from_numpy(a[idx]) for m, a in feats.items()}, torch.from_numpy(present[idx])

    def _forward_all(self, feats: dict[str, np.ndarray], present: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Eval-mode forward pass in chunks: ``(out (n, n_out), weights (n, M))`` float64."""
        n = len(present)
        if n and not present.any(axis=1).all():
            bad = np.flatnonzero(~present.any(axis=1))[:10].tolist()
            raise ValueError(f"rows {bad} have no modality present (every column of every modality is missing)")
        self.net_.eval()
        outs, ws = [], []
        with torch.no_grad():
            for s in range(0, n, _CHUNK):
                x, p = self._tensors(feats, present, slice(s, s + _CHUNK))
                o, w = self.net_(x, p)
                outs.append(o.double().numpy())
                ws.append(w.double().numpy())
        if not outs:
            return np.zeros((0, self._n_out())), np.zeros((0, len(feats)))
        return np.concatenate(outs), np.concatenate(ws)

    def _raw(self, X: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(out, weights, present)`` of ``X``."""
        feats, present = encode(self._as_frame(X), self.encoding_, self.clip)
        with torch_threads(self.n_threads):
            out, w = self._forward_all(feats, present)
        return out, w, present

    def _build_member(self) -> FusionNet:
        dims = {
            m: sum((1 + e["indicator"]) if e["kind"] == "numeric" else len(e["categories"]) for e in ents)
            for m, ents in self.encoding_.items()
        }
        return FusionNet(dims, self._n_out(), self.d_model, self.hidden, self.dropout, self.pooling)

    def _build_net(self) -> FusionEnsemble:
        return FusionEnsemble([self._build_member() for _ in range(max(1, int(self.n_members)))])

    # ---------------------------------------------------------------------------------- training
    def _fit(self, X: Any, y: Any) -> FusionEstimator:
        mods = self._check()
        X = self._as_frame(X)
        with torch_threads(self.n_threads):
            self.encoding_ = fit_encoding(X, mods)
            feats, present = encode(X, self.encoding_, self.clip)
            if not present.any(axis=1).all():
                raise ValueError("some training rows have no modality present; drop them before fitting")
            n = len(X)
            idx = np.arange(n)
            val = np.zeros(0, dtype=int)
            if self.early_stopping and self.val_fraction > 0 and n >= 20:
                strat = self._stratify(y)
                try:
                    tr, val = train_test_split(idx, test_size=self.val_fraction, random_state=self.seed, stratify=strat)
                except ValueError:
                    tr, val = train_test_split(idx, test_size=self.val_fraction, random_state=self.seed)
                idx, val = np.sort(tr), np.sort(val)
            tgt = self._targets(y)
            members, self.history_ = [], []
            for k in range(max(1, int(self.n_members))):
                torch.manual_seed(self.seed + k)
                net = self._build_member()
                self.history_.append(
                    self._train(net, feats, present, tgt, idx, val, np.random.default_rng(self.seed + k))
                )
                members.append(net)
            self.net_ = FusionEnsemble(members).eval()
            self.n_epochs_ = [len(h) for h in self.history_]
            self._after_fit(feats, present, y, val)
        return self

    def _train(
        self,
        net: FusionNet,
        feats: dict[str, np.ndarray],
        present: np.ndarray,
        tgt: dict[str, torch.Tensor],
        tr: np.ndarray,
        val: np.ndarray,
        rng: np.random.Generator,
    ) -> list[dict[str, float]]:
        """Train one member in place; returns its per-epoch history (``train/loss``, ``val/loss``)."""
        opt = torch.optim.AdamW(net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        bs = int(self.batch_size or self.default_batch_size)
        best, best_state, stale = math.inf, None, 0
        history: list[dict[str, float]] = []
        p_drop = float(self.modality_dropout)
        for epoch in range(int(self.max_epochs)):
            net.train()
            perm = rng.permutation(tr)
            tot, nb = 0.0, 0
            for s in range(0, len(perm), bs):
                b = perm[s : s + bs]
                if len(b) < 2:
                    continue
                x, p = self._tensors(feats, present, b)
                if p_drop > 0:
                    p = torch.from_numpy(_drop_modalities(p.numpy(), p_drop, rng))
                out, _ = net(x, p)
                loss = self._loss(out, tgt, torch.from_numpy(b))
                if not loss.requires_grad:
                    continue
                opt.zero_grad()
                loss.backward()
                opt.step()
                tot, nb = tot + float(loss.detach()), nb + 1
            rec = {"epoch": float(epoch), "train/loss": tot / max(nb, 1)}
            if len(val):
                net.eval()
                with torch.no_grad():
                    x, p = self._tensors(feats, present, val)
                    vl = float(self._loss(net(x, p)[0], tgt, torch.from_numpy(val)))
                rec["val/loss"] = vl
                if vl < best - 1e-6:
                    best, stale = vl, 0
                    best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
                else:
                    stale += 1
            history.append(rec)
            if len(val) and stale >= self.patience:
                break
        if best_state is not None:
            net.load_state_dict(best_state)
        net.eval()
        return history

    # ---------------------------------------------------------------------------------- explanations
    def modality_contributions(self, X: Any) -> pd.DataFrame:
        """Pooling weight of each modality per row.

        Returns:
            ``(n, M)`` DataFrame (index of ``X``, one column per modality), rows sum to 1, 0 for absent modalities.
        """
        _, w, _ = self._raw(X)
        return pd.DataFrame(w, index=X.index, columns=self.modality_names)

    def modalities_used(self, X: Any) -> pd.Series:
        """Modalities present (not all-missing) in each row: a Series (index of ``X``) of lists of names."""
        _, present = encode(self._as_frame(X), self.encoding_, self.clip)
        names = self.modality_names
        return pd.Series([[names[j] for j in np.flatnonzero(r)] for r in present], index=X.index, dtype=object)

    # ---------------------------------------------------------------------------------- persistence
    def to_state(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """``(config, tensors)``: JSON-able config (registry name, params, preprocessing, fitted constants) and the
        network's ``state_dict`` (CPU tensors)."""
        config = {
            "format_version": FORMAT_VERSION,
            "estimator": self.registry_name,
            "params": self.get_params(deep=False),
            "encoding": self.encoding_,
            "fitted": {"n_epochs": self.n_epochs_, **self._fitted_state()},
        }
        tensors = {k: v.detach().cpu().clone() for k, v in self.net_.state_dict().items()}
        return config, tensors

    @classmethod
    def from_state(cls, config: dict[str, Any], tensors: dict[str, torch.Tensor]) -> FusionEstimator:
        """Rebuild a fitted wrapper from :meth:`to_state` output."""
        name = config.get("estimator")
        klass = ESTIMATOR_CLASSES.get(str(name))
        if klass is None or (cls is not FusionEstimator and klass is not cls):
            raise ValueError(f"state of {name!r} cannot be loaded as {cls.__name__}")
        if int(config.get("format_version", 0)) != FORMAT_VERSION:
            raise ValueError(f"unsupported fusion state format {config.get('format_version')}")
        est = klass(**config["params"])
        est.encoding_ = config["encoding"]
        fitted = dict(config.get("fitted", {}))
        est.n_epochs_ = [int(v) for v in fitted.pop("n_epochs", [])]
        est._set_fitted_state(fitted)
        est.net_ = est._build_net()
        est.net_.load_state_dict(tensors)
        est.net_.eval()
        return est

    def save(self, directory: Path | str) -> Path:
        """Write ``fusion.json`` and ``weights.pt`` (a plain ``state_dict``) into ``directory``; returns it."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        config, tensors = self.to_state()
        (d / CONFIG_FILE).write_text(json.dumps(config, indent=2))
        torch.save(tensors, d / WEIGHTS_FILE)
        return d

    @classmethod
    def load(cls, directory: Path | str) -> FusionEstimator:
        """Read a folder written by :meth:`save` (weights loaded with ``weights_only=True``)."""
        d = Path(directory)
        config = json.loads((d / CONFIG_FILE).read_text())
        tensors = torch.load(d / WEIGHTS_FILE, map_location="cpu", weights_only=True)
        return cls.from_state(config, tensors)


def _drop_modalities(present: np.ndarray, p: float, rng: np.random.Generator) -> np.ndarray:
    """Drop each present modality with probability ``p``; rows that would lose all keep one present at random."""
    keep = present & (rng.random(present.shape) >= p)
    empty = ~keep.any(axis=1) & present.any(axis=1)
    if empty.any():
        score = np.where(present[empty], rng.random((int(empty.sum()), present.shape[1])), -1.0)
        rows = np.flatnonzero(empty)
        keep[rows, score.argmax(axis=1)] = True
    return keep


# ----------------------------------------------------------------------------------------------- classifier
class FusionClassifier(ClassifierMixin, FusionEstimator):
    """Multimodal classifier (cross-entropy), scikit-learn contract.

    Extra args (besides :class:`FusionEstimator`'s):
        class_weight: None or ``"balanced"`` (inverse class frequency in the loss).
        calibrate: fit a temperature on the internal validation split (NLL, LBFGS) so that ``predict_proba`` is
            calibrated; 1.0 when there is no validation split.

    Attributes:
        classes_: ``(K,)`` class labels. temperature_: fitted temperature (> 0).
    """

    registry_name: ClassVar[str] = "fusion_classifier"

    def __init__(
        self,
        modalities: dict[str, list[str]] | None = None,
        d_model: int = 32,
        hidden: int = 64,
        dropout: float = 0.1,
        pooling: str = "attention",
        modality_dropout: float = 0.2,
        lr: float = 3e-3,
        weight_decay: float = 1e-2,
        max_epochs: int = 60,
        batch_size: int | None = None,
        early_stopping: bool = True,
        val_fraction: float = 0.15,
        patience: int = 10,
        clip: float = 5.0,
        seed: int = 0,
        n_threads: int = 1,
        class_weight: str | None = None,
        calibrate: bool = True,
    ) -> None:
        super().__init__(
            modalities, d_model, hidden, dropout, pooling, modality_dropout, lr, weight_decay, max_epochs,
            batch_size, early_stopping, val_fraction, patience, clip, seed, n_threads,
        )  # fmt: skip
        self.class_weight = class_weight
        self.calibrate = calibrate

    def _n_out(self) -> int:
        return len(self.classes_)

    def _targets(self, y: Any) -> dict[str, torch.Tensor]:
        return {"y": torch.from_numpy(self._y_idx.astype(np.int64))}

    def _stratify(self, y: Any) -> np.ndarray | None:
        return self._y_idx

    def _loss(self, out: torch.Tensor, tgt: dict[str, torch.Tensor], idx: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(out, tgt["y"][idx], weight=self._cw)

    def fit(self, X: pd.DataFrame, y: Any) -> FusionClassifier:
        """Fit on ``X`` (DataFrame) and labels ``y`` ``(n,)``; returns self."""
        if self.class_weight not in (None, "balanced"):
            raise ValueError("class_weight must be None or 'balanced'")
        self.classes_, self._y_idx = np.unique(np.asarray(y), return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError("y needs at least two classes")
        counts = np.bincount(self._y_idx, minlength=len(self.classes_)).astype(float)
        self._cw = (
            torch.tensor(len(self._y_idx) / (len(counts) * counts), dtype=torch.float32)
            if self.class_weight == "balanced"
            else None
        )
        self.temperature_ = 1.0
        self._fit(X, y)
        del self._y_idx, self._cw
        return self

    def _after_fit(self, feats: dict[str, np.ndarray], present: np.ndarray, y: Any, val: np.ndarray) -> None:
        if not (self.calibrate and len(val)):
            return
        logits, _ = self._forward_all({m: a[val] for m, a in feats.items()}, present[val])
        z = torch.from_numpy(logits)
        t = torch.from_numpy(self._y_idx[val].astype(np.int64))
        log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
        opt = torch.optim.LBFGS([log_t], lr=0.1, max_iter=100)

        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(z / log_t.exp(), t)
            loss.backward()
            return loss

        opt.step(closure)
        self.temperature_ = float(np.clip(math.exp(float(log_t.detach())), 0.05, 20.0))

    def _fitted_state(self) -> dict[str, Any]:
        return {"classes": [c.item() if isinstance(c, np.generic) else c for c in self.classes_],
                "temperature": self.temperature_}  # fmt: skip

    def _set_fitted_state(self, state: dict[str, Any]) -> None:
        self.classes_ = np.asarray(state["classes"])
        self.temperature_ = float(state["temperature"])

    def decision_function(self, X: pd.DataFrame) -> np.ndarray:
        """Temperature-scaled logits ``(n, K)`` float64."""
        out, _, _ = self._raw(X)
        return out / self.temperature_

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Class probabilities ``(n, K)`` float64 (column order of ``classes_``)."""
        z = self.decision_function(X)
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Most probable class label per row ``(n,)``."""
        return self.classes_[np.argmax(self.decision_function(X), axis=1)]


# ----------------------------------------------------------------------------------------------- survival
class FusionSurvival(FusionEstimator):
    """Multimodal Cox model (partial likelihood, Breslow ties), scikit-survival contract.

    ``y`` is a structured array ``(event bool, time float)`` (field names as in sksurv, event first). ``predict``
    returns the log-risk (higher = worse); the Breslow baseline cumulative hazard is estimated on every training row
    after training.

    Attributes:
        unique_times_: ``(T,)`` times of the step functions (0 prepended, then every distinct training time).
        cum_baseline_hazard_: ``(T,)`` Breslow cumulative baseline hazard at ``unique_times_`` (relative to
            ``exp(log_risk - risk_offset_)``).
        risk_offset_: mean training log-risk (numerical centring).
    """

    registry_name: ClassVar[str] = "fusion_survival"
    default_batch_size: ClassVar[int] = 256

    def _n_out(self) -> int:
        return 1

    @staticmethod
    def _ev_time(y: Any) -> tuple[np.ndarray, np.ndarray]:
        y = np.asarray(y)
        if y.dtype.names is None or len(y.dtype.names) != 2:
            raise ValueError("y must be a structured array with fields (event, time), e.g. sksurv.util.Surv")
        ev, tm = y[y.dtype.names[0]].astype(bool), y[y.dtype.names[1]].astype(float)
        return ev, tm

    def _targets(self, y: Any) -> dict[str, torch.Tensor]:
        ev, tm = self._ev_time(y)
        return {"event": torch.from_numpy(ev), "time": torch.from_numpy(tm.astype(np.float32))}

    def _stratify(self, y: Any) -> np.ndarray | None:
        return self._ev_time(y)[0].astype(int)

    def _loss(self, out: torch.Tensor, tgt: dict[str, torch.Tensor], idx: torch.Tensor) -> torch.Tensor:
        return cox_breslow_loss(out[:, 0], tgt["time"][idx], tgt["event"][idx])

    def fit(self, X: pd.DataFrame, y: Any) -> FusionSurvival:
        """Fit on ``X`` (DataFrame) and structured ``y`` ``(n,)``; returns self."""
        ev, _ = self._ev_time(y)
        if not ev.any():
            raise ValueError("y has no event")
        self._fit(X, y)
        return self

    def _after_fit(self, feats: dict[str, np.ndarray], present: np.ndarray, y: Any, val: np.ndarray) -> None:
        ev, tm = self._ev_time(y)
        f = self._forward_all(feats, present)[0][:, 0]
        self.risk_offset_ = float(f.mean())
        r = np.exp(f - self.risk_offset_)
        times = np.unique(tm)
        order = np.argsort(tm)
        ts, rs, es = tm[order], r[order], ev[order]
        at_risk = np.cumsum(rs[::-1])[::-1]  # sum over {j: t_j >= ts[i]}
        first = np.searchsorted(ts, times, side="left")
        d = np.array([es[(ts == t)].sum() for t in times], dtype=float)
        hazard = d / at_risk[first]
        cum = np.cumsum(hazard)
        if times[0] > 0:
            times, cum = np.concatenate([[0.0], times]), np.concatenate([[0.0], cum])
        self.unique_times_, self.cum_baseline_hazard_ = times.astype(float), cum.astype(float)

    def _fitted_state(self) -> dict[str, Any]:
        return {
            "risk_offset": self.risk_offset_,
            "unique_times": self.unique_times_.tolist(),
            "cum_baseline_hazard": self.cum_baseline_hazard_.tolist(),
        }

    def _set_fitted_state(self, state: dict[str, Any]) -> None:
        self.risk_offset_ = float(state["risk_offset"])
        self.unique_times_ = np.asarray(state["unique_times"], float)
        self.cum_baseline_hazard_ = np.asarray(state["cum_baseline_hazard"], float)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Log-risk ``(n,)`` float64 (higher = worse)."""
        return self._raw(X)[0][:, 0]

    def predict_cumulative_hazard_function(self, X: pd.DataFrame, return_array: bool = False) -> np.ndarray:
        """Cumulative hazard ``H(t | x) = H0(t) exp(f(x) - offset)``.

        Returns:
            ``(n, T)`` array at ``unique_times_`` when ``return_array``, else ``(n,)`` object array of
            :class:`sksurv.functions.StepFunction`.
        """
        from sksurv.functions import StepFunction

        r = np.exp(self.predict(X) - self.risk_offset_)
        arr = r[:, None] * self.cum_baseline_hazard_[None, :]
        if return_array:
            return arr
        return np.array([StepFunction(self.unique_times_, a) for a in arr], dtype=object)

    def predict_survival_function(self, X: pd.DataFrame, return_array: bool = False) -> np.ndarray:
        """Survival ``S(t | x) = exp(-H(t | x))`` (Breslow), non-increasing in t, 1 at t = 0.

        Returns:
            ``(n, T)`` array at ``unique_times_`` when ``return_array``, else ``(n,)`` object array of
            :class:`sksurv.functions.StepFunction` (defined on ``[0, max training time]``).
        """
        from sksurv.functions import StepFunction

        arr = np.exp(-self.predict_cumulative_hazard_function(X, return_array=True))
        if return_array:
            return arr
        return np.array([StepFunction(self.unique_times_, a) for a in arr], dtype=object)

    def score(self, X: pd.DataFrame, y: Any) -> float:
        """Harrell's concordance index (:func:`sksurv.metrics.concordance_index_censored`)."""
        from sksurv.metrics import concordance_index_censored

        ev, tm = self._ev_time(y)
        return float(concordance_index_censored(ev, tm, self.predict(X))[0])


# ----------------------------------------------------------------------------------------------- regressor
class FusionRegressor(RegressorMixin, FusionEstimator):
    """Multimodal regressor (MSE on the standardised target), scikit-learn contract."""

    registry_name: ClassVar[str] = "fusion_regressor"

    def _n_out(self) -> int:
        return 1

    def _targets(self, y: Any) -> dict[str, torch.Tensor]:
        z = (np.asarray(y, float) - self.y_mean_) / self.y_std_
        return {"y": torch.from_numpy(z.astype(np.float32))}

    def _loss(self, out: torch.Tensor, tgt: dict[str, torch.Tensor], idx: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.mse_loss(out[:, 0], tgt["y"][idx])

    def fit(self, X: pd.DataFrame, y: Any) -> FusionRegressor:
        """Fit on ``X`` (DataFrame) and float targets ``y`` ``(n,)``; returns self."""
        yy = np.asarray(y, float)
        if not np.isfinite(yy).all():
            raise ValueError("y must be finite")
        self.y_mean_ = float(yy.mean())
        sd = float(yy.std())
        self.y_std_ = sd if sd > 1e-12 else 1.0
        self._fit(X, yy)
        return self

    def _fitted_state(self) -> dict[str, Any]:
        return {"y_mean": self.y_mean_, "y_std": self.y_std_}

    def _set_fitted_state(self, state: dict[str, Any]) -> None:
        self.y_mean_, self.y_std_ = float(state["y_mean"]), float(state["y_std"])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Predicted values ``(n,)`` float64 in the unit of ``y``."""
        return self._raw(X)[0][:, 0] * self.y_std_ + self.y_mean_


ESTIMATOR_CLASSES: dict[str, type[FusionEstimator]] = {
    c.registry_name: c for c in (FusionClassifier, FusionSurvival, FusionRegressor)
}


def load_fusion(directory: Path | str) -> FusionEstimator:
    """Load whichever fusion wrapper a folder written by :meth:`FusionEstimator.save` holds."""
    return FusionEstimator.load(directory)
