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
        assert torch.equal(a, b)


def _long_run(optimiser_class, steps: int) -> list[torch.Tensor]:
    """Two parameters over `steps` steps; the second gets its first gradient at step 5."""
    torch.manual_seed(1)
    early, late = torch.nn.Parameter(torch.randn(6)), torch.nn.Parameter(torch.randn(4))
    optimiser = optimiser_class([early, late], lr=1e-2)
    for step in range(steps):
        optimiser.zero_grad(set_to_none=True)
        loss = (early ** 2).sum() + torch.sin(early).sum()
        if step >= 5:
            loss = loss + (late ** 3).abs().sum()
        loss.backward()
        optimiser.step()
    return [early.detach().clone(), late.detach().clone()]


def test_same_parameters_over_many_steps_and_a_late_first_gradient():
    """Over many steps, with a parameter whose steps start late (torch counts them per
    parameter: one count for all fails here)."""
    for a, b in zip(_long_run(Adam, 1300), _long_run(torch.optim.Adam, 1300), strict=True):
        assert torch.equal(a, b)


def test_zero_grad_keeps_zeros_when_asked():
    p = torch.nn.Parameter(torch.ones(2))
    optimiser = Adam([p], lr=0.1)
    p.grad = torch.ones(2)
    optimiser.zero_grad(set_to_none=False)
    assert torch.equal(p.grad, torch.zeros(2))
    optimiser.zero_grad()
    assert p.grad is None


def test_fine_tuning_does_not_import_dynamo(tmp_path):
    """`adapt.finetune` (self-adaptation's training) runs without torch._dynamo."""
    code = f"""
import sys
import numpy as np
import torch
from medaka_heart.model.checkpoint import ModelInfo, save_model_folder
from medaka_heart.model.unet import UNet, UNetConfig
from medaka_heart.model.self_adapt import adapt_to_frame
arch = UNetConfig(depth=2, base_filters=4, in_channels=4)
folder = save_model_folder(r"{tmp_path / 'm'}", UNet(arch).eval(),
                           ModelInfo(arch, input_size=32, coarse_size=64, crop_scale=2.2))
image = np.random.default_rng(0).integers(0, 255, (64, 64)).astype(np.uint8)
mask = np.zeros((64, 64), bool)
mask[20:40, 22:38] = True
info = ModelInfo(arch, input_size=32, coarse_size=64, crop_scale=2.2)
adapt_to_frame(folder, info, image, mask, steps=2, threads=1)
print("torch._dynamo" in sys.modules)
"""
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True)
    assert found.stdout.strip().splitlines()[-1] == "False"
