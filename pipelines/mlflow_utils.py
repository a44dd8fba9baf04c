"""Shared MLflow helpers: tracking URI from :mod:`medai.settings`, runs, configs, metrics, model packages.

Metric keys follow ``stage/name[/label]`` (``val/dice/lv``). A model package folder (``metadata.json`` + weights)
is logged as the run artifact ``package/`` and registered as the registered model ``<name>`` with an alias
(``candidate`` by default); promotion to ``production`` is a separate reviewed step.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow
import yaml
from mlflow.tracking import MlflowClient

from medai.settings import get_settings

logger = logging.getLogger(__name__)

PACKAGE_ARTIFACT_PATH = "package"


def setup_tracking() -> str:
    """Point MLflow at ``MLFLOW_TRACKING_URI`` or the SQLite store under ``MEDAI_HOME``; returns the URI."""
    get_settings.cache_clear()
    uri = get_settings().mlflow_tracking_uri
    mlflow.set_tracking_uri(uri)
    return uri


@contextmanager
def start_run(experiment: str, run_name: str | None = None, tags: Mapping[str, str] | None = None) -> Iterator[Any]:
    """Start (and end) an MLflow run in ``experiment`` after :func:`setup_tracking`."""
    uri = setup_tracking()
    if mlflow.get_experiment_by_name(experiment) is None and uri.startswith(("sqlite:", "file:")):
        # keep artifacts beside the local store (MEDAI_HOME), not in ./mlruns of the working directory
        artifacts = (get_settings().home / "mlartifacts").resolve()
        artifacts.mkdir(parents=True, exist_ok=True)
        mlflow.create_experiment(experiment, artifact_location=artifacts.as_uri())
    mlflow.set_experiment(experiment)
    with mlflow.start_run(run_name=run_name, tags=dict(tags or {})) as run:
        yield run


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten a nested mapping to dotted keys (lists stay values)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def log_config(config: Mapping[str, Any], artifact_file: str = "config/resolved.yaml") -> None:
    """Log a resolved config: every leaf as a param (dotted key) and the whole as a YAML artifact."""
    params = {k: (json.dumps(v) if isinstance(v, list | tuple) else v) for k, v in flatten(config).items()}
    params = {k: str(v)[:500] for k, v in params.items()}
    items = list(params.items())
    for i in range(0, len(items), 100):
        mlflow.log_params(dict(items[i : i + 100]))
    mlflow.log_text(yaml.safe_dump(json.loads(json.dumps(dict(config), default=str)), sort_keys=False), artifact_file)


def log_metrics(metrics: Mapping[str, float], step: int | None = None) -> None:
    """Log finite metrics (keys ``stage/name[/label]``); NaN/inf values are skipped with a debug message."""
    clean = {}
    for k, v in metrics.items():
        try:
            f = float(v)
        except (TypeError, ValueError):
            continue
        if math.isfinite(f):
            clean[k] = f
        else:
            logger.debug("metric %s is not finite (%s); not logged", k, v)
    if clean:
        mlflow.log_metrics(clean, step=step)


def log_artifacts(path: Path, artifact_path: str | None = None) -> None:
    """Log a file or a folder as run artifacts."""
    path = Path(path)
    if path.is_dir():
        mlflow.log_artifacts(str(path), artifact_path=artifact_path)
    else:
        mlflow.log_artifact(str(path), artifact_path=artifact_path)


def register_package(package_dir: Path, name: str, alias: str | None = "candidate") -> str:
    """Log ``package_dir`` as the active run's ``package/`` artifact and register it as model ``name``.

    Returns:
        The new registered model version (string). The alias (e.g. ``candidate``) is moved to it, so
        ``models:/<name>@<alias>`` resolves (see :func:`medai.inference.package.resolve_package`).
    """
    run = mlflow.active_run()
    if run is None:
        raise RuntimeError("register_package needs an active MLflow run")
    mlflow.log_artifacts(str(package_dir), artifact_path=PACKAGE_ARTIFACT_PATH)
    client = MlflowClient()
    try:
        client.get_registered_model(name)
    except mlflow.exceptions.MlflowException:
        client.create_registered_model(name, description="medai model package (metadata.json + weights)")
    source = f"{run.info.artifact_uri.rstrip('/')}/{PACKAGE_ARTIFACT_PATH}"
    mv = client.create_model_version(name, source=source, run_id=run.info.run_id)
    if alias:
        client.set_registered_model_alias(name, alias, mv.version)
    logger.info("registered %s version %s (alias %s)", name, mv.version, alias)
    return str(mv.version)
