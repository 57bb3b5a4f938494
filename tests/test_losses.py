"""The shared soft Dice losses: same values as MONAI's, and why they stay hand-written.

MONAI's ``DiceLoss`` / ``DiceCELoss`` compute the same loss, but sum in another order, so their gradients differ
from ours in the last bits on 2D batches (about 1e-11 on a 4x1x32x32 batch, measured with MONAI 1.6.1), which
would move every seeded U-Net / PixelDRL figure of the README. The first test pins the equivalence at float tolerance.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from scarceseg.nets.losses import dice_bce, soft_dice

monai_losses = pytest.importorskip("monai.losses")

SHAPES = [(4, 1, 32, 32), (2, 1, 8, 12, 12)]


def _value_and_grad(loss_fn, logits: torch.Tensor) -> tuple[float, torch.Tensor]:
    x = logits.clone().requires_grad_(True)
    value = loss_fn(x)
    value.backward()
    return float(value.detach()), x.grad


def _batch(shape: tuple[int, ...], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=gen), (torch.rand(shape, generator=gen) > 0.6).float()


@pytest.mark.parametrize("shape", SHAPES)
def test_soft_dice_losses_equal_monai_at_float_tolerance(shape):
    logits, target = _batch(shape)
    monai_dice = monai_losses.DiceLoss(sigmoid=True, smooth_nr=1.0, smooth_dr=1.0)
    monai_dice_ce = monai_losses.DiceCELoss(sigmoid=True, smooth_nr=1.0, smooth_dr=1.0)
    pairs = [(lambda x: 1.0 - soft_dice(x, target), lambda x: monai_dice(x, target)),
             (lambda x: dice_bce(x, target), lambda x: monai_dice_ce(x, target))]
    for ours, theirs in pairs:
        v_ours, g_ours = _value_and_grad(ours, logits)
        v_theirs, g_theirs = _value_and_grad(theirs, logits)
        assert v_ours == pytest.approx(v_theirs, abs=1e-6)
        torch.testing.assert_close(g_ours, g_theirs, rtol=0, atol=1e-9)


def test_fewshot_decoder_loss_is_dice_bce_bit_for_bit():
    """The few-shot decoder's former inline loss and the shared dice_bce give identical gradients."""

    def inline(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:  # prior_fewshot._loss before sharing
        prob = torch.sigmoid(logits)
        inter = (prob * target).flatten(1).sum(1)
        denom = prob.flatten(1).sum(1) + target.flatten(1).sum(1)
        dice = (2 * inter + 1.0) / (denom + 1.0)
        return (1 - dice).mean() + F.binary_cross_entropy_with_logits(logits, target)

    logits, target = _batch((4, 1, 64, 64), seed=3)
    v_old, g_old = _value_and_grad(lambda x: inline(x, target), logits)
    v_new, g_new = _value_and_grad(lambda x: dice_bce(x, target), logits)
    assert torch.equal(g_old, g_new)
    assert v_new == pytest.approx(v_old, abs=1e-7)  # 1 - mean(d) vs mean(1 - d): the value may differ in the last bit
