"""Does the quality gate speak up before a degraded study misleads the diagnosis? A synthetic stress test.

    python -m pipelines.quality.dx_safety --out models/packages/heart_mr_quality/evaluation/phantom_dx_safety.json

Each of the five ACDC-group median hearts (:data:`medai.dicom.phantoms.PHENOTYPES`) is written as a cine study,
given one simulated MR artefact (:func:`medai.quality.simulate.corrupt_dicom_files`: motion, ghosting, spike/noise,
low contrast) under each of :data:`CONDITIONS`, and analysed as ``medai analyze`` does (quality gate, cine
segmentation, diagnosis, shipped packages). The conditions are where the gate has to judge: faint artefacts on
every image (strength 0.1 and 0.2, under the 0.3 the artefact model was trained from) and a clear artefact on a
share of the images (strength 0.5 on 15 % and 40 %). A clear artefact on every image is refused as unusable.

For every run the JSON keeps the gate's verdict (``pass``, ``review``, or ``refused`` for unusable images), the
suggested class and whether the report asks for review (the gate's findings, an uncertain or review-dependent
suggestion). The figure that matters is the silent errors: a wrong suggestion in a report that does not ask for
review. A refused study is analysed again with the gate switched off, to count the refusals that withheld a
suggestion that would have been right (the price of the gate's caution).

The hearts are phantoms, not patients: this measures how the gate and the diagnosis behave together as images
degrade, not how often either is right on real studies (for that, see the packages' ACDC evaluations).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

#: (strength, share of images) of each degraded run.
CONDITIONS: tuple[tuple[float, float], ...] = ((0.1, 1.0), (0.2, 1.0), (0.5, 0.15), (0.5, 0.4))
SEED = 7


def ungated_steps(folder: Path) -> Path:
    """A step-config folder like ``configs/steps`` with the quality gate switched off."""
    import yaml

    from medai.analyses.steps import CONFIG_DIR

    folder.mkdir(parents=True, exist_ok=True)
    for path in CONFIG_DIR.glob("*.yaml"):
        cfg = yaml.safe_load(path.read_text())
        if cfg.get("kind") == "quality":
            cfg["enabled"] = False
        (folder / path.name).write_text(yaml.safe_dump(cfg))
    return folder


def run_one(group: str, artefact: str | None, strength: float, share: float, provider: Any,
            seed: int = SEED, ungated: Path | None = None) -> dict[str, Any]:
    """One phantom of ``group``'s median heart, ``share`` of its images degraded by ``artefact`` at ``strength``
    (None: clean), analysed. A study the gate refuses is analysed again without the gate (``ungated``: a step
    folder from :func:`ungated_steps`), to see what the refusal withheld."""
    from medai.analyses.runner import run_study_analyses
    from medai.dicom.ingest import ingest
    from medai.dicom.phantoms import make_cine_sax_study
    from medai.errors import ImageQualityError
    from medai.quality.simulate import corrupt_dicom_files

    row: dict[str, Any] = {"group": group, "artefact": artefact or "none", "strength": strength if artefact else 0.0,
                           "share": share if artefact else 0.0}
    with tempfile.TemporaryDirectory() as tmp:
        ph = make_cine_sax_study(Path(tmp) / "study", phenotype=group, rows=192, cols=192, seed=seed)
        if artefact:
            corrupt_dicom_files(ph.paths, artefact, strength, seed=seed, share=share)
        study = ingest(Path(tmp) / "study").studies[0]
        try:
            out = run_study_analyses(study, Path(tmp) / "out", models=provider)
        except ImageQualityError as exc:
            row |= {"gate": "refused", "suggested": None, "correct": None, "review_required": True,
                    "message": exc.message[:200]}
            if ungated is not None:
                alone = run_study_analyses(study, Path(tmp) / "ungated", models=provider, step_dir=ungated)
                dx = alone.report.section("cine_diagnosis")
                row |= {"ungated_suggested": dx.summary["predicted_class"],
                        "ungated_correct": dx.summary["predicted_class"] == group}
            return row
    cine = out.report.section("cine_function")
    dx = out.report.section("cine_diagnosis")
    got = {m.name: m.value for m in out.report.measurements}
    return row | {
        "gate": cine.quality.status.value if cine.quality is not None else "not assessed",
        "findings": [f.code for f in cine.quality.findings] if cine.quality is not None else [],
        "suggested": dx.summary["predicted_class"], "probability": round(float(dx.summary["probability"]), 3),
        "correct": dx.summary["predicted_class"] == group,
        "dx_flags": [f.code for f in dx.flags],
        "review_required": out.report.review.required or any(f.code.startswith("dx_") for f in dx.flags),
        "lv_ef": round(got["lv_ef"], 1), "lv_ef_truth": round(ph.truth.lv_ef_pct, 1),  # type: ignore[union-attr]
    }


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts over the runs: correct suggestions, the gate's verdicts, and the silent errors."""
    def block(rs: list[dict[str, Any]]) -> dict[str, Any]:
        analysed = [r for r in rs if r["gate"] != "refused"]
        wrong = [r for r in analysed if not r["correct"]]
        return {"runs": len(rs), "refused": len(rs) - len(analysed),
                "gate_review": sum(r["gate"] == "review" for r in analysed),
                "correct": sum(bool(r["correct"]) for r in analysed), "wrong": len(wrong),
                "wrong_flagged_for_review": sum(r["review_required"] for r in wrong),
                "silent_errors": sum(not r["review_required"] for r in wrong),
                "correct_without_review": sum(bool(r["correct"]) and not r["review_required"] for r in analysed),
                "refused_but_read_right_without_the_gate": sum(bool(r.get("ungated_correct")) for r in rs)}

    out: dict[str, Any] = {"all": block(rows), "clean": block([r for r in rows if r["artefact"] == "none"])}
    for key in sorted({(r["artefact"], r["strength"], r["share"]) for r in rows if r["artefact"] != "none"}):
        out[f"{key[0]}@{key[1]}x{key[2]}"] = block([r for r in rows
                                                   if (r["artefact"], r["strength"], r["share"]) == key])
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="the JSON to write")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logger.setLevel(logging.INFO)
    from medai.analyses.runner import package_provider
    from medai.dicom.phantoms import PHENOTYPES
    from medai.quality.simulate import ARTEFACTS

    provider = package_provider()
    ungated = ungated_steps(Path(tempfile.mkdtemp(prefix="medai-ungated-")))
    plan = [(g, None, 0.0, 0.0) for g in PHENOTYPES] + [(g, a, s, f) for a in ARTEFACTS for s, f in CONDITIONS
                                                        for g in PHENOTYPES]
    rows, t0 = [], time.perf_counter()
    for i, (group, artefact, strength, share) in enumerate(plan, 1):
        rows.append(run_one(group, artefact, strength, share, provider, ungated=ungated))
        r = rows[-1]
        logger.info("[%d/%d %.0fs] %s %s@%.1fx%.2f: gate %s, suggested %s, review %s", i, len(plan),
                    time.perf_counter() - t0, group, r["artefact"], r["strength"], r["share"], r["gate"],
                    r["suggested"], r["review_required"])
    doc = {"what": __doc__.split("\n")[0], "command": "python -m pipelines.quality.dx_safety --out " + str(args.out),
           "seed": SEED, "phenotypes": list(PHENOTYPES), "artefacts": list(ARTEFACTS),
           "conditions": [{"strength": s, "share": f} for s, f in CONDITIONS],
           "summary": summarise(rows), "runs": rows, "seconds": round(time.perf_counter() - t0, 1)}
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    sys.stdout.write(json.dumps(doc["summary"], indent=1) + "\n")


if __name__ == "__main__":
    main()
