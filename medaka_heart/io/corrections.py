"""Corrected masks of an analysed video, kept beside its results for `medaka-heart adapt`.

An ``analyze --save-masks`` result folder (``masks.tif``, ``provenance.json`` naming the
video) becomes training data once some of its masks are corrected. Two layouts are read:

- ``corrected/frame_NNNNNN_mask.png`` (0/255, frame index from 0), one file per corrected
  frame: what the napari plugin writes (`write_corrections`); ``masks.tif`` is left as the
  analysis wrote it;
- ``masks.tif`` edited in place (e.g. in Fiji) with ``corrected_frames.txt`` listing the
  corrected frame indices (from 0; one per line or separated by commas/spaces; ``#``
  comments).

Masks of any nonzero value are ventricle.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path

import cv2
import numpy as np

from .atomic import atomic_path

CORRECTED_DIR = "corrected"
CORRECTED_LIST = "corrected_frames.txt"
MASKS_FILE = "masks.tif"
PROVENANCE_FILE = "provenance.json"
_CORRECTED_NAME = re.compile(r"^frame_(\d+)_mask\.png$")


def corrected_name(frame: int) -> str:
    """File name of frame `frame`'s corrected mask inside ``corrected/``."""
    return f"frame_{int(frame):06d}_mask.png"


def is_result_folder(folder: str | Path) -> bool:
    """Whether `folder` is one video's analysis result with corrected masks."""
    folder = Path(folder)
    return (folder / PROVENANCE_FILE).is_file() and (
        (folder / CORRECTED_DIR).is_dir() or (folder / CORRECTED_LIST).is_file())


def recorded_video(folder: str | Path) -> Path:
    """The video path a result folder's provenance.json records (``input``), whether or not
    it still exists. Raises FileNotFoundError naming the file when it cannot be read."""
    provenance = Path(folder) / PROVENANCE_FILE
    try:
        return Path(json.loads(provenance.read_text())["input"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise FileNotFoundError(f"{provenance}: cannot read the input video ({exc})") from None


def result_video(folder: str | Path) -> Path:
    """The video a result folder was analysed from (its provenance.json ``input``).

    Raises FileNotFoundError naming the folder when the provenance or the video is missing.
    """
    path = recorded_video(folder)
    if not path.exists():
        raise FileNotFoundError(f"{Path(folder)}: its video {path} no longer exists")
    return path


def write_corrections(folder: str | Path, masks: Mapping[int, np.ndarray]) -> list[Path]:
    """Write corrected masks {frame index: (H, W) mask, nonzero = ventricle} into
    ``folder/corrected/``, each file whole or not at all; returns the paths written."""
    out = Path(folder) / CORRECTED_DIR
    out.mkdir(exist_ok=True)
    written = []
    for frame, mask in sorted(masks.items()):
        mask = np.asarray(mask)
        if mask.ndim != 2:
            raise ValueError(f"frame {frame}: a mask is (H, W), got shape {mask.shape}")
        path = out / corrected_name(frame)
        with atomic_path(path) as tmp:
            if not cv2.imwrite(str(tmp), np.where(mask != 0, 255, 0).astype(np.uint8)):
                raise OSError(f"{path}: OpenCV could not write the PNG")
        written.append(path)
    return written


def read_corrected_list(path: str | Path) -> list[int]:
    """Frame indices (from 0) of a ``corrected_frames.txt``, sorted and unique."""
    path = Path(path)
    frames = set()
    for number, line in enumerate(path.read_text().splitlines(), 1):
        for token in re.split(r"[,\s]+", line.split("#", 1)[0].strip()):
            if not token:
                continue
            if not token.isdigit():
                raise ValueError(f"{path}:{number}: {token!r} is not a frame index")
            frames.add(int(token))
    return sorted(frames)


def read_corrections(folder: str | Path) -> dict[int, np.ndarray]:
    """{frame index: (H, W) bool mask} of every corrected frame of a result folder."""
    folder = Path(folder)
    found: dict[int, np.ndarray] = {}
    listed = folder / CORRECTED_LIST
    if listed.is_file():
        frames = read_corrected_list(listed)
        import tifffile

        stack = folder / MASKS_FILE
        if not stack.is_file():
            raise FileNotFoundError(f"{folder}: {CORRECTED_LIST} lists frames but there is no "
                                    f"{MASKS_FILE}")
        with tifffile.TiffFile(stack) as tif:
            pages = len(tif.pages)
            for frame in frames:
                if frame >= pages:
                    raise ValueError(f"{listed}: frame {frame} is past the {pages} masks of "
                                     f"{stack}")
                found[frame] = np.asarray(tif.pages[frame].asarray()) != 0
    corrected = folder / CORRECTED_DIR
    if corrected.is_dir():
        for path in sorted(corrected.iterdir()):
            match = _CORRECTED_NAME.match(path.name)
            if match is None:
                continue
            mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
            if mask is None:
                raise ValueError(f"{path}: not a readable PNG")
            found[int(match[1])] = (mask.max(axis=2) if mask.ndim == 3 else mask) != 0
    return found
