"""Risk: patient factors (JSON) -> risk estimates, synchronously; ``?format=fhir`` answers a FHIR RiskAssessment."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Query, Request

from serving.auth import Principal
from serving.deps import everyone, get_models
from serving.models import ModelRegistry
from serving.problems import ApiProblem, responses
from serving.routers.models import FHIR_ALT, PredictionOut, run_predict

router = APIRouter(prefix="/v1/risk", tags=["risk"])


@router.post("/{name}", response_model=PredictionOut, summary="Risk estimate from patient factors",
             responses={**responses(404), 200: FHIR_ALT})
async def risk(name: str, request: Request, factors: dict[str, Any] = Body(..., description="patient factors"),
               fmt: str = Query("json", alias="format", pattern="^(json|fhir)$"),
               who: Principal = Depends(everyone), models: ModelRegistry = Depends(get_models)) -> Any:
    """Run a factors model; 422 problem with one entry per invalid field."""
    if models.input_kind(name) != "factors":
        raise ApiProblem(422, "not-a-risk-model", f"model {name} does not take patient factors")
    return await run_predict(name, request, models, who, fmt, factors)
