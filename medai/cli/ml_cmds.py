"""``medai train``, ``medai evaluate`` and ``medai models``: dispatch to ``pipelines`` and the model registry."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add the ML verbs to ``app``."""

    @app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": False})
    def train(
        recipe: Path = typer.Argument(..., exists=True, dir_okay=False, help="configs/experiment/<recipe>.yaml"),
        overrides: list[str] = typer.Argument(None, help="dotted overrides, e.g. trainer.max_epochs=2"),
    ) -> None:
        """Train a model from a YAML recipe (tracked in MLflow)."""
        import yaml

        from medai.errors import ConfigError

        try:
            task = (yaml.safe_load(recipe.read_text()) or {}).get("task")
        except yaml.YAMLError as exc:
            raise ConfigError(f"{recipe} is not valid YAML: {exc}") from exc
        if not task:
            raise ConfigError(f"{recipe} has no 'task' field; add e.g. 'task: cmr_segmentation'")
        from pipelines import train_function

        train_function(task)(recipe, list(overrides or []))

    @app.command()
    def evaluate(
        model: str = typer.Argument(..., help="registered model name, package folder or models:/<name>@<alias>"),
        data: Path = typer.Option(..., "--data", exists=True, help="data file or folder"),
        fmt: str = typer.Option("auto", "--format", help="data format (acdc-h5, acdc, sunnybrook, csv, ...)"),
        out: Path = typer.Option(Path("evaluation.json"), "--out", help="where to write the metrics JSON"),
        model_package: Path | None = typer.Option(None, "--model",
                                                  help="evaluate this package instead of the shipped one"),
        split: str | None = typer.Option(None, "--split", help="a split of the data's splits.csv (ACDC: train, val)"),
        clinical: str | None = typer.Option(None, "--clinical",
                                            help="prognosis formats: comma-separated clinical columns"),
    ) -> None:
        """Evaluate a model on real data and write metrics JSON (logged to MLflow when a run is active)."""
        from pipelines import evaluate_function

        extra: dict = {"split": split} if split else {}  # only the evaluators of split-aware formats take it
        if clinical:
            extra["clinical"] = [c.strip() for c in clinical.split(",") if c.strip()]
        evaluate_function(model)(model=model, data=data, fmt=fmt, out=out, package=model_package, **extra)

    models_app = typer.Typer(help="Shipped model packages and the MLflow registry: list, promote, export-onnx.",
                             invoke_without_command=True, no_args_is_help=False)
    app.add_typer(models_app, name="models")

    @models_app.callback()
    def list_models(ctx: typer.Context,
                    as_json: bool = typer.Option(False, "--json", help="machine-readable output")) -> None:
        """List the shipped model packages (name, version, task, predictor, licence, key metrics)."""
        if ctx.invoked_subcommand is not None:
            return
        import json

        from rich.console import Console
        from rich.table import Table

        from medai.inference import read_metadata, shipped_packages

        metas = [read_metadata(p) for p in shipped_packages().values()]
        if as_json:
            typer.echo(json.dumps([m.model_dump(mode="json") for m in metas], indent=2))
            return
        table = Table(title="shipped models")
        for col in ("name", "version", "task", "predictor", "licence", "metrics"):
            table.add_column(col)
        for m in metas:
            metrics = ", ".join(f"{k}={v:.3f}" for k, v in list(m.metrics.items())[:4])
            table.add_row(m.name, m.version, m.task, m.predictor, m.licence, metrics)
        Console().print(table)

    @models_app.command("export-onnx")
    def export_onnx(
        packages: list[Path] = typer.Argument(..., exists=True, file_okay=False,
                                              help="model package folders whose networks to export"),
    ) -> None:
        """Export each package's networks to ONNX beside their weights, checked against torch, and list the files in
        its metadata. Predictors run them under ONNX Runtime where MEDAI_RUNTIME says so (medai.inference.compiled);
        a later change of the weights makes them fall back to torch until the next export."""
        from medai.inference import export_package

        for pkg in packages:
            written = export_package(pkg)
            typer.echo(f"{pkg}: " + (", ".join(p.name for p in written) if written else "no network to export"))

    @models_app.command("promote")
    def promote(
        name: str = typer.Argument(..., help="registered model name, e.g. cardio_hf299_death"),
        version: str = typer.Argument(..., help="registered version to promote"),
        alias: str = typer.Option("production", "--alias", help="alias to move to this version"),
        evaluation: Path | None = typer.Option(None, "--evaluation", exists=True, dir_okay=False,
                                               help="evaluation JSON (medai evaluate) to attach first"),
        by: str = typer.Option("", "--by", help="who promotes (recorded; default: the OS user)"),
    ) -> None:
        """Move ALIAS to VERSION after checking it carries an evaluation JSON; records who and when. A server
        polling the alias (MEDAI_API_RELOAD_POLL_SECONDS) swaps the new version in without a restart."""
        from medai.inference.mlflow_registry import promote as do_promote

        r = do_promote(name, version, alias, by=by, evaluation=evaluation)
        typer.echo(f"{r['name']} version {r['version']} is now {r['alias']!r} (was {r['previous'] or 'unset'}); "
                   f"promoted by {r['by']} at {r['at']}; evaluation: {', '.join(r['evaluations'])}")
