"""A uvicorn factory (and a ``medai worker`` entry) for the crash tests: the real cine analysis (tiny random-weight
package from ``MEDAI_TEST_TINY_CINE``) preceded by a slow stage, so a test can kill the process while the job runs.

``python -m tests.serving.slow_app worker`` runs a distributed worker (``MEDAI_API_JOB_BACKEND=procrastinate``)
with the same analysis."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from fastapi import FastAPI

from medai.inference.predictor import Predictor
from serving.analysis import make_study_analyse
from serving.app import create_app
from serving.models import ModelRegistry
from serving.settings import ApiSettings

SLOW_STAGE = "slow-stage"


def registry() -> ModelRegistry:
    """The risk model plus the tiny cine package as ``heart_mr_cine_seg``."""
    pkg = Path(os.environ["MEDAI_TEST_TINY_CINE"])
    models = ModelRegistry(["stroke_ist_death_6m"])
    models.put("heart_mr_cine_seg", Predictor.from_package(pkg), ref=str(pkg))
    return models


def slow_factory(store, models, settings: ApiSettings):  # noqa: ANN001, ANN201
    """The real study analysis after ``MEDAI_TEST_SLOW_S`` seconds at :data:`SLOW_STAGE`."""
    real = make_study_analyse(store, models, settings.deidentify)

    def analyse(study_uid, work, out_dir, progress, kinds=None):  # noqa: ANN001, ANN202
        progress(SLOW_STAGE)
        time.sleep(float(os.environ.get("MEDAI_TEST_SLOW_S", "4")))
        return real(study_uid, work, out_dir, progress, kinds)

    return analyse


def make_app() -> FastAPI:
    return create_app(ApiSettings(), models=registry(), analyse_factory=slow_factory)


if __name__ == "__main__" and sys.argv[1:] == ["worker"]:
    import logging

    from serving.distributed import serve_worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s")
    serve_worker(models=registry(), analyse_factory=slow_factory)
