"""The recurrent convolutional network (RCNN) of Liang & Hu (2015), as paper 003 uses it for segmentation.

Paper 003 (Chen & Frey, "An unsupervised learning model for medical image segmentation", section 2):
"three recurrent and two regular convolutional layers. For each recurrent layer, T = 3 time-steps were
used [...]. Each convolutional layer is followed by batch normalization and a Parametric rectified
linear unit (PReLU). Notice that we continue to use PReLU in the final layer. Instead of [...] Softmax,
we classify any location with a value larger than 0 as foreground".

Layout (all convolutions keep the image size; nothing is pooled)::

    x (B, C, Y, X)
    -> regular 3x3 conv C -> W, BN, PReLU                        (regular layer 1)
    -> 3 x RecurrentConvLayer(W, T=3)                            (recurrent layers 1..3)
    -> regular 1x1 conv W -> 1, BN, PReLU                        (regular layer 2)
    -> f (B, 1, Y, X); f > 0 is foreground

A recurrent convolutional layer (RCL, Liang & Hu eq. 1-2) unfolds for T steps with the *same*
recurrent kernel: ``u = w_f * x`` (feed-forward input, computed once), ``h_0 = s_0(u)`` and
``h_t = s_t(u + w_r * h_{t-1})`` for ``t = 1..T``, where ``s_t`` is batch norm then PReLU. The
feed-forward path through one RCL is therefore ``T + 1 = 4`` convolutions deep. Each step has its own
batch norm and PReLU (the statistics of ``h_t`` change with ``t``); Liang & Hu used local response
normalisation, paper 003 batch norm.

The paper gives no widths: ``width=16`` and 3x3 kernels follow the authors' public code. With 16
channels the network has about 14.7 k parameters and a receptive field of 27 x 27 pixels (13 stacked
3x3 convolutions).

References
----------
.. [1] M. Liang and X. Hu, "Recurrent convolutional neural network for object recognition", CVPR 2015.
.. [2] J. Chen and E. C. Frey, "An unsupervised learning model for medical image segmentation"
   (paper 003 in ``shared/papers``), MIDL 2020 short paper.
"""

from __future__ import annotations

import torch
from torch import nn


class RecurrentConvLayer(nn.Module):
    """One RCL: a feed-forward convolution plus a shared recurrent convolution unfolded ``steps`` times.

    Parameters
    ----------
    in_channels, channels : int
        Input and output channels.
    steps : int
        Recurrent time steps ``T`` (paper 003: 3).
    kernel_size : int
        Odd side of both kernels (padding keeps the size).
    """

    def __init__(self, in_channels: int, channels: int, steps: int = 3, kernel_size: int = 3) -> None:
        super().__init__()
        if steps < 0:
            raise ValueError(f"steps must be >= 0, got {steps}")
        pad = kernel_size // 2
        self.feed_forward = nn.Conv2d(in_channels, channels, kernel_size, padding=pad)
        self.recurrent = nn.Conv2d(channels, channels, kernel_size, padding=pad, bias=False)
        self.norms = nn.ModuleList(nn.BatchNorm2d(channels) for _ in range(steps + 1))
        self.acts = nn.ModuleList(nn.PReLU(channels) for _ in range(steps + 1))
        self.steps = steps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in_channels, Y, X)`` -> ``(B, channels, Y, X)``."""
        u = self.feed_forward(x)
        h = self.acts[0](self.norms[0](u))
        for t in range(1, self.steps + 1):
            h = self.acts[t](self.norms[t](u + self.recurrent(h)))
        return h


class RCNN(nn.Module):
    """Fully convolutional RCNN: ``(B, C, Y, X)`` images -> ``(B, 1, Y, X)`` scores, ``> 0`` = foreground.

    Parameters
    ----------
    in_channels : int
        Image channels (1: one MR sequence).
    width : int
        Channels of every hidden layer (not given in paper 003; 16 as in the authors' code).
    n_recurrent : int
        Number of recurrent layers (paper 003: 3).
    steps : int
        Time steps per recurrent layer (paper 003: T = 3).
    kernel_size : int
        Side of the 3x3 kernels of the first regular layer and of the RCLs (the last layer is 1x1).
    """

    def __init__(self, in_channels: int = 1, width: int = 16, n_recurrent: int = 3, steps: int = 3,
                 kernel_size: int = 3) -> None:
        super().__init__()
        if in_channels < 1 or width < 1 or n_recurrent < 0:
            raise ValueError(f"need in_channels >= 1, width >= 1, n_recurrent >= 0; got "
                             f"{in_channels}, {width}, {n_recurrent}")
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, kernel_size, padding=kernel_size // 2),
            nn.BatchNorm2d(width),
            nn.PReLU(width),
        )
        self.rcls = nn.Sequential(
            *(RecurrentConvLayer(width, width, steps=steps, kernel_size=kernel_size) for _ in range(n_recurrent))
        )
        # paper 003: "we continue to use PReLU in the final layer" (after batch norm, like every layer)
        self.head = nn.Sequential(nn.Conv2d(width, 1, 1), nn.BatchNorm2d(1), nn.PReLU(1))
        self.in_channels = in_channels
        self.width = width
        self.n_recurrent = n_recurrent
        self.steps = steps
        self.kernel_size = kernel_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scores ``f`` of shape ``(B, 1, Y, X)`` for images ``x`` of shape ``(B, C, Y, X)``."""
        return self.head(self.rcls(self.stem(x)))

    def receptive_field(self) -> int:
        """Side in pixels of the square each output score sees."""
        k = self.kernel_size - 1
        return 1 + k * (1 + self.n_recurrent * (self.steps + 1))


@torch.no_grad()
def negate_output(net: RCNN) -> bool:
    """Change ``net`` in place so that the sign of its output flips: ``f_new = -f_old / a``.

    With ``z`` the last batch norm's output and ``a`` the last PReLU's slope, ``-PReLU_a(z) =
    a * PReLU_{1/a}(-z)`` for ``a > 0``; negating the batch norm's affine weight and bias gives ``-z``, and
    the slope becomes ``1 / a``. The foreground ``f_old < 0`` becomes ``f_new > 0`` exactly, on the
    PReLU's linear branch (what fine-tuning needs: through the old negative branch, foreground scores
    were scaled by ``a`` and vanished if ``a`` reached 0).

    Returns
    -------
    bool
        False (and ``net`` unchanged) when ``a <= 0``, where no such rewrite exists.
    """
    norm, act = net.head[1], net.head[2]
    a = act.weight
    if a.numel() != 1 or float(a) <= 0:
        return False
    norm.weight.neg_()
    norm.bias.neg_()
    act.weight.reciprocal_()
    return True


def count_parameters(net: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad)
