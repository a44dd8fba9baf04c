"""Concurrent risk requests are micro-batched, yet each gets its own answer or its own field errors."""

from __future__ import annotations

import asyncio

import httpx

from serving.auth import Role
from tests.serving.conftest import RISK_MODEL, Api
from tests.serving.test_api import _required_factors


def test_concurrent_mixed_requests_get_their_own_answers(api: Api) -> None:
    from medai.inference.predictor import Predictor

    good = _required_factors()
    ref = Predictor.from_package(RISK_MODEL).predict(good).risks[0].horizons
    bodies = [good if i % 3 else {**good, "AGE": "old"} for i in range(24)]
    key = api.keys[Role.CLINICIAN]

    async def run() -> list[httpx.Response]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api.app), base_url="http://t") as c:
            return await asyncio.gather(*(c.post(f"/v1/risk/{RISK_MODEL}", json=b, headers={"X-API-Key": key})
                                          for b in bodies))

    rs = asyncio.run(run())
    for b, r in zip(bodies, rs, strict=True):
        if b["AGE"] == "old":
            assert r.status_code == 422 and any(e["field"] == "AGE" for e in r.json()["errors"])
        else:
            assert r.status_code == 200
            got = r.json()["risks"][0]["horizons"]
            assert got.keys() == ref.keys() and all(abs(got[k] - ref[k]) < 1e-12 for k in ref)
