"""The phantom's ACDC-group presets (:data:`medai.dicom.phantoms.PHENOTYPES`): their labels measure the group
medians they were fitted to, and those medians come from the reference masks by the committed script (the second
test needs the real data)."""

from __future__ import annotations

from pathlib import Path

import pytest

from medai.dicom.phantoms import PHENOTYPES
from pipelines.dx.phenotypes import REGIONAL_TARGETS, TARGETS, group_medians, phantom_features


@pytest.mark.parametrize("group", list(PHENOTYPES))
def test_a_preset_heart_measures_its_group_median(group: str) -> None:
    preset = PHENOTYPES[group]
    got = phantom_features(preset.params)
    units = TARGETS | {k: v for k, v in REGIONAL_TARGETS.items() if k in preset.median}
    assert set(units) == set(preset.median)
    for k, unit in units.items():  # within a fifth of the fit's residual unit (e.g. 1 mL/m², 0.4 EF points)
        assert got[k] == pytest.approx(preset.median[k], abs=0.2 * unit), (group, k)


def test_the_minf_heart_has_a_still_sector() -> None:
    """MINF's preset wall does not thicken in its akinetic sector (AHA segments under 10 %), the others' does."""
    assert phantom_features(PHENOTYPES["MINF"].params)["segments_low_thickening"] >= 3
    assert phantom_features(PHENOTYPES["NOR"].params)["segments_low_thickening"] == 0


def test_the_presets_medians_come_from_the_acdc_train_masks(data_dir: Path) -> None:
    root = data_dir / "cardiac" / "acdc"
    if not (root / "splits.csv").is_file() and not any(root.glob("*/splits.csv")):
        pytest.skip("the official ACDC training set (with splits.csv) is not under cardiac/acdc")
    medians = group_medians(root)
    assert {g: int(m["n"]) for g, m in medians.items()} == {g: 16 for g in ("DCM", "HCM", "MINF", "NOR", "RV")}
    for group, preset in PHENOTYPES.items():
        for k in preset.median:
            assert medians[group][k] == pytest.approx(preset.median[k], abs=1e-3), (group, k)
