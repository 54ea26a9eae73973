"""Whole-animal motion: slow drift and sudden jerks as per-frame rigid transforms (pure numpy)."""

from __future__ import annotations

import numpy as np


def rigid_motion(
    n_frames: int,
    fps: float,
    rng: np.random.Generator,
    *,
    drift_px_s: float = 0.0,
    jerk_rate_hz: float = 0.0,
    jerk_px: float = 10.0,
    max_rotation_rad: float = 0.03,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-frame displacement of the animal.

    Parameters
    ----------
    n_frames, fps
        Frame count and rate (frames/s).
    rng : numpy.random.Generator
    drift_px_s : float
        Speed of the slow wandering drift, px/s.
    jerk_rate_hz : float
        Mean number of sudden jerks per second (Poisson); each jerk moves the animal by about
        `jerk_px` px within two frames and leaves it there.
    max_rotation_rad : float
        Largest slow rotation, rad (jerks add up to half of it again).

    Returns
    -------
    shift_px : (T, 2) ndarray
        Translation (dx, dy) of the animal in each frame, px.
    angle_rad : (T,) ndarray
        Rotation of the animal about the frame centre in each frame, rad.
    moving : (T,) bool ndarray
        Frames during a jerk (candidates for motion blur).
    """
    t = np.arange(n_frames) / fps
    duration = max(n_frames / fps, 1e-9)
    # drift: a smooth wandering path (two slow sinusoids per axis plus a constant velocity)
    heading = rng.uniform(0, 2 * np.pi)
    velocity = 0.5 * drift_px_s * np.array([np.cos(heading), np.sin(heading)])
    shift = t[:, None] * velocity[None, :]
    for _ in range(2):
        period = rng.uniform(2.0, 10.0)
        amp = drift_px_s * period / (2 * np.pi) * rng.uniform(0.2, 0.5, size=2)
        phase = rng.uniform(0, 2 * np.pi, size=2)
        shift = shift + amp * (np.sin(2 * np.pi * t[:, None] / period + phase) - np.sin(phase))
    rot_amp = max_rotation_rad * min(1.0, drift_px_s / 5.0)
    angle = rot_amp * np.sin(2 * np.pi * t / rng.uniform(5.0, 20.0) + rng.uniform(0, 2 * np.pi))
    angle = angle - angle[0] if n_frames else angle
    moving = np.zeros(n_frames, bool)
    n_jerks = rng.poisson(jerk_rate_hz * duration) if jerk_rate_hz > 0 else 0
    for _ in range(n_jerks):
        start = rng.uniform(0, duration)
        direction = rng.uniform(0, 2 * np.pi)
        step = jerk_px * rng.uniform(0.5, 1.5) * np.array([np.cos(direction), np.sin(direction)])
        ramp = np.clip((t - start) * fps / 2.0, 0.0, 1.0)  # two frames
        shift = shift + ramp[:, None] * step[None, :]
        angle = angle + ramp * rng.uniform(-0.5, 0.5) * max_rotation_rad
        moving |= (ramp > 0) & (ramp < 1)
    return shift, angle, moving


def affine_matrices(shift_px, angle_rad, center) -> np.ndarray:
    """(T, 2, 3) forward maps canvas -> image: rotate about `center` (x, y), then shift."""
    shift = np.asarray(shift_px, dtype=float)
    angle = np.asarray(angle_rad, dtype=float)
    c, s = np.cos(angle), np.sin(angle)
    cx, cy = center
    m = np.empty((len(angle), 2, 3))
    m[:, 0, 0], m[:, 0, 1] = c, -s
    m[:, 1, 0], m[:, 1, 1] = s, c
    m[:, 0, 2] = cx - c * cx + s * cy + shift[:, 0]
    m[:, 1, 2] = cy - s * cx - c * cy + shift[:, 1]
    return m


def apply_affine(matrix, xy) -> np.ndarray:
    """Points (N, 2) mapped by one (2, 3) affine matrix."""
    m = np.asarray(matrix, dtype=float)
    p = np.asarray(xy, dtype=float)
    return p @ m[:, :2].T + m[:, 2]
