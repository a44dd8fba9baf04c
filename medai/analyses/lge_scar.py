"""``lge_scar``: LGE scar quantification (LV myocardium, infarct, MVO) on a short-axis LGE stack.

study -> short-axis LGE series (long-axis or single-slice LGE refused with the series named) -> ``(Z, Y, X)``
volume -> :class:`~medai.cardiac.lge_predictor.LgeSegPredictor` (LV cavity, healthy myocardium, infarct, MVO in
source geometry) -> :func:`medai.cardiac.scar.quantify` by method (model; n-SD above an automatically chosen remote
region; FWHM) -> coded measurements (method and parameters coded, per AHA segment), quality flags, bullseye and
overlay figures. Config: ``configs/analyses/lge_scar.yaml``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from medai.analyses.base import ANALYSES, Analysis, AnalysisResult, Correction, ModelProvider, Progress
from medai.cardiac.scar import METHOD_CODES, Method, ScarResult, quantify, transmurality_bin
from medai.domain.measurement import Measurement
from medai.domain.prediction import Prediction, QualityFlag, ReportSection, Severity
from medai.domain.study import Series, SeriesType, Study
from medai.domain.volume import ANATOMICAL_STRUCTURE, LabelMap, SegmentLabel, Volume
from medai.errors import SeriesSelectionError
from medai.measurements.registry import measurement_def

ROLE = "lge_sax"


class LgeScarParams(BaseModel):
    """``params`` of ``configs/analyses/lge_scar.yaml``."""

    model_config = ConfigDict(extra="forbid")

    n_sd: list[float] = Field(default_factory=lambda: [2.0, 3.0, 5.0])
    fwhm: bool = True
    fwhm_peak_percentile: float = Field(99.5, gt=50, le=100)
    min_slices: int = Field(3, ge=1)
    long_axis_pattern: str = r"(?i)(?<![a-z0-9])(?:[234][ _-]?ch|lax|vla|hla|lvot)(?![a-z])|long.?ax|chamber"
    blood_to_remote_ratio: tuple[float, float] = (1.0, 40.0)
    min_myocardium_slices: int = Field(3, ge=1)


def _measure(name: str, value: float, method: Method | None = None, aha: int | None = None,
             segment: str | None = "default") -> Measurement:
    d = measurement_def(name)
    return Measurement(code=d.code, name=name, value=float(value), unit=d.unit,
                       method=method.code.meaning if method else "", method_code=method.code if method else None,
                       parameters=dict(method.parameters) if method else {}, aha_segment=aha,
                       segment=d.segment if segment == "default" else segment)


@ANALYSES.register("lge_scar")
class LgeScar(Analysis):
    """LGE scar quantification."""

    @property
    def params(self) -> LgeScarParams:
        """The validated parameters."""
        return LgeScarParams.model_validate(self.config.params)

    def methods(self) -> list[Method]:
        """The configured methods: model, each n-SD, FWHM."""
        p = self.params
        out = [Method("model")] + [Method("nsd", {"n_sd": float(n)}) for n in p.n_sd]
        if p.fwhm:
            out.append(Method("fwhm", {"peak_percentile": p.fwhm_peak_percentile}))
        return out

    # -- series ----------------------------------------------------------------------------------------------------
    def sax_series(self, study: Study) -> list[Series]:
        """The short-axis LGE series (largest first).

        Raises:
            SeriesSelectionError: none is short-axis; the message names every series and why each LGE one was
                refused.
        """
        from medai.analyses.runner import describe_series

        p = self.params
        pattern = re.compile(p.long_axis_pattern)
        ok, refused = [], []
        for s in study.series_of_type(SeriesType.LGE):
            text = f"{s.SeriesDescription or ''} {s.instances[0].dataset.get('ProtocolName', '') if len(s) else ''}"
            positions = {tuple(round(float(v), 1) for v in (inst.dataset.get("ImagePositionPatient") or [0, 0, 0]))
                         for inst in s.instances}
            if pattern.search(text):
                refused.append(f"#{s.SeriesNumber} {s.SeriesDescription!r} is a long-axis view")
            elif len(positions) < p.min_slices:
                refused.append(f"#{s.SeriesNumber} {s.SeriesDescription!r} has {len(positions)} slice position(s), "
                               f"not a short-axis stack (at least {p.min_slices})")
            else:
                ok.append(s)
        if not ok:
            why = "; ".join(refused) or "no LGE series"
            raise SeriesSelectionError(
                f"Study {study.StudyInstanceUID} has no short-axis LGE stack ({why}). "
                f"It has: {describe_series(study)}. "
                "Send the short-axis LGE (PSIR or magnitude IR) stack covering the LV.",
                details={"analysis": self.kind, "refused": refused,
                         "series": [s.series_type.value for s in study.series]})
        return sorted(ok, key=len, reverse=True)

    # -- run -------------------------------------------------------------------------------------------------------
    def run(self, study: Study, models: ModelProvider, progress: Progress,
            prior: Mapping[str, AnalysisResult] | None = None) -> AnalysisResult:
        from medai.dicom.volumes import build_volume

        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        series = self.sax_series(study)[0]
        progress("volume")
        volume = build_volume(series)
        timings["volume"] = time.perf_counter() - t0
        predictor = self.model("seg", models)
        progress("inference")
        labelmap = predictor.segment_volume(volume, timings=timings)  # type: ignore[attr-defined]
        prediction = Prediction(model=predictor.ref, label_maps={ROLE: labelmap},
                                extras={"image": volume, "series_uids": [series.SeriesInstanceUID]})
        progress("measurement")
        t1 = time.perf_counter()
        res = self.result(study, prediction, [series])
        timings["measurement"] = time.perf_counter() - t1
        res.timings_s = timings
        return res

    def remeasure(self, study: Study, correction: Correction, models: ModelProvider, progress: Progress,
                  prior: Mapping[str, AnalysisResult] | None = None) -> AnalysisResult:
        """Scar of a reader-corrected ``lge_sax`` label map (LV cavity, myocardium, infarct, MVO), quantified by the
        same :meth:`result` as the model's (every method; the model is not run)."""
        from medai.dicom.volumes import build_volume
        from medai.errors import InputValidationError

        edited = correction.label_maps.get(ROLE)
        if edited is None:
            raise InputValidationError(f"an LGE correction needs the {ROLE} label map")
        series = self.sax_series(study)[0]
        progress("volume")
        volume = build_volume(series)
        if edited.volume.array.shape != volume.array.shape:
            raise InputValidationError(f"the corrected label map is {list(edited.volume.array.shape)}; the LGE stack "
                                       f"is {list(volume.array.shape)}")
        predictor = self.model("seg", models)
        labelmap = LabelMap(volume=volume.with_array(np.asarray(edited.volume.array, dtype=np.uint8)),
                            labels=edited.labels)
        prediction = Prediction(model=predictor.ref, label_maps={ROLE: labelmap},
                                flags=[QualityFlag(code="reader_corrected", severity=Severity.INFO,
                                                   message="measured on a segmentation corrected by a reader")],
                                extras={"image": volume, "series_uids": [series.SeriesInstanceUID]})
        progress("measurement")
        return self.result(study, prediction, [series])

    def result(self, study: Study, prediction: Prediction, series: list[Series]) -> AnalysisResult:
        """Quantify the prediction's LGE label map into a report section."""
        from medai.analyses.cine_function import series_rows

        volume: Volume = prediction.extras["image"]
        labelmap = prediction.label_maps[ROLE]
        lab = labelmap.volume.array
        val = {x.name: x.value for x in labelmap.labels}
        lv, healthy = lab == val["lv"], lab == val["myo"]
        infarct, mvo = lab == val["infarct"], lab == val["mvo"]
        myo = healthy | infarct | mvo
        img = np.asarray(volume.array, dtype=np.float32)
        voxel_ml = float(np.prod(volume.spacing)) / 1000.0
        flags = [QualityFlag(code="input_warning", severity=Severity.INFO, message=w) for w in volume.warnings]
        flags += list(prediction.flags)
        p = self.params
        n_myo_slices = int(sum(myo[z].any() for z in range(myo.shape[0])))
        summary: dict[str, Any] = {"analysis": "lge_scar", "shape_zyx": list(lab.shape),
                                   "spacing_mm_zyx": [round(s, 4) for s in volume.spacing],
                                   "myocardium_slices": n_myo_slices, "methods": {}}
        measurements: list[Measurement] = []
        if not myo.any() or not lv.any():
            flags.append(QualityFlag(code="no_myocardium_found", severity=Severity.ERROR,
                                     message="The model found no LV myocardium with a cavity on the LGE stack: no "
                                             "scar is quantified. Check that the series is a short-axis LGE of the "
                                             "heart, or contour the myocardium by hand."))
        else:
            results, remote = quantify(img, myo, lv, infarct, mvo, volume.affine, voxel_ml, self.methods())
            prediction.extras["remote_region"] = remote
            prediction.extras["scar_results"] = results
            measurements += [_measure("lge_myocardium_volume", myo.sum() * voxel_ml),
                             _measure("lge_myocardium_mass", myo.sum() * voxel_ml * 1.05)]
            for r in results:
                measurements += self._method_measurements(r)
                summary["methods"][r.method.key] = self._method_summary(r)
            summary["remote_region"] = self._remote_summary(img, remote)
            flags += self._flags(img, lab, val, myo, lv, remote, n_myo_slices, p)
            model = results[0]
            summary["viability"] = (
                f"{model.segments_over_50} of {len(model.transmurality_pct)} AHA segments have > 50% transmural "
                "scar by the model (segments > 50% transmural are unlikely to recover function after "
                "revascularisation).")
        section = ReportSection(kind=self.kind, title=self.config.title, models=[prediction.model],
                                series=series_rows(study, {s.SeriesInstanceUID for s in series}),
                                measurements=measurements, flags=flags, summary=summary)
        return AnalysisResult(kind=self.kind, section=section, prediction=prediction)

    @staticmethod
    def _method_measurements(r: ScarResult) -> list[Measurement]:
        # the model's values reference the SEG's segments; threshold masks are not in the SEG
        seg = "default" if r.method.name == "model" else None
        out = [_measure("lge_infarct_pct", r.infarct_pct, r.method, segment=seg),
               _measure("lge_infarct_volume", r.infarct_ml, r.method, segment=seg),
               _measure("lge_infarct_mass", r.infarct_g, r.method, segment=seg),
               _measure("lge_mvo_pct", r.mvo_pct, r.method, segment=seg),
               _measure("lge_mvo_volume", r.mvo_ml, r.method, segment=seg),
               _measure("lge_segments_transmural_gt50", r.segments_over_50, r.method, segment=seg)]
        out += [_measure("lge_transmurality", t, r.method, aha=s, segment=seg) for s, t in r.transmurality_pct.items()]
        return out

    @staticmethod
    def _method_summary(r: ScarResult) -> dict[str, Any]:
        return {"method": r.method.name, "code": METHOD_CODES[r.method.name].model_dump(),
                "parameters": dict(r.method.parameters),
                "threshold": None if r.threshold is None else round(r.threshold, 4),
                "infarct_pct": round(r.infarct_pct, 3), "infarct_ml": round(r.infarct_ml, 3),
                "infarct_g": round(r.infarct_g, 3), "mvo_pct": round(r.mvo_pct, 3), "mvo_ml": round(r.mvo_ml, 3),
                "transmurality_pct": {str(k): round(v, 2) for k, v in r.transmurality_pct.items()},
                "transmurality_bin": {str(k): v for k, v in r.bins.items()},
                "segments_over_50": r.segments_over_50}

    @staticmethod
    def _remote_summary(img: np.ndarray, remote: np.ndarray) -> dict[str, Any]:
        if not remote.any():
            return {"n_voxels": 0, "how": "no scar-free myocardial sector found"}
        v = img[remote]
        return {"n_voxels": int(remote.sum()), "slices": [int(z) + 1 for z in np.nonzero(remote.any((1, 2)))[0]],
                "mean": round(float(v.mean()), 3), "sd": round(float(v.std()), 3),
                "how": "per slice, the darkest 60-degree myocardial sector holding no model scar"}

    @staticmethod
    def _flags(img: np.ndarray, lab: np.ndarray, val: dict[str, int], myo: np.ndarray, lv: np.ndarray,
               remote: np.ndarray, n_myo_slices: int, p: LgeScarParams) -> list[QualityFlag]:
        from scipy import ndimage

        flags: list[QualityFlag] = []
        scar = (lab == val["infarct"]) | (lab == val["mvo"])
        # scar that touches neither healthy myocardium nor the cavity lies outside the myocardial ring
        ring = ndimage.binary_dilation((lab == val["myo"]) | lv, structure=np.ones((1, 3, 3), bool))
        comps, n = ndimage.label(scar, structure=np.ones((3, 3, 3), bool))
        outside = [i for i in range(1, n + 1) if not (ring & (comps == i)).any()]
        n_out = int(np.isin(comps, outside).sum()) if outside else 0
        if n_out >= max(10, 0.01 * int(scar.sum())):  # single stray voxels are not worth a warning
            flags.append(QualityFlag(code="scar_outside_myocardium", severity=Severity.WARNING,
                                     message=f"{len(outside)} scar region(s) ({n_out} voxels) touch neither the "
                                             "myocardium nor the LV cavity; review the segmentation."))
        zs = [z for z in range(myo.shape[0]) if myo[z].any()]
        if n_myo_slices < p.min_myocardium_slices:
            flags.append(QualityFlag(code="lge_coverage_incomplete", severity=Severity.WARNING,
                                     message=f"Myocardium on {n_myo_slices} slice(s) only (expected at least "
                                             f"{p.min_myocardium_slices}): scar % covers part of the LV."))
        elif zs and (zs[0] == 0 or zs[-1] == myo.shape[0] - 1):
            flags.append(QualityFlag(code="lge_coverage_incomplete", severity=Severity.INFO,
                                     message="Myocardium reaches the first or last slice of the stack: the LV may "
                                             "extend beyond the coverage, so scar % may miss basal or apical scar."))
        if remote.any() and lv.any():
            ratio = float(img[lv].mean()) / max(float(img[remote].mean()), 1e-6)
            lo, hi = p.blood_to_remote_ratio
            if not lo <= ratio <= hi:
                kind = ("dark-blood or poorly nulled myocardium (check the inversion time)" if ratio < lo
                        else "extreme blood-pool brightness")
                flags.append(QualityFlag(code="lge_contrast_out_of_range", severity=Severity.WARNING,
                                         message=f"Blood-pool to remote-myocardium signal ratio {ratio:.2f} is outside "
                                                 f"the expected {lo:g}-{hi:g} of bright-blood LGE ({kind}); "
                                                 "threshold methods may be unreliable."))
        return flags

    # -- renderings ------------------------------------------------------------------------------------------------
    def figures(self, result: AnalysisResult) -> dict[str, bytes]:
        from medai.reports.overlay import crop_box, overlay_png
        from medai.reports.plots import bullseye_png

        out: dict[str, bytes] = {}
        pred = result.prediction
        lm = pred.label_maps.get(ROLE)
        img = pred.extras.get("image")
        remote = pred.extras.get("remote_region")
        if lm is not None and img is not None and lm.volume.array.any():
            arr = lm.volume.array.copy()
            labels = list(lm.labels)
            if remote is not None and remote.any():
                arr[remote] = 9
                labels.append(SegmentLabel(9, "remote", ANATOMICAL_STRUCTURE,
                                           METHOD_CODES["nsd"].model_copy(update={"meaning": "Remote myocardium"}),
                                           (40, 200, 220)))
            shown = LabelMap(volume=lm.volume.with_array(arr), labels=tuple(labels))
            out["overlay"] = overlay_png(img, shown, 0, box=crop_box(lm.volume.array),
                                         title="LGE: model segmentation and remote region (n-SD reference)")
        model = next((m for m in result.section.summary.get("methods", {}).values() if m["method"] == "model"), None)
        if model is not None:  # the other methods' per-segment values are in the PDF table, the SR and the JSON
            out["bullseye_model"] = bullseye_png(model["transmurality_pct"], vmin=0.0, vmax=100.0, cmap="magma",
                                                 unit="%", title="Infarct transmurality by AHA segment (model)")
        return out

    def table_measurements(self, section: ReportSection) -> list[Any]:
        """The model's values (the per-method and per-segment values have their own tables)."""
        return [m for m in section.measurements
                if m.aha_segment is None and (m.method_code is None or m.method_code == METHOD_CODES["model"])]

    def sr_measurements(self, section: ReportSection) -> list[Any]:
        """Every method's totals, and the per-segment transmurality of the model and of the 5-SD threshold (the
        SR stays small enough to render in well under a second; JSON and FHIR carry every method's segments)."""
        def keep(m: Measurement) -> bool:
            if m.aha_segment is None or m.method_code is None:
                return True
            return m.method_code == METHOD_CODES["model"] or float(m.parameters.get("n_sd", 0)) == 5.0

        return [m for m in section.measurements if keep(m)]

    def pdf_story(self, section: ReportSection, figures: dict[str, bytes], kit: Any) -> list[Any]:
        from reportlab.lib.units import mm
        from reportlab.platypus import Paragraph, Table, TableStyle

        st = kit.styles()
        story: list[Any] = []
        methods = section.summary.get("methods", {})
        if methods:
            story.append(Paragraph("Scar by method", st["h2"]))
            head = ["Method", "Parameters", "Infarct %", "Infarct mL", "Infarct g", "MVO %", "Segs > 50%"]
            rows = [[Paragraph(f"<b>{h}</b>", st["cell"]) for h in head]]
            for m in methods.values():
                params = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                                   for k, v in m["parameters"].items()) or "-"
                rows.append([Paragraph(kit.esc(m["code"]["meaning"]), st["cell"]), Paragraph(kit.esc(params),
                             st["cell"]), f"{m['infarct_pct']:.1f}", f"{m['infarct_ml']:.2f}", f"{m['infarct_g']:.2f}",
                             f"{m['mvo_pct']:.1f}", str(m["segments_over_50"])])
            t = Table(rows, colWidths=[52 * mm, 30 * mm, 18 * mm, 20 * mm, 18 * mm, 16 * mm, 20 * mm], repeatRows=1)
            t.setStyle(TableStyle([("BACKGROUND", (0, 0), (-1, 0), "#dde3ea"), ("FONTSIZE", (0, 1), (-1, -1), 8),
                                   ("ALIGN", (2, 1), (-1, -1), "RIGHT")]))
            story.append(t)
            model = next((m for m in methods.values() if m["method"] == "model"), None)
            if model is not None:
                bins = model["transmurality_bin"]
                story.append(Paragraph(
                    "Transmurality bins (model): " + ", ".join(f"{s}: {b}%" for s, b in bins.items()), st["small"]))
            if section.summary.get("viability"):
                story.append(Paragraph(kit.esc(section.summary["viability"]), st["body"]))
            rr = section.summary.get("remote_region") or {}
            story.append(Paragraph(kit.esc(f"Remote region: {rr.get('how', '')}; {rr.get('n_voxels', 0)} voxels"
                                           + (f", mean {rr['mean']:g}, SD {rr['sd']:g}" if "mean" in rr else "")),
                                   st["small"]))
        if "overlay" in figures:
            story.append(kit.image(figures["overlay"], 150 * mm))
        if "bullseye_model" in figures:
            story.append(kit.image(figures["bullseye_model"], 75 * mm))
        return story


__all__ = ["LgeScar", "LgeScarParams", "transmurality_bin"]
