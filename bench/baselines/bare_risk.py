"""Baseline: a bare FastAPI route that calls a risk package's fitted scikit-learn pipeline directly.

No authentication, no audit, no validation, no contributions: the floor a hand-written service would start from.
``BENCH_PACKAGE`` names the package folder; ``uvicorn --factory bench.baselines.bare_risk:create_app``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd
from fastapi import FastAPI


def create_app() -> FastAPI:
    from medai.risk.predictor import MODEL_FILE, load_skops

    pkg = Path(os.environ["BENCH_PACKAGE"])
    model = load_skops(pkg / MODEL_FILE)
    cfg = json.loads((pkg / "inference.json").read_text())
    kind, horizon = cfg["kind"], cfg["primary_horizon"]
    app = FastAPI()

    @app.get("/ping")
    def ping() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/predict")
    def predict(row: dict[str, Any]) -> dict[str, float]:
        X = pd.DataFrame([row])
        if kind == "survival":
            return {"risk": float(1.0 - model.predict_survival_function(X)[0](horizon))}
        return {"risk": float(model.predict_proba(X)[0, 1])}

    return app
