"""The 2D U-Net shared by the supervised baselines, built on :class:`monai.networks.nets.UNet`.

The "16-layer U-Net" of paper 000 §1.2 (Stember et al.) is not specified further than its depth, so
we pick MONAI settings whose *main path* has exactly 16 weighted convolution layers::

    channels = (16, 32, 64, 128, 256, 512), strides = (2, 2, 2, 2, 2), num_res_units = 1

* encoder: 5 strided 3x3 convolutions (16 -> 512 channels, 256 -> 8 pixels)          5 layers
* bottleneck: one 3x3 convolution at the lowest resolution                            1 layer
* decoder: per level a strided 3x3 transposed convolution (after concatenating the
  skip connection) followed by one 3x3 convolution; 5 levels                        10 layers
                                                                                      --------
                                                                                      16 layers

The residual units add 6 shortcut projections (3x3 strided in the encoder, 1x1 at the bottleneck)
that are not counted, as in the usual ResNet layer count. The last decoder convolution is the output
layer (``out_channels`` logits, no norm/activation). :func:`count_conv_layers` checks the count.
About 3.4 M parameters for one input channel; the input sides must be multiples of 32
(:data:`DIVISOR`); :func:`pad_to_multiple` pads.
"""

from __future__ import annotations

import numpy as np
import torch
from monai.networks.nets import UNet

CHANNELS = (16, 32, 64, 128, 256, 512)
STRIDES = (2, 2, 2, 2, 2)
NUM_RES_UNITS = 1
DIVISOR = int(np.prod(STRIDES))
"""Input height and width must be multiples of this (32)."""

VARIANTS = {
    # paper 000 §1.2 gives only "16-layer U-net": MONAI defaults otherwise (instance norm, PReLU, no dropout)
    "paper": {"dropout": 0.0},
    # same topology; light dropout as a guard against memorising 10 images
    "fair": {"dropout": 0.1},
}


def build_unet(
    in_channels: int,
    out_channels: int = 1,
    variant: str = "paper",
    channels: tuple[int, ...] = CHANNELS,
    strides: tuple[int, ...] = STRIDES,
    num_res_units: int = NUM_RES_UNITS,
    dropout: float | None = None,
) -> UNet:
    """Build the 2D U-Net.

    Parameters
    ----------
    in_channels : int
        Image channels ``C`` of the input ``(B, C, Y, X)``.
    out_channels : int
        Logit channels of the output ``(B, out_channels, Y, X)``; 1 for a binary mask.
    variant : {"paper", "fair"}
        ``"paper"``: no dropout. ``"fair"``: dropout 0.1 after every convolution. Same 16 layers.
    channels, strides, num_res_units
        MONAI's arguments; the defaults give the 16-layer network described in the module docstring.
    dropout : float, optional
        Overrides the variant's dropout.

    Returns
    -------
    monai.networks.nets.UNet
        Maps ``(B, in_channels, Y, X)`` to logits ``(B, out_channels, Y, X)``; ``Y`` and ``X`` must be
        multiples of ``prod(strides)``.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown U-Net variant {variant!r}; choose one of {sorted(VARIANTS)}")
    if in_channels < 1 or out_channels < 1:
        raise ValueError(f"in_channels and out_channels must be >= 1, got {in_channels}, {out_channels}")
    settings = dict(VARIANTS[variant])
    if dropout is not None:
        settings["dropout"] = dropout
    return UNet(
        spatial_dims=2,
        in_channels=in_channels,
        out_channels=out_channels,
        channels=tuple(channels),
        strides=tuple(strides),
        num_res_units=num_res_units,
        **settings,
    )


def count_conv_layers(net: torch.nn.Module, include_shortcuts: bool = False) -> int:
    """Number of ``Conv2d``/``ConvTranspose2d`` layers, without residual shortcut projections by default.

    Parameters
    ----------
    net : torch.nn.Module
    include_shortcuts : bool
        Also count the convolutions inside MONAI residual units' ``residual`` branch.

    Returns
    -------
    int
        16 for :func:`build_unet` with its defaults.
    """
    n = 0
    for name, module in net.named_modules():
        if not isinstance(module, torch.nn.Conv2d | torch.nn.ConvTranspose2d):
            continue
        if not include_shortcuts and name.split(".")[-1] == "residual":
            continue
        n += 1
    return n


def pad_to_multiple(array: np.ndarray, divisor: int = DIVISOR, value: float = 0.0) -> tuple[np.ndarray, tuple]:
    """Pad the last two axes at their end up to multiples of ``divisor``.

    Parameters
    ----------
    array : ndarray, shape (..., Y, X)
    divisor : int
    value : float
        Fill value.

    Returns
    -------
    padded : ndarray, shape (..., Y', X') with ``Y' = ceil(Y / divisor) * divisor`` (same for X)
    crop : tuple of slice
        Index that takes ``padded`` back to the original ``(..., Y, X)``: ``padded[crop]``.
    """
    y, x = array.shape[-2:]
    py, px = (-y) % divisor, (-x) % divisor
    crop = (Ellipsis, slice(0, y), slice(0, x))
    if py == 0 and px == 0:
        return array, crop
    pad = [(0, 0)] * (array.ndim - 2) + [(0, py), (0, px)]
    return np.pad(array, pad, mode="constant", constant_values=value), crop
