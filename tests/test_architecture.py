"""The import rule of ARCHITECTURE.md, enforced with import-linter (contracts in pyproject.toml)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_hold() -> None:
    exe = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    if not Path(exe).exists():
        pytest.fail("import-linter is not installed; install the 'test' extra")
    res = subprocess.run([exe, "--config", str(ROOT / "pyproject.toml")], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Contracts: 4 kept, 0 broken" in res.stdout, res.stdout


def test_core_import_does_not_pull_frameworks() -> None:
    """``import medai.domain`` and the CLI root stay light: no lightning, fastapi, mlflow or monai at import time."""
    code = (
        "import sys, medai.domain, medai.inference, medai.cli; "
        "bad=[m for m in ('lightning','fastapi','mlflow','monai','torch') if m in sys.modules]; "
        "print(','.join(bad))"
    )
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert res.stdout.strip() == "", f"heavy modules imported at start-up: {res.stdout}"
