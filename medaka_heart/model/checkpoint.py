"""Checkpoints and model folders: tensors and plain metadata only, loaded with weights_only.

A checkpoint file (``*.pt``) is a dict::

    {"format": "medaka_heart.unet", "format_version": 1,
     "state_dict": {name: Tensor}, "metadata": {...plain JSON-like values...},
     "train_state": {...} (optional: optimizer state, epoch, step, for resuming)}

A model folder (stardist style) holds ``model.pt`` (a checkpoint, or a bare state dict)
next to ``config.json`` (the metadata, which takes precedence) and optionally
``thresholds.json`` (``{"prob": 0.5}``) and a ``localiser/`` model folder (a second network
for the segmenter's coarse, heart-finding pass). Anything else, and any file holding a
pickled Python object, is refused with a one-line ValueError naming the file.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard

import torch

from ..io.atomic import write_bytes_atomic, write_text_atomic
from .folder import CONFIG_FILE, MODEL_FILE
from .info import ModelInfo, apply_thresholds, read_json
from .unet import UNet

__all__ = ["Checkpoint", "ModelInfo", "load_checkpoint", "save_checkpoint", "save_model_folder"]

FORMAT = "medaka_heart.unet"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint: weights, metadata, and (if saved) the training state."""

    state_dict: dict[str, torch.Tensor]
    info: ModelInfo
    train_state: dict[str, Any] | None = None

    def build_model(self) -> UNet:
        """A UNet with these weights, in eval mode, on the CPU."""
        model = UNet(self.info.architecture)
        model.load_state_dict(self.state_dict)
        return model.eval()


def save_checkpoint(
    path: str | Path,
    model: UNet,
    info: ModelInfo,
    *,
    train_state: dict[str, Any] | None = None,
) -> Path:
    """Write `model`'s weights and `info` to `path` atomically; returns the path.

    `train_state` (optional) may hold an optimizer state dict and plain counters.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "metadata": info.to_dict(),
    }
    if train_state is not None:
        payload["train_state"] = train_state
    buffer = io.BytesIO()  # a fixed archive name inside the zip: same content, same bytes
    torch.save(payload, buffer)
    return write_bytes_atomic(path, buffer.getvalue())


def _torch_load(path: Path) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError, ...
        text = str(exc)
        if "Unsupported global" in text:  # a real pickle that would run code on loading
            raise ValueError(f"{path}: not a medaka_heart checkpoint: it contains a pickled "
                             "Python object (only tensors and plain metadata are loaded)"
                             ) from None
        raise ValueError(f"{path}: not a model checkpoint (torch cannot read it: "
                         f"{type(exc).__name__})") from None


def _is_state_dict(obj: Any) -> TypeGuard[dict[str, torch.Tensor]]:
    return (isinstance(obj, dict) and len(obj) > 0
            and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()))


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint file or a model folder (see module docstring)."""
    path = Path(path)
    if path.is_dir():
        return _load_folder(path)
    payload = _torch_load(path)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path}: not a medaka_heart checkpoint (no '{FORMAT}' format tag)")
    if payload.get("format_version", 0) > FORMAT_VERSION:
        raise ValueError(f"{path}: checkpoint format {payload['format_version']} is newer "
                         f"than this medaka_heart understands ({FORMAT_VERSION})")
    state = payload.get("state_dict")
    if not _is_state_dict(state):
        raise ValueError(f"{path}: checkpoint has no tensor state_dict")
    try:
        info = ModelInfo.from_dict(payload.get("metadata") or {})
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: bad checkpoint metadata ({exc})") from None
    return Checkpoint(state_dict=state, info=info, train_state=payload.get("train_state"))


def _load_folder(folder: Path) -> Checkpoint:
    weights, config = folder / MODEL_FILE, folder / CONFIG_FILE
    if not weights.is_file():
        raise FileNotFoundError(f"{folder}: model folder has no {MODEL_FILE}")
    payload = _torch_load(weights)
    train_state = None
    meta: dict[str, Any]
    if isinstance(payload, dict) and payload.get("format") == FORMAT:
        state, meta = payload.get("state_dict"), dict(payload.get("metadata") or {})
        train_state = payload.get("train_state")
    else:
        state, meta = payload, {}
    if not _is_state_dict(state):
        raise ValueError(f"{weights}: not a medaka_heart checkpoint or state dict")
    if config.is_file():
        meta.update(read_json(config))
    meta = apply_thresholds(meta, folder)
    try:
        info = ModelInfo.from_dict(meta)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{folder}: bad model metadata ({exc})") from None
    return Checkpoint(state_dict=state, info=info, train_state=train_state)


def save_model_folder(folder: str | Path, model: UNet, info: ModelInfo) -> Path:
    """Write a model folder: model.pt (weights + metadata) and config.json (metadata)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_checkpoint(folder / MODEL_FILE, model, info)
    write_text_atomic(folder / CONFIG_FILE, json.dumps(info.to_dict(), indent=2) + "\n")
    return folder
