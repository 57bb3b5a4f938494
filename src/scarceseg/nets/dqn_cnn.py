"""The deep Q network of paper 000, Figure 5: four strided 3x3 convolutions with ELU, then dense layers.

The paper gives the layout (3x3 kernels, stride 2, padding that keeps "filter sizes unchanged", four
convolutional layers each followed by an ELU, fully connected layers ending in two Q values) but not the
channel widths or the hidden size. We use ``channels=(32, 64, 64, 64)`` and one hidden layer of 256 units;
both are arguments.

``head="flatten"`` is Figure 5: the last feature map is flattened into the dense layers, so every image
position has its own weights. ``head="pool"`` (not in the paper) feeds the dense layers the global mean
and max of each feature channel instead: position-invariant, far fewer weights, and it generalises
better from ten training images (measured on LGG slices, see :mod:`scarceseg.methods.udc_rl`).

References
----------
.. [1] Stember & Shalu, "Unsupervised deep clustering and reinforcement learning can accurately segment
   MRI brain tumors with very small training sets" (paper 000 in ``shared/papers``), section 0.4.2, Figure 5.
"""

from __future__ import annotations

import torch
from torch import nn

HEADS = ("flatten", "pool")


class DQNCNN(nn.Module):
    """Q network: ``(B, C, S, S)`` image states -> ``(B, n_actions)`` Q values.

    Parameters
    ----------
    in_channels : int
        Channels of the state image (3: the RGB overlay).
    input_size : int
        Side ``S`` of the square state image; fixes the size of the first dense layer.
    n_actions : int
        Number of Q values (2 in the paper: "fiducial point in M" / "in M^C").
    channels : tuple of int
        Output channels of the four stride-2 convolutions (not given in the paper).
    hidden : int
        Units of the hidden dense layer (not given in the paper).
    head : {"flatten", "pool"}
        How the feature map reaches the dense layers (see the module docstring).

    Notes
    -----
    ``uint8`` inputs are divided by 255 inside :meth:`forward` (states are stored as bytes in the replay
    memory to keep 1,800 rows small); float inputs are used as they are.
    """

    def __init__(self, in_channels: int = 3, input_size: int = 128, n_actions: int = 2,
                 channels: tuple[int, ...] = (32, 64, 64, 64), hidden: int = 256, head: str = "flatten"):
        super().__init__()
        if head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {head!r}")
        layers: list[nn.Module] = []
        prev, side = in_channels, input_size
        for width in channels:
            layers += [nn.Conv2d(prev, width, kernel_size=3, stride=2, padding=1), nn.ELU()]
            prev, side = width, (side + 1) // 2
        self.features = nn.Sequential(*layers)
        self.pool = head == "pool"
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(2 * prev if self.pool else prev * side * side, hidden),
            nn.ELU(),
            nn.Linear(hidden, n_actions),
        )
        self.in_channels = in_channels
        self.input_size = input_size
        self.n_actions = n_actions

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Q values ``(B, n_actions)`` of states ``x`` ``(B, C, S, S)`` (uint8 or float in [0, 1])."""
        if x.dtype == torch.uint8:
            x = x.float() / 255.0
        f = self.features(x)
        if self.pool:
            f = torch.cat([f.mean(dim=(2, 3)), f.amax(dim=(2, 3))], dim=1)
        return self.head(f)
