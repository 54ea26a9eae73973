"""A scene re-made the way real-outline test videos are made (``scripts/animate_frame.py
--mask-sequence``): one frame's ventricle is painted out of a still background, and each
frame's outline is filled with that one ventricle, mapped onto the outline by the affine map
between the two outlines' ellipses of inertia.

In such a video the place a contracting ventricle leaves is smooth, still background, and
the ventricle's texture moves with its outline. A real ventricle is grainy (cells, trabeculae)
and its mean brightness is that of its surroundings; a phantom's is smooth and set off by a
bright wall. So the moved ventricle gets a grain of its own and loses part of its contrast
(`repaint_scene`): what tells it from the place it leaves is then its grain and its motion, as
in real-outline videos, where a network trained on plain phantoms keeps that place in the mask
at end-systole (area +21-35 % there).
"""

from __future__ import annotations

import cv2
import numpy as np

HOLE_PX = 7  # side of the square the source ventricle is dilated by before painting out
INPAINT_RADIUS_PX = 9
EDGE_SIGMA_PX = 1.0  # the filled outline's edge is blended over about this width
MIN_OUTLINE_PX = 3  # an outline with fewer pixels has no ellipse of inertia: left empty
GRAIN_AMPLITUDE = (0.03, 0.25)  # sd of the moved ventricle's grain, share of the frame's range
GRAIN_SIZE = (0.01, 0.06)  # its size: sd of the Gaussian smoothing white noise, share of the
# ventricle's equivalent diameter (about 1-4 px for a 70 px ventricle)
FLATTEN = (0.0, 1.0)  # share of the ventricle's mean contrast to its surroundings removed


def ellipse_frame(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centroid (x, y px) of `mask` (H, W bool) and the 2x2 matrix whose columns are its
    ellipse of inertia's semi-axes (px)."""
    ys, xs = np.nonzero(mask)
    points = np.stack([xs, ys]).astype(np.float64)
    centre = points.mean(axis=1)
    values, vectors = np.linalg.eigh(np.cov(points))
    vectors *= np.where(vectors[0] < 0, -1.0, 1.0)  # a fixed sign: outlines alike map alike
    return centre, vectors * np.sqrt(np.maximum(values, 1e-6))


def fill_outline(image: np.ndarray, background: np.ndarray, source: np.ndarray,
                 target: np.ndarray) -> np.ndarray:
    """`background` with outline `target` (H, W bool) filled by `image`'s region `source`,
    mapped by the affine map between their ellipses of inertia, the edge blended; float32."""
    c_s, a_s = ellipse_frame(source)
    c_t, a_t = ellipse_frame(target)
    linear = a_s @ np.linalg.inv(a_t)  # target px -> source px
    matrix = np.hstack([linear, (c_s - linear @ c_t)[:, None]]).astype(np.float32)
    h, w = target.shape
    moved = cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                           borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
    alpha = cv2.GaussianBlur(target.astype(np.float32), (0, 0), EDGE_SIGMA_PX)
    if image.ndim == 3:
        alpha = alpha[..., None]
    return alpha * moved + (1.0 - alpha) * background.astype(np.float32)


def paint_out(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """`image` (H, W[, 3], uint8 or uint16 gray) with the region `mask` (a little dilated)
    filled in from its surroundings (Telea inpainting); same shape and dtype."""
    hole = cv2.dilate(mask.astype(np.uint8), np.ones((HOLE_PX, HOLE_PX), np.uint8))
    return cv2.inpaint(np.ascontiguousarray(image), hole, INPAINT_RADIUS_PX, cv2.INPAINT_TELEA)


def grain_and_flatten(image: np.ndarray, outline: np.ndarray, rng: np.random.Generator, *,
                      amplitude: float, grain_px: float, flatten: float) -> np.ndarray:
    """`image` (H, W[, 3]) as float32 with grain (smoothed Gaussian noise of sd `amplitude`
    times its range of values, `grain_px` wide) added and a share `flatten` of the mean
    difference between region `outline` and the ring of HOLE_PX around it removed there."""
    out = image.astype(np.float32)
    span = float(np.ptp(out))
    noise = cv2.GaussianBlur(rng.standard_normal(outline.shape, dtype=np.float32), (0, 0),
                             grain_px)
    noise *= amplitude * span / max(float(noise.std()), 1e-6)
    ring = cv2.dilate(outline.astype(np.uint8), np.ones((HOLE_PX, HOLE_PX), np.uint8)) > 0
    ring &= ~outline
    gap = out[outline].mean(axis=0) - out[ring].mean(axis=0) if ring.any() else 0.0
    shift = (noise if out.ndim == 2 else noise[..., None]) - flatten * np.asarray(gap, np.float32)
    out[outline] += shift[outline]
    return out


def repaint_scene(frames: np.ndarray, masks: np.ndarray, rng: np.random.Generator, *,
                  noise: tuple[float, float] = (1.0, 3.0),
                  grain: tuple[float, float] = GRAIN_AMPLITUDE,
                  grain_size: tuple[float, float] = GRAIN_SIZE,
                  flatten: tuple[float, float] = FLATTEN) -> np.ndarray:
    """`frames` (T, H, W[, 3]) re-made from one of them: a random frame's ventricle
    (`masks` (T, H, W) bool) is painted out of it to give a still background, and every frame
    is that background with its own outline filled by the ventricle (`fill_outline`), the
    ventricle given grain and its contrast flattened first (`grain_and_flatten`, each drawn
    from its range; (0, 0) for none), plus fresh Gaussian sensor noise of a standard
    deviation drawn from `noise` (in 1/255 of the source frame's range of values). Frames
    whose outline is (nearly) empty are the background. Same shape and dtype as `frames`;
    the masks stay the truth exactly."""
    areas = masks.reshape(len(masks), -1).sum(axis=1)
    usable = np.flatnonzero(areas >= MIN_OUTLINE_PX)
    if usable.size == 0:
        return frames.copy()
    source = int(rng.choice(usable))
    background = paint_out(frames[source], masks[source])
    top = float(np.iinfo(frames.dtype).max) if frames.dtype.kind in "ui" else np.inf
    sigma = rng.uniform(*noise) * float(np.ptp(frames[source])) / 255.0
    # the work is done in the box around every outline (the rest of each frame is background)
    ys, xs = np.nonzero(masks.any(axis=0))
    margin = HOLE_PX + 3 * int(np.ceil(EDGE_SIGMA_PX))
    box = (slice(max(ys.min() - margin, 0), ys.max() + margin + 1),
           slice(max(xs.min() - margin, 0), xs.max() + margin + 1))
    outline, still = masks[source][box], background[box]
    diameter = 2.0 * np.sqrt(areas[source] / np.pi)
    image = grain_and_flatten(frames[source][box], outline, rng,
                              amplitude=rng.uniform(*grain),
                              grain_px=max(rng.uniform(*grain_size) * diameter, 0.5),
                              flatten=rng.uniform(*flatten))
    out = np.empty_like(frames)
    for t in range(len(frames)):
        frame = background.astype(np.float32)
        if areas[t] >= MIN_OUTLINE_PX:
            frame[box] = fill_outline(image, still, outline, masks[t][box])
        frame += sigma * rng.standard_normal(frame.shape, dtype=np.float32)
        out[t] = np.clip(frame, 0.0, top)
    return out
