"""Turning the command line's inputs (files, folders, glob patterns) into a list of videos."""

from __future__ import annotations

import glob
from pathlib import Path

import tifffile

from .video import CONTAINER_SUFFIXES, TIFF_SUFFIXES, frame_files, natural_key

SKIP_FOLDER_SUFFIXES = (".truth",)


def _is_multipage_tiff(path: Path) -> bool:
    try:
        with tifffile.TiffFile(path) as tif:
            return len(tif.pages) > 1
    except Exception:
        return True  # let the reader report what is wrong with it


def _videos_in_folder(folder: Path) -> list[Path]:
    """Videos below `folder`; a folder of single-page images is itself one video."""
    found: list[Path] = []
    children = sorted(folder.iterdir(), key=natural_key)
    files = [p for p in children if p.is_file() and not p.name.startswith(".")]
    containers = [p for p in files if p.suffix.lower() in CONTAINER_SUFFIXES]
    tiffs = [p for p in files if p.suffix.lower() in TIFF_SUFFIXES]
    stacks = [p for p in tiffs if _is_multipage_tiff(p)]
    found += containers + stacks
    if not found and len(frame_files(folder)) >= 2:
        return [folder]
    for child in children:
        if child.is_dir() and not child.name.startswith(".") and not child.name.endswith(
            SKIP_FOLDER_SUFFIXES
        ):
            found += _videos_in_folder(child)
    return found


def expand_inputs(inputs: list[str]) -> list[Path]:
    """Files as given (missing ones too, so they fail visibly), folders searched, globs expanded."""
    videos: list[Path] = []
    for item in inputs:
        if any(ch in item for ch in "*?[") and not Path(item).exists():
            videos += sorted((Path(p) for p in glob.glob(item, recursive=True)), key=natural_key)
        elif Path(item).is_dir():
            videos += _videos_in_folder(Path(item))
        else:
            videos.append(Path(item))
    unique = list(dict.fromkeys(p.resolve() if p.exists() else p for p in videos))
    return unique


def output_names(videos: list[Path]) -> list[str]:
    """A distinct output folder name per video: the stem, disambiguated where stems collide."""
    stems = [p.name if p.is_dir() else p.stem for p in videos]
    names: list[str] = []
    for path, stem in zip(videos, stems, strict=True):
        name = stem
        if stems.count(stem) > 1:  # same stem in several places: prefix the parent folder
            name = f"{path.parent.name}_{stem}"
        base, k = name, 2
        while name in names:
            name, k = f"{base}_{k}", k + 1
        names.append(name)
    return names
