"""Random fields and camera effects shared by the renderers (pure numpy/OpenCV, float32)."""

from __future__ import annotations

import cv2
import numpy as np


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], scale_px: float) -> np.ndarray:
    """Zero-mean, unit-std random field with features about `scale_px` px wide.

    White noise on a coarse grid, upsampled with bicubic interpolation: cheap at any scale.

    Returns
    -------
    (H, W) float32 ndarray
    """
    h, w = shape
    scale = max(float(scale_px), 1.0)
    gh, gw = int(np.ceil(h / scale)) + 3, int(np.ceil(w / scale)) + 3
    coarse = rng.standard_normal((gh, gw), dtype=np.float32)
    big = cv2.resize(coarse, (int(gw * scale), int(gh * scale)), interpolation=cv2.INTER_CUBIC)
    oy, ox = int(scale), int(scale)
    field = big[oy : oy + h, ox : ox + w]
    if field.shape != (h, w):  # very small scales: fall back to a blurred white noise
        field = cv2.GaussianBlur(rng.standard_normal((h, w), dtype=np.float32), (0, 0), scale)
    std = float(field.std())
    return ((field - field.mean()) / (std if std > 0 else 1.0)).astype(np.float32)


def granular(rng: np.random.Generator, shape: tuple[int, int], grain_px: float) -> np.ndarray:
    """Blood-cell-like granular texture in [0, 1]: blobs about `grain_px` px wide.

    Returns
    -------
    (H, W) float32 ndarray
    """
    g: np.ndarray = cv2.GaussianBlur(rng.standard_normal(shape, dtype=np.float32), (0, 0),
                                     grain_px / 2.5)
    g /= max(float(g.std()), 1e-6)
    return (1.0 / (1.0 + np.exp(-2.0 * g))).astype(np.float32)


def soft_disc_mask(shape, center, axes, angle_deg=0.0, blur_px=1.0) -> np.ndarray:
    """Anti-aliased filled ellipse in [0, 1], edges softened by a Gaussian of `blur_px`.

    Returns
    -------
    (H, W) float32 ndarray
    """
    m = np.zeros(shape, np.float32)
    cv2.ellipse(
        m,
        (round(center[0] * 16), round(center[1] * 16)),
        (max(round(axes[0] * 16), 1), max(round(axes[1] * 16), 1)),
        angle_deg,
        0,
        360,
        1.0,
        -1,
        cv2.LINE_AA,
        4,
    )
    if blur_px > 0:
        m = cv2.GaussianBlur(m, (0, 0), blur_px)
    return m


def vignette_map(shape: tuple[int, int], strength: float, rng: np.random.Generator) -> np.ndarray:
    """Multiplicative illumination falloff: 1 near an off-centre optical axis, 1 - strength
    at the farthest corner.

    Returns
    -------
    (H, W) float32 ndarray
    """
    h, w = shape
    cy = h / 2 + rng.uniform(-0.1, 0.1) * h
    cx = w / 2 + rng.uniform(-0.1, 0.1) * w
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r2 = ((xx - cx) ** 2 + (yy - cy) ** 2) / float(max(cx, w - cx) ** 2 + max(cy, h - cy) ** 2)
    return (1.0 - strength * r2**1.5).astype(np.float32)


class NoiseBank:
    """Pre-drawn standard normal noise; each frame reads a random shifted, flipped window.

    Drawing a fresh field per frame would dominate the render time; windows of one bank twice
    the frame's size are visually independent and deterministic given the frame's draws.
    """

    def __init__(self, rng: np.random.Generator, shape: tuple[int, ...], margin: int = 48):
        self.shape = tuple(shape)
        self.margin = margin
        big = (shape[0] + margin, shape[1] + margin, *shape[2:])
        self.bank = rng.standard_normal(big, dtype=np.float32)

    def window(self, draw: np.ndarray) -> np.ndarray:
        """Noise window for one frame from `draw`, 3 uniforms in [0, 1) (offset y, x, flip)."""
        oy = int(draw[0] * self.margin)
        ox = int(draw[1] * self.margin)
        win = self.bank[oy : oy + self.shape[0], ox : ox + self.shape[1]]
        flip = int(draw[2] * 4) - 2  # -1: both axes, 0: rows, 1: columns, -2: none
        return win if flip == -2 else cv2.flip(win, flip)


def poisson_gaussian(
    image: np.ndarray, noise: np.ndarray, *, photons: float, read_noise: float
) -> np.ndarray:
    """Camera noise on a float32 image in [0, 1]: Poisson (`photons` at full scale) + Gaussian.

    Normal approximation: std = sqrt(image / photons + read_noise^2), times unit `noise`
    (same shape as `image`).
    """
    var = cv2.addWeighted(image, 1.0 / photons, image, 0.0, read_noise**2)
    std = cv2.sqrt(cv2.max(var, 0.0))
    return cv2.add(image, cv2.multiply(std, noise))
