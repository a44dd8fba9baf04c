"""``medai info``: what is in a folder, file, zip or gzipped DICOM (studies, series, geometry, problems);
``medai phantom``: write a synthetic study with known ground truth (for demos and tests)."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add the DICOM verbs to ``app``."""

    @app.command()
    def info(
        path: Path = typer.Argument(..., exists=True, help="DICOM file, folder (recursive), .zip or .dcm.gz"),
        as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
        rules: Path | None = typer.Option(None, "--rules", exists=True, dir_okay=False, help="series rules YAML"),
        show_skipped: int = typer.Option(20, "--show-skipped", help="how many skipped inputs to list (table view)"),
        picture: Path | None = typer.Option(None, "--picture", help="also write a PNG with a thumbnail per series"),
    ) -> None:
        """List the studies and series found under PATH, and the inputs skipped with the reason."""
        from rich.console import Console

        from medai.dicom.ingest import ingest
        from medai.dicom.summary import summarize

        err = Console(stderr=True)
        if as_json:
            result = ingest(path, rules=rules)
        else:
            with err.status("reading DICOM...") as status:
                result = ingest(path, rules=rules, progress=lambda n: status.update(f"reading DICOM... {n} inputs"))
        summary = summarize(result)
        if picture is not None:
            from medai.dicom.summary import render_overview

            render_overview(result, picture)
            err.print(f"overview picture: {picture}")
        if as_json:
            typer.echo(summary.model_dump_json(indent=2))
            return
        _print_tables(summary, show_skipped)

    @app.command()
    def phantom(
        out: Path = typer.Argument(..., file_okay=False, help="folder to write the synthetic DICOM study into"),
        kind: str = typer.Option(
            "cine", "--kind",
            help="cine | cine-per-slice | cine-enhanced | lge | lge-scar | ct | cta | echo | brain | photo"
        ),
        seed: int = typer.Option(0, "--seed", help="makes UIDs and noise reproducible"),
        artefact: str | None = typer.Option(None, "--artefact", help="simulate this MR artefact on the images "
                                            "(motion, ghosting, spike_noise, low_contrast) to see the quality gate"),
        strength: float = typer.Option(1.0, "--strength", min=0.0, max=1.0, help="artefact strength (0-1)"),
        share: float = typer.Option(1.0, "--share", min=0.0, max=1.0, help="share of images given the artefact"),
        phenotype: str | None = typer.Option(None, "--phenotype", help="cine only: the median heart of an ACDC "
                                             "group (NOR, DCM, HCM, MINF, RV) instead of the default heart"),
    ) -> None:
        """Write a synthetic DICOM study with known ground truth (cine: exact LV/RV volumes and EF as JSON)."""
        import json
        from dataclasses import asdict

        from medai.dicom import phantoms as ph
        from medai.errors import ConfigError

        if phenotype is not None:
            if kind != "cine":
                raise ConfigError("--phenotype applies to --kind cine")
            if phenotype.upper() not in ph.PHENOTYPES:
                raise ConfigError(f"unknown phenotype {phenotype!r}; choose one of {', '.join(ph.PHENOTYPES)}")
        cine_shape = {"phenotype": phenotype.upper(), "rows": 192, "cols": 192} if phenotype else {}
        makers = {
            "cine": lambda: ph.make_cine_sax_study(out, seed=seed, **cine_shape),
            "cine-per-slice": lambda: ph.make_cine_sax_study(out, seed=seed, one_series_per_slice=True),
            "cine-enhanced": lambda: ph.make_cine_sax_study(out, seed=seed, enhanced=True),
            "lge": lambda: ph.make_lge_study(out, seed=seed),
            "lge-scar": lambda: ph.make_lge_scar_study(out, seed=seed),
            "ct": lambda: ph.make_ct_volume(out, seed=seed, contrast=False),
            "cta": lambda: ph.make_ct_volume(out, seed=seed),
            "echo": lambda: ph.make_echo_multiframe(out, seed=seed),
            "brain": lambda: ph.make_brain_mr(out, seed=seed),
            "photo": lambda: ph.make_photo(out, seed=seed),
        }
        if kind not in makers:
            raise ConfigError(f"unknown phantom kind {kind!r}; choose one of {', '.join(makers)}")
        if artefact is not None:
            from medai.quality.simulate import ARTEFACTS

            if artefact not in ARTEFACTS:
                raise ConfigError(f"unknown artefact {artefact!r}; choose one of {', '.join(ARTEFACTS)}")
            if kind not in ("cine", "cine-per-slice", "lge", "lge-scar"):
                raise ConfigError("--artefact applies to the single-frame MR phantoms: cine, cine-per-slice, lge, "
                                  "lge-scar")
        result = makers[kind]()
        report = {"kind": kind, "files": len(result.paths), "out": str(out), "layout": result.layout}
        if artefact is not None:
            from medai.quality.simulate import corrupt_dicom_files

            report["artefact"] = {"name": artefact, "strength": strength,
                                  "files": corrupt_dicom_files(result.paths, artefact, strength, seed, share)}
        if result.truth is not None:
            report["truth"] = {k: v for k, v in asdict(result.truth).items() if not k.endswith("volume_ml")}
        typer.echo(json.dumps(report, indent=2))


def _fmt_spacing(v: list[float] | None) -> str:
    return "x".join(f"{x:.3g}" for x in v) if v else "-"  # e.g. 1.37x1.37


def _print_tables(summary: object, show_skipped: int) -> None:
    from rich.console import Console
    from rich.table import Table

    from medai.dicom.summary import IngestSummary

    assert isinstance(summary, IngestSummary)
    console = Console()
    for st in summary.studies:
        who = ", ".join(
            x
            for x in (
                f"patient {st.patient_id}" if st.patient_id else "",
                st.patient_sex,
                st.patient_age,
                f"{st.patient_size_m:.2f} m" if st.patient_size_m else "",
                f"{st.patient_weight_kg:.0f} kg" if st.patient_weight_kg else "",
                f"date {st.study_date}" if st.study_date else "",
            )
            if x
        )
        table = Table(title=f"study {st.uid}" + (f" ({st.description})" if st.description else ""), caption=who)
        table.add_column("#", justify="right")
        table.add_column("mod")
        table.add_column("type", no_wrap=True)
        table.add_column("description", overflow="fold", min_width=12)
        table.add_column("matrix", no_wrap=True)
        table.add_column("Z x T", no_wrap=True)
        table.add_column("pixel mm", no_wrap=True)
        table.add_column("dz mm", no_wrap=True)
        table.add_column("plane", no_wrap=True)
        for s in st.series:
            table.add_row(
                str(s.number if s.number is not None else "-"),
                s.modality,
                s.series_type,
                s.description,
                f"{s.rows}x{s.columns}" if s.rows else "-",
                f"{s.n_slices} x {s.n_phases}" + (f" ({s.n_frames})" if s.n_frames != s.n_slices * s.n_phases else ""),
                _fmt_spacing(s.pixel_spacing),
                f"{s.slice_spacing:.3g}" if s.slice_spacing else "-",
                s.orientation,
            )
        console.print(table)
        for s in st.series:
            for p in s.problems:
                console.print(f"  [yellow]series #{s.number}:[/] {p}")
        for p in st.problems:
            console.print(f"  [yellow]study:[/] {p}")
    if summary.skipped:
        skipped = Table(title=f"skipped inputs ({len(summary.skipped)})")
        skipped.add_column("input", overflow="fold")
        skipped.add_column("reason", overflow="fold")
        for p in summary.skipped[:show_skipped]:
            skipped.add_row(p.source, p.reason)
        if len(summary.skipped) > show_skipped:
            skipped.add_row(f"... and {len(summary.skipped) - show_skipped} more", "(use --json for all)")
        console.print(skipped)
