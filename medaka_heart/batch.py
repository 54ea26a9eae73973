"""Many videos into one summary: resumable, failure-isolated, in-process, local workers or Dask.

Output layout of a run (`OUT/`)::

    summary.csv      one row per video: video, metadata columns, status, error, metrics
    beats_all.csv    every beat of every analysed video, with its video name and metadata
    conditions.csv   n videos, mean and SD of hr_bpm, ef_pct, fs_minor_pct per --group-by value
    plate.png        heart rate and EF per well, where wells are known
    report.html      self-contained report: conditions, plate, QC-flagged videos, table
    run.log          the log of every run into OUT (appended)
    <video>/         frames.csv, beats.csv, provenance.json, result.json, trace.png,
                     montage.png (see pipeline, run.jobs)

Status: 'ok' analysed now, 'failed' (the error column says why), 'skipped' complete results
of an earlier run with the same fingerprint reused (see `run.resume`); `force` redoes all.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd

from .aggregate import conditions_table
from .config import Config
from .io.atomic import describe_os_error
from .io.discover import VideoSource
from .io.results import write_csv_atomic
from .options import BatchOptions, VideoOptions
from .run.executors import (
    DaskExecutor,
    ProcessExecutor,
    SerialExecutor,
    TaskLost,
    default_workers,
    usable_cores,
)
from .run.jobs import (
    JobOutcome,
    RunOptions,
    SegmenterFactory,
    VideoJob,
    load_default_segmenter,
    run_job,
)
from .run.progress import Progress, run_log
from .run.resume import fingerprint, fingerprint_inputs, model_identity, reusable_row
from .schema import BEAT_COLUMNS, REUSED, RHYTHM_BEAT_COLUMNS, SUMMARY_COLUMNS, USABLE_STATUSES

log = logging.getLogger(__name__)

CHECKPOINT_S = 30.0  # summary.csv is rewritten at most this often while a run goes on
LOCK_FILE = ".medaka-heart.lock"
OWNER_FILE = ".medaka-heart.owner"  # host and pid of the run that holds the lock
STALE_PATTERNS = (".*.partial", ".*.old", ".*.tmp", ".*.tmp.*")  # left by a killed run


class OutputError(OSError):
    """The output folder cannot be used; the message says why in one line."""


def failed_row(name: str, error: str) -> dict:
    """summary.csv row of a video that could not be analysed."""
    return {"video": name, "status": "failed", "error": error}


def metadata_columns(sources: Sequence[VideoSource]) -> list[str]:
    """Metadata column names of all sources, in order of first appearance."""
    return list(dict.fromkeys(k for s in sources for k in s.metadata))


def summary_columns(meta: Sequence[str]) -> list[str]:
    """video, the metadata columns, then the rest of schema.SUMMARY_COLUMNS."""
    return [SUMMARY_COLUMNS[0], *meta, *SUMMARY_COLUMNS[1:]]


def check_writable(out_dir: Path) -> None:
    """Create `out_dir` if needed and prove a file can be written there; else OutputError."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test.", dir=out_dir)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputError(f"{out_dir}: output folder is not writable "
                          f"({exc.strerror or exc})") from None


@contextmanager
def output_lock(out_dir: Path) -> Iterator[None]:
    """One run at a time per output folder.

    The lock is an operating-system file lock (`filelock`), taken atomically and released by
    the system when the run ends, however it ends (a kill -9 too), so no stale lock is ever
    trusted or taken over by guesswork; the owner file beside it (host and pid) only says
    who holds it. Staging folders left by an earlier, dead run are removed once it is held.
    """
    from filelock import FileLock, Timeout

    lock = FileLock(str(out_dir / LOCK_FILE), timeout=0)
    owner = out_dir / OWNER_FILE
    try:
        lock.acquire()
    except Timeout:
        try:
            who = owner.read_text().strip()
        except OSError:
            who = "unknown"
        raise OutputError(f"{out_dir}: another run ({who}) is writing here; wait for it to "
                          "finish or use another output folder") from None
    try:
        owner.write_text(f"host {socket.gethostname()}, pid {os.getpid()}\n")
        _remove_stale(out_dir)
        yield
    finally:
        owner.unlink(missing_ok=True)
        lock.release()


def _remove_stale(out_dir: Path) -> None:
    """Staging folders and temporary files that a killed run left behind."""
    import shutil

    for pattern in STALE_PATTERNS:
        for p in out_dir.glob(pattern):
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)


def _make_executor(scheduler: Any, workers: int | None, n_jobs: int):
    if scheduler is not None:
        return DaskExecutor(scheduler), f"Dask cluster at {scheduler}"
    n = workers if workers is not None else default_workers(n_jobs)
    if n <= 1:
        return SerialExecutor(threads=None), "this process"
    return ProcessExecutor(n), f"{n} worker processes, {max(1, usable_cores() // n)} thread(s) each"


def plan_jobs(sources: Sequence[VideoSource], names: Sequence[str], options: RunOptions,
              *, force: bool = False) -> tuple[list[VideoJob], dict[int, JobOutcome]]:
    """Jobs for every source, and the outcomes of those whose complete results are reused."""
    model = model_identity(options) if any(s.masks is None for s in sources) else None
    jobs, reused = [], {}
    for i, (source, name) in enumerate(zip(sources, names, strict=True)):
        inputs = fingerprint_inputs(source, options, model)
        job = VideoJob(source, name, fingerprint(inputs), inputs)
        jobs.append(job)
        row = None if force else reusable_row(options.out_dir / name, job.fingerprint,
                                              save_masks=options.video.save_masks,
                                              plots=options.video.plots,
                                              overlay_video=options.video.overlay_video)
        if row is not None:
            row.update(video=name, status=REUSED, error="")
            reused[i] = JobOutcome(name, REUSED, row, f"{name}: complete results reused")
    return jobs, reused


def _table(outcomes: dict[int, JobOutcome], jobs: Sequence[VideoJob], meta: Sequence[str]
           ) -> pd.DataFrame:
    rows = []
    for i in sorted(outcomes):
        metadata = jobs[i].source.metadata
        rows.append({**{k: metadata.get(k) for k in meta}, **outcomes[i].row})
    return pd.DataFrame(rows).reindex(columns=summary_columns(meta))


def beats_all(summary: pd.DataFrame, out_dir: Path, meta: Sequence[str]) -> pd.DataFrame:
    """Every beat of every analysed video, with its video name and metadata in front."""
    parts = []
    for _, row in summary[summary["status"].isin(USABLE_STATUSES)].iterrows():
        try:
            beats = pd.read_csv(out_dir / row["video"] / "beats.csv")
        except (OSError, pd.errors.EmptyDataError) as exc:
            log.warning("%s: beats.csv unreadable (%s); not in beats_all.csv", row["video"], exc)
            continue
        for k, col in enumerate(["video", *meta]):
            beats.insert(k, col, row[col])
        parts.append(beats)
    columns = ["video", *meta, *BEAT_COLUMNS, *RHYTHM_BEAT_COLUMNS]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)


def write_run_tables(summary: pd.DataFrame, out_dir: Path, meta: Sequence[str],
                     group_by: Sequence[str]) -> None:
    """summary.csv, beats_all.csv, conditions.csv and (wells known) plate.png."""
    write_csv_atomic(summary, out_dir / "summary.csv")
    write_csv_atomic(beats_all(summary, out_dir, meta), out_dir / "beats_all.csv")
    write_csv_atomic(conditions_table(summary, group_by), out_dir / "conditions.csv")
    if "well" in summary.columns and summary["well"].notna().any():
        from .report.plate import plot_plate

        if plot_plate(summary, out_dir / "plate.png") is None:
            log.info("wells not on a 96- or 384-well layout; no plate.png")


def _checkpoint(summary: pd.DataFrame, out_dir: Path) -> None:
    """summary.csv so far, while the run goes on; a failure is said, the run goes on."""
    try:
        write_csv_atomic(summary, out_dir / "summary.csv")
    except OSError as exc:
        log.warning("summary.csv not updated during the run (%s)", describe_os_error(exc))


def write_run_report(summary: pd.DataFrame, out_dir: Path, meta: Sequence[str],
                     group_by: Sequence[str], config: Config) -> None:
    """report.html; a problem drawing it is logged, the run's tables are already written."""
    from .report.html import write_report

    try:
        write_report(summary, out_dir, group_by=group_by, meta=meta, qc=config.qc)
    except Exception as exc:  # the tables are the results; the report only shows them
        log.warning("report.html not written (%s: %s)", type(exc).__name__, exc)


def run_batch(
    sources: Sequence[VideoSource | Path],
    names: Sequence[str],
    out_dir: Path,
    config: Config,
    video: VideoOptions = VideoOptions(),
    batch: BatchOptions = BatchOptions(),
    *,
    segmenter_factory: SegmenterFactory | None = load_default_segmenter,
) -> pd.DataFrame:
    """Analyse every video; write and return summary.csv (one row per video, failures included).

    video : how each video is read and what is written for it (see `options.VideoOptions`).
    batch : workers, Dask scheduler, force, group_by, progress and debug (`options.BatchOptions`).
    segmenter_factory : makes the segmenter from the config (None: every video has masks).
    Raises OutputError when `out_dir` cannot be written, ValueError for an unknown group_by.
    """
    group_by = tuple(batch.group_by)
    videos = [s if isinstance(s, VideoSource) else VideoSource(Path(s)) for s in sources]
    out_dir = Path(out_dir).resolve()
    meta = metadata_columns(videos)
    unknown = [g for g in group_by if g not in summary_columns(meta)]
    if unknown:
        raise ValueError(f"--group-by {', '.join(unknown)}: no such column; metadata columns "
                         f"are: {', '.join(meta) or 'none'}")
    check_writable(out_dir)
    with output_lock(out_dir), run_log(out_dir / "run.log"):
        options = RunOptions(out_dir, config, video, segmenter_factory, batch.debug)
        jobs, outcomes = plan_jobs(videos, names, options, force=batch.force)
        todo = [i for i in range(len(jobs)) if i not in outcomes]
        executor, where = _make_executor(batch.scheduler, batch.workers, len(todo))
        log.info("%d video(s) into %s: %d to analyse in %s, %d complete from an earlier run",
                 len(jobs), out_dir, len(todo), where, len(outcomes))
        if isinstance(executor, SerialExecutor) and batch.show_progress and sys.stderr.isatty():
            options = dataclasses.replace(
                options, video=dataclasses.replace(options.video, show_progress=True))
        progress = Progress(len(todo), enabled=batch.show_progress)
        last_checkpoint = time.monotonic()
        try:
            fn = partial(run_job, options=options)
            for k, result in executor.run(fn, [jobs[i] for i in todo]):
                job = jobs[todo[k]]
                if isinstance(result, TaskLost):
                    result = JobOutcome.failed(job.name, f"{job.source.display}: {result.message}")
                outcomes[todo[k]] = result
                if result.detail:
                    log.error("%s", result.detail.rstrip())
                progress.update(result.message, failed=result.status == "failed")
                if time.monotonic() - last_checkpoint > CHECKPOINT_S:
                    _checkpoint(_table(outcomes, jobs, meta), out_dir)
                    last_checkpoint = time.monotonic()
        except KeyboardInterrupt:
            log.warning("interrupted: %d of %d video(s) done; run the same command again to "
                        "finish", len(outcomes), len(jobs))
            write_csv_atomic(_table(outcomes, jobs, meta), out_dir / "summary.csv")
            raise
        finally:
            progress.close()
        summary = _table(outcomes, jobs, meta)
        try:
            write_run_tables(summary, out_dir, meta, group_by)
        except OSError as exc:
            n_done = int(summary["status"].isin(USABLE_STATUSES).sum())
            raise OutputError(f"{describe_os_error(exc)}: the run's tables (summary.csv) could "
                              f"not be written; the folders of the {n_done} finished video(s) "
                              "are complete: free space and run the same command again") from None
        write_run_report(summary, out_dir, meta, group_by, config)
        _remove_stale(out_dir)  # staging left by a worker that died mid-video
        counts = summary["status"].value_counts()
        log.info("done: %d ok, %d reused, %d failed; summary in %s", counts.get("ok", 0),
                 counts.get(REUSED, 0), counts.get("failed", 0), out_dir / "summary.csv")
    return summary
