"""In-fold co-expression modules: no test sample in the unsupervised step, known effects recovered, stable biomarkers,
and a prognosis head on a generated cohort with a known hazard."""

from __future__ import annotations

import numpy as np
import pytest

from medai.derm.modules import ModuleEigengenes
from medai.errors import ConfigError
from pipelines.derm.omics_genes import ModuleConfig, cv_prognosis, loso_classification

MODULE = 40


def _cohort(n: int = 240, n_studies: int = 6, seed: int = 0) -> dict:
    """Genes in 4 co-expression modules (40 genes each, driven by latent factors f1..f4) plus 100 noise genes;
    per-study gene offsets (batch effects); the label depends on f1, the hazard on f2 and one clinical covariate."""
    rng = np.random.default_rng(seed)
    f = rng.normal(size=(n, 4))
    genes = [f[:, m : m + 1] * rng.uniform(0.6, 1.0, MODULE) + rng.normal(0, 0.6, (n, MODULE)) for m in range(4)]
    X = np.hstack([*genes, rng.normal(size=(n, 100))])
    studies = np.repeat([f"GSE{i}" for i in range(n_studies)], n // n_studies)
    X += rng.normal(0, 0.5, (n_studies, X.shape[1]))[np.searchsorted(np.unique(studies), studies)]
    y = (f[:, 0] + rng.normal(0, 0.5, n) > 0).astype(int)
    clin = rng.normal(size=(n, 1))
    hazard = np.exp(1.0 * f[:, 1] + 0.5 * clin[:, 0])
    t_event = rng.exponential(1 / hazard)
    t_cens = rng.exponential(1.5, n)
    return {
        "X": X, "y": y, "studies": studies, "clin": clin, "time": np.minimum(t_event, t_cens) + 1e-3,
        "event": t_event <= t_cens, "genes": [f"G{j}" for j in range(X.shape[1])],
        "patients": np.array([f"P{i}" for i in range(n)]),
    }


def test_modules_are_recovered_and_projected_with_training_loadings() -> None:
    c = _cohort()
    mods = ModuleEigengenes(n_modules=8, min_size=10).fit(c["X"][:150])
    members = [set(m.tolist()) for m in mods.membership()]
    for true in range(4):
        block = set(range(true * MODULE, (true + 1) * MODULE))
        assert max(len(block & m) / len(block) for m in members) >= 0.9  # each true module found
    E = mods.transform(c["X"][150:])
    assert E.shape == (90, len(members)) and np.isfinite(E).all()
    # the transform of new samples does not depend on which other new samples come with them
    assert np.allclose(mods.transform(c["X"][150:151]), E[:1])
    with pytest.raises(ConfigError, match="NaN"):
        ModuleEigengenes().fit(np.full((5, 4), np.nan))


def test_loso_with_in_fold_modules_finds_the_label_module_with_stable_genes() -> None:
    c = _cohort()
    res = loso_classification(c["X"], c["y"], c["studies"], ["control", "lesional"], c["genes"],
                              ModuleConfig(n_modules=8, min_size=10))
    assert res["n_studies"] == 6
    assert res["in_fold"]["auc_lesional_vs_rest"] > 0.85
    assert res["all_samples"]["auc_lesional_vs_rest"] > 0.85  # reported beside it
    top = res["top_genes"][:10]
    assert sum(int(g["gene"][1:]) < MODULE for g in top) >= 8  # the known effect: module 1's genes
    assert top[0]["top10_frequency"] >= 0.8


def test_prognosis_head_recovers_the_hazard_module_and_the_clinical_effect() -> None:
    c = _cohort(seed=1)
    res = cv_prognosis(c["X"], c["time"], c["event"], c["patients"], c["genes"], clinical=c["clin"],
                       clinical_names=["biomarker_x"], cfg=ModuleConfig(n_modules=8, min_size=10))
    assert res["c_index_out_of_fold"] > 0.65
    assert res["event_rate_high_risk_half"] > res["event_rate_low_risk_half"]
    assert res["clinical_hazard_ratio_per_sd_full_fit"]["biomarker_x"] > 1.2
    top = res["top_genes"][:10]
    assert sum(MODULE <= int(g["gene"][1:]) < 2 * MODULE for g in top) >= 8


def test_prognosis_refuses_bad_follow_up() -> None:
    c = _cohort()
    bad = c["time"].copy()
    bad[0] = -1
    with pytest.raises(ConfigError, match="positive"):
        cv_prognosis(c["X"], bad, c["event"], c["patients"], c["genes"])
    with pytest.raises(ConfigError, match="events"):
        cv_prognosis(c["X"], c["time"], np.zeros(len(c["time"]), bool), c["patients"], c["genes"])


def test_medai_evaluate_genes_formats_from_a_cohort_folder(tmp_path) -> None:  # noqa: ANN001
    import json

    import pandas as pd
    from typer.testing import CliRunner

    from medai.cli import app

    c = _cohort(seed=2)
    samples = [f"S{i}" for i in range(len(c["y"]))]
    pd.DataFrame(c["X"], index=samples, columns=c["genes"]).to_csv(tmp_path / "matrix.csv")
    pd.DataFrame({"sample": samples, "label": np.where(c["y"] == 1, "lesional", "healthy_control"),
                  "study": c["studies"], "patient": c["patients"], "time": c["time"], "event": c["event"].astype(int),
                  "crp": c["clin"][:, 0]}).to_csv(tmp_path / "labels.csv", index=False)
    r = CliRunner().invoke(app, ["evaluate", "skin_omics_psoriasis_cls", "--data", str(tmp_path), "--format",
                                 "genes-loso", "--out", str(tmp_path / "loso.json")])
    assert r.exit_code == 0, r.output
    doc = json.loads((tmp_path / "loso.json").read_text())
    assert doc["in_fold"]["auc_lesional_vs_rest"] > 0.8 and len(doc["top_genes"]) >= 10
    r = CliRunner().invoke(app, ["evaluate", "skin_omics_psoriasis_cls", "--data", str(tmp_path), "--format",
                                 "genes-prognosis", "--clinical", "crp", "--out", str(tmp_path / "prog.json")])
    assert r.exit_code == 0, r.output
    doc = json.loads((tmp_path / "prog.json").read_text())
    assert doc["c_index_out_of_fold"] > 0.6 and "crp" in doc["clinical_hazard_ratio_per_sd_full_fit"]
    r = CliRunner().invoke(app, ["evaluate", "skin_omics_psoriasis_cls", "--data", str(tmp_path), "--format",
                                 "genes-prognosis", "--clinical", "nope", "--out", str(tmp_path / "x.json")])
    assert r.exit_code != 0 and "nope" in (r.output + str(r.exception))
