"""Training configuration: frozen dataclasses read from ``configs/train/*.toml``.

Sections: [model] (UNetConfig), [input], [optim], [augment] (AugmentConfig), [data] with
one or more [[data.sources]] tables. Unknown sections or keys are an error.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import build_section, parse_toml
from .augment import AugmentConfig
from .unet import UNetConfig

SOURCE_KINDS = ("phantom", "heartseg", "synth", "pairs", "toy")


@dataclass(frozen=True)
class InputConfig:
    """Network input and the two inference passes (see medaka_heart.segment).

    size : side of the fine pass input (a crop around the heart), px.
    coarse_size : side of the whole-frame coarse pass that finds the heart; 0 = single pass
        on whole frames at `size`.
    crop_scale : fine crop side / heart bounding-box side at inference; training crops draw
        from crop_scale_range with centre jitter crop_jitter (fraction of the side).
    p_coarse : share of training samples that are windows of whole-frame coarse views.
    off_target : share of fine samples centred away from the heart (OFF_TARGET_RANGE box
        sides off, e.g. on the atrium), so the fine pass learns to outline only the
        ventricle, wherever it sits in the crop (0 = every crop centred on the heart).
    recording_box : fine crops sized from the recording's largest heart box, as inference
        sizes one crop for a whole video (finite sources only; see `samples.ViewSpec`).
    """

    size: int = 128
    coarse_size: int = 256
    crop_scale: float = 2.2
    crop_scale_range: tuple[float, float] = (1.7, 2.8)
    crop_jitter: float = 0.15
    p_coarse: float = 0.3
    off_target: float = 0.0
    recording_box: bool = False
    low_percentile: float = 1.0
    high_percentile: float = 99.0


@dataclass(frozen=True)
class OptimConfig:
    """Adam optimisation, iteration budget, loss and seeds.

    lr_schedule : "constant" (the paper) or "cosine" (decay to lr * min_lr_fraction).
    threads : torch CPU threads (None: all usable cores).
    init : weights to start from, a model folder or checkpoint (e.g. the shipped default,
        to fine-tune it on your own annotations); its architecture must be [model]'s, or
        the same with fewer input channels (the new ones start at zero weight).
        None: random initialisation.
    """

    epochs: int = 20
    steps_per_epoch: int = 100
    batch_size: int = 8
    lr: float = 1e-3
    weight_decay: float = 0.0
    lr_schedule: str = "cosine"
    min_lr_fraction: float = 0.05
    warmup_steps: int = 50
    loss: str = "dice_bce"
    seed: int = 0
    threads: int | None = 2
    amp: bool = True  # mixed precision on CUDA only
    init: str | None = None


@dataclass(frozen=True)
class SourceConfig:
    """One training data source (see medaka_heart.model.data).

    kind : phantom | heartseg | synth | pairs | toy.
    path : folder for heartseg, synth and pairs.
    presets : phantom presets to mix (phantom only); weight : sampling weight of the source.
    subsets : HeartSeg folders used (train_images, test_images).
    every : keep every n-th frame of synth videos (neighbouring frames are near copies).
    """

    kind: str
    path: str | None = None
    presets: tuple[str, ...] = ()
    weight: float = 1.0
    subsets: tuple[str, ...] = ("train_images",)
    every: int = 1

    def __post_init__(self) -> None:
        if self.kind not in SOURCE_KINDS:
            raise ValueError(f"unknown data source kind {self.kind!r}; "
                             f"known: {', '.join(SOURCE_KINDS)}")
        if self.kind in ("heartseg", "synth", "pairs") and not self.path:
            raise ValueError(f"data source {self.kind!r} needs a path")
        if self.weight <= 0:
            raise ValueError(f"data source weight must be > 0, got {self.weight}")


@dataclass(frozen=True)
class DataConfig:
    """Data sources and validation.

    val_fraction : share of sequences of finite sources held out (by sequence, never by frame).
    pool_size : pairs generated (once, from the training seed) per generated source.
    frames_per_scene : frames taken from each generated phantom scene.
    val_generated : validation pairs drawn from each generated source, from `val_seed`.
    """

    sources: tuple[SourceConfig, ...] = (SourceConfig("toy"),)
    val_fraction: float = 0.2
    pool_size: int = 2000
    frames_per_scene: int = 8
    val_generated: int = 64
    val_seed: int = 1_000_003


@dataclass(frozen=True)
class TrainConfig:
    """Everything one training run needs."""

    model: UNetConfig = field(default_factory=UNetConfig)
    input: InputConfig = field(default_factory=InputConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    data: DataConfig = field(default_factory=DataConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (tuples as lists), for JSON provenance."""
        return _listify(dataclasses.asdict(self))


def _listify(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _listify(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_listify(v) for v in value]
    return value


def _section(cls: type, values: dict[str, Any], where: str) -> Any:
    return build_section(cls, values, where)


def train_config_from_dict(data: dict[str, Any]) -> TrainConfig:
    """Build a TrainConfig from a nested dict (as read from TOML)."""
    sections = {"model": UNetConfig, "input": InputConfig, "optim": OptimConfig,
                "augment": AugmentConfig}
    unknown = set(data) - set(sections) - {"data"}
    if unknown:
        raise ValueError(f"unknown section(s): {', '.join(sorted(unknown))}")
    kwargs: dict[str, Any] = {k: _section(cls, data[k], k)
                              for k, cls in sections.items() if k in data}
    if "data" in data:
        values = dict(data["data"])
        sources = values.pop("sources", None)
        if sources is not None:
            if not sources:
                raise ValueError("[data] sources is empty")
            values["sources"] = [_section(SourceConfig, s, "data.sources") for s in sources]
        kwargs["data"] = _section(DataConfig, values, "data")
    return TrainConfig(**kwargs)


def load_train_config(path: str | Path | None = None) -> TrainConfig:
    """Defaults overridden by the TOML file at `path`; errors name the file."""
    if path is None:
        return TrainConfig()
    return parse_toml(path, train_config_from_dict, what="training config")


def replace_in(config: TrainConfig, section: str, **values: Any) -> TrainConfig:
    """Copy of `config` with keys of one section replaced; None values are ignored."""
    values = {k: v for k, v in values.items() if v is not None}
    if not values:
        return config
    return dataclasses.replace(config, **{section: dataclasses.replace(getattr(config, section),
                                                                       **values)})
