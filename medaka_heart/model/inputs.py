"""What the network sees besides the image: the pass plane, motion and beat planes (numpy).

Two-channel models get a *pass plane* (COARSE on whole frames, FINE on crops); three-channel
models also a *motion plane* in the coarse pass, the scaled temporal std of a few frames
(`motion_image`). Four-channel models get two *beat planes* in the fine pass (`beat_planes`):
where the crop changes over the chunk (its temporal std) and how each frame differs from the
chunk's temporal median, both in units of the crop's strongest change, so they do not depend
on the microscope's contrast: the ventricle fills and empties whatever it looks like. Shared
by training (`model.samples`) and inference (`locate`, `segment`, `runtime`), so both build
the same input.
"""

from __future__ import annotations

import numpy as np

COARSE, FINE = 0.0, 1.0  # values of the pass plane (second input channel)
MOTION_PERCENTILE = 99.5  # motion planes are scaled so this percentile is 1
MOTION_WINDOW_S = 2.0  # motion planes span this many seconds (the training scenes' length)
BEAT_PERCENTILE = 99.5  # beat planes are in units of this percentile of the crop's std
MIN_BEAT_FRAMES = 3  # fewer frames (a still) give zero beat planes
DEVIATION_RANGE = 2.0  # deviation planes are clipped to +-this many units, then halved
BEAT_CHANNELS = 4  # models with this many input channels see beat planes in the fine pass


def sees_beat(in_channels: int) -> bool:
    """Whether a network of `in_channels` input channels takes beat planes (fine pass)."""
    return in_channels == BEAT_CHANNELS


def network_input(images: np.ndarray, in_channels: int, pass_value: float,
                  motion: np.ndarray | None = None, beat: np.ndarray | None = None
                  ) -> np.ndarray:
    """(N, S, S) float32 images -> (N, in_channels, S, S).

    Channel 1 is the pass plane (`pass_value`); channel 2 (three-channel models) the motion
    plane: `motion` (S, S) for all images or (N, S, S) one each; None = zeros. Channels 2-3
    (four-channel models) the beat planes: `beat` (N, 2, S, S) from `beat_planes`; None =
    zeros (a still, or the coarse pass).
    """
    images = np.asarray(images, dtype=np.float32)
    if in_channels == 1:
        return images[:, None]
    if in_channels not in (2, 3, 4):
        raise ValueError(f"in_channels must be 1, 2, 3 or 4, got {in_channels}")
    out = np.zeros((len(images), in_channels, *images.shape[1:]), np.float32)
    out[:, 0] = images
    out[:, 1] = pass_value
    if in_channels == 3 and motion is not None:
        out[:, 2] = np.broadcast_to(np.asarray(motion, np.float32), images.shape)
    if sees_beat(in_channels) and beat is not None:
        out[:, 2:] = beat
    return out


def beat_planes(frames: np.ndarray, median: np.ndarray | None = None,
                std: np.ndarray | None = None) -> np.ndarray:
    """Beat planes (N, 2, S, S) float32 of (N, S, S) frames in [0, 1] of one place over time.

    Plane 0: the temporal std, in units of its BEAT_PERCENTILE-th percentile, clipped to
    [0, 1]; plane 1: each frame minus the temporal median, in the same unit, clipped to
    +-DEVIATION_RANGE and halved (so in [-1, 1]). `median` and `std` (S, S) may be given (the
    training scenes take them from all their frames); else they come from `frames`. Fewer
    than MIN_BEAT_FRAMES frames, or frames that do not change, give zeros.
    """
    frames = np.asarray(frames, dtype=np.float32)
    out = np.zeros((len(frames), 2, *frames.shape[1:]), np.float32)
    if std is None or median is None:
        if len(frames) < MIN_BEAT_FRAMES:
            return out
        std, median = frames.std(axis=0), temporal_median(frames)
    top = float(np.percentile(std, BEAT_PERCENTILE))
    if not top > 1e-6:
        return out
    out[:, 0] = np.clip(std / top, 0.0, 1.0)
    deviation = (frames - median) / np.float32(top * DEVIATION_RANGE)
    out[:, 1] = np.clip(deviation, -1.0, 1.0)
    return out


def temporal_median(frames: np.ndarray) -> np.ndarray:
    """Per-pixel median over time of (N, ...) frames: (...) float32, as np.median(axis=0),
    taken along contiguous rows (about twice as fast for a chunk of crops)."""
    frames = np.asarray(frames, dtype=np.float32)
    if not len(frames):
        raise ValueError("no frames to take a median of")
    rows = np.ascontiguousarray(frames.reshape(len(frames), -1).T)
    return np.median(rows, axis=1).reshape(frames.shape[1:])


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
