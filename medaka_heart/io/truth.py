"""Reading prediction and truth folders for `medaka-heart evaluate`, and writing the report.

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
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..evaluate import ErrorSummary, compare_beats, dice_stream, summarise_errors
from ..schema import BEAT_COLUMNS
from .masks import mask_chunks
from .results import write_csv_atomic, write_json_atomic
from .video import TIFF_SUFFIXES, VideoError, frame_files, open_video

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


@dataclass(frozen=True)
class FolderEvaluation:
    """Everything `medaka-heart evaluate` reports."""

    per_video: pd.DataFrame  # one row per video: status, fps and the ErrorSummary fields
    beats: pd.DataFrame  # one row per true beat: compare_beats + video column
    dice: pd.DataFrame  # video, frame, dice
    summary: ErrorSummary  # over all evaluated videos
    qc_passed: ErrorSummary | None = None  # over those whose analysis passed QC (None: no QC)
    only_pred: tuple[str, ...] = field(default=())
    only_truth: tuple[str, ...] = field(default=())


def _video_dice(pred: VideoSources, true: VideoSources, chunk_frames: int) -> np.ndarray | None:
    if pred.masks is None or true.masks is None:
        return None
    n_p, *hw_p = mask_shape(pred.masks)
    n_t, *hw_t = mask_shape(true.masks)
    if hw_p != hw_t:
        raise VideoError(f"{pred.masks}: masks are {hw_p[1]}x{hw_p[0]} px but the truth "
                         f"masks {true.masks} are {hw_t[1]}x{hw_t[0]}")
    if n_p != n_t:
        log.warning("%s: %d predicted vs %d true masks; Dice over the first %d frames",
                    pred.stem, n_p, n_t, min(n_p, n_t))
    return dice_stream(mask_chunks(pred.masks, chunk_frames, numbering=False),
                       mask_chunks(true.masks, chunk_frames, numbering=False),
                       batch=chunk_frames)


@dataclass(frozen=True)
class _VideoResult:
    row: dict
    table: pd.DataFrame | None = None  # compare_beats with a video column
    pred_beats: pd.DataFrame | None = None
    dice: np.ndarray | None = None


def _evaluate_video(pred: VideoSources, true: VideoSources, chunk_frames: int) -> _VideoResult:
    """One video; problems with its files give a row with status 'error' and a warning."""
    row: dict = {"video": pred.stem, "status": "ok", "pred_status": pred.status,
                 "qc_pass": pred.qc_pass}
    try:
        # masks-only truth: Dice, but no beat metrics and no false events
        pred_beats = read_beats(pred.beats if true.beats is not None else None)
        fps = read_fps(true, pred)
        warn_pixel_size(pred, true)
        dice = _video_dice(pred, true, chunk_frames)
        if true.beats is not None and fps is None:
            raise ValueError("frame rate unknown (no meta.json, summary.csv or frames.csv)")
        table = compare_beats(pred_beats, read_beats(true.beats), fps or 1.0)
    except (VideoError, ValueError, OSError) as exc:
        log.warning("%s: not evaluated: %s", pred.stem, exc)
        return _VideoResult({**row, "status": "error", "error": str(exc)})
    summary = summarise_errors(table, pred_beats, dice)
    return _VideoResult({**row, "fps": fps, **summary.to_dict()},
                        table.assign(video=pred.stem), pred_beats, dice)


def evaluate_folders(pred_dir: str | Path, truth_dir: str | Path, *, chunk_frames: int = 64
                     ) -> FolderEvaluation:
    """Compare every video found in both folders; raises ValueError if none match."""
    preds = find_pred_videos(pred_dir)
    truths = find_truth_videos(truth_dir)
    common = sorted(set(preds) & set(truths))
    if not common:
        raise ValueError(f"no video in {pred_dir} ({len(preds)} found) matches one in "
                         f"{truth_dir} ({len(truths)} found) by name")
    results = [_evaluate_video(preds[stem], truths[stem], chunk_frames) for stem in common]
    ok = [r for r in results if r.row["status"] == "ok"]
    beats = _concat([r.table for r in ok])
    if len(beats.columns):
        beats = beats[["video", *(c for c in beats.columns if c != "video")]]
    summary = _summarise(ok)
    with_qc = any(r.row["qc_pass"] is not None for r in ok)
    qc_passed = _summarise([r for r in ok if r.row["qc_pass"]]) if with_qc else None
    dice_table = _concat(
        [pd.DataFrame({"video": r.row["video"], "frame": np.arange(r.dice.size), "dice": r.dice})
         for r in ok if r.dice is not None],
        ("video", "frame", "dice"),
    )
    only_pred = tuple(sorted(set(preds) - set(truths)))
    only_truth = tuple(sorted(set(truths) - set(preds)))
    rows = [r.row for r in results]
    rows += [{"video": s, "status": "only_pred", "pred_status": preds[s].status} for s in only_pred]
    rows += [{"video": s, "status": "only_truth"} for s in only_truth]
    return FolderEvaluation(pd.DataFrame(rows), beats, dice_table, summary, qc_passed,
                            only_pred, only_truth)


def _summarise(results: list[_VideoResult]) -> ErrorSummary:
    """`summarise_errors` over the evaluated videos `results`."""
    dice = [r.dice for r in results if r.dice is not None]
    return summarise_errors(
        _concat([r.table for r in results]),
        _concat([r.pred_beats for r in results]) if results else read_beats(None),
        np.concatenate(dice) if dice else None, n_videos=len(results),
    )


def _concat(tables: list[pd.DataFrame], columns=()) -> pd.DataFrame:
    tables = [t for t in tables if len(t)]
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=list(columns))


def write_evaluation(result: FolderEvaluation, report_dir: str | Path) -> dict[str, Path]:
    """Write evaluation.csv, beats_vs_truth.csv, dice.csv and metrics.json; returns the paths."""
    out = Path(report_dir)
    paths = {
        "evaluation": out / "evaluation.csv",
        "beats": out / "beats_vs_truth.csv",
        "dice": out / "dice.csv",
        "metrics": out / "metrics.json",
    }
    write_csv_atomic(result.per_video, paths["evaluation"])
    write_csv_atomic(result.beats, paths["beats"])
    write_csv_atomic(result.dice, paths["dice"])
    metrics = {**result.summary.to_dict(), "videos_only_in_pred": list(result.only_pred),
               "videos_only_in_truth": list(result.only_truth),
               "qc_passed": None if result.qc_passed is None else result.qc_passed.to_dict()}
    write_json_atomic(metrics, paths["metrics"])
    return paths
