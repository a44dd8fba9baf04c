"""Served models: references resolved to packages, loaded lazily (or in the lifespan), hot-reloaded on promotion."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medai.errors import ModelNotFoundError
from medai.inference.package import ModelMetadata, read_metadata, resolve_package, shipped_packages
from medai.inference.predictor import Predictor
from medai.registry import PREDICTORS

logger = logging.getLogger(__name__)


def ref_name(ref: str) -> str:
    """The served name of a reference: ``models:/<name>@<alias>`` -> name; a folder -> its name; else itself."""
    if ref.startswith("models:/"):
        return ref[len("models:/"):].split("@")[0].split("/")[0]
    return Path(ref).name


@dataclass
class Served:
    """One served model: its reference, the package it resolved to, metadata and (once loaded) predictor."""

    ref: str
    package: Path
    metadata: ModelMetadata
    predictor: Predictor | None = None
    batcher: Any = None
    #: for ``models:/`` references: the registered version the package is (what an alias poll compares)
    registry_version: str | None = None


class ModelRegistry:
    """The models this server serves, by name."""

    def __init__(self, refs: list[str] | None = None) -> None:
        refs = list(refs or []) or list(shipped_packages())
        self.refs = {ref_name(r): r for r in refs}
        self._served: dict[str, Served] = {}
        self._lock = threading.RLock()

    def names(self) -> list[str]:
        """Served model names."""
        return sorted(self.refs)

    def _resolve(self, name: str) -> Served:
        ref = self.refs.get(name)
        if ref is None:
            raise ModelNotFoundError(f"model {name!r} is not served here; GET /v1/models lists the served models")
        if ref.startswith("models:/"):  # pin the alias to a version first: the package is that version's
            from medai.inference.mlflow_registry import parse_models_uri, registry_version

            version = registry_version(ref)
            pkg = resolve_package(f"models:/{parse_models_uri(ref)[0]}/{version}")
            return Served(ref=ref, package=pkg, metadata=read_metadata(pkg), registry_version=version)
        pkg = resolve_package(ref)
        return Served(ref=ref, package=pkg, metadata=read_metadata(pkg))

    def served(self, name: str) -> Served:
        """The resolved (not necessarily loaded) model."""
        with self._lock:
            if name not in self._served:
                self._served[name] = self._resolve(name)
            return self._served[name]

    def input_kind(self, name: str) -> str:
        """The predictor's ``input_kind`` (``study``, ``image``, ``factors``) without loading weights."""
        s = self.served(name)
        if s.predictor is not None:
            return s.predictor.input_kind
        return str(getattr(PREDICTORS.get(s.metadata.predictor), "input_kind", "study"))

    def get(self, name: str) -> Predictor:
        """The loaded predictor (loaded on first use)."""
        s = self.served(name)
        if s.predictor is None:
            with self._lock:
                if s.predictor is None:
                    s.predictor = Predictor.from_package(s.package)
                    logger.info("loaded model %s %s", name, s.metadata.version)
        return s.predictor

    def loaded(self, name: str) -> Predictor | None:
        """The predictor if it is loaded already (never loads)."""
        return self.served(name).predictor

    def batcher(self, name: str) -> Any:
        """A :class:`~serving.batching.MicroBatcher` for predictors with ``predict_batch``, else None."""
        s = self.served(name)
        pred = self.get(name)
        if s.batcher is None and callable(getattr(pred, "predict_batch", None)):
            from serving.batching import MicroBatcher

            with self._lock:
                if s.batcher is None:
                    s.batcher = MicroBatcher(pred)
        return s.batcher

    def put(self, name: str, predictor: Predictor, ref: str | None = None) -> None:
        """Serve an already loaded predictor (tests, embedding)."""
        with self._lock:
            self.refs[name] = ref or name
            self._served[name] = Served(ref=ref or name, package=predictor.package_dir, metadata=predictor.metadata,
                                        predictor=predictor)

    def preload(self) -> None:
        """Load every served model (lifespan)."""
        for n in self.names():
            self.get(n)

    def reload(self, name: str) -> Served:
        """Re-resolve the reference (an alias may point to a new version) and swap the loaded predictor."""
        fresh = self._resolve(name)
        fresh.predictor = Predictor.from_package(fresh.package)
        with self._lock:
            old = self._served.get(name)
            self._served[name] = fresh
        if old is not None and old.batcher is not None:
            old.batcher.close()
        if old is None or (old.registry_version, old.metadata.version) != (fresh.registry_version,
                                                                            fresh.metadata.version):
            logger.info("model %s now at version %s (registry version %s)", name, fresh.metadata.version,
                        fresh.registry_version)
        return fresh

    def poll_aliases(self) -> list[str]:
        """Reload every ``models:/`` model whose alias now names another registered version; returns the reloaded.

        Compares registry versions (one small registry call per model, no download), not ``metadata.version``:
        a retrained package often keeps its recipe's version string."""
        from medai.inference.mlflow_registry import registry_version

        changed = []
        for name, ref in list(self.refs.items()):
            if not ref.startswith("models:/"):
                continue
            try:
                version = registry_version(ref)
            except Exception:  # noqa: BLE001 -- registry unreachable: keep serving the loaded version
                logger.warning("could not re-resolve %s", ref, exc_info=True)
                continue
            cur = self._served.get(name)
            if cur is None or cur.registry_version != version:
                try:
                    self.reload(name)
                except Exception:  # noqa: BLE001 -- a broken new version: keep serving the loaded one
                    logger.exception("could not load %s version %s; still serving %s", name, version,
                                     cur.registry_version if cur else None)
                    continue
                changed.append(name)
        return changed

    def describe(self, name: str, with_schema: bool = False) -> dict[str, Any]:
        """Name, version, task, input kind, intended use, contracts, metrics and model card."""
        s = self.served(name)
        m = s.metadata
        card = s.package / "MODEL_CARD.md"
        out: dict[str, Any] = {
            "name": name, "ref": s.ref, "version": m.version, "registry_version": s.registry_version,
            "task": m.task, "input_kind": self.input_kind(name),
            "description": m.description, "intended_use": m.intended_use, "input_contract": m.input_contract,
            "output_contract": m.output_contract, "metrics": m.metrics, "licence": m.licence,
            "model_card": card.read_text() if card.is_file() else "",
        }
        if with_schema:
            pred = self.get(name)
            schema = getattr(pred, "input_schema", None)
            out["input_schema"] = schema() if callable(schema) else None
        return out
