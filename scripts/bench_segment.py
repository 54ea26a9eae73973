"""Frames per second of the segmenter for several U-Net architectures and input sizes.

Usage::

    python scripts/bench_segment.py [--threads 2] [--frames 96] [--batch 16] [--json out.json]
    python scripts/bench_segment.py --model medaka_heart/weights   # one trained model
    python scripts/bench_segment.py --model medaka_heart/weights --dice runs/heldout/typical
    python scripts/bench_segment.py --model medaka_heart/weights --pipeline runs/heldout/typical

``--dice FOLDER`` also measures the Dice of the model on every phantom video of FOLDER
(``<name>.avi`` + ``<name>.truth/masks.tif``); ``--pipeline FOLDER`` times the whole analysis
(decode, preprocess, segment, measure, cycles, write incl. masks.tif) of each video there.

For each candidate (random weights: speed does not depend on their values) it reports
``net_fps`` (network only, input already at network size) and ``segment_fps`` (what
`Segmenter.segment_video` does on 640x480 RGB frames: grayscale, resize, normalise, network,
confidence, probabilities back to 640x480; for two-pass models also the coarse pass that
finds the heart, so time them on a real video with --video). Median of `--repeats` timed
runs after a warm-up.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch

from medaka_heart.model.checkpoint import ModelInfo, save_model_folder
from medaka_heart.model.unet import UNet, UNetConfig, count_parameters
from medaka_heart.options import VideoOptions
from medaka_heart.segment import Segmenter

# (depth, base_filters, separable, input size)
CANDIDATES = [
    (4, 16, False, 256),
    (4, 8, False, 256),
    (4, 8, True, 256),
    (4, 16, False, 128),
    (4, 12, False, 128),
    (4, 8, False, 128),
    (3, 8, False, 128),
    (4, 8, True, 128),
    (4, 16, True, 128),
    (3, 12, False, 96),
    (4, 8, False, 96),
]


def _time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench(seg: Segmenter, frames: np.ndarray, repeats: int) -> dict:
    size = seg.runtime.size
    small = np.random.default_rng(0).random((len(frames), size, size), dtype=np.float32)
    net_s = _time(lambda: seg.runtime.predict(small), repeats)
    seg_s = _time(lambda: list(seg.segment_video([frames])), repeats)
    return {"net_fps": round(len(frames) / net_s, 1), "segment_fps": round(len(frames) / seg_s, 1)}


def dice_on_folder(seg: Segmenter, folder: Path, chunk: int = 64) -> list[dict]:
    """Per-video mean and 5th-percentile Dice of `seg` against a phantom folder's truth.

    A raw ``<name>.tif`` next to ``<name>.avi`` (16-bit hts phantoms) is read instead.
    """
    from medaka_heart.evaluate import dice_per_frame
    from medaka_heart.io.masks import mask_chunks
    from medaka_heart.io.video import open_video

    rows = []
    for video in sorted(folder.glob("*.avi")):
        truth = video.with_suffix(".truth") / "masks.tif"
        if video.with_suffix(".tif").is_file():
            video = video.with_suffix(".tif")
        dice = []
        reader = open_video(video)
        predictions = seg.segment_video(partial(reader.chunks, chunk), reader.info.fps)
        for (_, found), masks in zip(predictions, mask_chunks(truth, chunk), strict=True):
            dice.append(dice_per_frame(found.masks, masks))
        d = np.concatenate(dice)
        rows.append({"video": video.stem, "frames": len(d), "dice_mean": round(float(d.mean()), 4),
                     "dice_p05": round(float(np.percentile(d, 5)), 4)})
    return rows


def pipeline_fps(seg: Segmenter, folder: Path) -> list[dict]:
    """Frames per second of `pipeline.analyze_video` (masks written) on each video of folder."""
    from medaka_heart.config import Config
    from medaka_heart.pipeline import analyze_video

    rows = []
    with tempfile.TemporaryDirectory() as out:
        for video in sorted(folder.glob("*.avi")):
            t0 = time.perf_counter()
            result = analyze_video(video, out, Config(), VideoOptions(save_masks=True),
                                   segmenter=seg)
            wall = time.perf_counter() - t0
            n = len(result.frames)
            rows.append({"video": video.stem, "frames": n, "seconds": round(wall, 2),
                         "fps": round(n / wall, 1) if n else None})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--frames", type=int, default=96)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", type=Path, default=None, help="bench this model only")
    parser.add_argument("--video", type=Path, default=None,
                        help="time on the first --frames frames of this video (default: noise)")
    parser.add_argument("--dice", type=Path, default=None, help="phantom folder: measure Dice")
    parser.add_argument("--pipeline", type=Path, default=None,
                        help="phantom folder: time the whole analysis per video")
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    if args.video is not None:
        from medaka_heart.io.video import open_video

        frames = next(open_video(args.video).chunks(args.frames))
    else:
        frames = rng.integers(0, 256, size=(args.frames, 480, 640, 3), dtype=np.uint8)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        if args.model is not None:
            todo = [("model", args.model)]
        else:
            todo = []
            for depth, base, sep, size in CANDIDATES:
                arch = UNetConfig(depth=depth, base_filters=base, separable=sep)
                folder = Path(tmp) / f"d{depth}_f{base}_{'sep' if sep else 'std'}_{size}"
                save_model_folder(folder, UNet(arch).eval(), ModelInfo(arch, input_size=size))
                todo.append((folder.name, folder))
        for name, folder in todo:
            seg = Segmenter(folder, device="cpu", batch_size=args.batch, threads=args.threads,
                            self_adapt=False)  # the network's speed
            row = {"name": name, **seg.runtime.info.architecture.to_dict(),
                   "size": seg.runtime.size,
                   "params": count_parameters(UNet(seg.runtime.info.architecture)),
                   **bench(seg, frames, args.repeats)}
            rows.append(row)
            sys.stdout.write(f"{name:24s} size {row['size']:4d} params {row['params']:8d}  "
                             f"net {row['net_fps']:7.1f} fps  "
                             f"segment {row['segment_fps']:7.1f} fps\n")
            if args.dice is not None:
                row["dice"] = dice_on_folder(seg, args.dice)
                for r in row["dice"]:
                    sys.stdout.write(f"  dice {r['video']:28s} mean {r['dice_mean']:.4f} "
                                     f"p05 {r['dice_p05']:.4f} ({r['frames']} frames)\n")
                means = [r["dice_mean"] for r in row["dice"]]
                sys.stdout.write(f"  dice mean over videos {np.mean(means):.4f}\n")
            if args.pipeline is not None:
                row["pipeline"] = pipeline_fps(seg, args.pipeline)
                for r in row["pipeline"]:
                    sys.stdout.write(f"  pipeline {r['video']:28s} {r['frames']} frames "
                                     f"{r['seconds']} s = {r['fps']} fps\n")
            sys.stdout.flush()
    if args.json is not None:
        args.json.write_text(json.dumps({"threads": args.threads, "batch": args.batch,
                                         "torch": torch.__version__, "results": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
