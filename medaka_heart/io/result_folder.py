"""One video's analysis result folder read back whole, to look at it and correct its masks.

An ``analyze --save-masks`` result folder holds ``masks.tif`` (one uint8 0/255 page per
frame), ``beats.csv`` (each beat's ``ed_frame`` and ``es_frame``, from 0; -1 where a beat has
none) and ``provenance.json`` (the video's path, its frame rate and pixel size and where they
came from); masks corrected since sit in ``corrected/`` (see `io.corrections`).
`read_result_folder` returns all of it as arrays; the whole video is held in memory (a
recording of 2000 frames of 640x480 RGB takes 1.8 GB).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .corrections import (
    MASKS_FILE,
    PROVENANCE_FILE,
    read_corrections,
    recorded_video,
    result_video,
)
from .masks import read_label_stack
from .video import read_all

BEATS_FILE = "beats.csv"


@dataclass(frozen=True)
class ResultFolder:
    """A result folder's video, masks, corrections and ED/ES frames.

    frames : (T, H, W) or (T, H, W, 3) the video's frames in its own dtype (a colour video
        whose three channels are equal everywhere is given as gray)
    masks : (T, H, W) bool, the masks the analysis wrote (ventricle True)
    corrected : {frame index from 0: (H, W) bool} masks corrected since
    beats : (beat, ED frame, ES frame) per row of beats.csv, frames from 0, -1 where the
        beat has none
    fps, pixel_size_um : as the analysis used them; *_source says where they came from
        ("user" where given on the command line)
    """

    folder: Path
    video: Path
    frames: np.ndarray
    masks: np.ndarray
    corrected: dict[int, np.ndarray]
    beats: tuple[tuple[int, int, int], ...]
    fps: float | None
    fps_source: str
    pixel_size_um: float | None
    pixel_size_source: str

    @property
    def ed_frames(self) -> tuple[int, ...]:
        """End-diastolic frames (from 0) in beat order, beats without one left out."""
        return tuple(ed for _, ed, _ in self.beats if ed >= 0)

    @property
    def es_frames(self) -> tuple[int, ...]:
        """End-systolic frames (from 0) in beat order, beats without one left out."""
        return tuple(es for _, _, es in self.beats if es >= 0)

    @property
    def name(self) -> str:
        """``run/video``: the analysis output folder and the video's folder in it."""
        return f"{self.folder.parent.name}/{self.folder.name}"

    def current_masks(self) -> np.ndarray:
        """(T, H, W) bool: the analysis' masks with the corrected frames put in."""
        masks = self.masks.copy()
        for frame, mask in self.corrected.items():
            masks[frame] = mask
        return masks


def is_analysis_folder(folder: str | Path) -> bool:
    """Whether `folder` is one video's ``analyze --save-masks`` result (masks + provenance)."""
    folder = Path(folder)
    return (folder / MASKS_FILE).is_file() and (folder / PROVENANCE_FILE).is_file()


def read_masks(folder: str | Path) -> np.ndarray:
    """(T, H, W) bool masks of a result folder's ``masks.tif`` (any nonzero is ventricle).

    Raises FileNotFoundError when there is none, ValueError when it is not a mask stack.
    """
    path = Path(folder) / MASKS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{Path(folder)}: no {MASKS_FILE} (analyse with --save-masks)")
    return read_label_stack(path) != 0


def read_beats(folder: str | Path) -> tuple[tuple[int, int, int], ...]:
    """(beat, ED frame, ES frame) of each row of a result folder's ``beats.csv`` (frames from
    0, -1 where the beat has none); empty when there is no beats.csv or it has no beats."""
    path = Path(folder) / BEATS_FILE
    if not path.is_file():
        return ()
    try:
        beats = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return ()
    missing = {"beat", "ed_frame", "es_frame"} - set(beats.columns)
    if missing:
        raise ValueError(f"{path}: no column(s) {', '.join(sorted(missing))}")
    table = beats[["beat", "ed_frame", "es_frame"]].fillna(-1).astype(int)
    return tuple((int(b), int(ed), int(es)) for b, ed, es in table.itertuples(index=False))


def read_result_folder(folder: str | Path) -> ResultFolder:
    """A result folder with its video's frames.

    Raises FileNotFoundError (naming the folder) when masks.tif, provenance.json or the
    video is missing, ValueError when the masks do not match the video's frames.
    """
    folder = Path(folder)
    masks = read_masks(folder)
    video = result_video(folder)
    provenance = json.loads((folder / PROVENANCE_FILE).read_text())
    frames = _gray_if_equal(read_all(video))
    if frames.shape[:3] != masks.shape:
        raise ValueError(f"{folder}: {MASKS_FILE} holds {masks.shape[0]} masks of "
                         f"{masks.shape[2]}x{masks.shape[1]} px but {video} has "
                         f"{frames.shape[0]} frames of {frames.shape[2]}x{frames.shape[1]} px")
    corrected = read_corrections(folder)
    for frame, mask in corrected.items():
        if frame >= len(masks) or mask.shape != masks.shape[1:]:
            raise ValueError(f"{folder}: corrected mask of frame {frame} ({mask.shape}) does "
                             f"not fit the {len(masks)} masks of {masks.shape[1:]}")
    return ResultFolder(folder, video, frames, masks, corrected, read_beats(folder),
                        _number(provenance.get("fps")), str(provenance.get("fps_source", "")),
                        _number(provenance.get("pixel_size_um")),
                        str(provenance.get("pixel_size_source", "")))


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def _gray_if_equal(frames: np.ndarray) -> np.ndarray:
    """(T, H, W, 3) whose channels are equal -> (T, H, W); anything else unchanged."""
    if frames.ndim == 4 and np.array_equal(frames[..., 0], frames[..., 1]) and \
            np.array_equal(frames[..., 0], frames[..., 2]):
        return np.ascontiguousarray(frames[..., 0])
    return frames


def find_result(out: str | Path, video: str | Path) -> Path:
    """The result folder in analysis output folder `out` that was analysed from `video`.

    Raises FileNotFoundError when none is.
    """
    out, video = Path(out), Path(video).resolve()
    for provenance in sorted(out.glob(f"*/{PROVENANCE_FILE}")):
        try:
            source = recorded_video(provenance.parent)
        except FileNotFoundError:
            continue
        if source.resolve() == video:
            return provenance.parent
    raise FileNotFoundError(f"{out}: no result folder of {video}")
