"""The segmentation losses the supervised methods share: soft Dice on probabilities, and the U-Net recipes.

Written once here (the U-Net baseline, PixelDRL-MG's warm start, the PixelDRL harness baselines and the R-Net /
InterCNN refiners each had a copy). MONAI's ``DiceLoss`` / ``DiceCELoss`` give the same values but not the same
gradients to the last bit (about 3e-11 apart on a 4x32x32 batch, summing order), which would move every seeded
U-Net figure of the README; these keep them bit-identical.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

LOSSES = ("neg_dice", "dice_bce")


def soft_dice_prob(prob: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """Mean over the batch of the per-item soft Dice of probabilities and targets, both ``(B, N)``."""
    inter = (prob * target).sum(1)
    return ((2 * inter + smooth) / (prob.sum(1) + target.sum(1) + smooth)).mean()


def soft_dice(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """Mean over the batch of the per-image soft Dice of ``sigmoid(logits)`` and ``target``.

    Parameters
    ----------
    logits, target : Tensor, shape (B, 1, Y, X) (or (B, 1, Z, Y, X))

    Returns
    -------
    Tensor, scalar in (0, 1]
    """
    return soft_dice_prob(torch.sigmoid(logits).flatten(1), target.flatten(1), smooth)


def dice_bce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``1 - soft Dice + binary cross entropy`` of one-logit outputs."""
    return 1.0 - soft_dice(logits, target) + F.binary_cross_entropy_with_logits(logits, target)


def compute_loss(name: str, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``"neg_dice"``: ``-soft_dice`` (paper 000 §1.2); ``"dice_bce"``: ``1 - soft_dice + BCE``."""
    if name == "neg_dice":
        return -soft_dice(logits, target)
    if name == "dice_bce":
        return dice_bce(logits, target)
    raise ValueError(f"unknown loss {name!r}; choose one of {LOSSES}")
