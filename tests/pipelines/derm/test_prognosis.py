"""Multimodal dermatology prognosis (image + clinical + omics -> time to event) on a generated cohort with a known
hazard, some patients missing their image or transcriptome."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from medai.errors import ConfigError
from pipelines.derm.prognosis import cv_multimodal_prognosis
from tests.medai.derm.conftest import encode, lesion_like


def _cohort(d: Path, n: int = 160, seed: int = 0) -> Path:
    """Hazard = exp(1.2 * omics factor + 0.8 * clinical crp); images carry nothing (a null modality); 25 % of
    patients have no image and 30 % no transcriptome."""
    rng = np.random.default_rng(seed)
    d.mkdir(parents=True)
    f = rng.normal(size=n)
    crp = rng.normal(size=n)
    hazard = np.exp(1.2 * f + 0.8 * crp)
    t_ev, t_c = rng.exponential(1 / hazard), rng.exponential(1.5, n)
    rows, genes = [], []
    for i in range(n):
        img = None
        if rng.random() > 0.25:
            img = f"p{i}.png"
            (d / img).write_bytes(encode(lesion_like(40, 40, seed=i)))
        rows.append({"patient": f"P{i}", "image": img, "time": min(t_ev[i], t_c[i]) + 1e-3,
                     "event": int(t_ev[i] <= t_c[i]), "crp": crp[i], "sex": ["m", "f"][i % 2]})
    X = np.hstack([f[:, None] * rng.uniform(0.7, 1.0, 30) + rng.normal(0, 0.5, (n, 30)), rng.normal(size=(n, 40))])
    keep = rng.random(n) > 0.3
    genes = pd.DataFrame(X[keep], index=[f"P{i}" for i in np.flatnonzero(keep)], columns=[f"G{j}" for j in range(70)])
    genes.index.name = "patient"
    genes.to_csv(d / "matrix.csv")
    pd.DataFrame(rows).to_csv(d / "labels.csv", index=False)
    return d


def test_fusion_prognosis_uses_every_modality_present_and_finds_the_signal(tiny_package: Path, tmp_path: Path) -> None:
    d = _cohort(tmp_path / "cohort", n=140)
    res = cv_multimodal_prognosis(d, tiny_package, clinical=["crp", "sex"], n_folds=4,
                                  fusion_params={"max_epochs": 30, "n_members": 1},
                                  module_params={"n_modules": 4, "min_size": 5})
    assert res["modalities_present"]["image"] < res["n"] and res["modalities_present"]["omics"] < res["n"]
    assert res["fusion"]["n"] == res["n"]  # every patient predicted from whatever they have
    assert res["fusion"]["c_index"] > 0.65
    single = res["single_modality"]
    assert set(single) == {"clinical", "image", "omics"}
    assert single["omics"]["c_index"] > 0.6 and single["clinical"]["c_index"] > 0.55
    assert single["image"]["c_index"] < single["omics"]["c_index"]  # the images carry no signal here


def test_prognosis_cohort_errors_say_what_to_fix(tiny_package: Path, tmp_path: Path) -> None:
    d = tmp_path / "bad"
    d.mkdir()
    pd.DataFrame({"patient": ["a", "b"], "time": [1.0, -2.0], "event": [1, 0]}).to_csv(d / "labels.csv", index=False)
    with pytest.raises(ConfigError, match="positive"):
        cv_multimodal_prognosis(d, tiny_package)
    pd.DataFrame({"patient": ["a"], "event": [1]}).to_csv(d / "labels.csv", index=False)
    with pytest.raises(ConfigError, match="time"):
        cv_multimodal_prognosis(d, tiny_package)


def test_medai_evaluate_prognosis_format(tiny_package: Path, tmp_path: Path) -> None:
    from medai.cli import app

    d = _cohort(tmp_path / "cohort", n=60, seed=3)
    (d / "matrix.csv").unlink()  # image + clinical only
    out = tmp_path / "prog.json"
    r = CliRunner().invoke(app, ["evaluate", "skin_derm_lesion_cls", "--model", str(tiny_package), "--data", str(d),
                                 "--format", "prognosis", "--clinical", "crp", "--out", str(out)])
    assert r.exit_code == 0, r.output + str(r.exception)
    doc = json.loads(out.read_text())
    assert doc["format"] == "prognosis" and doc["fusion"]["n"] == 60 and 0 < doc["fusion"]["c_index"] <= 1
    assert doc["modalities_present"]["omics"] == 0 and set(doc["single_modality"]) == {"clinical", "image"}
