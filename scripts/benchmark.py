"""Benchmarks that keep the project honest: accuracy on held-out phantoms, speed, memory.

On a fresh checkout (nothing but the repository is read)::

    python scripts/benchmark.py --quick --json bench_quick.json      # a few minutes on 2 cores
    python scripts/benchmark.py --json bench_full.json               # the numbers to report
    python scripts/benchmark.py --quick --model runs/default/model --json bench_model.json
    python scripts/benchmark.py --device cuda --json bench_gpu.json  # segment on the GPU
    python scripts/benchmark.py --quick --presets typical --threads 1 --work /tmp/bench

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
3. **Speed** on the first ``typical`` video (640x480 RGB), frames per second of: decoding
   alone (`io.video.open_video`), preprocessing alone (`preprocess.prepare_input` at the
   model's input size), segmentation alone (`Segmenter.segment_video` on decoded frames: preprocess,
   network, masks back at native size), and end to end (`run_batch` on the file: decode,
   segment, measure, cycles, tables and the QC plots, as the CLI does; also without plots,
   and with truth masks instead of the model). On the CPU with ``--threads`` torch threads,
   and on the GPU too when ``torch.cuda.is_available()`` (with its name).
4. **Memory**: the peak RSS of this process, and that of one ``medaka-heart analyze`` of the
   speed video in a fresh process (its own `os.wait4` rusage).
5. **Provenance**: Python, numpy, torch, OpenCV, tifffile, scikit-image, scipy, pandas and
   medaka_heart versions, the git commit (and whether the tree had changes), the model file's
   sha256 (`model.checkpoint.model_hash`), the command line.

If the model cannot be loaded (e.g. ``medaka_heart/weights/`` is still empty) the JSON and the
table say so, the segmentation rows are skipped, and everything else (oracle, decode,
preprocess, end to end with masks) still runs. The exit status is 0 unless nothing ran.
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
FULL = {"n_videos": 12, "duration_s": 10.0, "repeats": 3}
QUICK = {"n_videos": 3, "duration_s": 6.0, "repeats": 1}
CHUNK = 64
BENCH_VERSION = 1
TABLE_METRICS = (  # (metrics.json key, label, format)
    ("n_videos", "videos", "{:.0f}"),
    ("n_beats_true", "true beats", "{:.0f}"),
    ("dice_mean", "Dice mean", "{:.3f}"),
    ("dice_p05", "Dice p05", "{:.3f}"),
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


def _median_time(fn, repeats: int) -> float:
    """Median wall time in s of `repeats` calls of fn (after one untimed warm-up call)."""
    fn()
    times = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _fps(n_frames: int, seconds: float) -> float | None:
    return round(n_frames / seconds, 1) if seconds > 0 else None


# Runs the CLI and reports its own peak RSS at exit. VmHWM, not ru_maxrss: on Linux a child's
# ru_maxrss starts from its parent's RSS at fork (a 10 MB child of a 1 GB parent reads 1 GB).
PEAK_WRAPPER = """
import atexit, resource, sys
def _peak():
    try:
        with open("/proc/self/status") as f:
            kb = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        kb = kb / 1024 if sys.platform == "darwin" else kb
    sys.stderr.write(f"PEAK_RSS_KB {kb}\\n")
atexit.register(_peak)
from medaka_heart.cli import main
main(args=sys.argv[1:], prog_name="medaka-heart")
"""


def _own_peak_rss_mb() -> float:
    """Peak RSS of this process in MiB (VmHWM where /proc has it, else ru_maxrss)."""
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


def ensure_set(folder: Path, preset: str, n_videos: int, duration_s: float) -> list[dict]:
    """The held-out set of `preset` in `folder` (generated unless already there); one dict per
    video: name, path (the file to analyse), truth folder, fps, pixel size, frames, beats."""
    from medaka_heart import __version__
    from medaka_heart.phantom import make_phantom
    from medaka_heart.phantom.writer import video_seed, write_phantom

    seed = SET_SEEDS[preset]
    description = {"preset": preset, "seed": seed, "n_videos": n_videos,
                   "duration_s": duration_s, "bench_version": BENCH_VERSION,
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

        segment = SegmentConfig(model=str(path), device=device, threads=threads)
        seg = load_default_segmenter(segment, PreprocessConfig())
    except Exception as exc:  # any reason the model cannot be used: say it and go on
        info.update(available=False, error=f"{type(exc).__name__}: {exc}")
        return None, info
    prov = seg.provenance() if hasattr(seg, "provenance") else {}
    info.update(available=True, error=None, **{k: v for k, v in prov.items() if k != "model"})
    return seg, info


def segment_config(model_info: dict[str, Any], device: str, threads: int):
    """Analysis Config with the benchmarked model, device and threads."""
    from medaka_heart.config import Config, with_overrides

    return with_overrides(Config(), "segment", model=model_info.get("path"), device=device,
                          threads=threads)


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
# speed


def decode_all(path: Path) -> np.ndarray:
    from medaka_heart.io.video import open_video

    return np.concatenate(list(open_video(path).chunks(CHUNK)))


def speed(video: dict, seg, model_info: dict[str, Any], work: Path, threads: int,
          repeats: int) -> dict[str, Any]:
    """Frames per second of each stage on one video (CPU; and CUDA when available)."""
    from medaka_heart.io.video import open_video
    from medaka_heart.preprocess import prepare_input

    path, n = video["path"], video["n_frames"]
    fps = open_video(path).info.fps  # sets the span of a motion plane (three-channel models)
    frames = decode_all(path)
    n = len(frames)
    size = int(model_info.get("input_size") or 256)
    chunks = [frames[i : i + CHUNK] for i in range(0, n, CHUNK)]
    out: dict[str, Any] = {"video": video["name"], "n_frames": n,
                           "width": int(frames.shape[2]), "height": int(frames.shape[1]),
                           "repeats": repeats}
    cpu: dict[str, Any] = {"threads": threads}
    cpu["decode_fps"] = _fps(n, _median_time(lambda: decode_all(path), repeats))
    cpu["preprocess_fps"] = _fps(n, _median_time(
        lambda: [prepare_input(c, size) for c in chunks], repeats))
    cpu["preprocess_size"] = size
    base = segment_config(model_info, "cpu", threads)
    cpu["end_to_end_masks_fps"] = _fps(n, _e2e(video, work, base, repeats, oracle=True))
    if seg is not None:
        cpu_seg = seg if seg.runtime.device.type == "cpu" else None
        if cpu_seg is None:
            cpu_seg, _ = load_model(model_info["path"], "cpu", threads)
        cpu["segment_fps"] = _fps(n, _median_time(
            lambda: list(cpu_seg.segment_video(chunks, fps)), repeats))
        cpu["end_to_end_fps"] = _fps(n, _e2e(video, work, base, repeats, plots=True))
        cpu["end_to_end_no_plots_fps"] = _fps(n, _e2e(video, work, base, repeats))
    else:
        cpu["segment_fps"] = cpu["end_to_end_fps"] = cpu["end_to_end_no_plots_fps"] = None
        cpu["skipped"] = "segmentation: no model (see model.error)"
    out["cpu"] = cpu
    out["cuda"] = _cuda_speed(video, chunks, n, fps, seg, model_info, work, threads, repeats)
    return out


def _cuda_speed(video, chunks, n, fps, seg, model_info, work, threads, repeats):
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

    res["segment_fps"] = _fps(n, _median_time(run, repeats))
    config = segment_config(model_info, "cuda", threads)
    res["end_to_end_fps"] = _fps(n, _e2e(video, work, config, repeats, plots=True))
    res["end_to_end_no_plots_fps"] = _fps(n, _e2e(video, work, config, repeats))
    return res


def _e2e(video: dict, work: Path, config, repeats: int, *, oracle: bool = False,
         plots: bool = False) -> float:
    """Median wall time of analysing the video with run_batch (one untimed warm-up)."""
    out = work / "speed_out"

    def run():
        analyze_set([video], out, config, oracle=oracle, plots=plots, save_masks=False)

    try:
        return _median_time(run, repeats)
    finally:
        shutil.rmtree(out, ignore_errors=True)


def cli_memory(video: dict, model_info: dict[str, Any], threads: int, work: Path
               ) -> dict[str, Any]:
    """Peak RSS and wall time of one `medaka-heart analyze` of the video in a fresh process."""
    out = work / "cli_out"
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-c", PEAK_WRAPPER, "analyze", str(video["path"]), "-o", str(out),
           "--pixel-size", repr(video["pixel_size_um"]), "--no-progress", "--workers", "1",
           "--force"]
    mode = "model"
    if model_info.get("available"):
        cmd += ["--model", model_info["path"], "--device", "cpu"]
    else:
        cmd += ["--masks", str(video["truth"] / "masks.tif")]
        mode = "masks"
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    t0 = time.perf_counter()
    run = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - t0
    (work / "cli.log").write_text(run.stdout + run.stderr)
    shutil.rmtree(out, ignore_errors=True)
    peaks = [float(line.split()[1]) for line in run.stderr.splitlines()
             if line.startswith("PEAK_RSS_KB ")]
    shown = ["medaka-heart", *cmd[3:]]
    return {"mode": mode, "exit_code": run.returncode,
            "peak_rss_mb": round(peaks[-1] / 1024, 1) if peaks else None,
            "wall_s": round(wall, 1), "command": " ".join(shown)}


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
    """Compact human-readable summary."""
    lines = []
    model = report["model"]
    if model.get("available"):
        lines.append(f"model: {model['path']} (sha256 {model['sha256'][:12]}...) on "
                     f"{model.get('device')}")
    else:
        lines.append(f"model: NOT AVAILABLE: {model.get('error')}")
    acc = report["accuracy"]
    presets = list(acc)
    cols = [(p, k) for p in presets for k in ("model", "oracle")]
    width = 12
    lines.append("")
    lines.append(f"{'accuracy (held-out)':28s}" + "".join(f"{p[:width - 1]:>{width}s}"
                                                          for p, _ in cols))
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
    sp = report.get("speed")
    if sp:
        lines.append("")
        lines.append(f"speed, frames/s ({sp['video']}, {sp['width']}x{sp['height']}, "
                     f"{sp['n_frames']} frames)")
        keys = {"decode_fps": "decode", "preprocess_fps": "preprocess",
                "segment_fps": "segment", "end_to_end_fps": "e2e",
                "end_to_end_no_plots_fps": "e2e-no-plots", "end_to_end_masks_fps": "e2e-masks"}
        lines.append(f"{'':6s}" + "".join(f"{label:>13s}" for label in keys.values()))
        for dev in ("cpu", "cuda"):
            row = sp.get(dev)
            if row:
                lines.append(f"{dev:6s}" + "".join(f"{_fmt(row.get(k), '{:.1f}'):>13s}"
                                                   for k in keys))
        if sp.get("cuda"):
            lines.append(f"  cuda device: {sp['cuda'].get('device_name')}")
        lines.append("  (e2e: decode to tables and QC plots, as the CLI; e2e-masks: truth masks "
                     "instead of the model)")
    mem = report.get("memory", {})
    if mem:
        cli = mem.get("cli")
        lines.append("")
        line = f"peak RSS: this process {mem.get('peak_rss_mb')} MB"
        if cli:
            line += (f"; one `analyze` ({cli.get('mode')}) in a fresh process "
                     f"{cli.get('peak_rss_mb')} MB, {cli.get('wall_s')} s")
        lines.append(line)
    v = report["environment"]["versions"]
    lines.append(f"versions: medaka_heart {v.get('medaka_heart')}, torch {v.get('torch')}, "
                 f"numpy {v.get('numpy')}, opencv {v.get('opencv')}; git "
                 f"{(report['environment'].get('git_commit') or '?')[:10]}"
                 f"{' (dirty)' if report['environment'].get('git_dirty') else ''}; "
                 f"total {report['wall_s']} s")
    return "\n".join(lines)


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
                        help="where the model runs for the accuracy rows (speed: CPU, and "
                             "CUDA when available)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: all usable cores)")
    parser.add_argument("--presets", nargs="+", choices=PRESETS, default=list(PRESETS))
    parser.add_argument("--work", type=Path, default=None,
                        help="folder for the phantom sets, predictions and evaluation reports "
                             "(kept; sets found there are reused). Default: a temporary folder, "
                             "removed at the end")
    parser.add_argument("--no-speed", action="store_true", help="skip the speed and memory part")
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
        config = segment_config(model_info, args.device, threads)
        sets, acc, all_videos = {}, {}, {}
        for preset in args.presets:
            data = work / "data" / preset
            videos = ensure_set(data, preset, mode["n_videos"], mode["duration_s"])
            all_videos[preset] = videos
            sets[preset] = {"seed": SET_SEEDS[preset], "n_videos": len(videos),
                            "duration_s": mode["duration_s"],
                            "n_frames": sum(v["n_frames"] for v in videos),
                            "n_true_beats": sum(v["n_beats"] for v in videos),
                            "input": sorted({v["path"].suffix for v in videos})}
            acc[preset] = accuracy(preset, videos, data, work, config, seg is not None)
        report["sets"] = sets
        report["accuracy"] = acc
        if not args.no_speed:
            video = (all_videos.get("typical") or ensure_set(
                work / "data" / "typical", "typical", mode["n_videos"], mode["duration_s"]))[0]
            report["speed"] = speed(video, seg, model_info, work, threads, mode["repeats"])
            report["memory"] = {"cli": cli_memory(video, model_info, threads, work)}
        if args.rhythm:
            report["rhythm"] = rhythm_section(work, args.presets, mode, args.real)
        report.setdefault("memory", {})["peak_rss_mb"] = _own_peak_rss_mb()
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
