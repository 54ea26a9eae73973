"""Finding and reading prediction and truth folders for `medaka-heart evaluate`.

Layouts understood (videos are matched by file stem):

PRED (output of `medaka-heart analyze ... -o PRED`)::

    PRED/summary.csv                one row per video: video (stem), status, fps, qc_pass, ...
    PRED/<stem>/frames.csv, beats.csv, masks.tif (optional, uint8 0/255, one page per frame)

TRUTH (any of, merged per stem; earlier entries win)::

    TRUTH/<stem>.truth/{beats.csv, frames.csv, masks.tif, meta.json}   phantom output
    TRUTH/<stem>/{beats.csv, frames.csv, masks.tif | masks/}            own annotations
    TRUTH/<stem>_mask/NNNN_mask.tif   HeartSeg-style frame folder (RGB 0/255; nonzero = heart)
    TRUTH/<stem>_mask.tif             mask stack

Masks are streamed chunk by chunk (`io.masks.mask_chunks`), never read whole.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..schema import BEAT_COLUMNS
from .video import TIFF_SUFFIXES, frame_files, open_video

log = logging.getLogger(__name__)

MASK_STACK_NAMES = ("masks.tif", "masks.tiff")


@dataclass(frozen=True)
class VideoSources:
    """Where the tables and masks of one video are; None = not available."""

    stem: str
    beats: Path | None = None
    frames: Path | None = None
    masks: Path | None = None  # multi-page TIFF or folder of frame images
    meta: Path | None = None  # meta.json (phantom truth)
    fps: float | None = None  # from PRED/summary.csv
    status: str = "ok"  # status in PRED/summary.csv
    qc_pass: bool | None = None  # qc_pass in PRED/summary.csv; None = not there
    pixel_size_um: float | None = None  # from PRED/summary.csv


def _first_existing(folder: Path, names) -> Path | None:
    for name in names:
        if (folder / name).exists():
            return folder / name
    return None


def _sources_in(folder: Path, stem: str) -> VideoSources:
    masks = _first_existing(folder, MASK_STACK_NAMES)
    if masks is None:
        for name in ("masks", f"{stem}_mask"):
            if (folder / name).is_dir() and frame_files(folder / name):
                masks = folder / name
                break
    return VideoSources(
        stem,
        beats=_first_existing(folder, ("beats.csv",)),
        frames=_first_existing(folder, ("frames.csv",)),
        masks=masks,
        meta=_first_existing(folder, ("meta.json",)),
    )


def _merge(found: dict[str, VideoSources], new: VideoSources) -> None:
    """Fill the parts of `found[new.stem]` that are still missing from `new`."""
    old = found.get(new.stem)
    if old is None:
        found[new.stem] = new
        return
    found[new.stem] = VideoSources(
        new.stem,
        beats=old.beats or new.beats,
        frames=old.frames or new.frames,
        masks=old.masks or new.masks,
        meta=old.meta or new.meta,
        fps=old.fps if old.fps is not None else new.fps,
        status=old.status,
    )


def _has_data(s: VideoSources) -> bool:
    return s.beats is not None or s.masks is not None


def find_truth_videos(truth_dir: str | Path) -> dict[str, VideoSources]:
    """Truth sources per video stem in `truth_dir` (layouts in the module docstring)."""
    root = Path(truth_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: truth folder not found")
    entries = sorted(p for p in root.iterdir() if not p.name.startswith("."))
    found: dict[str, VideoSources] = {}
    for p in entries:  # phantom layout first: it wins where several describe one stem
        if p.is_dir() and p.suffix == ".truth":
            _merge(found, _sources_in(p, p.name[: -len(".truth")]))
    for p in entries:
        if p.is_dir() and p.suffix != ".truth" and not p.name.endswith("_mask"):
            s = _sources_in(p, p.name)
            if _has_data(s):
                _merge(found, s)
    for p in entries:
        if p.is_dir() and p.name.endswith("_mask") and frame_files(p):
            _merge(found, VideoSources(p.name[: -len("_mask")], masks=p))
        elif p.is_file() and p.stem.endswith("_mask") and p.suffix.lower() in TIFF_SUFFIXES:
            _merge(found, VideoSources(p.stem[: -len("_mask")], masks=p))
    return {k: v for k, v in sorted(found.items()) if _has_data(v)}


def _float_or_none(value) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) and v > 0 else None


def _bool_or_none(value) -> bool | None:
    """True/False from a CSV cell (bool or the strings True/False); None if missing."""
    text = str(value).strip().lower()
    return {"true": True, "false": False, "1": True, "0": False}.get(text)


def find_pred_videos(pred_dir: str | Path) -> dict[str, VideoSources]:
    """Prediction sources per video stem: rows of `summary.csv` plus result subfolders."""
    root = Path(pred_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: prediction folder not found")
    found: dict[str, VideoSources] = {}
    summary = root / "summary.csv"
    if summary.exists():
        table = pd.read_csv(summary, dtype={"video": str})
        if "video" not in table:
            raise ValueError(f"{summary}: no 'video' column")
        for _, row in table.iterrows():
            stem = str(row["video"])
            status = str(row.get("status", "ok")) if pd.notna(row.get("status", "ok")) else "ok"
            s = _sources_in(root / stem, stem) if (root / stem).is_dir() else VideoSources(stem)
            found[stem] = VideoSources(stem, s.beats, s.frames, s.masks, s.meta,
                                       fps=_float_or_none(row.get("fps")), status=status,
                                       qc_pass=_bool_or_none(row.get("qc_pass")),
                                       pixel_size_um=_float_or_none(row.get("pixel_size_um")))
    for p in sorted(root.iterdir()):
        if p.is_dir() and not p.name.startswith(".") and p.name not in found:
            s = _sources_in(p, p.name)
            if s.beats is not None or s.frames is not None:
                found[p.name] = s
    return dict(sorted(found.items()))


def read_beats(path: Path | None) -> pd.DataFrame:
    """beats.csv as a DataFrame; an empty table with `schema.BEAT_COLUMNS` if `path` is None."""
    if path is None:
        return pd.DataFrame(columns=list(BEAT_COLUMNS), dtype=float)
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return pd.DataFrame(columns=list(BEAT_COLUMNS), dtype=float)


def _fps_from_frames_csv(path: Path) -> float | None:
    """fps from frames.csv: frame / time_s (median over frames with time > 0)."""
    table = pd.read_csv(path, usecols=lambda c: c in ("frame", "time_s"))
    if not {"frame", "time_s"} <= set(table.columns):
        return None
    t = table["time_s"].to_numpy(float)
    f = table["frame"].to_numpy(float)
    ok = np.isfinite(t) & (t > 0)
    return _float_or_none(np.median(f[ok] / t[ok])) if ok.any() else None


def _pixel_size_from_meta(path: Path | None) -> float | None:
    try:
        meta = json.loads(path.read_text()) if path is not None else None
    except (OSError, ValueError):
        return None
    return _float_or_none(meta.get("pixel_size_um")) if isinstance(meta, dict) else None


def warn_pixel_size(pred: VideoSources, true: VideoSources, tolerance: float = 0.01) -> bool:
    """Warn (and return True) where the prediction's pixel size differs from the truth's
    meta.json by more than `tolerance` (relative): its volumes cannot be compared."""
    truth = _pixel_size_from_meta(true.meta)
    if pred.pixel_size_um is None or truth is None:
        return False
    if abs(pred.pixel_size_um - truth) <= tolerance * truth:
        return False
    log.warning("%s: analysed at %g um/px but the truth's meta.json says %g um/px: volumes and "
                "lengths are not comparable (analyze again with --pixel-size %g)", pred.stem,
                pred.pixel_size_um, truth, truth)
    return True


def _fps_from_meta(path: Path) -> float | None:
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    for key in ("fps", "fps_hz", "frame_rate"):
        if isinstance(meta, dict) and _float_or_none(meta.get(key)) is not None:
            return _float_or_none(meta[key])
    return None


def read_fps(*sources: VideoSources) -> float | None:
    """Frame rate in frames per s: the first found of meta.json, summary fps, frames.csv."""
    for s in sources:
        for fps in (
            _fps_from_meta(s.meta) if s.meta else None,
            s.fps,
            _fps_from_frames_csv(s.frames) if s.frames else None,
        ):
            if fps is not None:
                return fps
    return None


def mask_shape(path: Path) -> tuple[int, int, int]:
    """(n_frames, H, W) of a mask stack or folder without decoding the frames."""
    info = open_video(path, numbering=False).info  # annotations: frame by frame, in order
    return info.n_frames, info.height, info.width
