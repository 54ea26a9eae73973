"""What a model folder says about its model, read without torch: `ModelInfo`.

A model folder's ``config.json`` (with ``thresholds.json``'s tuned threshold) describes the
network (architecture, input sizes, crop scale, normalisation, threshold); `folder_info` reads
it so that a run on ONNX Runtime never imports torch. `model.checkpoint` reads the weights.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import __version__
from .architecture import UNetConfig
from .folder import CONFIG_FILE, THRESHOLDS_FILE

# what config.json must say for `folder_info` to need nothing from model.pt
FOLDER_KEYS = {"architecture", "input_size", "coarse_size", "crop_scale", "low_percentile",
               "high_percentile"}


@dataclass(frozen=True)
class ModelInfo:
    """What a checkpoint says about its model: architecture, expected input, provenance.

    input_size : fine-pass input side in pixels.
    coarse_size : whole-frame coarse pass side (finds the heart); 0 = one pass on whole frames
        resized to input_size^2.
    crop_scale : fine crop side / bounding-box side of the heart found by the coarse pass.
    low_percentile, high_percentile : per-frame intensity normalisation (see preprocess).
    threshold : probability threshold tuned for this model.
    training, metrics : free plain-value descriptions of the training data and scores.
    """

    architecture: UNetConfig
    input_size: int = 256
    coarse_size: int = 0
    crop_scale: float = 2.2
    low_percentile: float = 1.0
    high_percentile: float = 99.0
    threshold: float = 0.5
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    package_version: str = __version__

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable metadata."""
        return {
            "architecture": self.architecture.to_dict(),
            "input_size": int(self.input_size),
            "coarse_size": int(self.coarse_size),
            "crop_scale": float(self.crop_scale),
            "low_percentile": float(self.low_percentile),
            "high_percentile": float(self.high_percentile),
            "threshold": float(self.threshold),
            "training": plain_values(self.training, "training"),
            "metrics": plain_values(self.metrics, "metrics"),
            "package_version": str(self.package_version),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelInfo:
        data = dict(data)
        if "architecture" not in data:
            raise ValueError("metadata has no 'architecture'")
        arch = UNetConfig.from_dict(data.pop("architecture"))
        known = {"input_size", "coarse_size", "crop_scale", "low_percentile", "high_percentile",
                 "threshold", "training", "metrics", "package_version"}
        return cls(architecture=arch, **{k: v for k, v in data.items() if k in known})


def plain_values(value: Any, where: str) -> Any:
    """Check that `value` is made of JSON-like plain values only; return it."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (list, tuple)):
        return [plain_values(v, where) for v in value]
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise TypeError(f"{where}: metadata keys must be strings")
        return {k: plain_values(v, f"{where}.{k}") for k, v in value.items()}
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:  # numpy / torch scalar
        return plain_values(value.item(), where)
    raise TypeError(f"{where}: metadata must hold plain values, not {type(value).__name__}")


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return data



def apply_thresholds(meta: dict[str, Any], folder: Path) -> dict[str, Any]:
    """`meta` with the threshold of the folder's thresholds.json, if it has one."""
    thresholds = folder / THRESHOLDS_FILE
    if thresholds.is_file():
        tuned = read_json(thresholds)
        default: float = meta.get("threshold", 0.5)
        meta = {**meta, "threshold": float(tuned.get("prob", default))}
    return meta


def folder_info(folder: str | Path) -> ModelInfo | None:
    """The ModelInfo of a model folder from its config.json (and thresholds.json) alone; None
    where there is no config.json or it lacks one of FOLDER_KEYS (then only the checkpoint
    inside model.pt says it). A config.json that is there but wrong is a ValueError."""
    folder = Path(folder)
    config = folder / CONFIG_FILE
    if not config.is_file():
        return None
    meta = read_json(config)
    if not FOLDER_KEYS <= set(meta):
        return None
    try:
        return ModelInfo.from_dict(apply_thresholds(meta, folder))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{folder}: bad model metadata ({exc})") from None
