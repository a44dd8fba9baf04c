"""Every registered segmentation network builds from simple arguments and maps (B, C, *S) -> (B, K, *S)."""

from __future__ import annotations

import pytest
import torch

from medai.registry import NETWORKS

SMALL = {
    "unet2d": {"channels": [4, 8, 16], "num_res_units": 1},
    "basicunet2d": {"channels": [4, 4, 8, 8, 16, 4]},
    "dynunet2d": {"channels": [4, 8, 16]},
    "unet3d": {"channels": [4, 8, 16], "num_res_units": 1},
    "dynunet3d": {"channels": [4, 8, 16]},
    "segresnet3d": {"init_filters": 8},
}


def test_two_and_three_d_options_registered() -> None:
    names = NETWORKS.names()
    assert {"unet2d", "dynunet2d", "unet3d", "segresnet3d"} <= set(names)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_network_forward_shape(name: str) -> None:
    torch.set_num_threads(1)
    net = NETWORKS.get(name)(in_channels=1, out_channels=4, **SMALL[name])
    assert isinstance(net, torch.nn.Module)
    dims = 3 if name.endswith("3d") else 2
    size = 16 if dims == 3 else 32
    x = torch.randn(1, 1, *([size] * dims))
    net.eval()
    with torch.no_grad():
        y = net(x)
    assert y.shape == (1, 4, *([size] * dims))
    assert torch.isfinite(y).all()


def test_dimension_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match="2-D"):
        NETWORKS.get("unet2d")(spatial_dims=3)
