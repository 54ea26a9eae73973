"""Benchmarks that keep the project honest: accuracy on held-out phantoms, speed, memory.

On a fresh checkout (nothing but the repository is read)::

    python scripts/benchmark.py --quick --json bench_quick.json      # a few minutes on 2 cores
    python scripts/benchmark.py --json bench_full.json               # the numbers to report
    python scripts/benchmark.py --quick --model runs/default/model --json bench_model.json
    python scripts/benchmark.py --device cuda --json bench_gpu.json  # segment on the GPU
    python scripts/benchmark.py --quick --presets typical --threads 1 --work /tmp/bench
    python scripts/benchmark.py --speed-only --json bench_speed.json  # the speed table alone

What it does:

1. **Held-out phantom sets**, generated with fixed seeds that training never uses (>= 900000;
   see SET_SEEDS): presets ``typical``, ``hard`` and ``hts``, 12 videos of ~10 s each per
   preset (``--quick``: 3 videos of ~6 s). A set already in ``--work`` with the same
   description (``set.json``) is reused, not generated again.
2. **Accuracy** per preset, two rows:
   - ``model``: `medaka_heart.batch.run_batch` (what ``medaka-heart analyze`` runs) with the
     U-Net (``--model``, default the shipped weights) and ``--save-masks``, each video with the
     true pixel size (``<name>.truth/meta.json``, key ``pixel_size_um``: an AVI carries none);
     hts videos are analysed from their 16-bit TIFF, the others from the AVI.
   - ``oracle``: the same with the truth masks as ``--masks``: the error left is that of the
     measurement and cycle-detection core alone, without segmentation error.
   Then `medaka_heart.evaluate_folders.evaluate_folders` (what ``medaka-heart evaluate`` runs); its
   metrics.json goes into the JSON as it is (Dice, ED/ES detection rate, frame errors, HR, EF,
   FS and volume errors, and under ``qc_passed`` the same over the videos whose analysis
   passed QC: what a screen that drops QC failures gets). The report folders stay in
   ``--work`` (evaluation.csv, dice.csv, ...).
3. **Speed** (``--speed-only``: this part alone; ``--no-speed``: without it), one markdown
   table of frames/s, wall time, peak RSS and the ratio to decoding the same files alone
   (decode-only: `io.video.open_video(path).chunks(64)` in this process, every frame, none
   kept). Its videos have their own seeds (SPEED_SEED, PLATE_SEED) and are generated once
   into ``--work`` like the sets:
   - in this process: decoding the 30 s 640x480 ``typical`` video, then preprocessing
     (`preprocess.prepare_input` at the model's input size) and segmentation
     (`Segmenter.segment_video`, on the CPU; on the GPU too when CUDA is there) of its first
     STAGE_FRAMES frames, decoded beforehand;
   - end to end as a user runs it, a fresh ``medaka-heart analyze`` process each (start-up,
     imports and model loading included) on the 30 s video: with figures (the default),
     ``--no-plots``, ``--no-self-adapt`` (the network alone, no per-video training), and with
     the truth masks as ``--masks`` (everything but segmentation);
     ``--quick``: one run each, else the fastest of two;
   - the same video at 60 s, with figures: memory should not grow with the length;
   - a plate: 24 ``hts`` (96-well) videos of 10 s, their 16-bit TIFFs in one folder (frame
     rate and pixel size from the files), analysed by one ``analyze FOLDER --workers 2``,
     figures on; with the peak RSS of the largest worker, of the parent and of all processes
     together (sampled from /proc), and the time a 96-well plate would take at this rate;
     and the same plate with ``--no-self-adapt`` (one run: the plate row of a heart-rate screen).
   The runtime (torch / onnx), device and threads are read from the videos' provenance.json,
   never assumed. Targets (TARGETS, issue 23): >= 100 frames/s end to end with figures,
   >= 130 frames/s for the plate, <= 1 GB per process.
4. **Memory**: under ``memory``: the peak RSS of this process, that of the 30 s ``analyze``
   (``cli``) and the 30 s / 60 s comparison (``length``).
5. **Provenance**: Python, numpy, torch, OpenCV, tifffile, scikit-image, scipy, pandas and
   medaka_heart versions, the git commit (and whether the tree had changes), the model file's
   sha256 (`model.checkpoint.model_hash`), the command line.

If the model cannot be loaded (e.g. ``medaka_heart/weights/`` is still empty) the JSON and the
table say so, the segmentation rows and the plate are skipped, and everything else (oracle,
decode, preprocess, end to end with masks, the 60 s video with masks) still runs. The exit
status is 0 unless nothing ran.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import logging
import math
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SET_SEEDS = {"typical": 900_101, "hard": 900_201, "hts": 900_301}  # never used in training
PRESETS = tuple(SET_SEEDS)
FULL = {"n_videos": 12, "duration_s": 10.0, "repeats": 3, "cli_repeats": 2}
QUICK = {"n_videos": 3, "duration_s": 6.0, "repeats": 1, "cli_repeats": 1}
SPEED_SEED = 900_401  # the speed video: one typical phantom, 640x480, at two lengths
SPEED_S, LONG_S = 30.0, 60.0  # its two lengths (the long one: is memory flat in length?)
PLATE_SEED = 900_501  # the plate: hts phantoms (96-well), analysed as one folder
PLATE_VIDEOS, PLATE_VIDEO_S, PLATE_WORKERS = 24, 10.0, 2
TARGETS = {"end_to_end_fps": 100.0, "plate_fps": 130.0, "peak_rss_mb": 1024.0}  # issue 23
STAGE_FRAMES = 320  # frames held in memory for the preprocess and segment rows
CHUNK = 64
BENCH_VERSION = 2  # the report's layout (2: speed rows of fresh `analyze` processes, plate)
SET_VERSION = 1  # the phantom sets' (a change regenerates them)
TABLE_METRICS = (  # (metrics.json key, label, format)
    ("n_videos", "videos", "{:.0f}"),
    ("n_beats_true", "true beats", "{:.0f}"),
    ("dice_mean", "Dice mean", "{:.3f}"),
    ("dice_p05", "Dice p05", "{:.3f}"),
    ("dice_ed", "Dice ED-like frames", "{:.3f}"),
    ("dice_es", "Dice ES-like frames", "{:.3f}"),
    ("area_error_ed_pct", "area error ED-like (%)", "{:+.1f}"),
    ("area_error_es_pct", "area error ES-like (%)", "{:+.1f}"),
    ("edes_detection_rate", "ED/ES detection rate", "{:.3f}"),
    ("n_false_events", "false ED/ES events", "{:.0f}"),
    ("ed_time_error_frames_mean", "ED time error (frames)", "{:.2f}"),
    ("es_time_error_frames_mean", "ES time error (frames)", "{:.2f}"),
    ("hr_abs_err_bpm_median", "HR abs error median (bpm)", "{:.2f}"),
    ("hr_rel_err_pct_median", "HR rel error median (%)", "{:.2f}"),
    ("ef_abs_err_median", "EF abs error median (pp)", "{:.2f}"),
    ("fs_minor_abs_err_median", "FS minor abs err med (pp)", "{:.2f}"),
    ("edv_rel_err_pct_median", "EDV rel error median (%)", "{:.1f}"),
)

QC_TABLE_METRICS = (  # the same, over the videos whose analysis passed QC (metrics "qc_passed")
    ("n_videos", "passed QC: videos", "{:.0f}"),
    ("dice_mean", "  Dice mean", "{:.3f}"),
    ("edes_detection_rate", "  ED/ES detection rate", "{:.3f}"),
    ("hr_rel_err_pct_median", "  HR rel error median (%)", "{:.2f}"),
    ("ef_abs_err_median", "  EF abs error median (pp)", "{:.2f}"),
)

log = logging.getLogger("benchmark")


# ---------------------------------------------------------------------------------------------
# small utilities


def _fps(n_frames: int, seconds: float) -> float | None:
    return round(n_frames / seconds, 1) if seconds > 0 else None


# Runs the CLI as the `medaka-heart` entry point does and reports at exit its own peak RSS and
# the largest ru_maxrss of its waited-for children (worker processes). VmHWM, not ru_maxrss,
# for its own: on Linux a child's ru_maxrss starts from its parent's RSS at fork (a 10 MB child
# of a 1 GB parent reads 1 GB), so the children's figure is an upper bound.
PEAK_WRAPPER = """
import atexit, resource, sys
def _peak():
    scale = 1 / 1024 if sys.platform == "darwin" else 1  # ru_maxrss: bytes on macOS, else KiB
    try:
        with open("/proc/self/status") as f:
            kb = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * scale
    sys.stderr.write(f"PEAK_RSS_KB {kb} {children}\\n")
atexit.register(_peak)
from medaka_heart.cli import main
main(args=sys.argv[1:], prog_name="medaka-heart")
"""


def _own_peak_rss_mb() -> float:
    """Peak RSS of this process in MiB (VmHWM where /proc has it, else ru_maxrss), since it
    was last reset (`_reset_peak_rss`)."""
    try:
        with open("/proc/self/status") as f:
            kb = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        kb = kb / 1024 if sys.platform == "darwin" else kb  # bytes on macOS, KiB on Linux
    return round(kb / 1024, 1)


def _clean(value: Any) -> Any:
    """JSON-safe: NaN/inf as null, numpy scalars as numbers, paths as strings."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def _git(*args: str) -> str | None:
    try:
        run = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True,
                             timeout=20, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return run.stdout.strip()


def environment(threads: int) -> dict[str, Any]:
    """Versions of everything that changes the numbers."""
    import cv2
    import pandas
    import scipy
    import skimage
    import tifffile

    import medaka_heart

    versions = {"python": platform.python_version(), "numpy": np.__version__,
                "opencv": cv2.__version__, "tifffile": tifffile.__version__,
                "scikit-image": skimage.__version__, "scipy": scipy.__version__,
                "pandas": pandas.__version__, "medaka_heart": medaka_heart.__version__}
    try:
        import torch

        versions["torch"] = torch.__version__
        cuda = torch.cuda.is_available()
        versions["cuda"] = torch.version.cuda if cuda else None
    except ImportError:
        versions["torch"] = None
    status = _git("status", "--porcelain")
    return {
        "versions": versions,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "cpu_count": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "torch_threads": threads,
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": bool(status) if status is not None else None,
    }


# ---------------------------------------------------------------------------------------------
# held-out phantom sets


def ensure_set(folder: Path, preset: str, n_videos: int, duration_s: float, *,
               seed: int | None = None) -> list[dict]:
    """The held-out set of `preset` in `folder` (generated unless already there); one dict per
    video: name, path (the file to analyse), truth folder, fps, pixel size, frames, beats.

    seed : the set's seed; default ``SET_SEEDS[preset]`` (the accuracy sets).
    """
    from medaka_heart import __version__
    from medaka_heart.phantom import make_phantom
    from medaka_heart.phantom.writer import video_seed, write_phantom

    seed = SET_SEEDS[preset] if seed is None else seed
    description = {"preset": preset, "seed": seed, "n_videos": n_videos,
                   "duration_s": duration_s, "bench_version": SET_VERSION,
                   "phantom_version": __version__}  # the renderer changes with the package
    marker = folder / "set.json"
    try:
        complete = json.loads(marker.read_text()) == description
    except (OSError, ValueError):
        complete = False
    if not complete:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        for i in range(n_videos):
            t0 = time.perf_counter()
            phantom = make_phantom(preset, seed=video_seed(seed, i), duration_s=duration_s)
            write_phantom(phantom, folder, f"{preset}_{seed}_{i:03d}",
                          extra_meta={"set_seed": seed, "set_index": i, "benchmark": True})
            log.info("generated %s %d/%d (%d frames, %.1f s)", preset, i + 1, n_videos,
                     phantom.n_frames, time.perf_counter() - t0)
        marker.write_text(json.dumps(description, indent=1) + "\n")
    videos = []
    for truth in sorted(folder.glob("*.truth")):
        name = truth.name[: -len(".truth")]
        meta = json.loads((truth / "meta.json").read_text())
        tif, avi = folder / f"{name}.tif", folder / f"{name}.avi"
        video = tif if meta.get("setting") == "hts" and tif.is_file() else avi
        n_beats = sum(1 for _ in (truth / "beats.csv").open()) - 1
        videos.append({"name": name, "path": video, "truth": truth, "fps": meta["fps"],
                       "pixel_size_um": meta["pixel_size_um"], "n_frames": meta["n_frames"],
                       "frame_shape": meta["frame_shape"], "n_beats": n_beats})
    return videos


# ---------------------------------------------------------------------------------------------
# the segmenter


def load_model(model: str | None, device: str, threads: int) -> tuple[Any, dict[str, Any]]:
    """(segmenter or None, description incl. sha256, or the reason it is not available)."""
    from medaka_heart.config import PreprocessConfig, SegmentConfig

    info: dict[str, Any] = {"requested": model, "device": device}
    try:
        from medaka_heart.model.folder import model_hash
        from medaka_heart.segment import default_model_path
    except ImportError as exc:
        info.update(available=False, error=f"torch/segmenter not importable ({exc})")
        return None, info
    path = Path(model) if model is not None else default_model_path()
    info["path"] = str(path)
    try:
        info["sha256"] = model_hash(path)
    except (FileNotFoundError, OSError) as exc:
        default = " (the shipped default weights are not there yet)" if model is None else ""
        info.update(available=False, sha256=None,
                    error=f"no model to benchmark: {exc}{default}; pass --model PATH")
        return None, info
    try:
        from medaka_heart.run.jobs import load_default_segmenter

        # the in-process rows time the network's passes, not a video's self-adaptation
        segment = SegmentConfig(model=str(path), device=device, threads=threads,
                                self_adapt=False)
        seg = load_default_segmenter(segment, PreprocessConfig())
    except Exception as exc:  # any reason the model cannot be used: say it and go on
        info.update(available=False, error=f"{type(exc).__name__}: {exc}")
        return None, info
    prov = seg.provenance() if hasattr(seg, "provenance") else {}
    info.update(available=True, error=None, **{k: v for k, v in prov.items() if k != "model"})
    return seg, info


def segment_config(model_info: dict[str, Any], device: str, threads: int,
                   self_adapt: bool | None = None):
    """Analysis Config with the benchmarked model, device and threads; per-video
    self-adaptation as analyze's default unless `self_adapt` says otherwise."""
    from medaka_heart.config import Config, with_overrides

    return with_overrides(Config(), "segment", model=model_info.get("path"), device=device,
                          threads=threads, self_adapt=self_adapt)


# ---------------------------------------------------------------------------------------------
# accuracy


def analyze_set(videos: list[dict], out: Path, config, *, oracle: bool, plots: bool = False,
                save_masks: bool | None = None) -> dict[str, Any]:
    """Analyse every video into `out` (one run_batch per video: each has its own pixel size);
    writes the combined summary.csv; returns wall time and failures.

    oracle : the truth masks as --masks (else the model segments); save_masks : default
    `not oracle` (predicted masks are needed for Dice).
    """
    save_masks = (not oracle) if save_masks is None else save_masks
    import pandas as pd

    from medaka_heart.batch import run_batch
    from medaka_heart.io.discover import VideoSource
    from medaka_heart.io.results import write_csv_atomic
    from medaka_heart.options import BatchOptions, VideoOptions

    shutil.rmtree(out, ignore_errors=True)
    rows, t0 = [], time.perf_counter()
    for v in videos:
        source = VideoSource(v["path"], masks=(v["truth"] / "masks.tif") if oracle else None)
        video = VideoOptions(pixel_size_um=v["pixel_size_um"], save_masks=save_masks,
                             plots=plots)
        batch = BatchOptions(workers=1, force=True, show_progress=False)
        summary = run_batch([source], [v["name"]], out, config, video, batch,
                            segmenter_factory=None if oracle else _default_factory())
        rows.append(summary)
    wall = time.perf_counter() - t0
    summary = pd.concat(rows, ignore_index=True)
    write_csv_atomic(summary, out / "summary.csv")
    failed = summary[summary["status"] == "failed"]
    return {"analyze_wall_s": round(wall, 1),
            "n_failed": len(failed),
            "failures": [f"{r.video}: {r.error}" for r in failed.itertuples()]}


def _default_factory():
    from medaka_heart.run.jobs import load_default_segmenter

    return load_default_segmenter


def evaluate_set(pred: Path, truth: Path, report: Path) -> dict[str, Any]:
    """metrics.json of `medaka-heart evaluate PRED TRUTH -o REPORT`, as a dict."""
    from medaka_heart.evaluate_folders import evaluate_folders, write_evaluation

    result = evaluate_folders(pred, truth, chunk_frames=CHUNK)
    paths = write_evaluation(result, report)
    return json.loads(paths["metrics"].read_text())


def accuracy(preset: str, videos: list[dict], data: Path, work: Path, config,
             model_available: bool) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    kinds = (["model"] if model_available else []) + ["oracle"]
    for kind in kinds:
        pred = work / "pred" / preset / kind
        run = analyze_set(videos, pred, config, oracle=kind == "oracle")
        try:
            metrics = evaluate_set(pred, data, work / "eval" / preset / kind)
        except (ValueError, FileNotFoundError) as exc:
            metrics = {"error": str(exc)}
        rows[kind] = {**metrics, **run}
        log.info("%s %s: %s", preset, kind, {k: metrics.get(k) for k, _, _ in TABLE_METRICS})
    if not model_available:
        rows["model"] = {"skipped": "no model (see model.error)"}
    return rows


# ---------------------------------------------------------------------------------------------
# speed: the stages in this process; end to end as a user runs it (a fresh `analyze` process)


def decode_count(paths: list[Path]) -> int:
    """Decode every frame of `paths` in this process, chunk by chunk as `analyze` reads them
    (`io.video.open_video`), keeping none; the number of frames."""
    from medaka_heart.io.video import open_video

    n = 0
    for path in paths:
        for chunk in open_video(path).chunks(CHUNK):
            n += len(chunk)
    return n


def first_chunks(path: Path, n_frames: int) -> list[np.ndarray]:
    """The first decoded chunks of a video: at least `n_frames` frames (all of a shorter one)."""
    from medaka_heart.io.video import open_video

    chunks: list[np.ndarray] = []
    for chunk in open_video(path).chunks(CHUNK):
        chunks.append(np.asarray(chunk))
        if sum(map(len, chunks)) >= n_frames:
            break
    return chunks


_PEAKS_BEFORE_RESET: list[float] = []  # so that the whole run's peak is still known


def _run_peak_rss_mb() -> float:
    """Peak RSS of this process in MiB over the whole run."""
    return max([_own_peak_rss_mb(), *_PEAKS_BEFORE_RESET])


def _reset_peak_rss() -> bool:
    """Start this process's peak RSS (VmHWM) afresh (Linux); False where it cannot be."""
    _PEAKS_BEFORE_RESET.append(_own_peak_rss_mb())
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _timed(fn, repeats: int) -> tuple[Any, float, float | None]:
    """(fn's result, median wall s of `repeats` calls after an untimed warm-up call, peak RSS
    in MiB of this process over them: None where the peak cannot be reset)."""
    reset = _reset_peak_rss()
    result = fn()
    times = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return result, statistics.median(times), (_own_peak_rss_mb() if reset else None)


def _row(stage: str, n_frames: int, wall_s: float, peak_rss_mb: float | None,
         decode_fps: float | None, **extra: Any) -> dict[str, Any]:
    """One row of the speed table."""
    fps = _fps(n_frames, wall_s)
    ratio = round(fps / decode_fps, 3) if fps and decode_fps else None
    return {"stage": stage, "frames": n_frames, "fps": fps, "wall_s": round(wall_s, 2),
            "peak_rss_mb": peak_rss_mb, "ratio_to_decode": ratio, **extra}


def _descendants(pid: int) -> list[int]:
    """Ids of the processes below `pid` (from /proc: empty where there is none)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        found += kids
        todo += kids
    return found


def _status_kb(pid: int, key: str) -> int:
    """A `key` ("VmHWM:", "VmRSS:") of /proc/PID/status in KiB; 0 where it cannot be read."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith(key))
    except (OSError, StopIteration, ValueError):
        return 0


def _mb(kb: float) -> float | None:
    return round(kb / 1024, 1) if kb else None


def run_cli(args: list[str], log_file: Path, *, interval_s: float = 0.25) -> dict[str, Any]:
    """One `medaka-heart ARGS` in a fresh process (start-up, imports and model loading
    included); its output goes to `log_file`.

    Returns exit code, wall s and peak RSS in MiB: ``peak_rss_mb`` of the process itself
    (VmHWM at exit), ``worker_peak_rss_mb`` of its largest worker process (VmHWM, sampled
    every `interval_s`; None without workers), ``total_peak_rss_mb`` of all of them together
    (sum of VmRSS, sampled) and ``children_maxrss_mb``, the largest ``ru_maxrss`` of its
    waited-for children (on Linux it counts the parent's RSS at the fork too: an upper bound).
    """
    cmd = [sys.executable, "-c", PEAK_WRAPPER, *args]
    worker_kb = total_kb = 0
    t0 = time.perf_counter()
    with log_file.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        while True:
            pids = _descendants(proc.pid)
            worker_kb = max([worker_kb, *(_status_kb(p, "VmHWM:") for p in pids)])
            total_kb = max(total_kb, sum(_status_kb(p, "VmRSS:") for p in [proc.pid, *pids]))
            try:
                proc.wait(timeout=interval_s)
                break
            except subprocess.TimeoutExpired:
                continue
    wall = time.perf_counter() - t0
    text = log_file.read_text(errors="replace")
    peaks = [line.split()[1:] for line in text.splitlines() if line.startswith("PEAK_RSS_KB ")]
    own, children = (float(peaks[-1][0]), float(peaks[-1][1])) if peaks else (0.0, 0.0)
    result = {"command": " ".join(["medaka-heart", *args]), "exit_code": proc.returncode,
              "wall_s": round(wall, 2), "peak_rss_mb": _mb(own),
              "worker_peak_rss_mb": _mb(worker_kb), "total_peak_rss_mb": _mb(total_kb),
              "children_maxrss_mb": _mb(children)}
    if proc.returncode != 0:
        result["log_tail"] = text.splitlines()[-5:]
    return result


def used_model(out: Path) -> dict[str, Any]:
    """What the videos' provenance.json files under `out` record: the model's runtime, device
    and threads (None when measured from masks), the frame-rate and pixel-size sources; each
    one value, or a list where the videos differ."""
    values: dict[str, set] = {"runtime": set(), "device": set(), "threads": set(),
                              "fps_source": set(), "pixel_size_source": set()}
    for path in sorted(out.glob("*/provenance.json")):
        prov = json.loads(path.read_text())
        model = prov.get("model") or {}
        for key in ("runtime", "device", "threads"):
            values[key].add(model.get(key))
        for key in ("fps_source", "pixel_size_source"):
            values[key].add(json.dumps(_find_key(prov, key)))
    found = {k: sorted(v, key=str) for k, v in values.items()}
    for key in ("fps_source", "pixel_size_source"):
        found[key] = [json.loads(v) for v in found[key]]
    return {k: (v[0] if len(v) == 1 else (v or None)) for k, v in found.items()}


def _find_key(data: Any, key: str) -> Any:
    """The first value of `key` anywhere in nested dicts (None if absent)."""
    if isinstance(data, dict):
        if key in data:
            return data[key]
        for value in data.values():
            found = _find_key(value, key)
            if found is not None:
                return found
    return None


def cli_analyze(inputs: list[Path], n_frames: int, out: Path, options: list[str],
                repeats: int) -> dict[str, Any]:
    """`medaka-heart analyze INPUTS -o OUT --no-progress OPTIONS` in a fresh process,
    `repeats` times, each into an empty OUT: the fastest run's wall time and frames/s, the
    largest peaks over the runs, what provenance.json says was used, failed videos."""
    import pandas as pd

    runs = []
    for _ in range(max(1, repeats)):
        shutil.rmtree(out, ignore_errors=True)
        args = ["analyze", *map(str, inputs), "-o", str(out), "--no-progress", *options]
        runs.append(run_cli(args, out.parent / f"{out.name}.log"))
    best = min(runs, key=lambda r: r["wall_s"])
    result = {**best, "frames": n_frames, "fps": _fps(n_frames, best["wall_s"]),
              "runs_wall_s": [r["wall_s"] for r in runs]}
    for key in ("peak_rss_mb", "worker_peak_rss_mb", "total_peak_rss_mb", "children_maxrss_mb"):
        result[key] = max((r[key] for r in runs if r[key] is not None), default=None)
    result.update(used_model(out))
    try:
        summary = pd.read_csv(out / "summary.csv")
        result["n_failed"] = int((summary["status"] == "failed").sum())
    except (OSError, ValueError, KeyError):
        result["n_failed"] = None
    shutil.rmtree(out, ignore_errors=True)
    return result


def plate_folder(videos: list[dict], folder: Path) -> Path:
    """A folder holding only the files to analyse (links to them, copies where links cannot
    be made): the set folder also holds each hts video's AVI and truth."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for v in videos:
        link = folder / v["path"].name
        try:
            link.symlink_to(v["path"].resolve())
        except OSError:
            shutil.copy2(v["path"], link)
    return folder


def cli_options(model_info: dict[str, Any], device: str, threads: int | None,
                work: Path) -> list[str]:
    """The `analyze` options that give the benchmarked model, device and threads; none for
    what the user gets by default."""
    options = []
    if model_info.get("requested") is not None:
        options += ["--model", str(model_info["path"])]
    if device != "auto":
        options += ["--device", device]
    if threads is not None:
        config = work / "threads.toml"
        config.write_text(f"[segment]\nthreads = {threads}\n")
        options += ["--config", str(config)]
    return options


def decode_row(label: str, paths: list[Path], repeats: int) -> dict[str, Any]:
    """The decode-only row of `paths` (its ratio to decode is 1 by definition)."""
    n, wall, peak = _timed(lambda: decode_count(paths), repeats)
    return {**_row(label, n, wall, peak, None, how="in-process"), "ratio_to_decode": 1.0}


def speed(work: Path, seg, model_info: dict[str, Any], *, device: str, threads: int,
          threads_given: int | None, repeats: int, cli_repeats: int) -> dict[str, Any]:
    """The speed table: decode, preprocess and segment in this process; end to end in a fresh
    `analyze` process on a 30 s video (with figures, without, with truth masks) and on the
    same video at 60 s (memory flat in length?); a plate of hts videos with workers."""
    data = work / "data"
    video = ensure_set(data / "speed_30s", "typical", 1, SPEED_S, seed=SPEED_SEED)[0]
    long = ensure_set(data / "speed_60s", "typical", 1, LONG_S, seed=SPEED_SEED)[0]
    wells = ensure_set(data / "plate", "hts", PLATE_VIDEOS, PLATE_VIDEO_S,
                       seed=PLATE_SEED)
    out: dict[str, Any] = {"video": video["name"], "width": video["frame_shape"][1],
                           "height": video["frame_shape"][0], "video_fps": video["fps"],
                           "duration_s": SPEED_S, "repeats": repeats,
                           "cli_repeats": cli_repeats, "threads": threads,
                           "cpu_count": os.cpu_count(),
                           "usable_cores": (len(os.sched_getaffinity(0))
                                            if hasattr(os, "sched_getaffinity") else None)}
    decode = decode_row(f"decode, {SPEED_S:.0f} s video", [video["path"]], repeats)
    out["n_frames"] = decode["frames"]
    rows, extra = in_process_rows(video, decode["fps"], seg, model_info, threads, repeats)
    rows.insert(0, decode)
    out.update(extra)
    options = cli_options(model_info, device, threads_given, work)
    model = seg is not None
    e2e_rows, e2e = end_to_end(video, decode, options, model, work, cli_repeats)
    out.update(e2e)
    short = e2e["end_to_end"] if model else e2e["end_to_end_masks"]
    long_rows, out["memory_length"] = memory_in_length(long, short, options, model, work,
                                                       repeats)
    plate_rows, out["plate"] = plate(wells, work, options, model, repeats, cli_repeats)
    out["stages"] = rows = rows + e2e_rows + long_rows + plate_rows
    used = e2e["end_to_end"] if model else {}
    out.update(runtime=used.get("runtime"), device=used.get("device"),
               model_threads=used.get("threads"))
    out["cpu"] = _legacy_keys(out, rows)
    return out


def in_process_rows(video: dict, decode_fps: float | None, seg, model_info: dict[str, Any],
                    threads: int, repeats: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Preprocess and segment rows (CPU; and CUDA when there) on the first STAGE_FRAMES frames
    of the video, decoded beforehand; and the input size and the CUDA device's name."""
    from medaka_heart.preprocess import prepare_input

    chunks = first_chunks(video["path"], STAGE_FRAMES)
    n = sum(map(len, chunks))
    size = int(model_info.get("input_size") or 256)
    _, wall, peak = _timed(lambda: [prepare_input(c, size) for c in chunks], repeats)
    rows = [_row(f"preprocess, first {n} frames", n, wall, peak, decode_fps, how="in-process")]
    fps = video["fps"]  # sets the span of a motion plane (three-channel models)
    if seg is not None:
        cpu_seg = seg if str(model_info.get("device", "")).startswith("cpu") else None
        if cpu_seg is None:
            cpu_seg, _ = load_model(model_info["path"], "cpu", threads)
        _, wall, peak = _timed(lambda: list(cpu_seg.segment_video(chunks, fps)), repeats)
        rows.append(_row(f"segment, first {n} frames, CPU", n, wall, peak, decode_fps,
                         how="in-process"))
    cuda = _cuda_speed(chunks, fps, seg, model_info, threads, repeats)
    if cuda and "wall_s" in cuda:
        rows.append(_row(f"segment, first {n} frames, {cuda['device_name']}", n,
                         cuda["wall_s"], cuda["peak_rss_mb"], decode_fps, how="in-process"))
        cuda["segment_fps"] = rows[-1]["fps"]
    return rows, {"preprocess_size": size, "cuda": cuda}


def end_to_end(video: dict, decode: dict[str, Any], options: list[str], model: bool,
               work: Path, repeats: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Fresh `analyze` runs of the video: with figures, --no-plots, --no-self-adapt, truth
    masks (with figures); the model's three are skipped without a model."""
    pixel = ["--pixel-size", repr(video["pixel_size_um"])]  # an AVI carries none
    masks = ["--masks", str(video["truth"] / "masks.tif")]
    runs = [("end_to_end", "end to end, figures", [*options], model),
            ("end_to_end_no_plots", "end to end, --no-plots", [*options, "--no-plots"], model),
            ("end_to_end_no_self_adapt", "end to end, figures, --no-self-adapt",
             [*options, "--no-self-adapt"], model),
            ("end_to_end_masks", "end to end, figures, truth masks (--masks)", masks, True)]
    rows, e2e = [], {}
    for key, label, opts, run in runs:
        if not run:
            e2e[key] = {"skipped": "no model (see model.error)"}
            continue
        e2e[key] = res = cli_analyze([video["path"]], decode["frames"], work / key,
                                     [*pixel, *opts], repeats)
        rows.append(_row(label, decode["frames"], res["wall_s"], res["peak_rss_mb"],
                         decode["fps"], how="fresh analyze", command=res["command"]))
    return rows, e2e


def memory_in_length(long: dict, short: dict[str, Any], options: list[str], model: bool,
                     work: Path, repeats: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Decode and one fresh `analyze` (figures; truth masks without a model) of the long
    video; its peak RSS against that of the short one's run (`short`)."""
    decode = decode_row(f"decode, {LONG_S:.0f} s video", [long["path"]], repeats)
    opts = (["--pixel-size", repr(long["pixel_size_um"])]
            + (options if model else ["--masks", str(long["truth"] / "masks.tif")]))
    run = cli_analyze([long["path"]], decode["frames"], work / "end_to_end_long", opts, 1)
    row = _row(f"end to end, figures, {LONG_S:.0f} s video", run["frames"],
               run["wall_s"], run["peak_rss_mb"], decode["fps"], how="fresh analyze",
               command=run["command"])
    peaks = (short.get("peak_rss_mb"), run["peak_rss_mb"])
    return [decode, row], {
        "mode": "model" if model else "masks", "short_s": SPEED_S,
        "long_s": LONG_S, "short_peak_rss_mb": peaks[0], "long_peak_rss_mb": peaks[1],
        "ratio": round(peaks[1] / peaks[0], 3) if all(peaks) else None, "long": run}


def plate(wells: list[dict], work: Path, options: list[str], model: bool, repeats: int,
          cli_repeats: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The hts videos decoded, then analysed as one folder by one fresh `analyze --workers N`
    (figures on; skipped without a model)."""
    n_wells, workers = len(wells), PLATE_WORKERS
    res: dict[str, Any] = {"n_videos": n_wells, "duration_s": PLATE_VIDEO_S,
                           "workers": workers, "input": sorted({v["path"].suffix for v in wells})}
    decode = decode_row(f"decode, plate of {n_wells} x {PLATE_VIDEO_S:.0f} s hts",
                        [v["path"] for v in wells], repeats)
    res["decode_fps"] = decode["fps"]
    if not model:
        res["skipped"] = "no model (see model.error)"
        return [decode], res
    folder = plate_folder(wells, work / "plate_in")
    run = cli_analyze([folder], decode["frames"], work / "plate_out",
                      [*options, "--workers", str(workers)], cli_repeats)
    row = _row(f"plate, --workers {workers}, figures", decode["frames"], run["wall_s"],
               run["worker_peak_rss_mb"], decode["fps"], how="fresh analyze",
               command=run["command"], peak_rss_of="largest worker")
    plain = cli_analyze([folder], decode["frames"], work / "plate_out_no_self_adapt",
                        [*options, "--workers", str(workers), "--no-self-adapt"], 1)
    plain_row = _row(f"plate, --workers {workers}, figures, --no-self-adapt", decode["frames"],
                     plain["wall_s"], plain["worker_peak_rss_mb"], decode["fps"],
                     how="fresh analyze", command=plain["command"],
                     peak_rss_of="largest worker")
    res["no_self_adapt"] = {"fps": plain_row["fps"], "wall_s": plain["wall_s"],
                            "ratio_to_decode": plain_row["ratio_to_decode"],
                            "plate_96_extrapolated_s": round(96 * plain["wall_s"] / n_wells, 1)}
    per_video = run["wall_s"] / n_wells
    res.update(run)
    res.update(ratio_to_decode=row["ratio_to_decode"], per_video_mean_s=round(per_video, 2),
               plate_96_extrapolated_s=round(96 * per_video, 1))
    return [decode, row, plain_row], res


def _legacy_keys(out: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The frames/s keys of benchmark version 1 under `speed.cpu` (end to end ones: when the
    CLI ran on the CPU; else under `speed.cuda`)."""
    def first(prefix: str, suffix: str = "") -> float | None:
        return next((r["fps"] for r in rows
                     if r["stage"].startswith(prefix) and r["stage"].endswith(suffix)), None)

    cpu = {"threads": out["threads"], "decode_fps": first("decode"),
           "preprocess_fps": first("preprocess"), "preprocess_size": out["preprocess_size"],
           "segment_fps": first("segment", "CPU")}
    e2e = {f"{key}_fps": out[key].get("fps") for key in
           ("end_to_end", "end_to_end_no_plots", "end_to_end_masks")}
    if str(out.get("device") or "cpu").startswith("cpu"):
        cpu.update(e2e)
    elif out.get("cuda"):
        out["cuda"].update(e2e)
    return cpu


def _cuda_speed(chunks, fps, seg, model_info, threads, repeats) -> dict[str, Any] | None:
    """Segmentation on the GPU in this process: the device's name, wall s and peak RSS (None
    without CUDA)."""
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    res: dict[str, Any] = {"device_name": torch.cuda.get_device_name(0)}
    if seg is None:
        res["skipped"] = "no model"
        return res
    gpu_seg, info = load_model(model_info["path"], "cuda", threads)
    if gpu_seg is None:
        res["skipped"] = info.get("error")
        return res

    def run():
        for _ in gpu_seg.segment_video(chunks, fps):
            pass
        torch.cuda.synchronize()

    _, res["wall_s"], res["peak_rss_mb"] = _timed(run, repeats)
    return res


# ---------------------------------------------------------------------------------------------
# report


def _fmt(value: Any, spec: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    try:
        return spec.format(value)
    except (TypeError, ValueError):
        return str(value)


def table(report: dict[str, Any]) -> str:
    """Compact human-readable summary: accuracy, then the speed table (markdown)."""
    lines = []
    model = report["model"]
    if model.get("available"):
        lines.append(f"model: {model['path']} (sha256 {model['sha256'][:12]}...) on "
                     f"{model.get('device')}")
    else:
        lines.append(f"model: NOT AVAILABLE: {model.get('error')}")
    if report.get("accuracy"):
        lines += accuracy_table(report["accuracy"])
    if report.get("speed"):
        lines += ["", *speed_table(report["speed"])]
    mem = report.get("memory", {})
    if mem.get("peak_rss_mb"):
        lines += ["", f"peak RSS of this benchmark process: {mem['peak_rss_mb']} MB"]
    env = report["environment"]
    v = env["versions"]
    dirty = " (dirty)" if env.get("git_dirty") else ""
    lines.append(f"versions: medaka_heart {v.get('medaka_heart')}, torch {v.get('torch')}, "
                 f"numpy {v.get('numpy')}, opencv {v.get('opencv')}; git "
                 f"{(env.get('git_commit') or '?')[:10]}{dirty}; total {report['wall_s']} s")
    return "\n".join(lines)


def accuracy_table(acc: dict[str, Any]) -> list[str]:
    """Lines of the accuracy table: per preset, the model and oracle columns."""
    presets = list(acc)
    cols = [(p, k) for p in presets for k in ("model", "oracle")]
    width = 12
    lines = ["", f"{'accuracy (held-out)':28s}" + "".join(f"{p[:width - 1]:>{width}s}"
                                                          for p, _ in cols)]
    lines.append(f"{'':28s}" + "".join(f"{k:>{width}s}" for _, k in cols))
    for group, metrics in ((None, TABLE_METRICS), ("qc_passed", QC_TABLE_METRICS)):
        for key, label, spec in metrics:
            cells = []
            for p, k in cols:
                row = acc[p].get(k, {})
                row = (row.get(group) or {}) if group and "skipped" not in row else row
                cells.append(_fmt(row.get(key), spec) if "skipped" not in row else "-")
            lines.append(f"{label:28s}" + "".join(f"{c:>{width}s}" for c in cells))
    fails = [(p, k, acc[p][k].get("n_failed")) for p, k in cols if acc[p][k].get("n_failed")]
    for p, k, nf in fails:
        lines.append(f"  {p}/{k}: {nf} video(s) failed: {acc[p][k]['failures'][:2]}")
    return lines


def speed_table(sp: dict[str, Any]) -> list[str]:
    """Lines of the speed table (markdown) and what it was measured with."""
    lines = [f"speed: {sp['video']} ({sp['width']}x{sp['height']}, "
             f"{_fmt(sp.get('video_fps'), '{:.1f}')} frames/s); in-process rows: median of "
             f"{sp['repeats']} after a warm-up, peak RSS of the benchmark process during the "
             f"stage; fresh `analyze` rows: fastest of {sp['cli_repeats']}, peak RSS of that "
             "process (plate: of its largest worker)", "",
             "| stage | how | frames | frames/s | wall s | peak RSS MB | ratio to decode |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for row in sp["stages"]:
        lines.append(f"| {row['stage']} | {row.get('how', '')} | {row['frames']} | "
                     f"{_fmt(row['fps'], '{:.1f}')} | {_fmt(row['wall_s'], '{:.2f}')} | "
                     f"{_fmt(row['peak_rss_mb'], '{:.0f}')} | "
                     f"{_fmt(row['ratio_to_decode'], '{:.3f}')} |")
    runs = {k: sp[k] for k in ("end_to_end", "end_to_end_no_plots", "end_to_end_no_self_adapt",
                               "end_to_end_masks", "plate")}
    runs["end_to_end_long"] = sp["memory_length"]["long"]
    skipped = [k for k, run in runs.items() if run.get("skipped")]
    if skipped:
        lines.append(f"(skipped, no model: {', '.join(skipped)})")
    for key, run in runs.items():
        if run.get("exit_code") or run.get("n_failed"):
            lines.append(f"FAILED {key}: exit status {run.get('exit_code')}, "
                         f"{run.get('n_failed')} video(s) failed; {run.get('log_tail')}")
    lines += ["", f"runtime {sp.get('runtime')}, device {sp.get('device')}, threads "
                  f"{sp.get('model_threads')} (from the videos' provenance.json); CPU count "
                  f"{sp.get('cpu_count')} ({sp.get('usable_cores')} usable)"]
    if sp.get("cuda"):
        lines.append(f"cuda device: {sp['cuda'].get('device_name')}")
    pl = sp["plate"]
    if not pl.get("skipped"):
        lines.append(
            f"plate: {pl['n_videos']} x {pl['duration_s']:.0f} s hts {'/'.join(pl['input'])} "
            f"as one folder, --workers {pl['workers']} ({pl.get('threads')} thread(s) each): "
            f"peak RSS of the largest worker "
            f"{_fmt(pl.get('worker_peak_rss_mb'), '{:.0f}')} MB, of the parent process "
            f"{_fmt(pl.get('peak_rss_mb'), '{:.0f}')} MB, all together "
            f"{_fmt(pl.get('total_peak_rss_mb'), '{:.0f}')} MB (RUSAGE_CHILDREN max "
            f"{_fmt(pl.get('children_maxrss_mb'), '{:.0f}')} MB); frame rate and pixel size "
            f"from: {pl.get('fps_source')} / {pl.get('pixel_size_source')}; a 96-well plate "
            f"at this rate: {_fmt(pl.get('plate_96_extrapolated_s'), '{:.0f}')} s "
            f"(96 x the mean {pl.get('per_video_mean_s')} s per video)")
        plain = pl.get("no_self_adapt")
        if plain:
            lines.append(f"plate with --no-self-adapt {_fmt(plain.get('fps'), '{:.1f}')} "
                         f"frames/s (a 96-well plate: "
                         f"{_fmt(plain.get('plate_96_extrapolated_s'), '{:.0f}')} s)")
    mem = sp["memory_length"]
    lines.append(f"memory in video length ({mem['mode']}): peak RSS {mem['short_peak_rss_mb']} "
                 f"MB at {mem['short_s']:.0f} s, {mem['long_peak_rss_mb']} MB at "
                 f"{mem['long_s']:.0f} s (x{_fmt(mem.get('ratio'), '{:.2f}')})")
    lines.append(targets_line(sp))
    return lines


def targets_line(sp: dict[str, Any]) -> str:
    """The issue's targets against what was measured."""
    e2e = sp["end_to_end"].get("fps")
    plate_fps = sp["plate"].get("fps")
    peaks = [sp["end_to_end"].get("peak_rss_mb"), sp["memory_length"].get("long_peak_rss_mb"),
             sp["plate"].get("worker_peak_rss_mb")]
    peak = max((p for p in peaks if p is not None), default=None)

    def met(value, target, low_is_good=False):
        if value is None:
            return "n/a"
        ok = value <= target if low_is_good else value >= target
        return f"{value:.0f} ({'met' if ok else 'NOT met'})"

    return (f"targets: end to end with figures >= {TARGETS['end_to_end_fps']:.0f} frames/s: "
            f"{met(e2e, TARGETS['end_to_end_fps'])}; plate >= {TARGETS['plate_fps']:.0f} "
            f"frames/s: {met(plate_fps, TARGETS['plate_fps'])}; peak RSS per process <= "
            f"{TARGETS['peak_rss_mb']:.0f} MB: {met(peak, TARGETS['peak_rss_mb'], True)}")


# ---------------------------------------------------------------------------------------------


def rhythm_section(work: Path, presets: list[str], mode: dict, real: Path | None
                   ) -> dict[str, Any]:
    """The rhythm rows of `bench_rhythm.py` (per video) and their markdown table."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import bench_rhythm

    rows = bench_rhythm.phantom_rows(work / "rhythm", presets, mode["n_videos"],
                                     mode["duration_s"])
    if real is not None:
        rows += bench_rhythm.real_rows(real, work / "rhythm")
    return {"videos": rows, "table": bench_rhythm.markdown(rows)}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Accuracy on held-out phantoms, speed and memory of medaka_heart.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="See the module docstring (scripts/benchmark.py) for what is measured.")
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK['n_videos']} videos of ~{QUICK['duration_s']:.0f} s per "
                             f"preset (default {FULL['n_videos']} of ~{FULL['duration_s']:.0f} s)")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument("--model", default=None,
                        help="model folder or checkpoint (default: the shipped weights)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], default="auto",
                        help="where the model runs for the accuracy rows and the `analyze` "
                             "runs of the speed table (auto: what analyze picks); its "
                             "in-process segment row: CPU, and CUDA when available")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads of the model in this process (default: all usable "
                             "cores) and, when given, of the `analyze` runs (a --config file; "
                             "default: analyze's own)")
    parser.add_argument("--presets", nargs="+", choices=PRESETS, default=list(PRESETS))
    parser.add_argument("--no-self-adapt", dest="self_adapt", action="store_const",
                        const=False, default=None,
                        help="accuracy without per-video self-adaptation (analyze "
                             "--no-self-adapt; on by default, as in analyze)")
    parser.add_argument("--work", type=Path, default=None,
                        help="folder for the phantom sets, predictions and evaluation reports "
                             "(kept; sets found there are reused). Default: a temporary folder, "
                             "removed at the end")
    part = parser.add_mutually_exclusive_group()
    part.add_argument("--no-speed", action="store_true", help="skip the speed and memory part")
    part.add_argument("--speed-only", action="store_true",
                      help="only the speed and memory part (no accuracy sets): a few minutes "
                           "once its videos are generated")
    parser.add_argument("--rhythm", action="store_true",
                        help="also the rhythm section (scripts/bench_rhythm.py: heart rate and "
                             "beat timing per video, each analysed by the CLI)")
    parser.add_argument("--real", type=Path, default=None,
                        help="with --rhythm: a folder laid out like the reference recordings "
                             "(real-appearance and real rows)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    level = logging.INFO if args.verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(asctime)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:  # run_batch lifts its loggers to INFO
        handler.setLevel(level)
    log.setLevel(level)
    mode = QUICK if args.quick else FULL
    threads = args.threads or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                               else os.cpu_count() or 1)
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:
        pass
    t_start = time.perf_counter()
    work = args.work or Path(tempfile.mkdtemp(prefix="medaka-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "benchmark_version": BENCH_VERSION,
        "mode": "quick" if args.quick else "full",
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None
                                                      else sys.argv[1:])]),
        "environment": environment(threads),
    }
    try:
        seg, model_info = load_model(args.model, args.device, threads)
        report["model"] = model_info
        if seg is None:
            sys.stderr.write(f"benchmark: segmentation skipped: {model_info['error']}\n")
        config = segment_config(model_info, args.device, threads, args.self_adapt)
        sets, acc = {}, {}
        for preset in [] if args.speed_only else args.presets:
            data = work / "data" / preset
            videos = ensure_set(data, preset, mode["n_videos"], mode["duration_s"])
            sets[preset] = {"seed": SET_SEEDS[preset], "n_videos": len(videos),
                            "duration_s": mode["duration_s"],
                            "n_frames": sum(v["n_frames"] for v in videos),
                            "n_true_beats": sum(v["n_beats"] for v in videos),
                            "input": sorted({v["path"].suffix for v in videos})}
            acc[preset] = accuracy(preset, videos, data, work, config, seg is not None)
        if not args.speed_only:
            report["sets"] = sets
            report["accuracy"] = acc
        if not args.no_speed:
            sp = report["speed"] = speed(
                work, seg, model_info, device=args.device, threads=threads,
                threads_given=args.threads, repeats=int(mode["repeats"]),
                cli_repeats=int(mode["cli_repeats"]))
            cli = sp["end_to_end"] if seg is not None else sp["end_to_end_masks"]
            report["memory"] = {"cli": {
                "mode": "model" if seg is not None else "masks",
                **{k: cli.get(k) for k in ("exit_code", "peak_rss_mb", "wall_s", "command")}},
                "length": {k: v for k, v in sp["memory_length"].items() if k != "long"}}
        if args.rhythm:
            report["rhythm"] = rhythm_section(work, args.presets, mode, args.real)
        report.setdefault("memory", {})["peak_rss_mb"] = _run_peak_rss_mb()
        report["wall_s"] = round(time.perf_counter() - t_start, 1)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    report = _clean(report)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    sys.stdout.write(table(report) + "\n")
    if "rhythm" in report:
        sys.stdout.write("\n" + report["rhythm"]["table"] + "\n")
    if args.json is not None:
        sys.stdout.write(f"results: {args.json}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
