"""The napari reader: an ``analyze --save-masks`` result folder -> three layers.

- Image: the video's frames, (T, H, W) or (T, H, W, 3);
- Labels ``NAME masks``: (T, H, W) uint8, 1 = ventricle: the analysis' masks with the
  corrected frames (``corrected/``) put in, ready for napari's brush and eraser;
- Points ``NAME ED/ES``: one point per end-diastolic and end-systolic frame at the
  ventricle's centre (the frame's top-left corner where its mask is empty), labelled
  ``ED 3`` / ``ES 3`` (beat 3), so they show only on those frames.

Every layer's metadata holds `META_KEY`: the folder, the video and the ED/ES frames. Layer
data are plain tuples; nothing here imports napari.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..io.result_folder import ResultFolder, is_analysis_folder, read_result_folder

META_KEY = "medaka_heart"
ED_COLOUR, ES_COLOUR = "#ff5050", "#50b4ff"
LayerData = tuple[Any, dict[str, Any], str]


def get_reader(path: str | Sequence[str]) -> Callable[[str | Sequence[str]], list[LayerData]
                                                      ] | None:
    """napari's reader hook: `read_result_layers` for result folders, None for anything else."""
    paths = [path] if isinstance(path, str | Path) else list(path)
    if not paths or not all(is_analysis_folder(p) for p in paths):
        return None
    return read_result_layers


def read_result_layers(path: str | Sequence[str]) -> list[LayerData]:
    """The layers of one or more result folders (see the module docstring)."""
    paths = [path] if isinstance(path, str | Path) else list(path)
    return [layer for p in paths for layer in result_layers(read_result_folder(p))]


def result_layers(result: ResultFolder) -> list[LayerData]:
    """(data, keyword arguments, layer type) of the Image, Labels and Points layers."""
    meta = {META_KEY: {"folder": str(result.folder), "video": str(result.video),
                       "ed_frames": list(result.ed_frames),
                       "es_frames": list(result.es_frames)}}
    labels = result.current_masks().astype(np.uint8)
    image = (result.frames, {"name": result.name, "metadata": meta,
                             "rgb": result.frames.ndim == 4}, "image")
    masks = (labels, {"name": f"{result.name} masks", "metadata": meta, "opacity": 0.4},
             "labels")
    return [image, masks, beat_points(result, labels, meta)]


def beat_points(result: ResultFolder, labels: np.ndarray, meta: dict[str, Any]) -> LayerData:
    """The Points layer marking the ED and ES frames (see the module docstring)."""
    rows, phases, beats = [], [], []
    for beat, *frames in result.beats:
        for phase, frame in zip(("ED", "ES"), frames, strict=True):
            if 0 <= frame < len(labels):
                rows.append((frame, *_centre(labels[frame])))
                phases.append(phase)
                beats.append(beat)
    data = np.asarray(rows, dtype=float).reshape(-1, 3)
    colours = [ED_COLOUR if p == "ED" else ES_COLOUR for p in phases]
    kwargs = {"name": f"{result.name} ED/ES", "metadata": meta,
              "features": {"phase": phases, "beat": beats},
              "face_color": colours if colours else "white", "size": 12, "symbol": "disc",
              "text": {"string": "{phase} {beat}", "color": "yellow", "size": 12,
                       "anchor": "upper_left"}}
    return data, kwargs, "points"


def _centre(mask: np.ndarray) -> tuple[float, float]:
    """(row, column) of a mask's centroid, the top-left corner (8, 8) where it is empty."""
    rows, cols = np.nonzero(mask)
    if len(rows) == 0:
        return 8.0, 8.0
    return float(rows.mean()), float(cols.mean())
