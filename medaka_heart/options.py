"""The choices of one run that are not configuration: one object each, from the CLI down.

`VideoOptions` travels from `cli.analyze` through `batch.run_batch` and `run.jobs` to
`pipeline.analyze_video` (the per-video overrides of a manifest row replace its fps and pixel
size); `BatchOptions` says how the run is spread and reported. The analysis settings
themselves (thresholds, ranges, the model) are the typed `config.Config`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class VideoOptions:
    """How each video is read and what is written for it."""

    fps: float | None = None  # frames/s; None = the file's
    pixel_size_um: float | None = None  # None = the file's metadata, else the config default
    save_masks: bool = False  # masks.tif
    plots: bool = True  # trace.png and montage.png
    overlay_video: bool = False  # overlay.avi, every frame with its mask outline
    show_progress: bool = False  # a progress bar over each video's frames


@dataclass(frozen=True)
class BatchOptions:
    """How the videos of a run are spread and reported."""

    workers: int | None = None  # local processes; None = one per core, at most one per video
    scheduler: Any = None  # a Dask scheduler address or distributed.Client; wins over workers
    force: bool = False  # analyse again even where complete results exist
    group_by: Sequence[str] = ()  # summary columns whose values make the rows of conditions.csv
    show_progress: bool = True  # the run's progress bar
    debug: bool = False  # tracebacks of failed videos into the log
