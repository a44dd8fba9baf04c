"""Models: list with version, model card and input contract; one generic predict route; reload on promotion.

Risk models (``input_kind == "factors"``) take patient factors as a JSON object and answer synchronously; image
models take the image bytes. New packages appear here without new routes.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from medai.domain.measurement import Measurement
from medai.domain.prediction import ClassProbability, ModelRef, Prediction, QualityFlag, RiskEstimate
from serving import audit
from serving.auth import Principal
from serving.deps import everyone, get_engine, get_models, model_admin
from serving.models import ModelRegistry
from serving.problems import ApiProblem, responses

router = APIRouter(prefix="/v1/models", tags=["models"])

#: ``?format=fhir`` answers a FHIR R4 Bundle of RiskAssessments
FHIR_ALT = {"content": {"application/fhir+json": {"schema": {"type": "object"}}}}


class ModelOut(BaseModel):
    """A served model."""

    name: str
    ref: str
    version: str
    registry_version: str | None = Field(None, description="for models:/ references: the registered version "
                                         "served (an alias's promotion swaps it)")
    task: str
    input_kind: str
    description: str = ""
    intended_use: str = ""
    input_contract: dict[str, Any] = Field(default_factory=dict)
    output_contract: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, float] = Field(default_factory=dict)
    licence: str = ""
    model_card: str = ""
    input_schema: dict[str, Any] | None = None


class PredictionOut(BaseModel):
    """A model's answer."""

    model: ModelRef
    risks: list[RiskEstimate] = Field(default_factory=list)
    classes: list[ClassProbability] = Field(default_factory=list)
    measurements: list[Measurement] = Field(default_factory=list)
    flags: list[QualityFlag] = Field(default_factory=list)
    extras: dict[str, Any] = Field(default_factory=dict)


def _jsonable(v: Any) -> Any:
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.ndarray):
        return None if v.size > 1024 else _jsonable(v.tolist())
    try:
        json.dumps(v)
        return v
    except TypeError:
        return None


def prediction_out(p: Prediction) -> PredictionOut:
    extras = {k: _jsonable(v) for k, v in p.extras.items()}
    return PredictionOut(model=p.model, risks=p.risks, classes=p.classes, measurements=p.measurements,
                         flags=p.flags, extras={k: v for k, v in extras.items() if v is not None})


@router.get("", response_model=list[ModelOut], summary="Served models", responses=responses())
def list_models(who: Principal = Depends(everyone), models: ModelRegistry = Depends(get_models)) -> list[ModelOut]:
    """Every served model with version, intended use, contracts, metrics and model card."""
    return [ModelOut(**models.describe(n)) for n in models.names()]


@router.get("/{name}", response_model=ModelOut, summary="One served model", responses=responses(404))
def get_model(name: str, who: Principal = Depends(everyone), models: ModelRegistry = Depends(get_models)) -> ModelOut:
    """The model's description including the input schema of its predictor."""
    return ModelOut(**models.describe(name, with_schema=True))


async def run_predict(name: str, request: Request, models: ModelRegistry, who: Principal, fmt: str,
                      factors: dict[str, Any] | None) -> Any:
    """Dispatch on ``input_kind``; audit the call (model name only, never the inputs)."""
    kind = models.input_kind(name)
    if kind == "factors":
        if factors is None:
            raise ApiProblem(422, "factors-required", f"model {name} takes patient factors as a JSON object; "
                             f"GET /v1/models/{name} shows the input schema")
        predictor = models.loaded(name) or await run_in_threadpool(models.get, name)
        if getattr(predictor, "answers_inline", False):  # compiled: tens of microseconds, no thread hop
            pred = predictor.predict(factors)
        elif (batcher := models.batcher(name)) is not None:  # concurrent requests share one predict_batch call
            pred = await batcher.predict(factors)
        else:
            pred = await run_in_threadpool(predictor.predict, factors)
    elif kind == "image":
        data = await request.body()
        if not data or request.headers.get("content-type", "").split(";")[0] not in ("image/png", "image/jpeg"):
            raise ApiProblem(415, "image-required", f"model {name} takes one image/png or image/jpeg body")
        predictor = models.get(name)
        pred = await run_in_threadpool(predictor.predict, data)
    else:
        raise ApiProblem(422, "use-analyses", f"model {name} analyses whole studies: POST /v1/analyses")
    await audit.record_async(request.app.state.engine, who, request, "predict", "risk" if pred.risks else "prediction",
                             name)  # group-committed: the answer leaves only once its audit row is durable
    if fmt == "fhir":
        from medai.reports.fhir import prediction_bundle

        return JSONResponse(prediction_bundle(pred).model_dump(mode="json", exclude_none=True),
                            media_type="application/fhir+json")
    return prediction_out(pred)  # FastAPI serialises it with pydantic-core straight to JSON bytes


@router.post("/{name}/predict", response_model=PredictionOut, summary="Predict with a served model",
             responses={**responses(404, 415), 200: FHIR_ALT})
async def predict(name: str, request: Request,
                  factors: dict[str, Any] | None = Body(None, description="patient factors (factors models)"),
                  fmt: str = Query("json", alias="format", pattern="^(json|fhir)$"),
                  who: Principal = Depends(everyone), models: ModelRegistry = Depends(get_models)) -> Any:
    """Factors models: JSON object of patient factors -> risks (synchronous). Image models: the image bytes."""
    return await run_predict(name, request, models, who, fmt, factors)


@router.post("/{name}/reload", response_model=ModelOut, summary="Reload a model (after promotion)",
             responses=responses(404))
def reload_model(name: str, request: Request, who: Principal = Depends(model_admin),
                 models: ModelRegistry = Depends(get_models), engine: Any = Depends(get_engine)) -> ModelOut:
    """Re-resolve the model's reference (``models:/<name>@<alias>`` may now point to a new version) and swap it in."""
    models.reload(name)
    audit.record(engine, who, request, "reload", "model", name)
    return ModelOut(**models.describe(name))
