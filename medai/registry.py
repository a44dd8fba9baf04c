"""Registries with stable names (networks, estimators, predictors, measurements, renderers).

A registry maps a stable name to a factory. Persisted artifacts store registry names and parameters, never import
paths. Registries defined here are filled by modules that live above ``medai`` (``models`` for instance); those
modules are found through the ``medai.plugins`` entry-point group and imported the first time a name is missing,
so ``medai`` never imports them directly.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from typing import Generic, TypeVar

from medai.errors import ModelNotFoundError

logger = logging.getLogger(__name__)

T = TypeVar("T")

_PLUGINS_LOADED = False
_EXTRA_PLUGINS = ("models",)  # fallback when the distribution metadata is absent (e.g. running from a source tree)


def load_plugins() -> None:
    """Import every module of the ``medai.plugins`` entry-point group once (they register themselves)."""
    global _PLUGINS_LOADED
    if _PLUGINS_LOADED:
        return
    _PLUGINS_LOADED = True
    names = {ep.value for ep in entry_points(group="medai.plugins")} or set(_EXTRA_PLUGINS)
    for module in sorted(names):
        try:
            importlib.import_module(module)
        except ImportError as exc:  # pragma: no cover - depends on the installation
            logger.warning("medai plugin %s could not be imported: %s", module, exc)


class Registry(Generic[T]):
    """A name -> object registry.

    Args:
        kind: What is registered (used in error messages), e.g. ``"network"``.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator registering ``obj`` under ``name``; a name can be registered once."""

        def deco(obj: T) -> T:
            if name in self._items and self._items[name] is not obj:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._items[name] = obj
            return obj

        return deco

    def add(self, name: str, obj: T) -> T:
        """Register ``obj`` under ``name`` (non-decorator form)."""
        return self.register(name)(obj)

    def get(self, name: str) -> T:
        """Return the object registered as ``name``.

        Raises:
            ModelNotFoundError: when ``name`` is unknown; the message lists the known names.
        """
        if name not in self._items:
            load_plugins()
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "none"
            raise ModelNotFoundError(f"unknown {self.kind} {name!r}; known: {known}") from None

    def names(self) -> list[str]:
        """Sorted registered names (plugins loaded first)."""
        load_plugins()
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        load_plugins()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


#: Neural networks (``nn.Module`` factories taking simple keyword arguments).
NETWORKS: Registry[Callable[..., object]] = Registry("network")
#: scikit-learn / scikit-survival compatible estimator factories.
ESTIMATORS: Registry[Callable[..., object]] = Registry("estimator")
#: Predictor classes, by the ``predictor`` name stored in a model package's metadata.
PREDICTORS: Registry[type] = Registry("predictor")
