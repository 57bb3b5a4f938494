"""Refinement networks: a dilated fully-convolutional trunk with policy / value (or segmentation) heads.

Paper 002 §3.3 / Figure 3 adapts DeepIGeoS's R-Net (Wang et al. 2019): three convolutional blocks shared
by two heads (policy, value) of three blocks each, all at full resolution, using dilated convolutions
for context instead of pooling. Neither paper's exact widths fit a CPU budget (R-Net uses 64 features
per layer), so the width is a parameter; the layout is:

* trunk: ``conv(d) -> ReLU`` for dilations ``trunk_dilations`` (default 1, 2, 4),
* each head: ``conv(d) -> ReLU`` for ``head_dilations`` (default 8, 4, 1), then a 1x1 convolution to
  its outputs.

:class:`RefineNet` with ``value_head=True`` is the IteR-MRL actor-critic (``K`` action logits and a
value per voxel); with ``value_head=False`` and one output it is the supervised refinement CNN of the
R-Net-style and InterCNN baselines (one logit per voxel), so all three methods share one backbone, as
paper 002 does "for fair comparison". Works in 2D and 3D (``dims``). No normalisation layers: mini-batches
of one image are the paper's setting, where batch statistics are meaningless.
"""

from __future__ import annotations

import torch
from torch import nn


def _conv(dims: int):
    return nn.Conv2d if dims == 2 else nn.Conv3d


def _block(dims: int, c_in: int, c_out: int, dilation: int) -> nn.Sequential:
    return nn.Sequential(_conv(dims)(c_in, c_out, 3, padding=dilation, dilation=dilation), nn.ReLU(inplace=True))


def _stack(dims: int, c_in: int, width: int, dilations: tuple[int, ...]) -> nn.Sequential:
    layers, c = [], c_in
    for d in dilations:
        layers.append(_block(dims, c, width, d))
        c = width
    return nn.Sequential(*layers)


class RefineNet(nn.Module):
    """Shared dilated trunk + a main head (+ an optional value head).

    Parameters
    ----------
    in_channels : int
        State channels (IteR-MRL: image, probability, 2 hint maps = 4).
    out_channels : int
        Outputs of the main head (IteR-MRL: the number of actions; supervised refiners: 1 logit).
    value_head : bool
        Add the critic head (one value per voxel).
    width : int
        Features per convolution.
    dims : {2, 3}
    trunk_dilations, head_dilations : tuple of int

    Forward
    -------
    x : Tensor, shape (B, in_channels, *spatial)
        ``spatial`` is (Y, X) or (Z, Y, X), any size.
    with_value : bool
        With a value head: also compute the values (False skips the critic, e.g. at inference).
    returns : Tensor (B, out_channels, *spatial), or a tuple with the values (B, 1, *spatial) (or None).
    """

    def __init__(
        self,
        in_channels: int = 4,
        out_channels: int = 6,
        value_head: bool = True,
        width: int = 16,
        dims: int = 2,
        trunk_dilations: tuple[int, ...] = (1, 2, 4),
        head_dilations: tuple[int, ...] = (8, 4, 1),
    ) -> None:
        super().__init__()
        if dims not in (2, 3):
            raise ValueError(f"dims must be 2 or 3, got {dims}")
        self.dims = dims
        conv = _conv(dims)
        self.trunk = _stack(dims, in_channels, width, tuple(trunk_dilations))
        self.head = nn.Sequential(_stack(dims, width, width, tuple(head_dilations)), conv(width, out_channels, 1))
        self.value = (
            nn.Sequential(_stack(dims, width, width, tuple(head_dilations)), conv(width, 1, 1)) if value_head else None
        )

    def forward(self, x: torch.Tensor, with_value: bool = True):
        h = self.trunk(x)
        out = self.head(h)
        if self.value is None:
            return out
        return out, (self.value(h) if with_value else None)


def net_kwargs(net: RefineNet) -> dict:
    """The constructor arguments of a built network (stored next to its weights)."""
    first = net.trunk[0][0]
    return {
        "in_channels": first.in_channels,
        "out_channels": net.head[-1].out_channels,
        "value_head": net.value is not None,
        "width": first.out_channels,
        "dims": net.dims,
        "trunk_dilations": [b[0].dilation[0] for b in net.trunk],
        "head_dilations": [b[0].dilation[0] for b in net.head[0]],
    }
