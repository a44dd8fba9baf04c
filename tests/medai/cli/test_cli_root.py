"""The CLI root: version, dispatch of train/evaluate, models listing, clear errors for bad recipes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medai import __version__
from medai.cli import app
from medai.errors import ConfigError

runner = CliRunner()


def test_version() -> None:
    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0
    assert res.stdout.strip() == f"medai {__version__}"


def test_train_rejects_recipe_without_task(tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text("model: {name: unet2d}\n")
    res = runner.invoke(app, ["train", str(recipe)])
    assert isinstance(res.exception, ConfigError)
    assert "no 'task' field" in str(res.exception)


def test_train_rejects_unknown_task(tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text("task: astrology\n")
    res = runner.invoke(app, ["train", str(recipe)])
    assert isinstance(res.exception, ConfigError)
    assert "unknown task 'astrology'" in str(res.exception)


def test_train_rejects_bad_yaml(tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text("task: [unclosed\n")
    res = runner.invoke(app, ["train", str(recipe)])
    assert isinstance(res.exception, ConfigError)
    assert "not valid YAML" in str(res.exception)


def test_models_json_lists_shipped_packages() -> None:
    from medai.inference import shipped_packages

    res = runner.invoke(app, ["models", "--json"])
    assert res.exit_code == 0, res.output
    listed = {m["name"] for m in json.loads(res.stdout)}
    assert listed == set(shipped_packages())


@pytest.mark.parametrize(
    ("name", "module"),
    [
        ("heart_mr_cine_seg", "pipelines.cmr.evaluate"),
        ("skin_derm_lesion_cls", "pipelines.derm.evaluate"),
        ("skin_omics_psoriasis_cls", "pipelines.derm.omics"),
        ("stroke_ist_death", "pipelines.risk.evaluate"),
    ],
)
def test_evaluate_dispatch_loads_the_flow_of_each_model_family(name: str, module: str) -> None:
    from pipelines import evaluate_function

    fn = evaluate_function(name)
    assert fn.__module__ == module
    assert fn.__name__ == "evaluate_cli"
