"""``medai classify-skin IMAGE [--json] [--saliency out.png]``: the skin-lesion classifier on one image."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add the dermatology verbs to ``app``."""

    @app.command("classify-skin")
    def classify_skin(
        image: Path = typer.Argument(..., exists=True, dir_okay=False, help="JPEG/PNG or DICOM VL photographic image"),
        as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
        saliency: Path | None = typer.Option(None, "--saliency", help="write image + saliency overlay PNG here"),
        model: str = typer.Option("skin_derm_lesion_cls", "--model", help="package folder, name or models:/ URI"),
    ) -> None:
        """Classify a dermoscopic image into the 7 HAM10000 diagnoses (research use only)."""
        import json

        from medai.derm.image import load_skin_image
        from medai.derm.predictor import write_saliency_png
        from medai.inference.predictor import Predictor

        predictor = Predictor.from_package(model, saliency=saliency is not None)
        img = load_skin_image(image)
        pred = predictor.predict(img)
        if saliency is not None:
            write_saliency_png(img.pixels, pred.extras["saliency"], saliency)
        ordered = sorted(pred.classes, key=lambda c: -c.probability)
        if as_json:
            doc = {
                "image": str(image),
                "model": pred.model.model_dump(),
                "classes": [c.model_dump() for c in pred.classes],
                "predicted_class": pred.extras["predicted_class"],
                "malignant_probability": pred.extras["malignant_probability"],
                "temperature": pred.extras["temperature"],
                "flags": [f.model_dump(mode="json") for f in pred.flags],
                "saliency_png": str(saliency) if saliency else None,
                "saliency_method": pred.extras.get("saliency_method"),
            }
            typer.echo(json.dumps(doc, indent=2))
            return
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"{image.name}: {pred.model.name} {pred.model.version} (research use only)")
        table.add_column("diagnosis")
        table.add_column("code")
        table.add_column("probability", justify="right")
        for c in ordered:
            code = f"{c.code['scheme']} {c.code['value']}" if c.code else ""
            meaning = c.code["meaning"] if c.code else c.name
            table.add_row(f"{c.name} ({meaning})", code, f"{c.probability:.3f}")
        con = Console()
        con.print(table)
        con.print(f"malignant (mel + bcc + akiec): [bold]{pred.extras['malignant_probability']:.3f}[/]")
        for f in pred.flags:
            con.print(f"[yellow]{f.severity}[/] {f.code}: {f.message}")
        if saliency is not None:
            con.print(f"saliency ({pred.extras.get('saliency_method')}) written to {saliency}")
