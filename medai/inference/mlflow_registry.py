"""The MLflow model registry as medai uses it: versions behind aliases, a download cache, reviewed promotion.

A registered version is a medai package logged as its run's ``package/`` artifact (see
:func:`pipelines.mlflow_utils.register_package`). Versions are immutable, so each is downloaded once into
``MEDAI_HOME/registry-cache/<name>/<version>`` and reused; what can change is which version an alias names, and
:func:`registry_version` asks only that (one small registry call, no download).

Promotion (:func:`promote`, ``medai models promote``) is the review step between ``candidate`` and ``production``:
it refuses a version without an evaluation JSON attached (an ``evaluation/*.json`` artifact of the version's run,
or one inside its package), attaches one when given, moves the alias and records who promoted it and when as
version tags (``medai.promoted.<alias>.by`` / ``.at`` / ``.evaluation``).

MLflow is imported lazily: the core does not need it at import time.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

from medai.errors import ConfigError, ModelNotFoundError
from medai.inference.package import METADATA_FILE
from medai.settings import get_settings

logger = logging.getLogger(__name__)
#: written last into a version's cache folder: its presence means the download is complete
COMPLETE = ".complete"


def parse_models_uri(uri: str) -> tuple[str, str | None, str | None]:
    """``models:/<name>@<alias>`` -> ``(name, alias, None)``; ``models:/<name>/<version>`` -> ``(name, None, v)``."""
    if not uri.startswith("models:/"):
        raise ModelNotFoundError(f"{uri!r} is not a models:/<name>@<alias> or models:/<name>/<version> URI")
    rest = uri[len("models:/"):]
    if "@" in rest:
        name, alias = rest.split("@", 1)
        return name, alias, None
    if "/" in rest:
        name, version = rest.split("/", 1)
        return name, None, version
    raise ModelNotFoundError(f"{uri!r} names no alias or version: use models:/{rest}@<alias> or models:/{rest}/<n>")


def client() -> Any:
    """An ``MlflowClient`` on medai's tracking URI."""
    try:
        import mlflow
        from mlflow.tracking import MlflowClient
    except ImportError as exc:  # pragma: no cover - mlflow is a dependency
        raise ModelNotFoundError("MLflow is not installed") from exc
    uri = get_settings().mlflow_tracking_uri
    mlflow.set_tracking_uri(uri)
    return MlflowClient(tracking_uri=uri)


def registry_version(uri: str) -> str:
    """The registered version ``uri`` names now (an alias resolved; a fixed version as is)."""
    name, alias, version = parse_models_uri(uri)
    if version is not None:
        return version
    try:
        return str(client().get_model_version_by_alias(name, alias).version)
    except Exception as exc:  # MLflow raises its own exception types
        raise ModelNotFoundError(f"cannot resolve {uri}: {exc}") from exc


def download(uri: str) -> Path:
    """The local package folder of the version ``uri`` names, downloaded once per version."""
    name, _, _ = parse_models_uri(uri)
    version = registry_version(uri)
    dest = get_settings().home / "registry-cache" / name / version
    if not (dest / COMPLETE).is_file():
        import mlflow.artifacts

        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{version}.", dir=dest.parent))
        try:
            mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/{version}", dst_path=str(tmp))
            (tmp / COMPLETE).write_text(version)
            shutil.rmtree(dest, ignore_errors=True)  # a half-written earlier attempt
            tmp.rename(dest)
        except Exception as exc:  # MLflow raises its own exception types
            shutil.rmtree(tmp, ignore_errors=True)
            raise ModelNotFoundError(f"cannot download {uri} (version {version}): {exc}") from exc
        logger.info("downloaded %s version %s to %s", name, version, dest)
    hits = sorted(dest.rglob(METADATA_FILE), key=lambda p: len(p.parts))
    if not hits:
        raise ModelNotFoundError(f"{uri} (version {version}) holds no medai model package ({METADATA_FILE} missing)")
    return hits[0].parent


def evaluations(name: str, version: str) -> list[str]:
    """Artifact paths of the evaluation JSONs attached to a version (its run's ``evaluation/`` and its package's)."""
    c = client()
    mv = _version(c, name, version)
    if not mv.run_id:
        return []
    out = []
    for folder in ("evaluation", "package/evaluation"):
        try:
            out += [a.path for a in c.list_artifacts(mv.run_id, folder) if a.path.endswith(".json")]
        except Exception:  # noqa: BLE001 -- no such folder
            continue
    return out


def _version(c: Any, name: str, version: str) -> Any:
    try:
        return c.get_model_version(name, str(version))
    except Exception as exc:  # MLflow raises its own exception types
        raise ModelNotFoundError(f"registered model {name!r} has no version {version}: {exc}") from exc


def _check_evaluation(path: Path, name: str) -> None:
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path} is not a readable evaluation JSON: {exc}") from exc
    model = doc.get("model") if isinstance(doc, dict) else None
    if not isinstance(model, dict) or model.get("name") != name:
        got = model.get("name") if isinstance(model, dict) else None
        raise ConfigError(f"{path} is not an evaluation of {name} (its model is {got!r}); write one with "
                          f"`medai evaluate models:/{name}/<version> --data ... --out FILE`")


def promote(name: str, version: str, alias: str = "production", by: str = "",
            evaluation: Path | None = None) -> dict[str, Any]:
    """Move ``alias`` of registered model ``name`` to ``version`` after checking it carries an evaluation.

    Args:
        evaluation: an evaluation JSON (``medai evaluate``) to attach to the version's run first.
        by: who promotes (recorded); default the OS user.

    Returns:
        ``{name, version, alias, by, at, evaluations, previous}``.

    Raises:
        ModelNotFoundError: no such model or version.
        ConfigError: no evaluation attached (the message says how to attach one), or ``evaluation`` is not one of
            this model.
    """
    import getpass

    c = client()
    mv = _version(c, name, version)
    if evaluation is not None:
        _check_evaluation(Path(evaluation), name)
        if not mv.run_id:
            raise ConfigError(f"{name} version {version} has no run to attach {evaluation} to")
        c.log_artifact(mv.run_id, str(evaluation), "evaluation")
    found = evaluations(name, version)
    if not found:
        raise ConfigError(
            f"refusing to promote {name} version {version} to {alias!r}: no evaluation JSON is attached. Evaluate it "
            f"on held-out data (`medai evaluate models:/{name}/{version} --data DATA --out eval.json`) and pass "
            "--evaluation eval.json")
    try:
        previous = str(c.get_model_version_by_alias(name, alias).version)
    except Exception:  # noqa: BLE001 -- the alias is new
        previous = None
    who = by or getpass.getuser()
    at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    c.set_registered_model_alias(name, alias, str(version))
    for k, v in (("by", who), ("at", at), ("evaluation", ",".join(found))):
        c.set_model_version_tag(name, str(version), f"medai.promoted.{alias}.{k}", v)
    logger.info("%s promoted %s version %s to %s (was %s)", who, name, version, alias, previous)
    return {"name": name, "version": str(version), "alias": alias, "by": who, "at": at, "evaluations": found,
            "previous": previous}
