"""Models: list with version, model card and input contract; one generic predict route; reload on promotion.

Risk models (``input_kind == "factors"``) take patient factors as a JSON object and answer synchronously; image
models take the image bytes. New packages appear here without new routes.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
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


#: image bodies the image models take; ``multipart/form-data`` carries one of them as ``image`` plus metadata fields
IMAGE_TYPES = ("image/jpeg", "image/png", "application/dicom")
METADATA_FIELDS = ("age", "sex", "site", "skin_type")
OVERLAY_TTL_S = 3600
_BINARY = {"schema": {"type": "string", "format": "binary"}}
PREDICT_BODY: dict[str, Any] = {"requestBody": {"required": False, "content": {
    "application/json": {"schema": {"type": "object", "additionalProperties": True,
                                    "description": "patient factors (factors models)"}},
    **{t: _BINARY for t in IMAGE_TYPES},
    "multipart/form-data": {"schema": {"type": "object", "required": ["image"], "properties": {
        "image": {"type": "string", "format": "binary", "description": "JPEG, PNG or DICOM photographic image"},
        **{f: {"type": "string", "description": f"patient {f.replace('_', ' ')} (optional; image models that "
                                                  "fuse metadata)"} for f in METADATA_FIELDS}}}},
}}}


async def json_object(request: Request) -> dict[str, Any] | None:
    """The request body as a JSON object (``None`` when empty); 400 on malformed JSON, 422 on a non-object."""
    body = await request.body()
    if not body.strip():
        return None
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiProblem(400, "invalid-json", f"the request body is not valid JSON ({exc}); send the patient "
                         "factors as one JSON object") from None
    if not isinstance(value, dict):
        raise ApiProblem(422, "factors-required", "the body must be one JSON object of patient factors, not "
                         f"a JSON {type(value).__name__}")
    return value


async def image_input(request: Request, name: str) -> tuple[bytes, dict[str, Any]]:
    """``(image bytes, metadata)`` of an image-model request: a raw JPEG/PNG/DICOM body, or multipart/form-data
    with the file as ``image`` and optional ``age``, ``sex``, ``site``, ``skin_type`` fields."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype in IMAGE_TYPES:
        data = await request.body()
        if not data:
            raise ApiProblem(400, "image-required", f"the {ctype} body is empty; send the image bytes")
        return data, {}
    if ctype == "multipart/form-data":
        try:
            form = await request.form()
        except Exception as exc:  # noqa: BLE001 -- python-multipart raises several types on a malformed body
            raise ApiProblem(400, "invalid-multipart", f"unreadable multipart body ({exc})") from None
        part = form.get("image")
        if part is None or isinstance(part, str):
            raise ApiProblem(422, "image-required", f"model {name}: the multipart body needs the image file in a "
                             "part named 'image'", errors=[{"field": "image", "problem": "missing"}])
        data = await part.read()
        if not data:
            raise ApiProblem(400, "image-required", "the 'image' part is empty")
        meta = {f: str(v) for f in METADATA_FIELDS if isinstance(v := form.get(f), str) and v.strip()}
        return data, meta
    raise ApiProblem(415, "image-required", f"model {name} takes one image/jpeg, image/png or application/dicom "
                     "body, or multipart/form-data with the file as 'image' (plus optional age, sex, site)")


def _overlay_dir(request: Request, who: Principal) -> Path:
    """The caller's overlay folder: an overlay is a copy of the photograph one caller sent, so only that caller
    (key or signed-in user) may fetch it; another caller's request for the same id is a 404."""
    owner = hashlib.sha256(who.user.encode()).hexdigest()[:24]
    return request.app.state.settings.store() / "overlays" / owner


def _store_overlay(request: Request, who: Principal, pixels: np.ndarray, saliency: np.ndarray) -> str:
    """Write the image + saliency overlay PNG under the caller's ``overlays/<owner>/`` (kept ``OVERLAY_TTL_S``: an
    overlay is a copy of a patient photograph, so it is not kept longer than a viewer needs it) and return its id."""
    import time
    import uuid

    from medai.derm.predictor import write_saliency_png

    base = request.app.state.settings.store() / "overlays"
    root = _overlay_dir(request, who)
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    now = time.time()
    for old in base.glob("*/*.png"):
        try:
            if now - old.stat().st_mtime > OVERLAY_TTL_S:
                old.unlink()
        except OSError:
            pass
    oid = uuid.uuid4().hex
    tmp = root / f".{oid}.tmp.png"
    write_saliency_png(pixels, saliency, tmp)
    tmp.replace(root / f"{oid}.png")  # atomic: a reader never sees half a file
    return oid


async def run_predict(name: str, request: Request, models: ModelRegistry, who: Principal, fmt: str,
                      factors: dict[str, Any] | None, overlay: bool = False) -> Any:
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
        data, metadata = await image_input(request, name)
        predictor = models.get(name)
        pred = await run_in_threadpool(_predict_image, predictor, data, metadata, overlay)
        if overlay and (pair := pred.extras.pop("_overlay_pair", None)) is not None:
            oid = await run_in_threadpool(_store_overlay, request, who, *pair)
            pred.extras["overlay_url"] = f"{request.url_for('get_overlay', name=name, oid=oid).path}"
    else:
        raise ApiProblem(422, "use-analyses", f"model {name} analyses whole studies: POST /v1/analyses")
    await audit.record_async(request.app.state.engine, who, request, "predict", "risk" if pred.risks else "prediction",
                             name)  # group-committed: the answer leaves only once its audit row is durable
    if fmt == "fhir":
        from medai.reports.fhir import prediction_bundle

        return JSONResponse(prediction_bundle(pred).model_dump(mode="json", exclude_none=True),
                            media_type="application/fhir+json")
    return prediction_out(pred)  # FastAPI serialises it with pydantic-core straight to JSON bytes


def _predict_image(predictor: Any, data: bytes, metadata: dict[str, Any], overlay: bool) -> Prediction:
    """One image prediction; with ``overlay``, keeps the decoded pixels and saliency for the overlay PNG."""
    from medai.derm.image import load_skin_image

    img = load_skin_image(data)
    pred = predictor.predict(img, metadata=metadata)  # image predictors take the patient metadata (may be {})
    sal = pred.extras.get("saliency")
    if overlay and isinstance(sal, np.ndarray):
        pred.extras["_overlay_pair"] = (img.pixels, sal)
    return pred


@router.post("/{name}/predict", response_model=PredictionOut, summary="Predict with a served model",
             responses={**responses(400, 404, 415), 200: FHIR_ALT}, openapi_extra=PREDICT_BODY)
async def predict(name: str, request: Request,
                  fmt: str = Query("json", alias="format", pattern="^(json|fhir)$"),
                  overlay: bool = Query(True, description="image models: store the saliency overlay PNG and "
                                        "return its link as extras.overlay_url (kept one hour)"),
                  who: Principal = Depends(everyone), models: ModelRegistry = Depends(get_models)) -> Any:
    """Factors models: a JSON object of patient factors -> risks (synchronous). Image models: the image as an
    ``image/jpeg``, ``image/png`` or ``application/dicom`` body, or ``multipart/form-data`` with the file as
    ``image`` and optional ``age``, ``sex``, ``site``, ``skin_type`` -> class probabilities (temperature-scaled),
    the top class, and a link to the saliency overlay."""
    factors = await json_object(request) if models.input_kind(name) == "factors" else None
    return await run_predict(name, request, models, who, fmt, factors, overlay=overlay)


@router.get("/{name}/overlays/{oid}", summary="Saliency overlay of an image prediction", name="get_overlay",
            response_class=Response, responses={**responses(404), 200: {"content": {"image/png": {}}}})
async def get_overlay(name: str, oid: str, request: Request, who: Principal = Depends(everyone)) -> Response:
    """The image beside its saliency overlay (PNG), for one hour after the prediction, to the caller who made it."""
    if not (len(oid) == 32 and all(c in "0123456789abcdef" for c in oid)):
        raise ApiProblem(404, "not-found", f"no overlay {oid[:40]!r}")
    path = _overlay_dir(request, who) / f"{oid}.png"
    if not path.is_file():
        raise ApiProblem(404, "not-found", f"overlay {oid} does not exist or has expired (kept one hour)")
    data = path.read_bytes()
    await audit.record_async(request.app.state.engine, who, request, "view", "overlay", oid)
    return Response(data, media_type="image/png", headers={"Cache-Control": "private, no-store"})


@router.post("/{name}/reload", response_model=ModelOut, summary="Reload a model (after promotion)",
             responses=responses(404))
def reload_model(name: str, request: Request, who: Principal = Depends(model_admin),
                 models: ModelRegistry = Depends(get_models), engine: Any = Depends(get_engine)) -> ModelOut:
    """Re-resolve the model's reference (``models:/<name>@<alias>`` may now point to a new version) and swap it in."""
    models.reload(name)
    audit.record(engine, who, request, "reload", "model", name)
    return ModelOut(**models.describe(name))
