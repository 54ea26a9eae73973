"""Segmenter input preparation and mask geometry (pure array functions).

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


def thumbnails(frames: np.ndarray, width: int = 48) -> np.ndarray:
    """(T, H, W[, C]) frames -> (T, h, width) float32 grayscale, aspect ratio kept (area averaging).

    Frames are shrunk before the grayscale conversion, so no full-size float copy is made.
    """
    frames = np.asarray(frames)
    height = max(1, round(frames.shape[1] * width / frames.shape[2]))
    small = np.stack([cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA)
                      for f in frames])
    return to_gray(small)
