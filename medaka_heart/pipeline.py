"""One video end to end: read -> segment (or take given masks) -> measure -> cycles -> metrics
-> write.

Outputs of a video land in `OUT/<name>/` all at once (see `io.results.staged_folder`):
frames.csv, beats.csv, provenance.json, the QC plots trace.png and montage.png (unless
`plots=False`) and, on request, masks.tif and overlay.avi.
"""

from __future__ import annotations

import logging
import platform
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from . import __version__
from .cardiac import BeatSummary, beat_table
from .config import Config
from .cycles import detect_cycles
from .io.masks import MaskStackWriter, mask_chunks
from .io.prefetch import prefetched
from .io.replay import replayable
from .io.results import staged_folder, write_csv_atomic, write_json_atomic
from .io.video import VideoError, VideoInfo, open_video
from .morphometry import measure_masks
from .options import VideoOptions
from .preprocess import block_thumbnails
from .qc import QCResult, assess_quality
from .report.montage import FrameReservoir
from .report.overlay import OverlayWriter
from .rhythm import VideoRhythm, video_rhythm

log = logging.getLogger(__name__)

MIN_FRAMES = 3


class VideoReader(Protocol):
    """What `analyze_video` needs of a reader (see io.video)."""

    info: VideoInfo

    def chunks(self, chunk_frames: int, *, gray: bool = False) -> Iterator[np.ndarray]:
        """(t, H, W[, 3]) frames, in order; with `gray`, (t, H, W) grayscale."""


class ChunkSegmentation(Protocol):
    """What a segmenter finds in one chunk (see segment.ChunkSegmentation)."""

    @property
    def masks(self) -> np.ndarray:
        """(t, H, W) bool ventricle masks at native geometry."""

    @property
    def confidence(self) -> np.ndarray:
        """(t,) float in [0, 1]."""

    # optional: `adaptation`, how the segmenter self-adapted to the video (its `to_dict()`
    # goes into provenance.json)


class Segmenter(Protocol):
    """Anything that turns the chunks of a video into ventricle masks at native geometry."""

    def segment_video(self, chunks: Callable[[], Iterable[np.ndarray]], fps: float | None = None
                      ) -> Iterator[tuple[np.ndarray, ChunkSegmentation]]:
        """(frames, segmentation) of each chunk; `chunks()` yields the video's chunks in order
        and may be called more than once."""

    def provenance(self) -> dict[str, Any]:
        """Model file, hash and settings, for provenance.json."""


@dataclass(frozen=True)
class VideoResult:
    """Everything measured for one video."""

    name: str
    info: VideoInfo
    fps: float
    fps_source: str  # user | container | metadata
    pixel_size_um: float
    pixel_size_source: str  # user | metadata | default
    frames: pd.DataFrame
    beats: pd.DataFrame
    summary: BeatSummary
    rhythm: VideoRhythm
    qc: QCResult

    def summary_row(self) -> dict[str, Any]:
        """One row of summary.csv."""
        return {
            "video": self.name,
            "status": "ok",
            "error": "",
            "n_frames": len(self.frames),
            "n_frames_declared": self.info.n_frames,
            "fps": self.fps,
            "fps_source": self.fps_source,
            "pixel_size_um": self.pixel_size_um,
            "pixel_size_source": self.pixel_size_source,
            **self.summary.to_dict(),
            "hr_source": self.rhythm.choice.source,
            "hr_bpm_segmentation": self.rhythm.segmentation_hr_bpm,
            "hr_bpm_segmentation_median": self.rhythm.segmentation_hr_bpm_median,
            "hr_bpm_intensity": self.rhythm.intensity.hr_bpm,
            "intensity_periodicity": self.rhythm.intensity.periodicity,
            **self.qc.to_dict(),
        }


def resolve_fps(info: VideoInfo, fps: float | None) -> tuple[float, str]:
    """Frame rate and its source: the user's value, else the file's, else a VideoError."""
    if fps is not None:
        if not (np.isfinite(fps) and fps > 0):
            raise VideoError(f"{info.path}: --fps must be positive, got {fps}")
        return float(fps), "user"
    if info.fps is None:
        raise VideoError(f"{info.path}: frame rate unknown (not in the file's metadata); "
                         "pass --fps")
    return float(info.fps), info.fps_source


def resolve_pixel_size(info: VideoInfo, pixel_size_um: float | None, default: float
                       ) -> tuple[float, str]:
    """Pixel size in um and its source: user > file metadata > config default."""
    if pixel_size_um is not None:
        if not (np.isfinite(pixel_size_um) and pixel_size_um > 0):
            raise VideoError(f"{info.path}: --pixel-size must be positive, got {pixel_size_um}")
        return float(pixel_size_um), "user"
    if info.pixel_size_um is not None and info.pixel_size_um > 0:
        return float(info.pixel_size_um), info.pixel_size_source
    return float(default), "default"


def analyze_video(
    path: str | Path,
    out_dir: str | Path,
    config: Config,
    options: VideoOptions = VideoOptions(),
    *,
    name: str | None = None,
    masks: str | Path | None = None,
    segmenter: Segmenter | None = None,
    reader: VideoReader | None = None,
) -> VideoResult:
    """Analyse one video and write its results to `out_dir/<name>/`; raises VideoError.

    Exactly one of `masks` (a mask stack or folder for this video) and `segmenter` is used;
    `masks` wins when both are given. `reader` (e.g. an `io.screening.ScreeningReader`)
    replaces `open_video(path)`; `path` then only names the video. `options` says the frame
    rate and pixel size where the file's are not wanted, and what is written besides the
    tables (masks.tif, the QC plots trace.png and montage.png, overlay.avi).
    """
    reader = reader if reader is not None else open_video(path)
    info = reader.info
    name = name or Path(path).stem
    if info.n_frames < MIN_FRAMES:
        raise VideoError(f"{path}: only {info.n_frames} frame(s); at least {MIN_FRAMES} are needed")
    fps, fps_source = resolve_fps(info, options.fps)
    pixel, pixel_source = resolve_pixel_size(info, options.pixel_size_um,
                                             config.io.default_pixel_size_um)
    if pixel_source == "default":
        log.warning("%s: no pixel size given (--pixel-size) or in the file: volumes and lengths "
                    "use the default %g um/px", path, pixel)
    if masks is None and segmenter is None:
        raise ValueError("analyze_video needs masks or a segmenter")
    with staged_folder(Path(out_dir) / name) as stage:
        measured = _measure_frames(path, name, reader, stage, config, options, fps, pixel,
                                   masks, segmenter)
        frames_table = measured.table
        frames_table.insert(1, "time_s", frames_table["frame"] / fps)
        if measured.confidence is not None:
            frames_table["confidence"] = measured.confidence
        detection = detect_cycles(frames_table[config.cycles.signal].to_numpy(), fps,
                                  config.cycles)
        rhythm = video_rhythm(frames_table, detection, beat_table(frames_table, detection),
                              measured.thumbnails, fps, config.cycles, config.rhythm)
        trace = np.full(len(frames_table), np.nan)
        trace[: rhythm.intensity.trace.size] = rhythm.intensity.trace
        frames_table["intensity_signal"] = trace
        beats, summary = rhythm.beats, rhythm.summary()
        qc = assess_quality(frames_table, beats, fps=fps,
                            period_frames=detection.period_frames,
                            hr_bpm_intensity=rhythm.intensity.hr_bpm,
                            hr_bpm_segmentation_median=rhythm.segmentation_hr_bpm_median,
                            hr_bpm_segmentation=rhythm.segmentation_hr_bpm,
                            rhythm_periodicity=rhythm.periodicity,
                            hr_source=rhythm.choice.source,
                            missing_frames=len(info.missing_frames),
                            pixel_size_default=pixel_source == "default",
                            signal=config.cycles.signal, config=config.qc)
        write_csv_atomic(frames_table, stage / "frames.csv")
        write_csv_atomic(beats, stage / "beats.csv")
        write_json_atomic(
            _provenance(path, masks, segmenter, config, fps, fps_source, pixel, pixel_source,
                        detection.period_frames, measured.adaptation),
            stage / "provenance.json",
        )
        if measured.reservoir is not None:
            _write_plots(stage, name, frames_table, beats, summary, rhythm, qc,
                         measured.reservoir, pixel, config)
    log.debug("%s: %d frames, %d beats", path, len(frames_table), len(beats))
    return VideoResult(name, info, fps, fps_source, pixel, pixel_source, frames_table, beats,
                       summary, rhythm, qc)


@dataclass
class _Measured:
    """What one read through a video gives: per-frame features and what the figures need."""

    table: pd.DataFrame  # morphometry of every frame (measure_masks columns)
    confidence: np.ndarray | None  # (T,) segmentation confidence; None with given masks
    thumbnails: np.ndarray  # (t, h, w) of the first max_thumbnail_frames frames
    reservoir: FrameReservoir | None  # frames kept for montage.png (None without plots)
    adaptation: dict[str, Any] | None = None  # how the segmenter self-adapted to the video


def _measure_frames(path: str | Path, name: str, reader: VideoReader, stage: Path,
                    config: Config, options: VideoOptions, fps: float, pixel: float,
                    masks: str | Path | None, segmenter: Segmenter | None) -> _Measured:
    """Read the video once (twice to locate the heart), mask and measure every frame, and
    write masks.tif and overlay.avi on request; the writers are closed however it ends."""
    info = reader.info
    max_thumbs = config.rhythm.max_thumbnail_frames
    tables, confidences, thumbs, state, first = [], [], [], None, 0
    adaptation = None
    reservoir = FrameReservoir(info.height, info.width) if options.plots else None
    with ExitStack() as stack:
        locating = masks is None  # the first chunk comes once the heart is found
        adapting = locating and getattr(getattr(segmenter, "settings", None), "self_adapt",
                                        False)  # ... and the fine pass is adapted to the video
        waiting = " (locating, self-adapting)" if adapting else " (locating)" if locating else ""
        bar = stack.enter_context(tqdm(total=info.n_frames, unit="frame", leave=False,
                                       desc=f"{name}{waiting}",
                                       disable=not options.show_progress))
        writer = (stack.enter_context(closing(MaskStackWriter(stage / "masks.tif")))
                  if options.save_masks else None)
        overlay = (stack.enter_context(closing(OverlayWriter(stage / "overlay.avi", fps,
                                                             info.height, info.width)))
                   if options.overlay_video else None)
        for frames, mask, confidence, adapted in _masked_chunks(path, reader, config, fps,
                                                                masks, segmenter):
            if locating and first == 0:
                bar.set_description(name)
            adaptation = adapted
            if confidence is not None:
                confidences.append(confidence)
            if first < max_thumbs:
                thumbs.append(block_thumbnails(frames[: max_thumbs - first]))
            table, state = measure_masks(mask, pixel, first_frame=first, previous=state)
            tables.append(table)
            if writer is not None:
                writer.write(mask)
            if reservoir is not None:
                reservoir.add(frames, mask)
            if overlay is not None:
                overlay.write(frames, mask)
            first += len(frames)
            bar.update(len(frames))
    if first < MIN_FRAMES:
        raise VideoError(f"{path}: only {first} frame(s) decoded; at least {MIN_FRAMES} are needed")
    if first > max_thumbs:
        log.info("%s: the model-free beat signal covers the first %d of %d frames",
                 path, max_thumbs, first)
    return _Measured(pd.concat(tables, ignore_index=True),
                     np.concatenate(confidences) if confidences else None,
                     np.concatenate(thumbs), reservoir, adaptation)


def _masked_chunks(path: str | Path, reader: VideoReader, config: Config, fps: float,
                   masks: str | Path | None, segmenter: Segmenter | None
                   ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray | None,
                                       dict[str, Any] | None]]:
    """(frames, masks, confidence or None, self-adaptation or None) of each chunk: the given
    masks, else segmented."""
    info, chunk = reader.info, config.io.chunk_frames
    if masks is not None:
        given = mask_chunks(masks, chunk, (info.n_frames, info.height, info.width))
        for frames in prefetched(reader.chunks(chunk, gray=True)):
            mask = next(given, None)
            if mask is None or len(mask) != len(frames):
                raise VideoError(f"{masks}: the mask count does not match the frames decoded "
                                 f"from {path}")
            yield frames, mask, None, None
        return
    assert segmenter is not None  # analyze_video checks that one of them is given
    # grayscale, read ahead, decoded once where the video fits the replay budget (it is read
    # twice)
    chunks = replayable(lambda: prefetched(reader.chunks(chunk, gray=True)),
                        n_frames=info.n_frames)
    for frames, found in segmenter.segment_video(chunks, fps):
        adaptation = getattr(found, "adaptation", None)
        yield (frames, found.masks, found.confidence,
               None if adaptation is None else adaptation.to_dict())


def percent(value: float) -> str:
    """'45.2%', or 'n/a' where there is no value (no beat with dimensions)."""
    return f"{value:.1f}%" if np.isfinite(value) else "n/a"


def _write_plots(folder: Path, name: str, frames: pd.DataFrame, beats: pd.DataFrame,
                 summary: BeatSummary, rhythm: VideoRhythm, qc: QCResult,
                 reservoir: FrameReservoir, pixel_size_um: float, config: Config) -> None:
    """trace.png and montage.png into `folder`; a drawing problem is logged, never fatal."""
    from .report.montage import plot_montage
    from .report.trace import plot_trace

    verdict = "QC pass" if qc.passed else "QC flags: " + ", ".join(f.name for f in qc.problems)
    if qc.findings:
        verdict += "; findings: " + ", ".join(f.name for f in qc.findings)
    subtitle = (f"{summary.n_beats} beats, {summary.hr_bpm:.1f} bpm from {rhythm.choice.source} "
                f"(masks {rhythm.segmentation_hr_bpm:.1f}, model-free "
                f"{rhythm.intensity.hr_bpm:.1f}), EF {percent(summary.ef_pct)}.\n{verdict}")
    try:
        plot_trace(frames, beats, folder / "trace.png", title=name, subtitle=subtitle,
                   skipped_ratio=config.qc.skipped_beat_ratio)
        plot_montage(reservoir, frames, beats, folder / "montage.png",
                     pixel_size_um=pixel_size_um, title=name, signal=config.cycles.signal)
    except OSError:  # not a drawing problem: the disk failed, so the video fails whole
        raise
    except Exception as exc:  # the numbers are written already; a figure must not lose them
        log.warning("%s: QC plots not drawn (%s: %s)", name, type(exc).__name__, exc)


def _provenance(path, masks, segmenter, config, fps, fps_source, pixel, pixel_source,
                period_frames, adaptation=None) -> dict[str, Any]:
    model = segmenter.provenance() if (segmenter is not None and not masks) else None
    if model is not None and adaptation is not None:
        model = {**model, "self_adaptation": adaptation}
    return {
        "medaka_heart_version": __version__,
        "python": platform.python_version(),
        "input": str(Path(path).resolve()),
        "masks": str(Path(masks).resolve()) if masks else None,
        "model": model,
        "fps": fps,
        "fps_source": fps_source,
        "pixel_size_um": pixel,
        "pixel_size_source": pixel_source,
        "dominant_period_frames": period_frames,
        "config": config.to_dict(),
    }
