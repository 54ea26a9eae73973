"""Turning the command line's inputs (files, folders, glob patterns) into a list of videos.

`expand_inputs` gives paths; `discover_sources` gives `VideoSource`s, which also split
screening-microscope folders (one TIFF per frame, see `io.screening`) into one video per
well/position/loop/channel and carry their metadata.
"""

from __future__ import annotations

import dataclasses
import glob
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tifffile

from .screening import ScreeningVideo, split_screening_files
from .video import CONTAINER_SUFFIXES, TIFF_SUFFIXES, frame_files, natural_key

SKIP_FOLDER_SUFFIXES = (".truth",)
GLOB_CHARS = "*?["


@dataclass(frozen=True)
class VideoSource:
    """One video to analyse: a path (file or frame folder) or the frames of a screening well.

    metadata : column -> value carried into every output row (manifest columns, well, ...).
    masks : mask stack or folder for this video (measure instead of segmenting), or None.
    fps, pixel_size_um : this video's frame rate and pixel size (um), overriding the file's
        and the run's; None = not given.
    """

    path: Path
    screening: ScreeningVideo | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    masks: Path | None = None
    fps: float | None = None
    pixel_size_um: float | None = None

    @property
    def label(self) -> str:
        """Default output name: the file stem, the frame folder's name or the well label."""
        if self.screening is not None:
            return self.screening.label
        return self.path.name if self.path.is_dir() else self.path.stem

    @property
    def place(self) -> str:
        """Name of the folder holding the video, used to tell equal labels apart."""
        return self.screening.folder.name if self.screening is not None else self.path.parent.name

    @property
    def display(self) -> Path:
        """What messages and provenance call this video."""
        return self.screening.pattern if self.screening is not None else self.path


def _is_multipage_tiff(path: Path) -> bool:
    try:
        with tifffile.TiffFile(path) as tif:
            return len(tif.pages) > 1
    except Exception:
        return True  # let the reader report what is wrong with it


def _sources_in_folder(folder: Path) -> list[VideoSource]:
    """Videos below `folder`; a folder of single-page images is itself one video, a folder of
    screening-microscope frames one video per well/position/loop/channel."""
    found: list[VideoSource] = []
    children = sorted(folder.iterdir(), key=natural_key)
    files = [p for p in children if p.is_file() and not p.name.startswith(".")]
    screening, files = split_screening_files(files)  # by name alone: no file is opened
    found += [VideoSource(v.pattern, screening=v, metadata=v.metadata()) for v in screening]
    containers = [p for p in files if p.suffix.lower() in CONTAINER_SUFFIXES]
    tiffs = [p for p in files if p.suffix.lower() in TIFF_SUFFIXES]
    stacks = [p for p in tiffs if _is_multipage_tiff(p)]
    found += [VideoSource(p) for p in containers + stacks]
    if not found and len(frame_files(folder)) >= 2:
        return [VideoSource(folder.resolve())]
    for child in children:
        if child.is_dir() and not child.name.startswith(".") and not child.name.endswith(
            SKIP_FOLDER_SUFFIXES
        ):
            found += _sources_in_folder(child)
    return found


def _path_key(path: Path) -> list:
    """Natural sort on the whole path, so that p/e1 comes before q/e1."""
    return [natural_key(Path(part)) for part in path.parts]


def _resolve(path: Path) -> Path:
    return path.resolve() if path.exists() else path


def sources_for(item: str | Path) -> list[VideoSource]:
    """Videos named by one input: a file as given (a missing one too, so that it fails
    visibly), a folder searched, a glob pattern expanded."""
    text = str(item)
    if any(ch in text for ch in GLOB_CHARS) and not Path(text).exists():
        paths = sorted((Path(p) for p in glob.glob(text, recursive=True)), key=_path_key)
        screening, rest = split_screening_files([p for p in paths if p.is_file()])
        out = [VideoSource(v.pattern, screening=v, metadata=v.metadata()) for v in screening]
        others = set(rest)
        for p in paths:
            if p.is_dir():
                out += _sources_in_folder(p)
            elif p in others:
                out.append(VideoSource(p))
        return [_resolved(s) for s in out]
    path = Path(text)
    if path.is_dir():
        return [_resolved(s) for s in _sources_in_folder(path)]
    return [VideoSource(_resolve(path))]


def _resolved(source: VideoSource) -> VideoSource:
    if source.screening is not None:
        return source
    return dataclasses.replace(source, path=_resolve(source.path), screening=None)


def discover_sources(inputs: list[str]) -> list[VideoSource]:
    """Every video named by `inputs`, each once, in the order given.

    An input that names no video (an empty folder, a glob that matches nothing) among
    inputs that do is kept as it is, so that it fails with a row of its own instead of
    going missing in silence; where no input names a video, the list is empty.
    """
    found = [(item, sources_for(item)) for item in inputs]
    if not any(sources for _, sources in found):
        return []
    seen: dict[Path, VideoSource] = {}
    for item, sources in found:
        for source in sources or [VideoSource(_resolve(Path(item)))]:
            seen.setdefault(source.display, source)
    return list(seen.values())


def expand_inputs(inputs: list[str]) -> list[Path]:
    """Files as given (missing ones too, so they fail visibly), folders searched, globs expanded.

    Screening videos appear as the glob-like pattern of their frames; use `discover_sources`
    to read them.
    """
    return [s.display for s in discover_sources(inputs)]


def _unique_names(labels: list[str], places: list[str]) -> list[str]:
    names: list[str] = []
    for label, place in zip(labels, places, strict=True):
        name = label
        if labels.count(label) > 1:  # same label in several places: prefix the folder
            name = f"{place}_{label}"
        base, k = name, 2
        while name in names:
            name, k = f"{base}_{k}", k + 1
        names.append(name)
    return names


def output_names(videos: list[Path]) -> list[str]:
    """A distinct output folder name per video: the stem, disambiguated where stems collide."""
    stems = [p.name if p.is_dir() else p.stem for p in videos]
    return _unique_names(stems, [p.parent.name for p in videos])


def source_names(sources: list[VideoSource]) -> list[str]:
    """`output_names` for VideoSources (screening videos are named by well, position, ...)."""
    return _unique_names([s.label for s in sources], [s.place for s in sources])
