"""Shared fixtures: the real-data root (skip with a reason when absent) and an isolated MEDAI_HOME."""

from __future__ import annotations

from pathlib import Path

import pytest

from medai.settings import find_data_dir


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """Root of the real data (``../shared/data`` or ``MEDAI_DATA_DIR``); skips the test when absent."""
    root = find_data_dir()
    if root is None:
        pytest.skip("real data not found: set MEDAI_DATA_DIR or place it at ../shared/data")
    return root


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test gets its own MEDAI_HOME and a file MLflow store, so runs never touch the user's state."""
    home = tmp_path_factory.mktemp("medai_home")
    monkeypatch.setenv("MEDAI_HOME", str(home))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{home / 'mlflow.db'}")
    from medai.settings import get_settings

    get_settings.cache_clear()


@pytest.fixture()
def medai_env(monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    """Set ``MEDAI_*`` variables for one test, the settings cache following: ``medai_env(RUNTIME="torch")``;
    ``medai_env(RUNTIME=None)`` unsets one. Undone after the test (monkeypatch; the next test clears the cache)."""
    from medai.settings import get_settings

    def set_env(**values: str | None) -> None:
        for key, value in values.items():
            if value is None:
                monkeypatch.delenv(f"MEDAI_{key}", raising=False)
            else:
                monkeypatch.setenv(f"MEDAI_{key}", value)
        get_settings.cache_clear()

    yield set_env
    get_settings.cache_clear()
