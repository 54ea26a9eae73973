"""Many videos into one summary: each video analysed in isolation, failures recorded, not raised."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from .config import Config
from .io.results import write_csv_atomic
from .io.video import VideoError
from .pipeline import Segmenter, analyze_video
from .schema import SUMMARY_COLUMNS

log = logging.getLogger(__name__)


def failed_row(name: str, error: str) -> dict:
    """summary.csv row of a video that could not be analysed."""
    return {"video": name, "status": "failed", "error": error}


def run_batch(
    videos: list[Path],
    names: list[str],
    out_dir: Path,
    config: Config,
    *,
    masks: list[Path] | None = None,
    segmenter_factory: Callable[[], Segmenter] | None = None,
    fps: float | None = None,
    pixel_size_um: float | None = None,
    save_masks: bool = False,
    show_progress: bool = True,
    debug: bool = False,
) -> pd.DataFrame:
    """Analyse every video; write and return summary.csv (one row per video, failures included).

    A bad video is logged in one line and recorded with status 'failed'; the others go on.
    The segmenter is created once, on first need.
    """
    rows = []
    segmenter = None
    bar = tqdm(list(zip(videos, names, strict=True)), desc="videos", unit="video",
               disable=not show_progress or len(videos) < 2)
    for i, (video, name) in enumerate(bar):
        try:
            if masks is None and segmenter is None:
                segmenter = segmenter_factory()
            result = analyze_video(
                video, out_dir, config, name=name, masks=masks[i] if masks else None,
                segmenter=segmenter, fps=fps, pixel_size_um=pixel_size_um,
                save_masks=save_masks, show_progress=show_progress,
            )
            rows.append(result.summary_row())
            log.info("%s: %d beats, %.1f bpm, EF %.1f%%", name, result.summary.n_beats,
                     result.summary.hr_bpm, result.summary.ef_pct)
        except Exception as exc:  # one bad video must never stop the batch
            if debug:
                log.exception("%s failed", video)
            detail = str(exc) if isinstance(exc, VideoError | OSError) else f"{type(exc).__name__}: {exc}"
            message = detail if str(video) in detail else f"{video}: {detail}"
            log.error("%s", message)
            rows.append(failed_row(name, message))
    summary = pd.DataFrame(rows).reindex(columns=list(SUMMARY_COLUMNS))
    write_csv_atomic(summary, out_dir / "summary.csv")
    return summary
