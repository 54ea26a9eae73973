"""A model folder's files and its identity (no torch: the run planner hashes models too).

A model folder holds ``model.pt``, ``config.json``, optionally ``thresholds.json`` and a
``localiser/`` model folder (see `model.checkpoint`). `model_hash` is the one identity of a
model, in provenance files and in the fingerprint that decides whether results are reused.
"""

from __future__ import annotations

import hashlib
from functools import partial
from pathlib import Path

MODEL_FILE = "model.pt"
CONFIG_FILE = "config.json"
THRESHOLDS_FILE = "thresholds.json"
LOCALISER_DIR = "localiser"  # optional model folder inside a model folder: the coarse pass


def model_hash(path: str | Path) -> str:
    """sha256 hex digest of a checkpoint file, or of a model folder's files (its localiser's
    too) in a fixed order."""
    path = Path(path)
    names = (MODEL_FILE, CONFIG_FILE, THRESHOLDS_FILE)
    files = ([f for d in (path, path / LOCALISER_DIR) for f in (d / n for n in names)
              if f.is_file()] if path.is_dir() else [path])
    if not (path / MODEL_FILE if path.is_dir() else path).is_file():
        raise FileNotFoundError(f"{path}: no model file to hash")
    digest = hashlib.sha256()
    for f in files:
        with f.open("rb") as fh:
            for chunk in iter(partial(fh.read, 1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()
