"""A small real risk package (heart_failure_299, Cox) built once per session for predictor / CLI / evaluate tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from medai.settings import find_data_dir


@pytest.fixture(scope="session")
def hf_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Package trained on the development part of heart_failure_299 (skips without the real data)."""
    root = find_data_dir()
    if root is None:
        pytest.skip("real data not found: set MEDAI_DATA_DIR or place it at ../shared/data")
    import numpy as np

    from medai.risk.cohorts import load_cohort
    from models.survival import make_estimator
    from pipelines.risk.recipe import ModelEntry, RiskRecipe
    from pipelines.risk.train import split_dev_test, write_package

    c = load_cohort("heart_failure_299", "death", root)
    dev, test = split_dev_test(c, 0.2, 20)
    cd = c.subset(dev)
    m = make_estimator("coxph", c.spec.numeric, c.spec.categorical).fit(cd.X, cd.y)
    recipe = RiskRecipe(
        task="survival",
        name="test_hf299",
        cohort=c.name,
        outcome="death",
        models=[ModelEntry(name="coxph")],
        ship="coxph",
    )
    out = tmp_path_factory.mktemp("pkg") / "test_hf299"
    write_package(out, m, recipe, cd, c.horizons, [0.2, 0.4], {"test/c_index": 0.7}, None, "0.0.1")
    import json

    (out / "split.json").write_text(json.dumps({"dev": dev.tolist(), "test": test.tolist()}))
    assert np.isfinite(m.predict(cd.X)).all()
    return out
