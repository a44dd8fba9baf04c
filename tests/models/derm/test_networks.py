"""Every registered dermatology network builds from its registry name and maps (B, 3, H, W) to (B, K) logits."""

from __future__ import annotations

import pytest
import torch

from medai.registry import NETWORKS
from models.derm.networks import DermResNetSmall

torch.set_num_threads(1)

DERM_NETWORKS = ["derm_resnet_small", "efficientnet_b0", "densenet121", "seresnet50"]


@pytest.mark.parametrize("name", DERM_NETWORKS)
def test_network_forward_shape(name: str) -> None:
    net = NETWORKS.get(name)(in_channels=3, num_classes=7).eval()
    with torch.no_grad():
        out = net(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 7)
    assert torch.isfinite(out).all()


def test_small_network_is_small_and_exposes_gradcam_hooks() -> None:
    net = NETWORKS.get("derm_resnet_small")(num_classes=7, width=32)
    assert isinstance(net, DermResNetSmall)
    n = sum(p.numel() for p in net.parameters())
    assert n < 2_000_000  # < 8 MB float32: small enough to ship
    x = torch.randn(1, 3, 80, 80)
    feats = net.features(x)
    assert feats.shape == (1, 256, 5, 5)
    assert torch.allclose(net.eval().head(net.features(x)), net(x))


def test_small_network_learns_a_trivial_colour_task() -> None:
    """A few optimisation steps separate red from blue images (the training signal reaches every layer)."""
    torch.manual_seed(0)
    net = NETWORKS.get("derm_resnet_small")(num_classes=2, width=8, dropout=0.0)
    x = torch.zeros(16, 3, 32, 32)
    x[:8, 0] = 1.0
    x[8:, 2] = 1.0
    y = torch.tensor([0] * 8 + [1] * 8)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(15):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
    net.eval()
    assert (net(x).argmax(1) == y).all()
