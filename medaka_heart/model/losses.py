"""Segmentation losses on logits.

All take `logits` and `target` of the same shape (N, 1, H, W); target is 0/1 float.
Each returns a scalar tensor, averaged over the batch.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F


def dice_loss(logits: torch.Tensor, target: torch.Tensor, *, smooth: float = 1.0,
              per_image: bool = False) -> torch.Tensor:
    """1 - soft Dice (2|PT| + smooth) / (|P| + |T| + smooth).

    By default over the whole batch at once, as the paper's Keras code flattens it; this keeps
    a useful gradient when some images have no or tiny foreground. `per_image=True` averages
    the Dice of each image instead. `smooth=1` (the paper's choice) makes an empty prediction
    of an empty mask a perfect score.
    """
    dims = 1 if per_image else 0
    prob = torch.sigmoid(logits.float()).flatten(dims)
    target = target.float().flatten(dims)
    inter = (prob * target).sum(-1)
    dice = (2 * inter + smooth) / (prob.sum(-1) + target.sum(-1) + smooth)
    return 1.0 - dice.mean()


def bce_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy."""
    return F.binary_cross_entropy_with_logits(logits.float(), target.float())


def weighted_bce_loss(
    logits: torch.Tensor, target: torch.Tensor, *, pos_weight: float | None = None
) -> torch.Tensor:
    """BCE with foreground pixels weighted by `pos_weight`.

    `pos_weight=None` balances the classes of the batch: weight = background / foreground pixels.
    """
    target = target.float()
    if pos_weight is None:
        pos = target.sum()
        pos_weight = float(((target.numel() - pos) / pos.clamp(min=1.0)).clamp(1.0, 100.0))
    weight = torch.tensor(pos_weight, dtype=torch.float32, device=logits.device)
    return F.binary_cross_entropy_with_logits(logits.float(), target, pos_weight=weight)


def tversky_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    alpha: float = 0.5,
    beta: float = 0.5,
    smooth: float = 1.0,
) -> torch.Tensor:
    """1 - Tversky index TP / (TP + alpha FP + beta FN) over the batch; 0.5, 0.5 is Dice."""
    prob = torch.sigmoid(logits.float()).flatten()
    target = target.float().flatten()
    tp = (prob * target).sum()
    fp = (prob * (1 - target)).sum()
    fn = ((1 - prob) * target).sum()
    index = (tp + smooth) / (tp + alpha * fp + beta * fn + smooth)
    return 1.0 - index.mean()


def dice_bce_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Dice loss + BCE: Dice for overlap, BCE for well-calibrated probabilities."""
    return dice_loss(logits, target) + bce_loss(logits, target)


LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "dice": dice_loss,
    "bce": bce_loss,
    "weighted_bce": weighted_bce_loss,
    "tversky": tversky_loss,
    "dice_bce": dice_bce_loss,
}


def get_loss(name: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Loss function by name (one of LOSSES)."""
    try:
        return LOSSES[name]
    except KeyError:
        raise ValueError(f"unknown loss {name!r}; known: {', '.join(LOSSES)}") from None
