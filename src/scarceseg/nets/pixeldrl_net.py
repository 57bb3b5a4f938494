"""PixelDRL-MG networks (paper 004 §"PixelDRL-MG architecture", Fig. 1).

* :class:`HalfVGG` — the first 23 layers of VGG16 (``conv1_1`` … ``conv4_3`` with their ReLUs and the three
  max-pools between the blocks, i.e. torchvision's ``vgg16().features[:23]``), with every 3x3 convolution
  dilated and the widths a parameter: the paper's "half the channel count" is ``(32, 64, 128, 256)``.
  Returns the source layers ``conv1_2`` (1/1), ``conv2_2`` (1/2), ``conv3_3`` (1/4) and ``conv4_3`` (1/8).
  (The paper writes 1/2 … 1/16; VGG16's first 23 layers hold three pools, so the deepest map is 1/8.)
* :class:`SelfAttention` — eq. 1, ``M_att = Softmax(W ⊙ f + f)`` with ``W`` a 1x1 convolution; the softmax is
  taken over the spatial positions of each channel (so every position's weight depends on the whole image:
  the module's "global information"). The paper does not say how ``M_att`` is applied; we re-weight the
  features SAGAN-style, ``f + g · (Y·X · M_att) ⊙ f`` with a learned scalar ``g`` that starts at 0, so the
  untrained module is the identity (``Y·X · M_att`` has mean 1).
* :class:`PixelDRLNet` — the source layers (``conv4_3`` after the SAM) are upsampled to input resolution,
  concatenated and fused by a 1x1 convolution; the current segmentation state ``f^(t-1)`` is appended as one
  more channel and fed to the policy head (``|A| = 2`` logits: 0 = set to background, 1 = keep) and the value
  head (one value), each a stack of dilated 3x3 convolutions ("DC in each layer") and a final 1x1.
  With ``state_in_trunk=True`` (the paper's wording: "the input image X^(t) at time step t is fed into the
  feature extraction module") ``f^(t-1)`` is also an input channel of the VGG, which must then run at every
  step; with ``False`` (our CPU configuration) the image features are computed once per episode and only the
  heads run per step.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

VGG_BLOCKS = (2, 2, 3, 3)  # convolutions per VGG16 block up to conv4_3
PAPER_WIDTHS = (32, 64, 128, 256)  # paper 004: VGG16 (64, 128, 256, 512) with "half the channel count"
BACKGROUND, KEEP = 0, 1  # action indices


class HalfVGG(nn.Module):
    """VGG16 ``conv1_1`` … ``conv4_3`` (23 layers: 10 convolutions, 10 ReLUs, 3 max-pools), dilated.

    Parameters
    ----------
    in_channels : int
    widths : tuple of 4 int
        Channels of the four blocks.
    dilations : tuple of 4 int
        Dilation of the 3x3 convolutions of each block (padding = dilation keeps the size).
    norm : bool
        Instance normalisation (affine) after every convolution, as in the repository's U-Net; VGG16 has none
        (the paper's network), but without it the narrow CPU network learns far more slowly.

    Forward
    -------
    x : Tensor (B, in_channels, Y, X); Y and X multiples of 8
    returns : list of 4 Tensors: conv1_2 (B, w1, Y, X), conv2_2 (B, w2, Y/2, X/2), conv3_3 (B, w3, Y/4, X/4),
        conv4_3 (B, w4, Y/8, X/8)
    """

    def __init__(self, in_channels: int, widths: tuple[int, ...] = PAPER_WIDTHS,
                 dilations: tuple[int, ...] = (2, 2, 2, 2), norm: bool = False) -> None:
        super().__init__()
        if len(widths) != 4 or len(dilations) != 4:
            raise ValueError(f"widths and dilations need 4 entries, got {widths}, {dilations}")
        layers: list[nn.Module] = []
        self.taps: list[int] = []
        c = in_channels
        for block, (n, w, d) in enumerate(zip(VGG_BLOCKS, widths, dilations, strict=True)):
            if block > 0:
                layers.append(nn.MaxPool2d(2))
            for _ in range(n):
                layers.append(nn.Conv2d(c, w, 3, padding=d, dilation=d))
                if norm:
                    layers.append(nn.InstanceNorm2d(w, affine=True))
                layers.append(nn.ReLU(inplace=True))
                c = w
            self.taps.append(len(layers) - 1)
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i in self.taps:
                out.append(x)
        return out


class SelfAttention(nn.Module):
    """Eq. 1: ``M_att = softmax_over_positions(W ⊙ f + f)``; returns ``f + g · (Y·X · M_att) ⊙ f`` (g starts at 0)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.w = nn.Conv2d(channels, channels, 1)
        self.gate = nn.Parameter(torch.zeros(1))

    def attention(self, f: torch.Tensor) -> torch.Tensor:
        """The attention map ``M_att`` of ``f`` (B, C, Y, X); sums to 1 over Y, X for each image and channel."""
        z = (self.w(f) + f).flatten(2)
        return torch.softmax(z, dim=-1).view_as(f)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        n = f.shape[-2] * f.shape[-1]
        return f + self.gate * (n * self.attention(f)) * f


def _dilated_stack(c_in: int, width: int, dilations: tuple[int, ...], c_out: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    c = c_in
    for d in dilations:
        layers += [nn.Conv2d(c, width, 3, padding=d, dilation=d), nn.ReLU(inplace=True)]
        c = width
    layers.append(nn.Conv2d(c, c_out, 1))
    return nn.Sequential(*layers)


class PixelDRLNet(nn.Module):
    """Feature extractor + SAM + fused multi-scale features, then policy and value heads at input resolution.

    Parameters
    ----------
    in_channels : int
        Image channels ``C``.
    widths, vgg_dilations : see :class:`HalfVGG`
    fuse_width : int
        Channels after the 1x1 fusion of the four source layers.
    head_width : int
        Channels of the head convolutions.
    head_dilations : tuple of int
        One dilated 3x3 convolution per entry, in each head.
    state_in_trunk : bool
        Feed ``f^(t-1)`` to the VGG too (the paper) or only to the heads (CPU configuration).
    n_actions : int
        ``|A|`` = 2 (background, keep).
    norm : bool
        Instance normalisation in the VGG (see :class:`HalfVGG`).

    Attributes
    ----------
    omega : nn.Conv2d
        Eq. 8's kernel ``omega`` (1 -> 1 channel, 3x3, no bias), initialised to the identity; used by
        :func:`scarceseg.rl.a2c.kernel_returns`, not by the forward pass.

    Forward
    -------
    ``encode(image, state)`` -> features (B, fuse_width, Y, X); ``act(features, state)`` -> (logits (B, 2, Y, X),
    value (B, 1, Y, X)); ``forward(image, state)`` does both. ``state`` is ``f^(t-1)``, (B, 1, Y, X) in {0, 1}.
    """

    def __init__(self, in_channels: int, widths: tuple[int, ...] = PAPER_WIDTHS,
                 vgg_dilations: tuple[int, ...] = (2, 2, 2, 2), fuse_width: int = 64, head_width: int = 64,
                 head_dilations: tuple[int, ...] = (2, 4, 1), state_in_trunk: bool = True,
                 n_actions: int = 2, norm: bool = False) -> None:
        super().__init__()
        self.state_in_trunk = state_in_trunk
        self.vgg = HalfVGG(in_channels + int(state_in_trunk), tuple(widths), tuple(vgg_dilations), norm)
        self.sam = SelfAttention(widths[3])
        self.fuse = nn.Sequential(nn.Conv2d(sum(widths), fuse_width, 1), nn.ReLU(inplace=True))
        self.policy = _dilated_stack(fuse_width + 1, head_width, tuple(head_dilations), n_actions)
        self.value = _dilated_stack(fuse_width + 1, head_width, tuple(head_dilations), 1)
        # eq. 8's omega: a learned 3x3 kernel mixing the neighbours' returns; starts as the identity
        self.omega = nn.Conv2d(1, 1, 3, padding=1, bias=False)
        with torch.no_grad():
            self.omega.weight.zero_()
            self.omega.weight[0, 0, 1, 1] = 1.0

    def encode(self, image: torch.Tensor, state: torch.Tensor | None = None) -> torch.Tensor:
        if self.state_in_trunk:
            if state is None:
                raise ValueError("this network takes the state f^(t-1) in its feature extractor: pass state")
            image = torch.cat([image, state], dim=1)
        c1, c2, c3, c4 = self.vgg(image)
        size = c1.shape[-2:]
        maps = [c1] + [F.interpolate(m, size=size, mode="bilinear", align_corners=False)
                       for m in (c2, c3, self.sam(c4))]
        return self.fuse(torch.cat(maps, dim=1))

    def act(self, features: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.cat([features, state], dim=1)
        return self.policy(h), self.value(h)

    def forward(self, image: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.act(self.encode(image, state), state)


def count_parameters(net: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


class PriorPixelDRLNet(nn.Module):
    """PixelDRL-MG's agents on a frozen image embedding (``features="prior"``): no feature extractor is trained.

    The embedding (LiteMedSAM's ``(B, 256, 64, 64)``, computed outside and frozen) is reduced by a 1x1
    convolution, upsampled bilinearly to the agents' grid, and concatenated with ``extra`` channels given at
    that grid (the normalised intensity) and the state ``f^(t-1)``; the policy and value heads are those of
    :class:`PixelDRLNet`. ``state_in_trunk`` is always False: the features are computed once per episode.

    Parameters
    ----------
    embed_channels : int
        Channels of the embedding (256).
    extra_channels : int
        Channels given at the agents' grid (1: intensity; 0: none).
    fuse_width, head_width, head_dilations, n_actions : see :class:`PixelDRLNet`

    Forward
    -------
    ``encode((embedding (B, E, h, w), extra (B, K, Y, X)))`` -> features (B, fuse_width + K, Y, X); ``act`` as
    :class:`PixelDRLNet`.
    """

    state_in_trunk = False

    def __init__(self, embed_channels: int = 256, extra_channels: int = 1, fuse_width: int = 32,
                 head_width: int = 32, head_dilations: tuple[int, ...] = (1, 2), n_actions: int = 2) -> None:
        super().__init__()
        self.reduce = nn.Sequential(nn.Conv2d(embed_channels, fuse_width, 1), nn.ReLU(inplace=True))
        c = fuse_width + extra_channels + 1
        self.policy = _dilated_stack(c, head_width, tuple(head_dilations), n_actions)
        self.value = _dilated_stack(c, head_width, tuple(head_dilations), 1)
        self.omega = nn.Conv2d(1, 1, 3, padding=1, bias=False)
        with torch.no_grad():
            self.omega.weight.zero_()
            self.omega.weight[0, 0, 1, 1] = 1.0

    def encode(self, inputs: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        embedding, extra = inputs
        f = F.interpolate(self.reduce(embedding), size=extra.shape[-2:], mode="bilinear", align_corners=False)
        return torch.cat([f, extra], dim=1)

    act = PixelDRLNet.act
