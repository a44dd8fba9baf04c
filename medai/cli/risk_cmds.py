"""``medai predict-risk <model> --input patient.json``: risk at each horizon, risk group, top factors, model version;
``medai compile-risk``: export risk packages to plain arrays (:mod:`medai.risk.compiled`)."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add the risk verbs to ``app``."""

    @app.command("compile-risk")
    def compile_risk(
        models: list[str] = typer.Argument(None, help="risk package names or folders (default: every shipped one)"),
    ) -> None:
        """Export risk packages to ``compiled.json`` (plain arrays, checked against the pipeline to 1e-9)."""
        from medai.inference import read_metadata, shipped_packages
        from medai.inference.package import resolve_package
        from medai.risk.compiled import NotCompilable, add_compiled

        paths = [resolve_package(m) for m in models] if models else [
            p for p in shipped_packages().values() if read_metadata(p).predictor == "risk_model"]
        for path in paths:
            try:
                err = add_compiled(path)
            except NotCompilable as exc:
                typer.echo(f"{path.name}: kept on the scikit-learn path ({exc})")
                continue
            typer.echo(f"{path.name}: compiled.json written; max abs difference to the pipeline "
                       + ", ".join(f"{k} {v:.1e}" for k, v in err.items()))

    @app.command("predict-risk")
    def predict_risk(
        model: str = typer.Argument(..., help="shipped risk model name, package folder or models:/<name>@<alias>"),
        input_file: Path = typer.Option(
            ...,
            "--input",
            "-i",
            exists=True,
            dir_okay=False,
            help="patient factors as a JSON object (or a list of objects)",
        ),
        as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
        schema: bool = typer.Option(False, "--schema", help="print the model's input JSON Schema and exit"),
    ) -> None:
        """Predict a patient's risk from factors (research use only; not a medical device)."""
        import json

        from medai.errors import InputValidationError
        from medai.inference.predictor import Predictor
        from medai.risk.predictor import RiskPredictor

        pred = Predictor.from_package(model)
        if not isinstance(pred, RiskPredictor):
            raise typer.BadParameter(f"{model} is not a risk model")
        if schema:
            typer.echo(json.dumps(pred.input_schema(), indent=2))
            return
        try:
            payload = json.loads(input_file.read_text())
        except json.JSONDecodeError as exc:
            raise InputValidationError(f"{input_file} is not valid JSON: {exc}") from exc
        try:
            preds = pred.predict_batch(payload) if isinstance(payload, list) else [pred.predict(payload)]
        except InputValidationError as exc:
            if as_json:
                typer.echo(json.dumps({"error": exc.code, "message": exc.message, "details": exc.details}, indent=2))
                raise typer.Exit(2) from None
            from rich.console import Console

            con = Console(stderr=True)
            con.print(f"[bold red]invalid input:[/] {len(exc.details or [])} problem(s)")
            for d in exc.details or []:  # type: ignore[union-attr]
                row = f"row {d['row']}: " if "row" in d else ""
                con.print(f"  - {row}[bold]{d['field']}[/] {d['problem']}: {d['message']} (got {d['value']!r})")
            raise typer.Exit(2) from None
        if as_json:
            docs = [
                {
                    "model": p.model.model_dump(),
                    "risks": [r.model_dump(mode="json") for r in p.risks],
                    "flags": [f.model_dump(mode="json") for f in p.flags],
                }
                for p in preds
            ]
            typer.echo(json.dumps(docs if isinstance(payload, list) else docs[0], indent=2))
            return
        from rich.console import Console
        from rich.table import Table

        con = Console()
        for i, p in enumerate(preds):
            r = p.risks[0]
            title = f"{p.model.name} v{p.model.version}: {r.outcome}" + (f" (patient {i})" if len(preds) > 1 else "")
            t = Table(title=title)
            t.add_column("horizon")
            t.add_column("cumulative risk", justify="right")
            for h, v in r.horizons.items():
                t.add_row(h, f"{100 * v:.1f} %")
            con.print(t)
            con.print(f"risk group: [bold]{r.risk_group}[/]   risk score: {r.risk_score:.3f}")
            f = Table(title="top contributing factors (model risk scale, vs training reference)")
            for col in ("factor", "value", "contribution"):
                f.add_column(col)
            for c in r.contributions:
                f.add_row(c.factor, str(c.value), f"{c.contribution:+.3f}")
            con.print(f)
            for fl in p.flags:
                con.print(f"[yellow]{fl.severity}[/] {fl.code}: {fl.message}")
        con.print("[dim]Research use only. Not a medical device.[/]")
