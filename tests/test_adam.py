"""The fine-tuning optimiser makes torch.optim.Adam's updates, number for number."""

import subprocess
import sys

import pytest
import torch

from medaka_heart.model.adam import Adam
from medaka_heart.model.architecture import UNetConfig
from medaka_heart.model.unet import UNet


def _trained(optimiser_class, lrs: list[float]) -> list[torch.Tensor]:
    """A tiny U-Net's parameters after one step per learning rate in `lrs` (seeded)."""
    torch.manual_seed(0)
    net = UNet(UNetConfig(depth=2, base_filters=4, in_channels=2))
    optimiser = optimiser_class(net.parameters(), lr=lrs[0])
    x = torch.rand(3, 2, 16, 16)
    y = (torch.rand(3, 1, 16, 16) > 0.5).float()
    for lr in lrs:
        for group in optimiser.param_groups:
            group["lr"] = lr
        optimiser.zero_grad(set_to_none=True)
        torch.nn.functional.binary_cross_entropy_with_logits(net(x), y).backward()
        optimiser.step()
    return [p.detach().clone() for p in net.parameters()]


@pytest.mark.parametrize("lrs", [[1e-3], [1e-4, 5e-4, 1e-3, 2e-4, 5e-5, 1e-3]])
def test_same_parameters_as_torch_adam(lrs):
    ours = _trained(Adam, lrs)
    theirs = _trained(torch.optim.Adam, lrs)
    start = _trained(Adam, [0.0])  # lr 0: the parameters as initialised
    assert any(not torch.equal(a, b) for a, b in zip(ours, start, strict=True))
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-7)


def test_zero_grad_keeps_zeros_when_asked():
    p = torch.nn.Parameter(torch.ones(2))
    optimiser = Adam([p], lr=0.1)
    p.grad = torch.ones(2)
    optimiser.zero_grad(set_to_none=False)
    assert torch.equal(p.grad, torch.zeros(2))
    optimiser.zero_grad()
    assert p.grad is None


def test_does_not_import_dynamo():
    code = ("import sys, torch\n"
            "from medaka_heart.model.adam import Adam\n"
            "p = torch.nn.Parameter(torch.ones(2))\n"
            "o = Adam([p], lr=0.1)\n"
            "p.sum().backward(); o.step()\n"
            "print('torch._dynamo' in sys.modules)\n")
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True)
    assert found.stdout.strip() == "False"
