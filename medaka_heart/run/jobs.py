"""One video as a self-contained, picklable job, and the function that runs it anywhere.

`run_job` is what every executor calls, in this process, in a worker process or on a Dask
worker. It never raises for a bad video: the outcome says 'failed' and why. After the
video's folder is in place it writes `OUT/<name>/result.json` (fingerprint + summary row),
the mark that the video is complete (see `run.resume`).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import Config, PreprocessConfig, SegmentConfig, with_overrides
from ..io.atomic import describe_os_error
from ..io.discover import VideoSource
from ..io.video import VideoError
from ..options import VideoOptions
from .memory import release_memory

log = logging.getLogger(__name__)

SegmenterFactory = Callable[[SegmentConfig, PreprocessConfig], Any]


def load_default_segmenter(segment: SegmentConfig, preprocess: PreprocessConfig):
    """The U-Net segmenter of `medaka_heart.segment` (imported here: torch only when needed)."""
    from ..segment import Segmenter

    return Segmenter.from_config(segment, preprocess)


@dataclass(frozen=True)
class RunOptions:
    """Settings shared by every job of a run (picklable: sent to worker processes)."""

    out_dir: Path  # absolute
    config: Config
    video: VideoOptions = VideoOptions()
    segmenter_factory: SegmenterFactory | None = load_default_segmenter
    debug: bool = False


@dataclass(frozen=True)
class VideoJob:
    """One video to analyse into `OUT/<name>/`."""

    source: VideoSource
    name: str
    fingerprint: str
    fingerprint_inputs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class JobOutcome:
    """What came of one job: a summary.csv row (without metadata) and a log line."""

    name: str
    status: str  # ok | failed | reused
    row: Mapping[str, Any]
    message: str = ""  # one line for the log
    detail: str = ""  # traceback, with --debug

    @classmethod
    def failed(cls, name: str, error: str, detail: str = "") -> JobOutcome:
        return cls(name, "failed", {"video": name, "status": "failed", "error": error}, error,
                   detail)


_SEGMENTERS: dict[tuple, Any] = {}
_SEGMENTER_LOCK = threading.Lock()


def _segmenter(options: RunOptions, config: Config):
    """One segmenter per process and configuration, made on first need and kept."""
    factory = options.segmenter_factory
    if factory is None:  # cannot happen: the caller checks that there is one
        raise ValueError("no segmenter to make the masks with")
    key = (factory, config.segment, config.preprocess)
    with _SEGMENTER_LOCK:
        if key not in _SEGMENTERS:
            _SEGMENTERS[key] = factory(config.segment, config.preprocess)
        return _SEGMENTERS[key]


def error_message(source: VideoSource, exc: BaseException) -> str:
    """One line naming the video and what went wrong."""
    if isinstance(exc, OSError) and not isinstance(exc, VideoError):
        detail = describe_os_error(exc)
    else:
        detail = str(exc) if isinstance(exc, VideoError) else f"{type(exc).__name__}: {exc}"
    where = str(source.display)
    return detail if where in detail else f"{where}: {detail}"


def run_job(job: VideoJob, threads: int | None = None, *, options: RunOptions) -> JobOutcome:
    """Analyse one video into `options.out_dir / job.name`; never raises for a bad video.

    threads : CPU threads this job may use (from the executor); `[segment] threads` wins.
    """
    from ..io.results import write_json_atomic
    from ..io.screening import ScreeningReader
    from ..pipeline import analyze_video, percent

    source = job.source
    config = options.config
    if config.segment.threads is None and threads is not None:
        config = with_overrides(config, "segment", threads=threads)
    try:
        masks = source.masks
        segmenter = None
        if masks is None:
            if options.segmenter_factory is None:
                raise ValueError("no masks given for this video and no segmenter to make them")
            segmenter = _segmenter(options, config)
        reader = ScreeningReader(source.screening) if source.screening is not None else None
        video = dataclasses.replace(  # a manifest row's own values win
            options.video, fps=source.fps or options.video.fps,
            pixel_size_um=source.pixel_size_um or options.video.pixel_size_um)
        result = analyze_video(source.display, options.out_dir, config, video, name=job.name,
                               masks=masks, segmenter=segmenter, reader=reader)
        row = result.summary_row()
        write_json_atomic({"fingerprint": job.fingerprint,
                           "fingerprint_of": dict(job.fingerprint_inputs), "summary": row},
                          options.out_dir / job.name / "result.json")
    except Exception as exc:  # one bad video must never stop the batch
        detail = traceback.format_exc() if options.debug else ""
        return JobOutcome.failed(job.name, error_message(source, exc), detail)
    finally:
        release_memory()  # the next video starts from a heap given back, not a grown one
    s = result.summary
    flags = ", ".join(f.name for f in result.qc.flags)
    return JobOutcome(job.name, "ok", row,
                      f"{job.name}: {s.n_beats} beats, {s.hr_bpm:.1f} bpm, EF {percent(s.ef_pct)}"
                      + (f" (QC: {flags})" if flags else ""))
