"""Test-time augmentation of the cine segmentation (``inference.json`` ``tta``): each pass is mapped back to the
slice's orientation, the labels come from the averaged logits, only a cine's ED/ES candidate frames are re-segmented
(and ED/ES picked among them), and a CV reusing fold packages takes the setting from the recipe."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from medai.cardiac.predictor import CineSegPredictor
from medai.cardiac.preprocess import TTA_MODES, normalize_intensity
from medai.dicom.ingest import ingest
from medai.dicom.phantoms import make_cine_sax_study
from medai.domain.volume import Volume
from medai.errors import ConfigError
from medai.inference.predictor import Predictor
from tests.medai.cardiac.helpers import make_tiny_package

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def phantom():
    return make_cine_sax_study(n_slices=5, n_phases=6, rows=48, cols=40, pixel_spacing=1.7)


def _volume(ph) -> Volume:  # noqa: ANN001
    return Volume(array=ph.image.astype(np.float32), affine=ph.affine, frame_times_ms=ph.frame_times_ms)


def _predictor(tmp_path: Path, tta: str) -> CineSegPredictor:
    pkg = make_tiny_package(tmp_path / f"pkg_{tta}")
    cfg = json.loads((pkg / "inference.json").read_text())
    (pkg / "inference.json").write_text(json.dumps({**cfg, "tta": tta}))
    pred = Predictor.from_package(pkg, runtime="torch")
    assert isinstance(pred, CineSegPredictor) and pred.config.tta == tta
    return pred


def test_modes_start_with_the_plain_pass_and_d8_is_the_square_group() -> None:
    for passes in TTA_MODES.values():
        assert passes[0] == ((), False)
    assert len(set(TTA_MODES["d8"])) == 8 and set(TTA_MODES["flip"]) < set(TTA_MODES["d8"])


def test_every_pass_is_mapped_back_a_per_pixel_network_gives_the_plain_labels(tmp_path: Path, phantom) -> None:  # noqa: ANN001
    """A 1x1 convolution sees each pixel alone, so it commutes with flips and transposes: averaging over the passes
    changes nothing, unless a pass is mapped back to the wrong place."""
    pred = _predictor(tmp_path, "d8")
    centres = torch.tensor([-1.0, 0.0, 1.0, 2.0]).view(1, 4, 1, 1)
    pred.net = lambda x: -((x - centres) ** 2)  # noqa: E731  # class = the nearest of 4 normalised grey levels
    vol = _volume(phantom).frame(2)
    plain = pred.segment_volume(vol, tta=False, postprocess=False).volume.array
    assert len(np.unique(plain)) > 1
    np.testing.assert_array_equal(pred.segment_volume(vol, tta=True, postprocess=False).volume.array, plain)


def test_a_pass_is_the_network_on_the_flipped_transposed_slice_mapped_back(tmp_path: Path) -> None:
    pred = _predictor(tmp_path, "d8")
    t = torch.randn(2, 1, 16, 24)
    with torch.inference_mode():
        got = pred._logits(t, (-1,), True)
        want = pred.net(t.flip(-1).transpose(-1, -2).contiguous()).transpose(-1, -2).flip(-1)
        assert got.shape == (2, 4, 16, 24)
        torch.testing.assert_close(got, want)
        assert not torch.allclose(got, pred._logits(t))  # a random net is not symmetric: the pass counts


def test_labels_are_the_argmax_of_the_averaged_logits(tmp_path: Path, phantom) -> None:  # noqa: ANN001
    pred = _predictor(tmp_path, "flip")
    vol = _volume(phantom).frame(1)
    got = pred.segment_volume(vol, resample=False, postprocess=False).volume.array  # None: the package's setting
    x = torch.from_numpy(np.ascontiguousarray(
        normalize_intensity(vol.array, pred.config.p_low, pred.config.p_high)[:, None], dtype=np.float32))
    assert x.shape[-2] % 8 == 0 and x.shape[-1] % 8 == 0  # 48 x 40: not padded, the network sees the slices as is
    with torch.inference_mode():
        mean = sum(pred._logits(x, f, tr) for f, tr in TTA_MODES["flip"]) / 4  # the argmax of its softmax
    want = np.asarray([0, 1, 2, 3], np.uint8)[mean.argmax(1).numpy()]
    assert (got == want).mean() > 0.999  # ties between equal float sums may go either way
    assert (got != pred.segment_volume(vol, resample=False, postprocess=False, tta=False).volume.array).any()


def test_predict_resegments_only_the_phase_candidates_and_picks_among_them(tmp_path: Path, phantom) -> None:  # noqa: ANN001
    from medai.cardiac.phases import phase_candidates
    from medai.measurements import volume_curves

    study = ingest(phantom.to_bytes()).studies[0]
    plain = _predictor(tmp_path, "none").predict(study)
    tta = _predictor(tmp_path, "d8").predict(study)
    a, b = plain.label_maps["cine_sax"].volume.array, tta.label_maps["cine_sax"].volume.array
    ed_c, es_c = phase_candidates(volume_curves(plain.label_maps["cine_sax"])["lv_ml"])
    cands = sorted({*ed_c, *es_c})
    others = [t for t in range(a.shape[0]) if t not in cands]
    np.testing.assert_array_equal(a[others], b[others])
    assert (a[cands] != b[cands]).any()
    curve = volume_curves(tta.label_maps["cine_sax"])["lv_ml"]
    ed, es = tta.extras["ed_frame"], tta.extras["es_frame"]
    assert ed in ed_c and es in es_c
    assert curve[ed] == max(curve[t] for t in ed_c) and curve[es] == min(curve[t] for t in es_c)
    np.testing.assert_array_equal(tta.extras["seg_slice_stats"], plain.extras["seg_slice_stats"])  # plain pass's


def test_phase_candidates_near_the_extremes_or_the_declared_frames() -> None:
    from medai.cardiac.phases import phase_candidates, select_phases

    curve = [100.0, 98.0, 80.0, 61.0, 60.0, 62.5, 75.0, 97.5]
    assert phase_candidates(curve) == ([0, 1], [3, 4])  # within 3 % of 100 and of 60, the 2 most extreme
    assert phase_candidates(curve, limit=3) == ([0, 1, 7], [3, 4])
    assert phase_candidates(curve, margin=0.05, limit=3) == ([0, 1, 7], [3, 4, 5])
    assert phase_candidates([5.0, 4.0, 4.0, 4.0], limit=2)[1] == [1, 2]  # ties: the earliest
    assert phase_candidates(curve, (7, 3)) == ([7], [3])  # declared by the DICOM: those only
    refined = [99.0, 101.0, 80.0, 59.0, 64.0, 58.0, 75.0, 97.5]  # frame 5 is not a candidate: not picked
    got = select_phases(refined, among=phase_candidates(curve))
    assert (got.ed, got.es, got.source) == (1, 3, "lv_volume_curve")
    assert (select_phases(refined).ed, select_phases(refined).es) == (1, 5)


def test_unknown_mode_is_a_config_error(tmp_path: Path) -> None:
    pkg = make_tiny_package(tmp_path / "bad")
    cfg = json.loads((pkg / "inference.json").read_text())
    (pkg / "inference.json").write_text(json.dumps({**cfg, "tta": "rot90"}))
    with pytest.raises(ConfigError, match=r"(?s)inference.json.*tta.*'none', 'flip' or 'd8'"):
        Predictor.from_package(pkg)


def test_cv_applies_the_recipes_inference_settings_to_a_reused_fold_package(tmp_path: Path) -> None:
    from pipelines.cmr.config import load_recipe
    from pipelines.cmr.train import apply_inference_settings

    recipe_path = Path(__file__).resolve().parents[3] / "configs" / "experiment" / "cmr_seg_2d.yaml"
    pkg = make_tiny_package(tmp_path / "fold0")
    before = json.loads((pkg / "inference.json").read_text())
    weights = (pkg / "weights.pt").read_bytes()
    assert apply_inference_settings(pkg, load_recipe(recipe_path, ["model.tta=d8"])) == {"tta": ["none", "d8"]}
    after = json.loads((pkg / "inference.json").read_text())
    assert after == {**before, "tta": "d8"} and (pkg / "weights.pt").read_bytes() == weights
    assert apply_inference_settings(pkg, load_recipe(recipe_path, ["model.tta=d8"])) == {}
    with pytest.raises(ConfigError, match="tta"):
        load_recipe(recipe_path, ["model.tta=d4"])


def test_ship_recipe_sets_the_setting_and_needs_a_new_version(tmp_path: Path) -> None:
    from pipelines.cmr.ship import apply_recipe

    recipe = Path(__file__).resolve().parents[3] / "configs" / "experiment" / "cmr_seg_2d.yaml"
    pkg = make_tiny_package(tmp_path / "pkg")
    (pkg / "MODEL_CARD.md").write_text("# heart_mr_cine_seg 0.0.0-test -- tiny\n\nbody 0.0.0-test\n")
    with pytest.raises(ConfigError, match="keeps its version 0.0.0-test.*package.version"):
        apply_recipe(pkg, recipe, ["model.tta=flip", "package.version=0.0.0-test"])
    assert json.loads((pkg / "inference.json").read_text())["tta"] == "none"  # nothing half-done
    assert apply_recipe(pkg, recipe, ["model.tta=flip", "package.version=0.1.0"]) == {"tta": ["none", "flip"]}
    assert json.loads((pkg / "metadata.json").read_text())["version"] == "0.1.0"
    assert (pkg / "MODEL_CARD.md").read_text() == "# heart_mr_cine_seg 0.1.0 -- tiny\n\nbody 0.0.0-test\n"
    assert apply_recipe(pkg, recipe, ["model.tta=flip", "package.version=0.2.0"]) == {}  # nothing to change
    assert json.loads((pkg / "metadata.json").read_text())["version"] == "0.1.0"
