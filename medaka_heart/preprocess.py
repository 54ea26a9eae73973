"""Segmenter input preparation and mask geometry (pure array functions).

Square crops (`crop_square`, `crop_frames`) and the way back (`paste_into`) are the one copy
of the crop maths, used by training and inference alike.

Frames arrive as (T, H, W) or (T, H, W, C) arrays of any integer or float dtype.
The network sees (T, S, S) float32 in [0, 1]; its output is brought back to the
native (H, W) geometry with `restore_geometry` before anything is measured, so
an anisotropic resize (640x480 -> 256x256) never distorts the measured axes.
"""

from __future__ import annotations

import cv2
import numpy as np


def to_gray(frames: np.ndarray) -> np.ndarray:
    """(T, H, W[, C]) frames of any dtype -> (T, H, W) float32 luminance in the input's units.

    RGB(A) uses ITU-R 601 weights (as OpenCV's RGB2GRAY); a single channel is passed through.
    """
    frames = np.asarray(frames)
    if frames.ndim == 2:
        frames = frames[None]
    if frames.ndim == 3:
        return frames.astype(np.float32, copy=False)
    if frames.ndim != 4:
        raise ValueError(f"frames must be (T, H, W) or (T, H, W, C), got shape {frames.shape}")
    channels = frames.shape[-1]
    if channels == 1:
        return frames[..., 0].astype(np.float32)
    if channels in (3, 4):
        weights = np.array([0.299, 0.587, 0.114], dtype=np.float32)
        return frames[..., :3].astype(np.float32) @ weights
    raise ValueError(f"cannot convert {channels}-channel frames to grayscale")


def normalise_intensity(
    gray: np.ndarray, low_percentile: float = 1.0, high_percentile: float = 99.0
) -> np.ndarray:
    """Per-frame robust rescale of (T, H, W) intensities to [0, 1] float32.

    The low/high percentiles map to 0/1 and values beyond are clipped, so bit depth,
    exposure and a few saturated pixels do not matter. NaN/inf become 0.
    """
    gray = np.nan_to_num(np.asarray(gray, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    flat = gray.reshape(gray.shape[0], -1)
    lo, hi = np.percentile(flat, [low_percentile, high_percentile], axis=1).astype(np.float32)
    span = np.maximum(hi - lo, np.float32(1e-6))
    out = (gray - lo[:, None, None]) / span[:, None, None]
    return np.clip(out, 0.0, 1.0, out=out)


def resize_stack(stack: np.ndarray, height: int, width: int, *, linear: bool = True) -> np.ndarray:
    """Resize each frame of a (T, H, W) stack to (T, height, width) with OpenCV.

    `linear=True` uses area averaging when shrinking and bilinear when enlarging;
    `linear=False` uses nearest neighbour (for label images).
    """
    stack = np.asarray(stack)
    if stack.shape[1:3] == (height, width):
        return stack
    t, h, w = stack.shape[:3]
    if not linear:
        interp = cv2.INTER_NEAREST
    elif height < h and width < w:
        interp = cv2.INTER_AREA
    else:
        interp = cv2.INTER_LINEAR
    src = stack.astype(np.float32) if stack.dtype == bool else stack
    out = np.empty((t, height, width), dtype=src.dtype)
    for i in range(t):
        out[i] = cv2.resize(src[i], (width, height), interpolation=interp)
    return out


def prepare_input(frames: np.ndarray, size: int = 256, low_percentile: float = 1.0,
                  high_percentile: float = 99.0) -> np.ndarray:
    """Frames (T, H, W[, C]) -> network input (T, size, size) float32 in [0, 1]."""
    gray = to_gray(frames)
    small = resize_stack(gray, size, size)
    return normalise_intensity(small, low_percentile, high_percentile)


def restore_geometry(prob: np.ndarray, height: int, width: int) -> np.ndarray:
    """Network-resolution probabilities (T, S, S) -> (T, height, width) float32, bilinear.

    Threshold the result (not the input) so the mask edge is placed at sub-pixel accuracy.
    """
    return resize_stack(np.asarray(prob, dtype=np.float32), height, width, linear=True)


PYRAMID_DTYPES = tuple(np.dtype(t) for t in (np.uint8, np.uint16, np.int16, np.float32,
                                              np.float64))  # what cv2.pyrDown takes


def shrink(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """An (H, W[, C]) image shrunk to (height, width) for display: halved by OpenCV's Gaussian
    pyramid (`cv2.pyrDown`) while it stays at least twice that size, then area-averaged to
    it. About 8 times faster than area averaging alone from a 640-px 16-bit frame to 64 px,
    which OpenCV does slowly at ratios that are not whole; the pyramid's smoothing keeps it
    free of aliasing. Not for what is measured: its values differ from area averaging's by a
    few per cent where the image has fine detail."""
    pyramid = image.dtype in PYRAMID_DTYPES
    while pyramid and image.shape[1] >= 4 * width and image.shape[0] >= 4 * height:
        image = cv2.pyrDown(image)
    if image.shape[:2] == (height, width):
        return image
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


def thumbnails(frames: np.ndarray, width: int = 48) -> np.ndarray:
    """(T, H, W[, C]) frames -> (T, h, width) float32 grayscale, aspect ratio kept (area averaging).

    Frames are shrunk before the grayscale conversion, so no full-size float copy is made.
    (Not `shrink`: the beat map measured on these decides where the heart is, and on the
    `hard` phantoms the pyramid's slightly different thumbnails moved a crop: Dice 0.707 ->
    0.659.)
    """
    frames = np.asarray(frames)
    height = max(1, round(frames.shape[1] * width / frames.shape[2]))
    small = np.stack([cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA)
                      for f in frames])
    return to_gray(small)


def block_thumbnails(frames: np.ndarray, min_width: int = 48) -> np.ndarray:
    """(T, H, W[, C]) frames -> (T, h, w) float32 grayscale, w >= min_width: the means of k x k
    pixel blocks of each frame's centre, k = W // min_width (up to k - 1 px of each axis's
    edges are left out).

    OpenCV's area averaging by a whole factor is several times faster than `thumbnails` at
    other ratios; for signals that need no frame geometry (the model-free heart rate).
    """
    frames = np.asarray(frames)
    height, width = frames.shape[1:3]
    k = max(1, width // min_width)
    h, w = height // k * k, width // k * k
    if k == 1 or h == 0:  # no whole factor to shrink by (small frames), or far wider than high
        return thumbnails(frames, min_width)
    y0, x0 = (height - h) // 2, (width - w) // 2
    small = np.stack([cv2.resize(f[y0:y0 + h, x0:x0 + w], (w // k, h // k),
                                 interpolation=cv2.INTER_AREA) for f in frames])
    return to_gray(small)


def crop_origin(cx: float, cy: float, side: float) -> tuple[int, int, int]:
    """(x0, y0, n) of the square crop of side `side` px centred at (cx, cy): its top-left
    corner in the image (may be negative) and its side n >= 1, px."""
    n = max(int(round(side)), 1)
    return int(round(cx - n / 2.0)), int(round(cy - n / 2.0)), n


def crop_square(image: np.ndarray, cx: float, cy: float, side: float, *, row_axis: int = -2
                ) -> np.ndarray:
    """Square crop (n x n px, `crop_origin`) of an image or stack; edges replicated.

    The image's rows are axis `row_axis` and its columns the next axis ((H, W), (T, H, W) or,
    with row_axis=1, (T, H, W, C)). A crop entirely outside takes the nearest edge pixels.
    """
    image = np.asarray(image)
    r = row_axis % image.ndim
    c = r + 1
    h, w = image.shape[r], image.shape[c]
    x0, y0, n = crop_origin(cx, cy, side)
    x1, y1 = x0 + n, y0 + n
    ix0, iy0, ix1, iy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if ix0 >= ix1 or iy0 >= iy1:  # entirely outside: use the nearest edge pixels
        ix0, ix1 = min(max(x0, 0), w - 1), min(max(x0, 0), w - 1) + 1
        iy0, iy1 = min(max(y0, 0), h - 1), min(max(y0, 0), h - 1) + 1
    index = [slice(None)] * image.ndim
    index[r], index[c] = slice(iy0, iy1), slice(ix0, ix1)
    inner = image[tuple(index)]
    rows, cols = (max(iy0 - y0, 0), max(y1 - iy1, 0)), (max(ix0 - x0, 0), max(x1 - ix1, 0))
    if any(rows + cols):
        pad_width = [(0, 0)] * image.ndim
        pad_width[r], pad_width[c] = rows, cols
        inner = np.pad(inner, pad_width, mode="edge")
    index[r], index[c] = slice(0, n), slice(0, n)
    return inner[tuple(index)]


def crop_frames(frames: np.ndarray, cx: float, cy: float, side: float
                ) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Square grayscale crops (T, n, n) float32 of frames (T, H, W[, C]) and their
    `crop_origin` (x0, y0, n); edges replicated."""
    return (to_gray(crop_square(frames, cx, cy, side, row_axis=1)),
            crop_origin(cx, cy, side))


def paste_into(crop: np.ndarray, origin: tuple[int, int, int], height: int, width: int
               ) -> np.ndarray:
    """A (T, n, n) stack at native px scale placed at its `crop_origin` (x0, y0, n) into
    frames (T, height, width) of its dtype, zero (False) outside the crop."""
    x0, y0, n = origin
    out = np.zeros((len(crop), height, width), dtype=crop.dtype)
    ix0, iy0 = max(x0, 0), max(y0, 0)
    ix1, iy1 = min(x0 + n, width), min(y0 + n, height)
    if ix0 < ix1 and iy0 < iy1:
        out[:, iy0:iy1, ix0:ix1] = crop[:, iy0 - y0:iy1 - y0, ix0 - x0:ix1 - x0]
    return out
