"""U-Net (Ronneberger et al. 2015) as used by Schutera et al. 2019, in plain PyTorch.

Encoder-decoder with skip connections; each block is two 3x3 convolutions with
BatchNorm and ReLU; dropout in the bottleneck; one output channel. `forward` returns
logits (apply `torch.sigmoid`, or use `UNet.probabilities`); the losses take logits,
which keeps training numerically stable under mixed precision.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .architecture import UNetConfig

__all__ = ["ConvBlock", "UNet", "UNetConfig", "count_parameters", "fuse_batchnorm"]


def _conv3x3(cin: int, cout: int, separable: bool) -> list[nn.Module]:
    if separable and cin > 1:
        return [
            nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False),
            nn.Conv2d(cin, cout, 1, bias=False),
        ]
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False)]


class ConvBlock(nn.Sequential):
    """(N, cin, H, W) -> (N, cout, H, W): [conv3x3 -> BatchNorm -> ReLU] x 2."""

    def __init__(self, cin: int, cout: int, separable: bool = False) -> None:
        layers: list[nn.Module] = []
        for a, b in ((cin, cout), (cout, cout)):
            layers += [*_conv3x3(a, b, separable), nn.BatchNorm2d(b), nn.ReLU(inplace=True)]
        super().__init__(*layers)


class UNet(nn.Module):
    """U-Net: (N, in_channels, S, S) float -> (N, 1, S, S) logits."""

    def __init__(self, config: UNetConfig | None = None, **kwargs: Any) -> None:
        super().__init__()
        if config is None:
            config = UNetConfig(**kwargs)
        elif kwargs:
            raise TypeError("pass either a UNetConfig or keyword arguments, not both")
        if config.depth < 1 or config.base_filters < 1:
            raise ValueError(f"depth and base_filters must be >= 1, got {config}")
        self.config = config
        widths = [config.base_filters * 2**i for i in range(config.depth + 1)]
        sep = config.separable
        self.down = nn.ModuleList()
        cin = config.in_channels
        for w in widths[:-1]:
            self.down.append(ConvBlock(cin, w, sep))
            cin = w
        self.pool = nn.MaxPool2d(2)
        self.bottleneck = ConvBlock(widths[-2], widths[-1], sep)
        self.dropout = nn.Dropout2d(config.dropout) if config.dropout > 0 else nn.Identity()
        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        for w_low, w in zip(widths[:0:-1], widths[-2::-1], strict=True):
            self.up.append(nn.ConvTranspose2d(w_low, w, 2, stride=2))
            self.dec.append(ConvBlock(2 * w, w, sep))
        self.head = nn.Conv2d(widths[0], 1, 1)

    @property
    def multiple(self) -> int:
        """Input height and width must be multiples of this."""
        return 2**self.config.depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = self.pool(x)
        x = self.dropout(self.bottleneck(x))
        for up, dec, skip in zip(self.up, self.dec, reversed(skips), strict=True):
            x = dec(torch.cat([up(x), skip], dim=1))
        return self.head(x)

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, S, S) -> (N, 1, S, S) foreground probabilities in [0, 1]."""
        return torch.sigmoid(self.forward(x))


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def fuse_batchnorm(model: UNet) -> UNet:
    """Eval-mode copy of `model` with every BatchNorm folded into the conv before it.

    Same outputs (to float rounding) in eval mode, fewer passes over memory at inference.
    """
    import copy

    from torch.nn.utils.fusion import fuse_conv_bn_eval

    fused = copy.deepcopy(model).eval()
    for block in fused.modules():
        if not isinstance(block, ConvBlock):
            continue
        layers = list(block)
        out: list[nn.Module] = []
        for layer in layers:
            if isinstance(layer, nn.BatchNorm2d) and out and isinstance(out[-1], nn.Conv2d):
                out[-1] = fuse_conv_bn_eval(out[-1], layer)
            else:
                out.append(layer)
        for name in list(block._modules):
            del block._modules[name]
        for i, layer in enumerate(out):
            block.add_module(str(i), layer)
    return fused
