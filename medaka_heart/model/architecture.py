"""The U-Net's architecture as plain values (no torch: a model folder is read without it)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class UNetConfig:
    """Architecture of a U-Net; `to_dict` is what checkpoints store.

    depth : number of 2x down-samplings (input side must be divisible by 2**depth).
    base_filters : channels of the first block; doubled at each level.
    separable : depthwise-separable 3x3 convolutions (cheaper) instead of dense ones.
    dropout : dropout probability in the bottleneck.
    in_channels : 1 for grayscale input; 2 for grayscale plus a constant "pass" plane
        (0 = coarse whole-frame view, 1 = fine crop around the heart), which tells the
        network at which scale it looks (see medaka_heart.segment); 3 adds a motion plane
        for the coarse pass (`samples.motion_image`; zeros in the fine pass).
    """

    depth: int = 4
    base_filters: int = 64
    separable: bool = False
    dropout: float = 0.5
    in_channels: int = 1

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UNetConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown U-Net config key(s): {', '.join(sorted(unknown))}")
        return cls(**data)
