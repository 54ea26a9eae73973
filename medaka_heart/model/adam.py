"""Adam for the short fine-tunings (`adapt.finetune`), without `torch.optim`.

`torch.optim`'s optimisers import `torch._dynamo` on first use: about 1.3 s and 70 MB per
process on this project's 2-core machine, a seventh of what per-video self-adaptation costs
a single video. `Adam` here makes the update of `torch.optim.Adam` with its defaults (no
weight decay, no AMSGrad) on the CPU: the same operations in the same order, so the same
numbers (`tests/test_adam.py`); on a GPU, where torch updates all parameters at once, the
same arithmetic up to rounding. Full training (`train.py`) keeps `torch.optim.Adam`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

BETAS = (0.9, 0.999)  # torch.optim.Adam's defaults
EPS = 1e-8


class Adam:
    """Adam over `params` at learning rate `lr`; set a group's ``"lr"`` between steps to
    schedule it, as with torch.optim. Each parameter counts its own steps, from its first
    gradient on."""

    def __init__(self, params: Iterable[torch.nn.Parameter], lr: float, *,
                 betas: tuple[float, float] = BETAS, eps: float = EPS):
        self.param_groups: list[dict[str, Any]] = [
            {"params": [p for p in params if p.requires_grad], "lr": lr}]
        self.betas, self.eps = betas, eps
        self._state: dict[torch.Tensor, tuple[list[int], torch.Tensor, torch.Tensor]] = {}

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the parameters' gradients (None, or zeros with `set_to_none` False)."""
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad.zero_()

    @torch.no_grad()
    def step(self) -> None:
        """One update of every parameter that has a gradient."""
        beta1, beta2 = self.betas
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p not in self._state:
                    self._state[p] = ([0], torch.zeros_like(p), torch.zeros_like(p))
                count, mean, square = self._state[p]
                count[0] += 1
                mean.lerp_(p.grad, 1 - beta1)
                square.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
                step_size = group["lr"] / (1 - beta1 ** count[0])
                root_correction2 = (1 - beta2 ** count[0]) ** 0.5  # as torch computes it
                denominator = (square.sqrt() / root_correction2).add_(self.eps)
                p.addcdiv_(mean, denominator, value=-step_size)
