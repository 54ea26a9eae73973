"""What the network sees besides the image: the pass plane and the motion plane (pure numpy).

Two-channel models get a *pass plane* (COARSE on whole frames, FINE on crops); three-channel
models also a *motion plane*, the scaled temporal std of a few frames (`motion_image`). Shared
by training (`model.samples`) and inference (`locate`, `runtime`), so both build the same input.
"""

from __future__ import annotations

import numpy as np

COARSE, FINE = 0.0, 1.0  # values of the pass plane (second input channel)
MOTION_PERCENTILE = 99.5  # motion planes are scaled so this percentile is 1
MOTION_WINDOW_S = 2.0  # motion planes span this many seconds (the training scenes' length)


def network_input(images: np.ndarray, in_channels: int, pass_value: float,
                  motion: np.ndarray | None = None) -> np.ndarray:
    """(N, S, S) float32 images -> (N, in_channels, S, S).

    Channel 1 is the pass plane (`pass_value`); channel 2 (three-channel models) the motion
    plane: `motion` (S, S) for all images or (N, S, S) one each; None = zeros.
    """
    images = np.asarray(images, dtype=np.float32)
    if in_channels == 1:
        return images[:, None]
    if in_channels not in (2, 3):
        raise ValueError(f"in_channels must be 1, 2 or 3, got {in_channels}")
    planes = [images, np.full_like(images, pass_value)]
    if in_channels == 3:
        planes.append(np.zeros_like(images) if motion is None
                      else np.broadcast_to(np.asarray(motion, np.float32), images.shape))
    return np.stack(planes, axis=1)


def motion_image(frames: np.ndarray) -> np.ndarray:
    """Temporal std of (N, S, S) frames in [0, 1], scaled to [0, 1]: (S, S) float32.

    The scale puts the MOTION_PERCENTILE-th percentile at 1 (clipped above), so the plane does
    not depend on the video's contrast. Fewer than 2 frames give zeros.
    """
    frames = np.asarray(frames, dtype=np.float32)
    if len(frames) < 2:
        return np.zeros(frames.shape[1:], np.float32)
    std = frames.std(axis=0)
    top = float(np.percentile(std, MOTION_PERCENTILE))
    return np.clip(std / top, 0.0, 1.0) if top > 0 else np.zeros_like(std)
