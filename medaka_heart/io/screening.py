"""Screening-microscope folders (ACQUIFER Imaging Machine): one TIFF per frame, metadata in names.

A file name such as::

    WE00037---D012--PO01--LO001--CO6--SL001--PX32500--PW0080--IN0010--TM280--X113563--Y038077--Z224252--T0015372985.tif

reads well index 37, well D012 (row D, column 12), position PO01, loop LO001, channel CO6,
slice (here: frame) SL001 and a timestamp T in ms. A folder of such frames holds one video
per (well, position, loop, channel); its frames are ordered by SL and its frame rate is
1000 / (median interval between timestamps in ms).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .video import MAX_FPS, FrameFolderReader, VideoError

_NAME = re.compile(
    r"^WE(?P<well_index>\d+)---(?P<well>[A-Za-z]+\d+)--PO(?P<position>\d+)--LO(?P<loop>\d+)"
    r"--CO(?P<channel>\d+)--SL(?P<slice>\d+)--.*?--T(?P<time_ms>\d+)\.tiff?$",
    re.IGNORECASE,
)

METADATA_COLUMNS = ("well", "well_index", "position", "loop", "channel")


@dataclass(frozen=True)
class ScreeningFrame:
    """What one ACQUIFER frame's file name says."""

    path: Path
    well_index: int
    well: str  # e.g. "D012"
    position: str  # e.g. "PO01"
    loop: str  # e.g. "LO001"
    channel: str  # e.g. "CO6"
    slice: int  # 1-based frame number
    time_ms: int


@dataclass(frozen=True)
class ScreeningVideo:
    """The frames of one well/position/loop/channel, in SL order, with their frame rate."""

    folder: Path
    well_index: int
    well: str
    position: str
    loop: str
    channel: str
    files: tuple[Path, ...]
    time_ms: tuple[int, ...]

    @property
    def fps(self) -> float | None:
        """1000 / median interval between consecutive timestamps (ms); None if not positive."""
        return fps_from_timestamps(self.time_ms)

    @property
    def label(self) -> str:
        """Output name: e.g. D012_PO01_LO001_CO6."""
        return f"{self.well}_{self.position}_{self.loop}_{self.channel}"

    @property
    def pattern(self) -> Path:
        """A glob-like path naming exactly these frames (for messages and provenance)."""
        return self.folder / (f"WE{self.well_index:05d}---{self.well}--{self.position}--"
                              f"{self.loop}--{self.channel}--SL*.tif")

    def metadata(self) -> dict[str, object]:
        return {"well": self.well, "well_index": self.well_index, "position": self.position,
                "loop": self.loop, "channel": self.channel}


def parse_frame_name(path: str | Path) -> ScreeningFrame | None:
    """The fields of an ACQUIFER frame file name, or None if the name is not one."""
    path = Path(path)
    m = _NAME.match(path.name)
    if m is None:
        return None
    return ScreeningFrame(
        path=path, well_index=int(m["well_index"]), well=m["well"].upper(),
        position=f"PO{m['position']}", loop=f"LO{m['loop']}", channel=f"CO{m['channel']}",
        slice=int(m["slice"]), time_ms=int(m["time_ms"]),
    )


def fps_from_timestamps(time_ms: Iterable[int]) -> float | None:
    """Frame rate from frame timestamps in ms (median interval, robust to a slow first frame)."""
    t = np.asarray(list(time_ms), dtype=float)
    if t.size < 2:
        return None
    interval = float(np.median(np.diff(t)))
    fps = 1000.0 / interval if interval > 0 else None
    return fps if fps is not None and fps <= MAX_FPS else None


def group_screening_frames(frames: Iterable[ScreeningFrame]) -> list[ScreeningVideo]:
    """One ScreeningVideo per (folder, well, position, loop, channel), frames sorted by SL."""
    groups: dict[tuple, list[ScreeningFrame]] = {}
    for f in frames:
        key = (f.path.parent, f.well_index, f.well, f.position, f.loop, f.channel)
        groups.setdefault(key, []).append(f)
    videos = []
    for (folder, index, well, position, loop, channel), members in groups.items():
        members.sort(key=lambda f: f.slice)
        videos.append(ScreeningVideo(folder, index, well, position, loop, channel,
                                     tuple(f.path for f in members),
                                     tuple(f.time_ms for f in members)))
    return sorted(videos, key=lambda v: (str(v.folder), v.well_index, v.position, v.loop,
                                         v.channel))


def split_screening_files(paths: Iterable[Path]) -> tuple[list[ScreeningVideo], list[Path]]:
    """(screening videos among `paths`, the paths whose names are not screening frames)."""
    frames: list[ScreeningFrame] = []
    rest: list[Path] = []
    for p in paths:
        parsed = parse_frame_name(p)
        if parsed is not None:
            frames.append(parsed)
        else:
            rest.append(p)
    return group_screening_frames(frames), rest


class ScreeningReader(FrameFolderReader):
    """Frames of one ScreeningVideo; the frame rate comes from the file-name timestamps."""

    def __init__(self, video: ScreeningVideo):
        if not video.files:
            raise VideoError(f"{video.pattern}: no frames")
        super().__init__(video.pattern, files=list(video.files))
        fps = video.fps
        self.info = dataclasses.replace(self.info, fps=fps,
                                        fps_source="timestamps" if fps is not None else "none")
