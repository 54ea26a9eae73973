"""A beating test video from one annotated still frame, e.g. a real HeartSeg frame and its mask.

Usage::

    python scripts/animate_frame.py frame_0001.tif frame_0001_mask.tif -o animated/
    medaka-heart analyze animated/frame_0001.avi -o animated_pred --fps 15
    medaka-heart evaluate animated_pred animated/ -o animated_eval

The ventricle contracts and relaxes about its centroid (a smooth warp that moves the tissue
inside and just around the mask, fading out ~20 px beyond it: the rest of the frame stays
still); the mask is warped the same way. It writes ``OUT/<stem>.avi`` (MJPG, ``--fps``) and
``OUT/<stem>_mask.tif`` (one 0/255 page per frame), the layout `medaka-heart evaluate` reads
as truth for Dice. Real appearance, made-up motion: a check of whether the model finds and
outlines a real heart, not of its beat timing. Seeded (sensor noise).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from medaka_heart.io.masks import MaskStackWriter
from medaka_heart.model.data import read_image


def beating_scale(n_frames: int, fps: float, hr_bpm: float, shortening: float) -> np.ndarray:
    """Linear scale of the ventricle per frame: 1 at diastole, 1 - shortening at systole."""
    phase = 2.0 * np.pi * hr_bpm / 60.0 * np.arange(n_frames) / fps
    return 1.0 - shortening * (0.5 - 0.5 * np.cos(phase))


def warp_about(image: np.ndarray, centre: tuple[float, float], follow: np.ndarray,
               scale: float, interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """`image` scaled by `scale` about `centre` (x, y px) where `follow` (H, W, 0..1) is 1,
    left in place where it is 0, blended smoothly in between."""
    h, w = image.shape[:2]
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
    k = 1.0 + (1.0 / scale - 1.0) * follow  # inverse map: where each output px comes from
    map_x = (centre[0] + (gx - centre[0]) * k).astype(np.float32)
    map_y = (centre[1] + (gy - centre[1]) * k).astype(np.float32)
    return cv2.remap(image, map_x, map_y, interpolation, borderMode=cv2.BORDER_REPLICATE)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("image", type=Path)
    parser.add_argument("mask", type=Path, help="ventricle mask (any nonzero pixel)")
    parser.add_argument("-o", "--out", type=Path, required=True)
    parser.add_argument("--fps", type=float, default=15.0, help="frames/s (HeartSeg: 15)")
    parser.add_argument("--hr-bpm", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--shortening", type=float, default=0.18,
                        help="linear shortening at systole, 0-1 (0.18: EF about 45 %%)")
    parser.add_argument("--noise", type=float, default=2.0, help="sensor noise, grey levels")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    image = read_image(args.image)
    mask = read_image(args.mask)
    mask = (mask.max(axis=2) if mask.ndim == 3 else mask) > 0
    if image.shape[:2] != mask.shape:
        sys.exit(f"{args.mask}: mask {mask.shape} does not match image {image.shape[:2]}")
    if not mask.any():
        sys.exit(f"{args.mask}: the mask is empty")
    image = image if image.dtype == np.uint8 else cv2.normalize(
        image, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    else:
        image = np.ascontiguousarray(image[..., 2::-1])  # RGB -> BGR for OpenCV
    ys, xs = np.nonzero(mask)
    centre = (float(xs.mean()), float(ys.mean()))
    near = cv2.dilate(mask.astype(np.uint8), np.ones((15, 15), np.uint8)).astype(np.float32)
    follow = cv2.GaussianBlur(near, (0, 0), 10.0)
    follow /= follow.max()

    n = max(2, int(round(args.seconds * args.fps)))
    scales = beating_scale(n, args.fps, args.hr_bpm, args.shortening)
    rng = np.random.default_rng(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.image.stem
    video, masks = args.out / f"{stem}.avi", args.out / f"{stem}_mask.tif"
    h, w = mask.shape
    partial = [video.with_suffix(".part.avi"), masks.with_suffix(".part.tif")]
    writer = cv2.VideoWriter(str(partial[0]), cv2.VideoWriter_fourcc(*"MJPG"), args.fps, (w, h),
                             True)
    try:
        if not writer.isOpened():
            sys.exit(f"{video}: OpenCV cannot write MJPG video here")
        with MaskStackWriter(partial[1]) as stack:
            for scale in scales:
                frame = warp_about(image, centre, follow, float(scale)).astype(np.float32)
                frame += rng.normal(0.0, args.noise, frame.shape)
                writer.write(np.clip(frame, 0, 255).astype(np.uint8))
                moved = warp_about(mask.astype(np.float32), centre, follow, float(scale))
                stack.write(moved[None] > 0.5)
        writer.release()
        partial[0].replace(video)
        partial[1].replace(masks)
    finally:  # nothing half-written is left behind
        writer.release()
        for path in partial:
            path.unlink(missing_ok=True)
    print(f"{video}: {n} frames at {args.fps:g} frames/s, {args.hr_bpm:g} bpm; masks {masks}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
