"""The one predict path: ``Predictor.from_package(path).predict(study) -> Prediction``.

Evaluation, the CLI and the API all call this. Concrete predictors register themselves in
:data:`medai.registry.PREDICTORS` under the name stored in a package's ``metadata.json``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

from medai.domain.prediction import ModelRef, Prediction
from medai.inference.package import ModelMetadata, read_metadata, resolve_package
from medai.registry import PREDICTORS


class Predictor(ABC):
    """Base class of every predictor.

    Subclasses implement :meth:`load` (read the package's artefacts) and :meth:`predict`.
    """

    #: the kind of input ``predict`` accepts: ``"study"``, ``"image"``, ``"factors"``.
    input_kind: ClassVar[str] = "study"

    def __init__(self, package_dir: Path, metadata: ModelMetadata) -> None:
        self.package_dir = Path(package_dir)
        self.metadata = metadata

    @classmethod
    def from_package(cls, ref: str | Path, **kwargs: Any) -> Predictor:
        """Load the predictor named in the package's metadata.

        Args:
            ref: package folder, shipped package name, or ``models:/<name>@<alias>``.
            **kwargs: passed to the concrete predictor's :meth:`load` (e.g. ``device``).
        """
        path = resolve_package(ref)
        meta = read_metadata(path)
        impl: type[Predictor] = PREDICTORS.get(meta.predictor)
        if cls is not Predictor and not issubclass(impl, cls):
            raise TypeError(f"package {path} holds a {meta.predictor} predictor, not a {cls.__name__}")
        inst = impl(path, meta)
        inst.load(**kwargs)
        return inst

    @property
    def ref(self) -> ModelRef:
        """The model reference stamped on every output."""
        return ModelRef(name=self.metadata.name, version=self.metadata.version, source=str(self.package_dir))

    @abstractmethod
    def load(self, **kwargs: Any) -> None:
        """Read weights and frozen config from :attr:`package_dir`."""

    @abstractmethod
    def predict(self, inputs: Any) -> Prediction:
        """Run the model on one input (a Study, an image, or patient factors per :attr:`input_kind`)."""

    def export_onnx(self) -> list[Path]:
        """Export the package's networks to ONNX beside their weights (:mod:`medai.inference.compiled`) and list
        the files written. Predictors without a network export nothing.

        Raises:
            ConfigError: an export's outputs differ from torch's.
        """
        return []
