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

With ``--mask-sequence DIR`` (hand-drawn ventricle masks of consecutive frames of a real
recording, ``NNNN_mask.tif`` as in HeartSeg's ``*_mask/`` folders) the ventricle follows those
real outlines and their real beat instead (looped; moved so their mean centroid is the
frame's ventricle centroid): the ventricle is painted out of the frame (inpainted), and each
frame's outline is filled with the frame's own ventricle, mapped onto it by the affine map
between the two outlines' ellipses of inertia, its edge blended over 1-2 px. The outline drawn
is the truth mask, exactly.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from medaka_heart.io.image import read_image
from medaka_heart.io.masks import MaskStackWriter
from medaka_heart.model.made_up_beat import beating_scale, follow_field, warp_about


def read_mask(path: Path) -> np.ndarray:
    """(H, W) bool: any nonzero pixel (of any channel) is the ventricle."""
    mask = read_image(path)
    return (mask.max(axis=2) if mask.ndim == 3 else mask) > 0


def read_mask_sequence(folder: Path) -> np.ndarray:
    """(T, H, W) bool masks of the ``*_mask.tif`` files in `folder`, in file-name order."""
    paths = sorted(folder.glob("*_mask.tif*"))
    if not paths:
        sys.exit(f"{folder}: no *_mask.tif files")
    masks = [read_mask(p) for p in paths]
    for path, mask in zip(paths, masks, strict=True):
        if mask.shape != masks[0].shape:
            sys.exit(f"{path}: mask {mask.shape} differs from {paths[0].name} {masks[0].shape}")
        if not mask.any():
            sys.exit(f"{path}: the mask is empty")
    return np.stack(masks)


def centred_on(masks: np.ndarray, centre: tuple[float, float]) -> np.ndarray:
    """`masks` (T, H, W) bool shifted as one (whole px) so their mean centroid is `centre`."""
    _, ys, xs = np.nonzero(masks)
    dx = int(round(centre[0] - xs.mean()))
    dy = int(round(centre[1] - ys.mean()))
    shift = np.float32([[1, 0, dx], [0, 1, dy]])
    h, w = masks.shape[1:]
    return np.stack([cv2.warpAffine(m.astype(np.uint8), shift, (w, h),
                                    flags=cv2.INTER_NEAREST) > 0 for m in masks])


def ellipse_frame(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(centroid (x, y), 2x2 matrix whose columns are the ellipse of inertia's semi-axes)."""
    ys, xs = np.nonzero(mask)
    points = np.stack([xs, ys]).astype(np.float64)
    centre = points.mean(axis=1)
    values, vectors = np.linalg.eigh(np.cov(points))
    vectors *= np.where(vectors[0] < 0, -1.0, 1.0)  # a fixed sign: outlines alike map alike
    return centre, vectors * np.sqrt(np.maximum(values, 1e-6))


def fill_outline(image: np.ndarray, background: np.ndarray, source: np.ndarray,
                 target: np.ndarray) -> np.ndarray:
    """`background` with outline `target` (H, W bool) filled by `image`'s region `source`,
    mapped by the affine map between their ellipses of inertia; the edge blended (sigma 1 px).
    """
    c_s, a_s = ellipse_frame(source)
    c_t, a_t = ellipse_frame(target)
    linear = a_s @ np.linalg.inv(a_t)  # target px -> source px
    matrix = np.hstack([linear, (c_s - linear @ c_t)[:, None]]).astype(np.float32)
    h, w = target.shape
    moved = cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                           borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
    alpha = cv2.GaussianBlur(target.astype(np.float32), (0, 0), 1.0)
    if image.ndim == 3:
        alpha = alpha[..., None]
    return alpha * moved + (1.0 - alpha) * background.astype(np.float32)


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
    parser.add_argument("--mask-sequence", type=Path, default=None,
                        help="folder of real NNNN_mask.tif outlines of consecutive frames: the "
                             "ventricle follows them (looped) instead of --hr-bpm/--shortening")
    args = parser.parse_args(argv)

    image = read_image(args.image)
    mask = read_mask(args.mask)
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
    n = max(2, int(round(args.seconds * args.fps)))
    if args.mask_sequence is None:  # made-up beat: the ventricle scaled about its centroid
        follow = follow_field(mask)
        scales = beating_scale(n, args.fps, args.hr_bpm, args.shortening)
        beat = f"{args.hr_bpm:g} bpm"

        def render(i: int) -> tuple[np.ndarray, np.ndarray]:
            scale = float(scales[i])
            return (warp_about(image, centre, follow, scale).astype(np.float32),
                    warp_about(mask.astype(np.float32), centre, follow, scale) > 0.5)
    else:  # real outlines, real beat
        outlines = read_mask_sequence(args.mask_sequence)
        if outlines.shape[1:] != mask.shape:
            sys.exit(f"{args.mask_sequence}: masks {outlines.shape[1:]} do not match image "
                     f"{image.shape[:2]}")
        outlines = centred_on(outlines, centre)
        hole = cv2.dilate(mask.astype(np.uint8), np.ones((7, 7), np.uint8))
        background = cv2.inpaint(image, hole, 9, cv2.INPAINT_TELEA)
        beat = f"the beat of {len(outlines)} outlines in {args.mask_sequence}"

        def render(i: int) -> tuple[np.ndarray, np.ndarray]:
            truth = outlines[i % len(outlines)]
            return fill_outline(image, background, mask, truth), truth

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
            for i in range(n):
                frame, truth = render(i)
                frame += rng.normal(0.0, args.noise, frame.shape)
                writer.write(np.clip(frame, 0, 255).astype(np.uint8))
                stack.write(truth[None])
        writer.release()
        partial[0].replace(video)
        partial[1].replace(masks)
    finally:  # nothing half-written is left behind
        writer.release()
        for path in partial:
            path.unlink(missing_ok=True)
    print(f"{video}: {n} frames at {args.fps:g} frames/s, {beat}; masks {masks}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
