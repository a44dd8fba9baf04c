"""Skin-lesion classification networks, registered by name in :data:`medai.registry.NETWORKS`.

All factories take ``in_channels`` and ``num_classes`` (plus network-specific keyword arguments) and return a plain
``nn.Module`` mapping ``(B, C, H, W) float32`` normalised RGB to ``(B, num_classes)`` logits.

* ``derm_resnet_small`` -- a compact residual CNN (~1.2 M parameters, ~5 MB float32) that trains from scratch on CPU
  in well under an hour at 64-112 px; the shipped default.
* ``efficientnet_meta`` -- MONAI's EfficientNet (randomly initialised: no pretrained weights can be fetched) fused
  with the patient-metadata vector of :mod:`medai.derm.metadata` through a small MLP; ``forward(x, meta)`` with
  ``meta=None`` is the image-only path (the all-missing vector). The lesion classifier v2. (timm was the first
  choice; it needs torchvision, and no CPU build of torchvision matching torch 2.13 is installable here.)
* ``efficientnet_b0`` / ``densenet121`` / ``seresnet50`` -- MONAI's 2-D classification networks, for GPU training
  at larger input sizes (no pretrained weights are downloaded: nothing here reaches the network).
"""

from __future__ import annotations

import torch
from torch import nn

from medai.registry import NETWORKS


class _BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and an identity (or 1x1 projection) shortcut."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.act = nn.ReLU(inplace=True)
        self.short: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.act(out + self.short(x))


class DermResNetSmall(nn.Module):
    """Compact residual CNN for small dermoscopy images.

    Args:
        in_channels: input channels (3 for RGB).
        num_classes: number of output logits.
        width: channels of the first stage; stages use ``width * (1, 2, 4, 8)``.
        dropout: dropout before the classifier.

    Input ``(B, in_channels, H, W)`` float32 (H, W >= 32); output ``(B, num_classes)`` logits.
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 7, width: int = 32, dropout: float = 0.2) -> None:
        super().__init__()
        w = width
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, w, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True)
        )
        self.stages = nn.Sequential(
            _BasicBlock(w, w, 1),
            _BasicBlock(w, 2 * w, 2),
            _BasicBlock(2 * w, 4 * w, 2),
            _BasicBlock(4 * w, 8 * w, 2),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(8 * w, num_classes)

    @property
    def cam_layer(self) -> nn.Module:
        """The layer whose activations Grad-CAM weighs (the last convolutional stage)."""
        return self.stages

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Last convolutional feature map ``(B, 8*width, H/16, W/16)``."""
        return self.stages(self.stem(x))

    def head(self, feats: torch.Tensor) -> torch.Tensor:
        """Logits from a feature map of :meth:`features`."""
        return self.fc(self.drop(torch.flatten(self.pool(feats), 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@NETWORKS.register("derm_resnet_small")
def derm_resnet_small(in_channels: int = 3, num_classes: int = 7, width: int = 32, dropout: float = 0.2) -> nn.Module:
    """The compact residual CNN (see :class:`DermResNetSmall`)."""
    return DermResNetSmall(in_channels=in_channels, num_classes=num_classes, width=width, dropout=dropout)


@NETWORKS.register("efficientnet_b0")
def efficientnet_b0(in_channels: int = 3, num_classes: int = 7) -> nn.Module:
    """MONAI EfficientNet-B0 (2-D, randomly initialised)."""
    from monai.networks.nets import EfficientNetBN

    return EfficientNetBN(
        "efficientnet-b0", pretrained=False, spatial_dims=2, in_channels=in_channels, num_classes=num_classes
    )


@NETWORKS.register("densenet121")
def densenet121(in_channels: int = 3, num_classes: int = 7, dropout: float = 0.0) -> nn.Module:
    """MONAI DenseNet121 (2-D, randomly initialised)."""
    from monai.networks.nets import DenseNet121

    return DenseNet121(spatial_dims=2, in_channels=in_channels, out_channels=num_classes, dropout_prob=dropout)


@NETWORKS.register("seresnet50")
def seresnet50(in_channels: int = 3, num_classes: int = 7) -> nn.Module:
    """MONAI SE-ResNet50 (2-D, randomly initialised)."""
    from monai.networks.nets import SEResNet50

    return SEResNet50(spatial_dims=2, in_channels=in_channels, num_classes=num_classes, pretrained=False)



class EfficientNetMeta(nn.Module):
    """MONAI's EfficientNet features, pooled, concatenated with an embedded metadata vector, then one linear layer.

    Args:
        backbone: MONAI EfficientNet variant (``efficientnet-b0`` ... ``efficientnet-b7``), randomly initialised, or
            ``derm_resnet_small[:width]`` (the compact CNN above, for small cohorts and CPU tests).
        meta_dim: length of the metadata vector (0: image only, no metadata branch).
        meta_missing: the all-missing vector used when ``forward`` gets ``meta=None`` (length ``meta_dim``).
        meta_hidden: width of the metadata MLP.
        dropout / drop_connect: head dropout and the blocks' stochastic depth.
    """

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 7,
        backbone: str = "efficientnet-b0",
        meta_dim: int = 0,
        meta_missing: list[float] | None = None,
        meta_hidden: int = 64,
        dropout: float = 0.2,
        drop_connect: float = 0.1,
    ) -> None:
        super().__init__()
        self.kind = "resnet" if backbone.startswith("derm_resnet_small") else "efficientnet"
        if self.kind == "resnet":  # e.g. derm_resnet_small:16 (width 16): small cohorts, CPU tests
            width = int(backbone.split(":", 1)[1]) if ":" in backbone else 32
            small = DermResNetSmall(in_channels=in_channels, num_classes=num_classes, width=width)
            self.backbone = small
            nf = small.fc.in_features
            del small.fc
        else:
            from monai.networks.nets import EfficientNetBN

            net = EfficientNetBN(
                backbone, pretrained=False, spatial_dims=2, in_channels=in_channels, num_classes=num_classes
            )
            for block in net._blocks:
                if hasattr(block, "drop_connect_rate") and block.drop_connect_rate:
                    block.drop_connect_rate = drop_connect * block.drop_connect_rate / 0.2  # MONAI's default: 0.2
            self.backbone = net
            nf = int(net._fc.in_features)
            del net._fc
        self.meta_dim = meta_dim
        if meta_dim:
            self.meta = nn.Sequential(
                nn.Linear(meta_dim, meta_hidden),
                nn.SiLU(),
                nn.Dropout(0.1),
                nn.Linear(meta_hidden, meta_hidden),
                nn.SiLU(),
            )
            missing = torch.tensor(meta_missing if meta_missing is not None else [0.0] * meta_dim, dtype=torch.float32)
            self.register_buffer("meta_missing", missing.view(1, -1), persistent=False)
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(nf + (meta_hidden if meta_dim else 0), num_classes)

    @property
    def cam_layer(self) -> nn.Module:
        """The last feature stage (EfficientNet: the normalised output of its last 1x1 convolution), for Grad-CAM."""
        return self.backbone.stages if self.kind == "resnet" else self.backbone._bn1

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last feature map (``(B, 1280, H/32, W/32)`` for EfficientNet-B0)."""
        b = self.backbone
        if self.kind == "resnet":
            return b.features(x)
        x = b._swish(b._bn0(b._conv_stem(b._conv_stem_padding(x))))
        x = b._blocks(x)
        return b._swish(b._bn1(b._conv_head(b._conv_head_padding(x))))

    def head(self, feats: torch.Tensor, meta: torch.Tensor | None = None) -> torch.Tensor:
        """Logits from a feature map of :meth:`features` and the metadata vector (``None``: image only)."""
        z = torch.flatten(nn.functional.adaptive_avg_pool2d(feats, 1), 1)
        if self.meta_dim:
            if meta is None:
                meta = self.meta_missing.expand(z.shape[0], -1)
            z = torch.cat([z, self.meta(meta.to(z.dtype))], 1)
        return self.fc(self.drop(z))

    def forward(self, x: torch.Tensor, meta: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.features(x), meta)


@NETWORKS.register("meta_fusion")
@NETWORKS.register("efficientnet_meta")
def efficientnet_meta(in_channels: int = 3, num_classes: int = 7, **kwargs: object) -> nn.Module:
    """MONAI EfficientNet with the metadata-fusion head (see :class:`EfficientNetMeta`)."""
    return EfficientNetMeta(in_channels=in_channels, num_classes=num_classes, **kwargs)  # type: ignore[arg-type]
