"""A uvicorn factory for the crash test: the real cine analysis (tiny random-weight package from
``MEDAI_TEST_TINY_CINE``) preceded by a slow stage, so the test can kill the server while the job runs."""

from __future__ import annotations

import os
import time
from pathlib import Path

from fastapi import FastAPI

from medai.inference.predictor import Predictor
from serving.analysis import make_study_analyse
from serving.app import create_app
from serving.models import ModelRegistry
from serving.settings import ApiSettings

SLOW_STAGE = "slow-stage"


def make_app() -> FastAPI:
    pkg = Path(os.environ["MEDAI_TEST_TINY_CINE"])
    registry = ModelRegistry(["stroke_ist_death_6m"])
    registry.put("heart_mr_cine_seg", Predictor.from_package(pkg), ref=str(pkg))

    def factory(store, models, settings: ApiSettings):  # noqa: ANN001, ANN202
        real = make_study_analyse(store, models, settings.deidentify)

        def analyse(study_uid, work, out_dir, progress, kinds=None):  # noqa: ANN001, ANN202
            progress(SLOW_STAGE)
            time.sleep(float(os.environ.get("MEDAI_TEST_SLOW_S", "4")))
            return real(study_uid, work, out_dir, progress, kinds)

        return analyse

    return create_app(ApiSettings(), models=registry, analyse_factory=factory)
