"""The risk predictor: patient factors -> :class:`~medai.domain.prediction.RiskEstimate`.

A risk model package holds::

    metadata.json    # ModelMetadata, predictor "risk_model", input_contract = the CohortSpec
    inference.json   # RiskInferenceConfig below
    model.skops      # the fitted scikit-learn / scikit-survival pipeline (skops; loaded with an allow-list)
    model/           # or, with ``model_format: "state"``: a registered estimator's saved state (JSON + plain
                     # tensors), rebuilt by ``ESTIMATORS.get(estimator).load(model/)`` -- e.g. the fusion models

``RiskPredictor.predict(factors)`` validates the factors against the spec (raising
:class:`~medai.errors.InputValidationError` listing each offending field), then returns the risk at each horizon,
the survival curve (survival models), the risk group and the top contributing factors for that patient.
Contributions are occlusion effects: the change of the model's risk scale (log hazard for survival, log-odds for
classifiers) when the factor is replaced by the training reference value (median / mode).

Absent optional factors are set to the training reference value before the model sees them, unless the package
says ``impute_absent: false`` (models that handle missing inputs themselves, such as the multimodal fusion models,
which mask out a modality whose factors are all absent; a record with no factor at all is still scored at the
reference values); models exposing ``modality_contributions`` also report the weight of each modality in
``Prediction.extras["modality_weights"]``.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from medai.domain.prediction import Contribution, Prediction, QualityFlag, RiskEstimate, Severity
from medai.errors import ConfigError, InputValidationError
from medai.inference.predictor import Predictor
from medai.registry import PREDICTORS
from medai.risk.spec import CohortSpec

logger = logging.getLogger(__name__)

INFERENCE_FILE = "inference.json"
MODEL_FILE = "model.skops"
#: folder of a ``model_format: "state"`` package
STATE_DIR = "model"
#: module prefixes whose types a risk package may contain (skops allow-list)
TRUSTED_PREFIXES = ("sklearn.", "sksurv.", "numpy.", "scipy.", "builtins.", "collections.", "_operator.")


class RiskInferenceConfig(BaseModel):
    """Frozen inference config of a risk package (``inference.json``).

    Attributes:
        cohort: cohort name of the spec.
        outcome / outcome_description: what is predicted.
        kind: ``"survival"`` (risk score + survival curve) or ``"binary"`` (probability by the horizon).
        estimator / params: registry name and parameters of the fitted estimator.
        horizons: horizons in days at which the cumulative risk is reported.
        primary_horizon: the horizon whose risk defines the risk group.
        time_grid: days at which the survival curve is reported.
        risk_group_cutpoints: ascending cut-points on the primary-horizon risk (tertiles of the training data).
        risk_group_labels: group names (one more than cut-points).
        reference: factor -> reference value (training median / mode) for contributions.
        n_top: number of contributing factors reported.
        model_format: ``"skops"`` (``model.skops``) or ``"state"`` (``model/`` folder loaded by the registered
            estimator's ``load``).
        impute_absent: set absent factors to ``reference`` before predicting (False: pass them as missing).
    """

    cohort: str
    outcome: str
    outcome_description: str = ""
    kind: str
    estimator: str
    params: dict[str, Any] = Field(default_factory=dict)
    horizons: list[float]
    primary_horizon: float
    time_grid: list[float] = Field(default_factory=list)
    risk_group_cutpoints: list[float]
    risk_group_labels: list[str] = Field(default_factory=lambda: ["low", "intermediate", "high"])
    reference: dict[str, Any] = Field(default_factory=dict)
    n_top: int = 5
    model_format: Literal["skops", "state"] = "skops"
    impute_absent: bool = True


def horizon_key(h: float) -> str:
    """Key of a horizon in :attr:`RiskEstimate.horizons` (``"182d"``)."""
    return f"{h:g}d"


def load_skops(path: Path) -> Any:
    """Load a skops file, trusting only types from scikit-learn, scikit-survival, numpy and scipy.

    Raises:
        ConfigError: the file holds a type outside the allow-list (never loaded).
    """
    import skops.io as sio

    untrusted = sio.get_untrusted_types(file=path)
    bad = [t for t in untrusted if not t.startswith(TRUSTED_PREFIXES)]
    if bad:
        raise ConfigError(f"{path} contains types outside the allow-list, refusing to load: {', '.join(bad)}")
    return sio.load(path, trusted=untrusted)


class RiskPredictor(Predictor):
    """Predictor of survival / fixed-horizon risk from patient factors (``input_kind = "factors"``)."""

    input_kind = "factors"

    #: which scoring path answers: "compiled" (``compiled.json``, plain arrays) or "reference" (the pipeline)
    engine: str = "reference"

    @property
    def answers_inline(self) -> bool:
        """Whether one prediction is cheap enough (tens of microseconds) to run on a server's event loop."""
        return self.engine == "compiled"

    def load(self, compiled: bool = True, **kwargs: Any) -> None:
        """Read ``inference.json``, the spec (``metadata.input_contract``) and ``model.skops`` (or ``model/``).

        Args:
            compiled: score with the package's ``compiled.json`` when it has one and it reproduces the pipeline
                (checked here); False keeps the scikit-learn reference path.
        """
        try:
            self.config = RiskInferenceConfig.model_validate(
                json.loads((self.package_dir / INFERENCE_FILE).read_text())
            )
            self.spec = CohortSpec.model_validate(self.metadata.input_contract)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"invalid risk package {self.package_dir}: {exc}") from exc
        if self.config.model_format == "state":
            from medai.registry import ESTIMATORS

            est = ESTIMATORS.get(self.config.estimator)
            if not hasattr(est, "load"):
                raise ConfigError(f"estimator {self.config.estimator!r} cannot be loaded from a saved state")
            self.model = est.load(self.package_dir / STATE_DIR)  # type: ignore[attr-defined]
        else:
            self.model = load_skops(self.package_dir / MODEL_FILE)
        self._ref_row = self.spec.to_frame([{k: self.config.reference.get(k) for k in self.spec.names}])
        self._compiled = self._load_compiled() if compiled and self.config.model_format == "skops" else None
        self.engine = "compiled" if self._compiled is not None else "reference"

    def _load_compiled(self) -> Any:
        """The package's compiled model after checking it against the pipeline, or None (reference path)."""
        from medai.risk.compiled import NotCompilable, check_compiled, read_compiled

        try:
            c = read_compiled(self.package_dir)
            if c is None:
                return None
            check_compiled(c, self.model, self.spec, self.config.horizons, self.config.time_grid)
        except (NotCompilable, OSError, ValueError, KeyError) as exc:
            logger.warning("%s: compiled.json not used, scoring with the pipeline: %s", self.package_dir.name, exc)
            return None
        return c

    def input_schema(self) -> dict[str, Any]:
        """JSON Schema of the patient factors this model accepts."""
        return self.spec.json_schema()

    # ----------------------------------------------------------------------------------------------- internals
    def _scale(self, X: pd.DataFrame) -> np.ndarray:
        """The model's risk scale: log hazard (survival) or log-odds (binary)."""
        if self.config.kind == "survival":
            return np.asarray(self.model.predict(X), float)
        p = np.clip(self.model.predict_proba(X)[:, 1], 1e-6, 1 - 1e-6)
        return np.log(p / (1 - p))

    def _horizon_risks(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
        """(n, n_horizons) cumulative risks, and (n, n_grid) survival curves (None for classifiers)."""
        if self.config.kind == "survival":
            fns = self.model.predict_survival_function(X)
            hz = np.array([[1.0 - f(h) for h in self.config.horizons] for f in fns])
            grid = np.asarray(self.config.time_grid, float)
            curves = np.array([np.atleast_1d(f(grid)) for f in fns]).reshape(len(fns), len(grid)) if len(grid) else None
            return hz, curves
        p = self.model.predict_proba(X)[:, 1]
        return np.repeat(p[:, None], len(self.config.horizons), axis=1), None

    def _contributions(self, X: pd.DataFrame, base: np.ndarray) -> np.ndarray:
        """(n, n_factors) occlusion contributions: ``scale(x) - scale(x with factor j at reference)``."""
        n, names = len(X), self.spec.names
        blocks = []
        for j, name in enumerate(names):
            Xj = X.copy()
            Xj[name] = self._ref_row[name].iloc[0]
            blocks.append(Xj)
            del j
        big = pd.concat(blocks, ignore_index=True)
        occl = self._scale(big).reshape(len(names), n).T
        return base[:, None] - occl

    def _frame(self, clean_rows: list[dict[str, Any]]) -> pd.DataFrame:
        # absent optional factors take the training reference value (median / mode), flagged by _flags
        # with impute_absent false, a record without any factor is still scored at the reference values
        ref = self.config.reference
        clean_rows = [
            {k: (ref.get(k) if v is None else v) for k, v in r.items()} if self._imputes(r) else r for r in clean_rows
        ]
        return self.spec.to_frame(clean_rows)

    def _imputes(self, clean: dict[str, Any]) -> bool:
        """Whether absent factors of this record are set to the reference values before the model sees them."""
        return self.config.impute_absent or all(v is None for v in clean.values())

    def _modality_weights(self, clean_rows: list[dict[str, Any]]) -> list[dict[str, float]] | None:
        """Per-row modality weights of models that expose ``modality_contributions`` (None otherwise)."""
        fn = getattr(self.model, "modality_contributions", None)
        if fn is None:
            return None
        w = fn(self._frame(clean_rows))
        return [{str(k): float(v) for k, v in r.items()} for r in w.to_dict(orient="records")]

    def _compiled_outputs(self, clean_rows: list[dict[str, Any]]) -> tuple[np.ndarray, ...] | None:
        """(scale, horizon risks, curves, contributions) from the compiled model: closed-form contributions."""
        c, ref = self._compiled, self.config.reference
        rows = [{k: (ref.get(k) if v is None else v) for k, v in r.items()} for r in clean_rows]
        lp, d = c.score(rows)
        if not np.isfinite(lp).all():  # a value the pipeline refuses (absent / unseen category): it answers
            return None
        score = c.scale(lp)
        if c.kind == "survival":
            hz = 1.0 - c.survival(lp, c.s_ref_horizons)
            curves = c.survival(lp, c.s_ref_grid) if len(c.s_ref_grid) else None
            contrib = d
        else:
            hz = np.repeat(c.probability(lp)[:, None], len(self.config.horizons), axis=1)
            curves = None
            contrib = score[:, None] - c.scale(lp[:, None] - d)
        return score, hz, curves, contrib

    def _estimates(self, clean_rows: list[dict[str, Any]]) -> list[RiskEstimate]:
        out = self._compiled_outputs(clean_rows) if self._compiled is not None else None
        if out is not None:
            score, hz, curves, contrib = out
        else:
            X = self._frame(clean_rows)
            score = self._scale(X)
            hz, curves = self._horizon_risks(X)
            contrib = self._contributions(X, score)
        cfg = self.config
        k = cfg.horizons.index(cfg.primary_horizon)
        groups = np.asarray(cfg.risk_group_labels, dtype=object)[
            np.searchsorted(np.asarray(cfg.risk_group_cutpoints), hz[:, k], side="right")
        ]
        out = []
        for i, row in enumerate(clean_rows):
            order = np.argsort(-np.abs(contrib[i]), kind="stable")[: cfg.n_top]
            out.append(
                RiskEstimate(
                    model=self.ref,
                    outcome=cfg.outcome,
                    time_unit="d",
                    risk_score=float(score[i]),
                    horizons={horizon_key(h): float(hz[i, j]) for j, h in enumerate(cfg.horizons)},
                    survival_times=list(cfg.time_grid) if curves is not None else [],
                    survival=[float(v) for v in curves[i]] if curves is not None else [],
                    risk_group=str(groups[i]),
                    contributions=[
                        Contribution(
                            factor=self.spec.names[j], value=row[self.spec.names[j]], contribution=float(contrib[i, j])
                        )
                        for j in order
                    ],
                )
            )
        return out

    def _flags(self, clean: dict[str, Any]) -> list[QualityFlag]:
        missing = [k for k, v in clean.items() if v is None]
        if not missing:
            return []
        how = "set to the training median/mode" if self._imputes(clean) else "handled by the model"
        return [
            QualityFlag(
                code="factors_imputed",
                severity=Severity.INFO,
                message=f"{len(missing)} optional factor(s) absent, {how}: {', '.join(missing)}",
            )
        ]

    # ----------------------------------------------------------------------------------------------- public
    def predict(self, inputs: dict[str, Any]) -> Prediction:
        """Risk of one patient.

        Args:
            inputs: factor name -> value (see :meth:`input_schema`).

        Returns:
            A Prediction whose ``risks`` holds one RiskEstimate (risk at each horizon, survival curve, risk group,
            top contributing factors, model version in ``model``).

        Raises:
            InputValidationError: ``details`` lists each offending field.
        """
        clean = self.spec.validate_factors(inputs)
        est = self._estimates([clean])[0]
        extras: dict[str, Any] = {"outcome_description": self.config.outcome_description}
        weights = self._modality_weights([clean])
        if weights is not None:
            extras["modality_weights"] = weights[0]
        return Prediction(model=self.ref, risks=[est], flags=self._flags(clean), extras=extras)

    def predict_batch(self, rows: list[dict[str, Any]] | pd.DataFrame) -> list[Prediction]:
        """Risk of many patients in one vectorised pass.

        Raises:
            InputValidationError: every offending field of every row, each detail carrying its ``row`` index.

        Time grows linearly with the rows: Python's cyclic garbage collector is paused while the batch's (acyclic)
        result objects are built; its full passes over every live object made 10,000 rows cost 1.8x per row what
        1,000 did.
        """
        with gc_paused():
            return self._predict_batch(rows)

    def _predict_batch(self, rows: list[dict[str, Any]] | pd.DataFrame) -> list[Prediction]:
        if isinstance(rows, pd.DataFrame):
            rows = [
                {k: (None if (isinstance(v, float) and np.isnan(v)) else v) for k, v in r.items()}
                for r in rows.to_dict(orient="records")
            ]
        cleans, problems = [], []
        for i, r in enumerate(rows):
            try:
                cleans.append(self.spec.validate_factors(r))
            except InputValidationError as exc:
                problems += [{**d, "row": i} for d in (exc.details or [])]  # type: ignore[union-attr]
        if problems:
            raise InputValidationError(
                f"{len(problems)} invalid factor(s) in {len({p['row'] for p in problems})} row(s); "
                "each detail names the row and field",
                problems,
            )
        ests = self._estimates(cleans)
        weights = self._modality_weights(cleans)
        return [
            Prediction(
                model=self.ref,
                risks=[e],
                flags=self._flags(c),
                extras={} if weights is None else {"modality_weights": weights[i]},
            )
            for i, (e, c) in enumerate(zip(ests, cleans, strict=True))
        ]


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector in the block (reference counting still frees everything acyclic)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


PREDICTORS.add("risk_model", RiskPredictor)
