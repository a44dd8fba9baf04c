"""Environment settings (pydantic-settings). Serving reads only these plus frozen model packages."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


class MedaiSettings(BaseSettings):
    """Settings read from ``MEDAI_*`` environment variables (and ``.env``)."""

    model_config = SettingsConfigDict(env_prefix="MEDAI_", env_file=".env", extra="ignore")

    home: Path = Field(default_factory=lambda: Path(os.environ.get("MEDAI_HOME", Path.cwd() / ".medai")))
    """Root of local state: MLflow SQLite store, API database, stored studies."""
    data_dir: Path | None = None
    """Real data root (defaults to ``../shared/data`` beside the repository when it exists)."""
    packages_dir: Path = REPO_ROOT / "models" / "packages"
    """Where the shipped default model packages live."""
    precision: str = "float32"
    """The cine segmentation network's arithmetic: ``float32`` (the reference) or ``bfloat16`` (CPU autocast, about
    2x faster inference where the CPU has native bf16, AVX512-BF16/AMX; ACDC val Dice within 0.0002 of float32,
    checked by ``bench/cmr_analyze.py``; slower than float32 on CPUs without it)."""
    runtime: str = "auto"
    """How package networks run (:mod:`medai.inference.compiled`): ``auto`` (each network on its faster runtime
    warm: torch for the segmentation U-Nets and the artefact CNN, ONNX Runtime for the coverage ensembles),
    ``fast-start`` (ONNX Runtime wherever the package has a current export: one-shot processes such as
    ``medai analyze``), ``torch`` (the reference) or ``onnx`` (ONNX Runtime or an error)."""

    @property
    def mlflow_tracking_uri(self) -> str:
        """``MLFLOW_TRACKING_URI`` when set, else a local SQLite store under :attr:`home`."""
        uri = os.environ.get("MLFLOW_TRACKING_URI")
        if uri:
            return uri
        self.home.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{(self.home / 'mlflow.db').resolve()}"


@lru_cache(maxsize=1)
def get_settings() -> MedaiSettings:
    """Process-wide settings (cached)."""
    return MedaiSettings()


def find_data_dir() -> Path | None:
    """Locate the real-data root: ``MEDAI_DATA_DIR``, else ``../shared/data`` beside the repository; None if absent."""
    env = os.environ.get("MEDAI_DATA_DIR")
    candidates = [Path(env)] if env else []
    candidates += [REPO_ROOT.parent / "shared" / "data", Path.cwd().parent / "shared" / "data"]
    for c in candidates:
        if c.is_dir():
            return c.resolve()
    return None
