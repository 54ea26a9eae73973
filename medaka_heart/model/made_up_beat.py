"""A made-up beat of one annotated frame: its ventricle contracted and relaxed about its
centroid (pure, arrays in and out).

A beat-plane model learns a recording from the planes its frames' temporal std and median
give (`data.recording_views`). One or two annotated frames give none (a still: zero planes),
and adapting on zero planes alone teaches the network a still's regime, which it then
applies with the real planes of a video. So each such frame is turned into a short scene of a
made-up beat (`made_up_beat`), whose planes show a ventricle that changes at its rim, as a
beating one does. `scripts/animate_frame.py` makes its test videos with the same warp.
"""

from __future__ import annotations

import cv2
import numpy as np

MADE_UP_FRAMES = 8  # frames of one made-up beat
MADE_UP_SHORTENING = 0.15  # linear shortening at its systole (area about -28 %)
FOLLOW_PX = 15  # the warp moves the ventricle and about this much around it ...
FOLLOW_SIGMA_PX = 10.0  # ... fading out smoothly (Gaussian sd) beyond


def beating_scale(n_frames: int, fps: float, hr_bpm: float, shortening: float) -> np.ndarray:
    """Linear scale of the ventricle per frame: 1 at diastole, 1 - shortening at systole."""
    phase = 2.0 * np.pi * hr_bpm / 60.0 * np.arange(n_frames) / fps
    return 1.0 - shortening * (0.5 - 0.5 * np.cos(phase))


def follow_field(mask: np.ndarray) -> np.ndarray:
    """(H, W) float32 in [0, 1]: 1 on and just around `mask` (H, W bool), fading to 0."""
    near = cv2.dilate(mask.astype(np.uint8), np.ones((FOLLOW_PX, FOLLOW_PX), np.uint8))
    follow = cv2.GaussianBlur(near.astype(np.float32), (0, 0), FOLLOW_SIGMA_PX)
    return follow / max(float(follow.max()), 1e-6)


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


def made_up_beat(image: np.ndarray, mask: np.ndarray, *, n_frames: int = MADE_UP_FRAMES,
                 shortening: float = MADE_UP_SHORTENING) -> tuple[np.ndarray, np.ndarray]:
    """One beat of `n_frames` frames of `image` (H, W[, C], any real dtype) whose ventricle
    `mask` (H, W[, C], nonzero) contracts by `shortening` (linear) and relaxes about its
    centroid.

    Returns frames (n_frames, *image.shape) of the image's dtype (frame 0 is `image`; integer
    frames rounded) and masks (n_frames, H, W) bool. An empty mask gives the image repeated
    (nothing beats).
    """
    image = np.asarray(image)
    given = np.asarray(mask)
    mask = np.asarray(given.any(axis=-1) if given.ndim == 3 else given != 0)
    if not mask.any():
        return np.repeat(image[None], n_frames, axis=0), np.repeat(mask[None], n_frames, axis=0)
    ys, xs = np.nonzero(mask)
    centre = (float(xs.mean()), float(ys.mean()))
    follow = follow_field(mask)
    scales = beating_scale(n_frames, float(n_frames), 60.0, shortening)  # one beat in n frames
    work = image.astype(np.float32)  # OpenCV warps few dtypes; float32 holds them all
    frames = np.stack([warp_about(work, centre, follow, float(s)).reshape(image.shape)
                       for s in scales])
    if image.dtype.kind in "uib":
        frames = np.round(frames)
    masks = [warp_about(mask.astype(np.float32), centre, follow, float(s)) > 0.5 for s in scales]
    return frames.astype(image.dtype), np.stack(masks)
