"""``medai classify-skin IMAGE [--json] [--saliency out.png] [--age --sex --site --skin-type] [--model]``: the
skin-lesion classifier on one image, picked by image type (dermoscopic or clinical)."""

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
        model: str | None = typer.Option(None, "--model", help="package folder, name or models:/ URI (default: the "
                                         "shipped model for the image's type, dermoscopic or clinical)"),
        age: str | None = typer.Option(None, "--age", help="patient age in years (fused models)"),
        sex: str | None = typer.Option(None, "--sex", help="male / female"),
        site: str | None = typer.Option(None, "--site", help="anatomical site, e.g. back, face, lower extremity"),
        skin_type: str | None = typer.Option(None, "--skin-type", help="Fitzpatrick skin type I-VI"),
    ) -> None:
        """Classify a skin image (research use only): tells dermoscopic images from clinical photographs (DICOM
        class, camera/dermatoscope device, dermatoscope vignette), picks the matching model unless --model is
        given, and fuses the patient metadata given."""
        import json

        from medai.derm.image import image_type, load_skin_image, pick_skin_model
        from medai.derm.predictor import write_saliency_png
        from medai.errors import InputValidationError
        from medai.inference.predictor import Predictor

        img = load_skin_image(image)
        kind, why = image_type(img)
        if model is None:
            chosen, reason = pick_skin_model(kind)
            if chosen is None:
                raise InputValidationError(
                    f"{image.name} reads as a {kind} image ({why}), and {reason}. Train one from your own cohort "
                    "(medai train configs/experiment/derm_ham10000.yaml data.format=csv data.labels_csv=...) and "
                    "pass it with --model.",
                    details=[{"field": "image", "problem": "no_model_for_image_type", "value": kind}],
                )
            model = chosen
        predictor = Predictor.from_package(model, saliency=saliency is not None)
        record = {"age": age, "sex": sex, "site": site, "skin_type": skin_type}
        pred = predictor.predict(img, metadata={k: v for k, v in record.items() if v})
        from medai.domain.prediction import QualityFlag, Severity

        pred.flags.append(
            QualityFlag(
                code="image_type",
                severity=Severity.WARNING if kind == "unknown" else Severity.INFO,
                message=f"{kind}: {why}"
                + ("; the model expects dermoscopic images, check this is one" if kind == "unknown" else ""),
            )
        )
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
                "image_type": kind,
                "metadata_used": pred.extras.get("metadata_used", []),
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
