"""The CNN of paper 001, Figure 2: three convolutions, one max pooling, two dense layers, L2 normalisation.

Paper layout (section 2.4): input ``27^3`` patch -> conv ``5^3`` (50) -> BN -> ReLU -> max pool ``2^3``
stride 2 -> conv ``5^3`` (50) -> BN -> ReLU -> conv ``5^3`` (50) -> BN -> ReLU -> dense 1350 -> dense 160
-> L2 normalisation. All convolutions have stride 1 and no padding, so the spatial side goes
27 -> 23 -> 11 -> 7 -> 3 and the flattened map has ``50 * 3^3 = 1350`` values.

The paper does not say whether the dense layers have a nonlinearity between them; we put a ReLU after the
first one (a dense-dense pair without one is a single linear map). Patch side, kernel, widths and the two
dense sizes are arguments so that a CPU configuration can shrink them; ``ndim=2`` gives the same network
with 2D layers, for slices.

References
----------
.. [1] Moriya et al., "Unsupervised segmentation of 3D medical images based on clustering and deep
   representation learning", SPIE Medical Imaging 2018 (paper 001 in ``shared/papers``), Figure 2.
.. [2] J. Yang, D. Parikh, D. Batra, "Joint unsupervised learning of deep representations and image
   clusters", CVPR 2016.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def feature_side(patch: int, kernel: int) -> int:
    """Side of the last convolution's output for a ``patch``-sided input (conv, pool 2, conv, conv).

    Raises
    ------
    ValueError
        When the patch is too small for the three convolutions and the pooling.
    """
    side = patch - kernel + 1
    side = side // 2
    side = side - 2 * (kernel - 1)
    if side < 1:
        raise ValueError(f"patch side {patch} is too small for three {kernel}-wide convolutions and a 2x pooling")
    return side


class JuleCNN(nn.Module):
    """Patch encoder: ``(B, 1, w, w, w)`` (or ``(B, 1, w, w)`` for ``ndim=2``) -> ``(B, out_features)``.

    Parameters
    ----------
    patch : int
        Patch side ``w`` (paper: 27).
    kernel : int
        Convolution kernel side (paper: 5).
    channels : int
        Kernels per convolution (paper: 50).
    hidden : int
        Units of the first dense layer (paper: 1350).
    out_features : int
        Units of the second dense layer, the representation size (paper: 160).
    ndim : {2, 3}
        3D (paper) or 2D layers.

    Notes
    -----
    The output rows have unit L2 norm.
    """

    def __init__(self, patch: int = 27, kernel: int = 5, channels: int = 50, hidden: int = 1350,
                 out_features: int = 160, ndim: int = 3):
        super().__init__()
        if ndim not in (2, 3):
            raise ValueError(f"ndim must be 2 or 3, got {ndim}")
        conv, norm, pool = (nn.Conv3d, nn.BatchNorm3d, nn.MaxPool3d) if ndim == 3 else \
            (nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d)
        self.patch, self.kernel, self.channels = int(patch), int(kernel), int(channels)
        self.hidden, self.out_features, self.ndim = int(hidden), int(out_features), int(ndim)
        side = feature_side(self.patch, self.kernel)
        self.features = nn.Sequential(
            conv(1, channels, kernel), norm(channels), nn.ReLU(inplace=True),
            pool(2, stride=2),
            conv(channels, channels, kernel), norm(channels), nn.ReLU(inplace=True),
            conv(channels, channels, kernel), norm(channels), nn.ReLU(inplace=True),
        )
        self.fc1 = nn.Linear(channels * side ** ndim, hidden)
        self.fc2 = nn.Linear(hidden, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != self.ndim + 2 or x.shape[1] != 1 or any(s != self.patch for s in x.shape[2:]):
            raise ValueError(f"expected (B, 1{', w' * self.ndim}) patches with w={self.patch}, got {tuple(x.shape)}")
        h = self.features(x).flatten(1)
        h = F.relu(self.fc1(h), inplace=True)
        return F.normalize(self.fc2(h), dim=1)

    def config(self) -> dict:
        """Constructor arguments, for saving next to the weights."""
        return {"patch": self.patch, "kernel": self.kernel, "channels": self.channels, "hidden": self.hidden,
                "out_features": self.out_features, "ndim": self.ndim}
