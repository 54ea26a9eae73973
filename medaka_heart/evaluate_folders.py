"""`medaka-heart evaluate` as a function: every video of a prediction folder against its truth.

`evaluate_folders` pairs the videos of PRED and TRUTH by name (`io.truth` finds and reads
them), compares each (`evaluate.compare_beats`, `evaluate.agreement_stream`) and summarises them
all, and over those that passed QC; `write_evaluation` writes the report's tables.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .evaluate import (
    ErrorSummary,
    FrameAgreement,
    agreement_stream,
    compare_beats,
    summarise_errors,
)
from .io.masks import mask_chunks
from .io.results import write_csv_atomic, write_json_atomic
from .io.truth import (
    VideoSources,
    find_pred_videos,
    find_truth_videos,
    mask_shape,
    read_beats,
    read_fps,
    warn_pixel_size,
)
from .io.video import VideoError
from .mask_scores import phase_scores, pooled_phase_scores

log = logging.getLogger(__name__)


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


def _video_agreement(pred: VideoSources, true: VideoSources, chunk_frames: int
                     ) -> FrameAgreement | None:
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
    return agreement_stream(mask_chunks(pred.masks, chunk_frames, numbering=False),
                            mask_chunks(true.masks, chunk_frames, numbering=False),
                            batch=chunk_frames)


@dataclass(frozen=True)
class _VideoResult:
    row: dict
    table: pd.DataFrame | None = None  # compare_beats with a video column
    pred_beats: pd.DataFrame | None = None
    agreement: FrameAgreement | None = None  # per-frame Dice and areas

    @property
    def dice(self) -> np.ndarray | None:
        return None if self.agreement is None else self.agreement.dice


def _evaluate_video(pred: VideoSources, true: VideoSources, chunk_frames: int) -> _VideoResult:
    """One video; problems with its files give a row with status 'error' and a warning."""
    row: dict = {"video": pred.stem, "status": "ok", "pred_status": pred.status,
                 "qc_pass": pred.qc_pass}
    try:
        # masks-only truth: Dice, but no beat metrics and no false events
        pred_beats = read_beats(pred.beats if true.beats is not None else None)
        fps = read_fps(true, pred)
        warn_pixel_size(pred, true)
        agreement = _video_agreement(pred, true, chunk_frames)
        if true.beats is not None and fps is None:
            raise ValueError("frame rate unknown (no meta.json, summary.csv or frames.csv)")
        table = compare_beats(pred_beats, read_beats(true.beats), fps or 1.0)
    except (VideoError, ValueError, OSError) as exc:
        log.warning("%s: not evaluated: %s", pred.stem, exc)
        return _VideoResult({**row, "status": "error", "error": str(exc)})
    summary = summarise_errors(table, pred_beats, None if agreement is None else agreement.dice,
                               phases=None if agreement is None else phase_scores(*agreement))
    return _VideoResult({**row, "fps": fps, **summary.to_dict()},
                        table.assign(video=pred.stem), pred_beats, agreement)


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
    agreements = [r.agreement for r in results if r.agreement is not None]
    return summarise_errors(
        _concat([r.table for r in results]),
        _concat([r.pred_beats for r in results]) if results else read_beats(None),
        np.concatenate([a.dice for a in agreements]) if agreements else None,
        phases=pooled_phase_scores(agreements) if agreements else None, n_videos=len(results),
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
