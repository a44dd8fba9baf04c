"""MONAI segmentation networks under stable registry names.

Every factory takes simple keyword arguments (``spatial_dims``, ``in_channels``, ``out_channels``, ``channels``...)
and returns a plain ``torch.nn.Module`` mapping ``(B, C_in, *spatial)`` float32 to ``(B, C_out, *spatial)`` logits.
Persisted artefacts (``inference.json``) store the name and the arguments, never import paths.

Names:

* ``unet2d`` / ``unet3d`` -- MONAI residual ``UNet`` (strided convolutions; cheap at full resolution, the default
  of the shipped cine model);
* ``basicunet2d`` -- MONAI ``BasicUNet`` (two 3x3 convs per level at every resolution; more accurate, slower);
* ``dynunet2d`` / ``dynunet3d`` -- nnU-Net-style ``DynUNet``;
* ``segresnet3d`` -- ``SegResNet``.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from medai.registry import NETWORKS


def _unet(
    spatial_dims: int,
    in_channels: int = 1,
    out_channels: int = 4,
    channels: Sequence[int] = (16, 32, 64, 128, 256),
    strides: Sequence[int] | None = None,
    num_res_units: int = 2,
    norm: str = "batch",
    dropout: float = 0.0,
) -> nn.Module:
    from monai.networks.nets import UNet

    return UNet(
        spatial_dims=spatial_dims,
        in_channels=in_channels,
        out_channels=out_channels,
        channels=tuple(channels),
        strides=tuple(strides) if strides is not None else (2,) * (len(channels) - 1),
        num_res_units=num_res_units,
        norm=norm,
        dropout=dropout,
    )


@NETWORKS.register("unet2d")
def unet2d(spatial_dims: int = 2, **kwargs: object) -> nn.Module:
    """2-D residual U-Net (MONAI ``UNet``); see :func:`_unet` for the arguments."""
    if spatial_dims != 2:
        raise ValueError("unet2d is 2-D; use unet3d for volumes")
    return _unet(2, **kwargs)  # type: ignore[arg-type]


@NETWORKS.register("unet3d")
def unet3d(spatial_dims: int = 3, **kwargs: object) -> nn.Module:
    """3-D residual U-Net (MONAI ``UNet``)."""
    if spatial_dims != 3:
        raise ValueError("unet3d is 3-D; use unet2d for slices")
    return _unet(3, **kwargs)  # type: ignore[arg-type]


@NETWORKS.register("basicunet2d")
def basicunet2d(
    spatial_dims: int = 2,
    in_channels: int = 1,
    out_channels: int = 4,
    channels: Sequence[int] = (16, 32, 64, 128, 256, 16),
    norm: str = "instance",
    dropout: float = 0.0,
) -> nn.Module:
    """MONAI ``BasicUNet`` (6 feature sizes: 5 encoder levels + the final decoder level)."""
    from monai.networks.nets import BasicUNet

    return BasicUNet(
        spatial_dims=spatial_dims, in_channels=in_channels, out_channels=out_channels, features=tuple(channels),
        norm=norm, dropout=dropout,
    )


def _dynunet(
    spatial_dims: int, in_channels: int = 1, out_channels: int = 4, channels: Sequence[int] = (16, 32, 64, 128, 256),
    kernel_size: int = 3, norm: str = "instance", deep_supervision: bool = False,
) -> nn.Module:
    from monai.networks.nets import DynUNet

    n = len(channels)
    return DynUNet(
        spatial_dims=spatial_dims,
        in_channels=in_channels,
        out_channels=out_channels,
        kernel_size=[kernel_size] * n,
        strides=[1] + [2] * (n - 1),
        upsample_kernel_size=[2] * (n - 1),
        filters=list(channels),
        norm_name=norm,
        deep_supervision=deep_supervision,
    )


@NETWORKS.register("dynunet2d")
def dynunet2d(spatial_dims: int = 2, **kwargs: object) -> nn.Module:
    """2-D nnU-Net-style ``DynUNet`` (stride 1 at the top level, then 2)."""
    return _dynunet(2, **kwargs)  # type: ignore[arg-type]


@NETWORKS.register("dynunet3d")
def dynunet3d(spatial_dims: int = 3, **kwargs: object) -> nn.Module:
    """3-D ``DynUNet``."""
    return _dynunet(3, **kwargs)  # type: ignore[arg-type]


@NETWORKS.register("segresnet3d")
def segresnet3d(
    spatial_dims: int = 3, in_channels: int = 1, out_channels: int = 4, init_filters: int = 8,
    blocks_down: Sequence[int] = (1, 2, 2, 4), blocks_up: Sequence[int] = (1, 1, 1), dropout: float | None = None,
) -> nn.Module:
    """3-D ``SegResNet`` (Myronenko 2018)."""
    from monai.networks.nets import SegResNet

    return SegResNet(
        spatial_dims=spatial_dims, in_channels=in_channels, out_channels=out_channels, init_filters=init_filters,
        blocks_down=tuple(blocks_down), blocks_up=tuple(blocks_up), dropout_prob=dropout,
    )


def build_network(name: str, params: dict[str, object] | None = None) -> nn.Module:
    """Build a registered network by name (``NETWORKS.get(name)(**params)``)."""
    return NETWORKS.get(name)(**(params or {}))  # type: ignore[return-value]
