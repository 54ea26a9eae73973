"""Adam for the short fine-tunings (`adapt.finetune`), without `torch.optim`.

`torch.optim`'s optimisers import `torch._dynamo` on first use: about 1.3 s and 70 MB per
process on this project's 2-core machine, a seventh of what per-video self-adaptation costs
a single video. `Adam` here makes the same update as `torch.optim.Adam` with its defaults
(no weight decay, no AMSGrad; the same operations in the same order, so the same numbers:
`tests/test_adam.py`). Full training (`train.py`) keeps `torch.optim.Adam`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch

BETAS = (0.9, 0.999)  # torch.optim.Adam's defaults
EPS = 1e-8


class Adam:
    """Adam over `params` at learning rate `lr`; set a group's ``"lr"`` between steps to
    schedule it, as with torch.optim."""

    def __init__(self, params: Iterable[torch.nn.Parameter], lr: float,
                 betas: tuple[float, float] = BETAS, eps: float = EPS):
        self.param_groups: list[dict[str, Any]] = [
            {"params": [p for p in params if p.requires_grad], "lr": lr}]
        self.betas, self.eps = betas, eps
        self._steps = 0
        self._moments: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

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
        self._steps += 1
        correction1 = 1 - beta1 ** self._steps
        root_correction2 = math.sqrt(1 - beta2 ** self._steps)
        for group in self.param_groups:
            step_size = group["lr"] / correction1
            for p in group["params"]:
                if p.grad is None:
                    continue
                if id(p) not in self._moments:
                    self._moments[id(p)] = (torch.zeros_like(p), torch.zeros_like(p))
                mean, square = self._moments[id(p)]
                mean.lerp_(p.grad, 1 - beta1)
                square.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
                denominator = (square.sqrt() / root_correction2).add_(self.eps)
                p.addcdiv_(mean, denominator, value=-step_size)
