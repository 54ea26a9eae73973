"""Benchmark of batch runs; prints JSON.

1. Peak RSS of analysing one video of the ellipse law at 1,000 and 10,000 frames (each in a
   fresh process, so the numbers do not mix), in masks mode and, if a model is found, in
   segmenter mode. Streaming means the peak should barely grow with the video's length.
2. Wall time of a 96-video plate of short videos with 1 and 2 local workers.

    python scripts/bench_batch.py                     # everything, defaults
    python scripts/bench_batch.py --frames 1000 --plate 24 --workers 1 2
    python scripts/bench_batch.py --model path/to/model_folder
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile
from skimage.draw import ellipse

FPS, HR_BPM = 15.0, 130.0


def law_masks(start: int, stop: int, height: int, width: int) -> np.ndarray:
    """(stop - start, H, W) bool ellipses whose axes beat at HR_BPM (the tests' ellipse law)."""
    out = np.zeros((stop - start, height, width), bool)
    for k, i in enumerate(range(start, stop)):
        c = 0.5 * (1 - np.cos(2 * np.pi * HR_BPM / 60 * i / FPS + 1.0))
        a, b = 0.3 * width * (1 - 0.1 * c), 0.2 * height * (1 - 0.25 * c)
        rr, cc = ellipse(height / 2, width / 2, b, a, shape=(height, width), rotation=0.3)
        out[k, rr, cc] = True
    return out


def write_law_video(folder: Path, stem: str, n_frames: int, height: int, width: int,
                    chunk: int = 500) -> tuple[Path, Path]:
    """A zlib TIFF stack (fps in the metadata) and its masks, written chunk by chunk."""
    video, masks = folder / f"{stem}.tif", folder / f"{stem}_masks.tif"
    def pages(as_masks: bool):
        for start in range(0, n_frames, chunk):
            m = law_masks(start, min(start + chunk, n_frames), height, width)
            yield from (m.astype(np.uint8) * 255 if as_masks else (60 + 150 * m).astype(np.uint8))

    shape = (n_frames, height, width)
    tifffile.imwrite(video, pages(False), shape=shape, dtype=np.uint8, metadata={"fps": FPS},
                     compression="zlib", photometric="minisblack")
    tifffile.imwrite(masks, pages(True), shape=shape, dtype=np.uint8, compression="zlib",
                     photometric="minisblack")
    return video, masks


def child_peak_rss(video: str, masks: str, out: str, model: str) -> None:
    """(In a fresh process) analyse one video; print its peak RSS in MiB and the time."""
    from medaka_heart.config import Config, with_overrides
    from medaka_heart.pipeline import analyze_video

    config = Config()
    segmenter = None
    if model:
        from medaka_heart.segment import Segmenter

        config = with_overrides(config, "segment", model=model)
        segmenter = Segmenter.from_config(config.segment, config.preprocess)
    t0 = time.perf_counter()
    result = analyze_video(video, out, config, masks=masks or None, segmenter=segmenter)
    seconds = time.perf_counter() - t0
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    row = {"peak_rss_mib": round(rss_mib, 1), "seconds": round(seconds, 2),
           "hr_bpm": round(result.summary.hr_bpm, 2)}
    print(json.dumps(row))  # read by the parent process


def peak_rss(video: Path, masks: Path | None, out: Path, model: str | None) -> dict:
    cmd = [sys.executable, __file__, "--child", str(video), str(masks or ""), str(out),
           model or ""]
    run = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(run.stdout.strip().splitlines()[-1])


def find_model(given: str | None) -> str | None:
    if given:
        return given
    weights = Path(__file__).resolve().parents[1] / "medaka_heart" / "weights"
    return str(weights) if weights.is_dir() and any(weights.iterdir()) else None


def plate_wall_time(folder: Path, n_videos: int, workers: list[int]) -> dict:
    from medaka_heart.batch import run_batch
    from medaka_heart.config import Config
    from medaka_heart.io.discover import VideoSource
    from medaka_heart.options import BatchOptions

    sources = []
    (folder / "plate").mkdir(exist_ok=True)
    for i in range(n_videos):
        row, col = divmod(i, 12)
        video, masks = write_law_video(folder / "plate", f"W{i:03d}", 60, 96, 128)
        sources.append(VideoSource(video, metadata={"well": f"{chr(65 + row % 16)}{col + 1:03d}"},
                                   masks=masks))
    names = [s.path.stem for s in sources]
    times = {}
    for n in workers:
        t0 = time.perf_counter()
        summary = run_batch(sources, names, folder / f"out_{n}", Config(),
                            batch=BatchOptions(workers=n, force=True, show_progress=False))
        times[f"workers_{n}_s"] = round(time.perf_counter() - t0, 2)
        assert (summary["status"] == "ok").all(), summary["error"].dropna().tolist()
    return {"n_videos": n_videos, "frames_per_video": 60, **times}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--size", type=int, nargs=2, default=[240, 320], metavar=("H", "W"))
    parser.add_argument("--plate", type=int, default=96, help="videos in the plate run")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--model", default=None, help="model for segmenter mode (default: "
                                                      "the shipped weights, if any)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    for handler in logging.getLogger().handlers:  # batch runs log INFO to run.log only
        handler.setLevel(logging.WARNING)
    model = find_model(args.model)
    report: dict = {"masks_mode": {}, "segmenter_mode": {} if model else "no model found"}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for n in args.frames:
            video, masks = write_law_video(tmp, f"law_{n}", n, *args.size)
            report["masks_mode"][f"{n}_frames"] = peak_rss(video, masks, tmp / "out", None)
            if model:
                report["segmenter_mode"][f"{n}_frames"] = peak_rss(video, None, tmp / "out_seg",
                                                                   model)
        report["plate"] = plate_wall_time(tmp, args.plate, args.workers)
    report["video_size"] = args.size
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child_peak_rss(*sys.argv[2:6])
    else:
        main()
