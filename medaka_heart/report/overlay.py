"""The segmentation drawn on the frames: 8-bit views, mask outlines, ellipse axes, overlay.avi."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

OUTLINE_RGB = (255, 230, 0)  # yellow


LEVEL_FRAMES = 16  # display levels are taken from at most this many frames, evenly spread


def display_levels(frames: np.ndarray, low: float = 0.5, high: float = 99.5) -> tuple[float, float]:
    """(black, white) intensity levels of (t, H, W[, 3]) frames: robust percentiles of up to
    LEVEL_FRAMES of them, evenly spread."""
    frames = np.asarray(frames)
    pick = np.unique(np.linspace(0, len(frames) - 1, min(len(frames), LEVEL_FRAMES)).round())
    lo, hi = np.percentile(frames[pick.astype(int)].astype(np.float32), [low, high])
    return float(lo), float(hi) if hi > lo else float(lo) + 1.0


def to_rgb8(frames: np.ndarray, levels: tuple[float, float]) -> np.ndarray:
    """(t, H, W[, 3]) frames of any dtype -> (t, H, W, 3) uint8, `levels` stretched to 0-255."""
    x = np.asarray(frames, dtype=np.float32)
    lo, hi = levels
    x = np.clip((x - lo) * (255.0 / (hi - lo)), 0, 255).astype(np.uint8)
    return np.repeat(x[..., None], 3, axis=-1) if x.ndim == 3 else x


def draw_outline(rgb: np.ndarray, mask: np.ndarray, color=OUTLINE_RGB, thickness: int = 1
                 ) -> np.ndarray:
    """Copy of an (H, W, 3) uint8 image with the outline of an (H, W) bool mask drawn on it."""
    out = np.ascontiguousarray(rgb).copy()
    contours, _ = cv2.findContours(np.asarray(mask, dtype=np.uint8), cv2.RETR_LIST,
                                   cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(out, contours, -1, tuple(int(c) for c in color), thickness)
    return out


def ellipse_axes_px(centroid_x_um: float, centroid_y_um: float, orientation_rad: float,
                    major_um: float, minor_um: float, pixel_size_um: float
                    ) -> tuple[np.ndarray, np.ndarray]:
    """End points ((2, 2) arrays of (x, y) px) of the major and minor axis of a frame's ellipse.

    The arguments are the per-frame features of frames.csv (skimage conventions: the
    orientation is the angle between the row axis and the major axis, axes are full lengths).
    """
    cx, cy = centroid_x_um / pixel_size_um, centroid_y_um / pixel_size_um
    s, c = np.sin(orientation_rad), np.cos(orientation_rad)
    half_major, half_minor = 0.5 * major_um / pixel_size_um, 0.5 * minor_um / pixel_size_um
    major = np.array([[cx - s * half_major, cy - c * half_major],
                      [cx + s * half_major, cy + c * half_major]])
    minor = np.array([[cx - c * half_minor, cy + s * half_minor],
                      [cx + c * half_minor, cy - s * half_minor]])
    return major, minor


class OverlayWriter:
    """Streams frames with the mask outline drawn on them into an MJPEG AVI (`overlay.avi`)."""

    def __init__(self, path: str | Path, fps: float, height: int, width: int):
        self.path = Path(path)
        self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter.fourcc(*"MJPG"),
                                       float(fps), (int(width), int(height)))
        if not self._writer.isOpened():
            raise OSError(f"{self.path}: cannot write an MJPEG video here")
        self._levels: tuple[float, float] | None = None
        self._thickness = max(1, round(min(height, width) / 300))
        self._next = 0

    def write(self, frames: np.ndarray, masks: np.ndarray) -> None:
        """Append (t, H, W[, 3]) frames and their (t, H, W) bool masks."""
        if self._levels is None:  # the first chunk fixes the levels: no flicker between chunks
            self._levels = display_levels(frames)
        scale = max(0.4, frames.shape[1] / 800)
        for rgb, mask in zip(to_rgb8(frames, self._levels), masks, strict=True):
            image = draw_outline(rgb, mask, thickness=self._thickness)
            cv2.putText(image, str(self._next), (4, int(18 * scale)), cv2.FONT_HERSHEY_SIMPLEX,
                        0.5 * scale, (255, 255, 255), 1, cv2.LINE_AA)
            self._writer.write(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
            self._next += 1

    def close(self) -> None:
        self._writer.release()

    def __enter__(self) -> OverlayWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
