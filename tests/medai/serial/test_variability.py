"""The shipped variability table builds, names registered measurements, cites every figure; bad tables fail."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from medai.errors import ConfigError
from medai.serial.variability import VARIABILITY_PATH, default_variability, read_variability


def test_shipped_table_builds_with_registered_names_and_sources() -> None:
    from medai.analyses import catalogue
    from medai.measurements.registry import MEASUREMENTS

    table = default_variability()
    lge = {m.name for a in catalogue().values() for m in (a.config.measurements or [])}
    known = set(MEASUREMENTS.names()) | lge
    assert set(table.measurements) <= known, set(table.measurements) - known
    for name in ("lv_ef", "lv_edv", "lv_esv", "lv_mass", "rv_ef", "rv_edv", "lge_infarct_pct"):
        m = table.measurements[name]
        assert m.has_reference and table.citation(name), name
    assert table.measurements["lge_infarct_pct"].method_code == "LGE-MODEL"


def test_mdc_formula() -> None:
    ef = default_variability().measurements["lv_ef"]
    # SD_diff = CV * mean; MDC = 1.96 * SD_diff (= 1.96 * sqrt(2) * Sw)
    assert ef.sd_diff(50.0, 70.0) == pytest.approx(0.049 * 60.0)
    assert ef.mdc(50.0, 70.0) == pytest.approx(1.96 * 0.049 * 60.0)
    scar = default_variability().measurements["lge_infarct_pct"]
    assert scar.sd_diff(10.0, 30.0) == pytest.approx(2.4 / 1.96) and scar.mdc(10.0, 30.0) == pytest.approx(2.4)
    assert default_variability().measurements["lv_sv"].mdc(90.0, 80.0) is None


@pytest.mark.parametrize(("edit", "match"), [
    (lambda d: d["measurements"]["lv_ef"].update(limits_of_agreement=3.0), "not both"),
    (lambda d: d["measurements"]["lv_ef"].update(source="nobody2020"), "nobody2020"),
    (lambda d: d["measurements"]["lv_ef"].pop("source"), "needs its source"),
    (lambda d: d["measurements"]["lv_ef"].update(cv_pct=-1), "greater than 0"),
    (lambda d: d.update(extra=1), "extra"),
])
def test_invalid_tables_are_config_errors(tmp_path: Path, edit, match: str) -> None:  # noqa: ANN001
    doc = yaml.safe_load(VARIABILITY_PATH.read_text())
    edit(doc)
    p = tmp_path / "v.yaml"
    p.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError, match=match):
        read_variability(p)
    p.write_text("a: [unclosed")
    with pytest.raises(ConfigError, match="not readable YAML"):
        read_variability(p)
