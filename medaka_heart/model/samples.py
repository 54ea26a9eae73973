"""Network-size training samples that mimic the two inference passes of the segmenter.

Inference (see `medaka_heart.segment`) runs a *coarse* pass on whole frames resized to
``coarse_size`` to find the heart, then a *fine* pass on a square crop around it
(``crop_scale`` x the heart's bounding box) resized to ``size``. Training therefore keeps, per
frame, two views (both uint8 in [0, 255] after per-view percentile normalisation):

- coarse : the whole frame at coarse_size x coarse_size, normalised on the whole frame;
- context : a square region of ``context_scale`` x the mask's bounding box around the heart,
  at context_size x context_size, from which jittered fine crops are cut.

A coarse sample is a `size` x `size` window of the (augmented) coarse view; a fine sample is
a jittered crop of the context view resized to `size`.

Three-channel models also see a *motion* plane in the coarse pass: `motion_image`, the
temporal standard deviation of the coarse views of a few frames of the same scene (a beating
ventricle changes; most of what looks like it does not). The fine pass gets a zero plane.

Four-channel models see two *beat planes* in the fine pass (`inputs.beat_planes`). Their
scenes are stored whole (`scene_views`): every frame's context is cut around the scene's one
heart box (as inference cuts one crop for a chunk), and the scene keeps the temporal std and
median of all its contexts, from which a fine sample's beat planes are cut with its image.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import cv2
import numpy as np

from ..preprocess import crop_square, normalise_intensity, resize_stack, to_gray
from .augment import (
    AugmentConfig,
    augment_pair,
    jitter_beat,
    jitter_motion,
    photometric,
    random_affine,
    warp_pair,
)
from .inputs import beat_planes, motion_image


@dataclass(frozen=True)
class ViewSpec:
    """Geometry of the stored views and of the samples cut from them (pixels, fractions)."""

    size: int = 128  # network input side of a sample
    coarse_size: int = 256  # side of the whole-frame view (0: no coarse view)
    context_size: int = 256
    context_scale: float = 4.0  # context side / mask bounding-box side
    crop_scale: tuple[float, float] = (1.7, 2.8)  # fine crop side / bounding-box side
    crop_jitter: float = 0.15  # centre jitter, fraction of the crop side
    min_box_px: float = 16.0  # smallest bounding-box side assumed, native px
    # True: fine crops are sized from the side the context was built on (the recording's
    # largest heart box, see `make_views`), as inference sizes one crop for all of a video's
    # frames, so the ventricle is smaller in the crop at end-systole; False: from each
    # frame's own box (a crop fitted to every frame teaches a size prior that the video's
    # end-systolic frames, seen in a diastole-sized crop, break)
    recording_box: bool = False
    low_percentile: float = 1.0
    high_percentile: float = 99.0


OFF_TARGET_RANGE = (0.5, 1.3)  # off-target fine crops: centre this many box sides off the heart


def scene_motion(coarse: np.ndarray, group_size: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Motion planes of runs of frames: (G, S, S) uint8 and each frame's run index (N,) int.

    coarse : (N, S, S) uint8 coarse views of one sequence; group_size : frames per scene
    (runs of consecutive frames); None = the whole sequence is one scene.
    """
    n = len(coarse)
    size = n if not group_size else int(group_size)
    starts = range(0, n, max(size, 1))
    planes = [_to_uint8(motion_image(coarse[s:s + size].astype(np.float32) / 255.0))
              for s in starts]
    return np.stack(planes), np.arange(n) // max(size, 1)


def mask_box(mask: np.ndarray) -> tuple[float, float, float] | None:
    """(centre x, centre y, side) of a bool mask's bounding box in px; None if empty."""
    ys = np.flatnonzero(mask.any(axis=1))
    xs = np.flatnonzero(mask.any(axis=0))
    if len(ys) == 0:
        return None
    side = float(max(ys[-1] - ys[0] + 1, xs[-1] - xs[0] + 1))
    return (xs[0] + xs[-1]) / 2.0, (ys[0] + ys[-1]) / 2.0, side


def largest_box_side(masks: Iterable[np.ndarray]) -> float | None:
    """Side (px) of the largest bounding box of bool masks (a recording's end-diastole);
    None if all are empty."""
    sides = [box[2] for box in map(mask_box, masks) if box is not None]
    return max(sides) if sides else None


def _resize(image: np.ndarray, size: int) -> np.ndarray:
    interp = cv2.INTER_AREA if image.shape[0] > size else cv2.INTER_LINEAR
    return cv2.resize(image, (size, size), interpolation=interp)


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)


def make_views(frame: np.ndarray, mask: np.ndarray, spec: ViewSpec,
               box_side: float | None = None, centre: tuple[float, float] | None = None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One native frame (H, W[, C]) and mask (H, W) -> the stored views.

    Returns coarse (Sc, Sc) uint8, coarse mask (Sc, Sc) bool, context (Sx, Sx) uint8, context
    mask (Sx, Sx) bool. The context is `context_scale` x `box_side` (native px; None = the
    mask's own bounding-box side) around `centre` (native px; None = the mask's box centre).
    An empty mask gives a context centred on the frame.
    """
    gray = to_gray(np.asarray(frame)[None])[0]
    mask = np.asarray(mask) != 0
    pct = (spec.low_percentile, spec.high_percentile)
    sc = max(spec.coarse_size, 1)
    coarse = normalise_intensity(resize_stack(gray[None], sc, sc), *pct)[0]
    coarse_mask = resize_stack(mask[None].astype(np.float32), sc, sc)[0] > 0.5
    box = mask_box(mask)
    h, w = mask.shape
    cx, cy, side = box if box is not None else (w / 2.0, h / 2.0, min(h, w) / spec.context_scale)
    if box_side is not None:
        side = float(box_side)
    if centre is not None:
        cx, cy = centre
    side = max(side, spec.min_box_px) * spec.context_scale
    ctx = crop_square(gray, cx, cy, side)
    ctx_mask = crop_square(mask.astype(np.float32), cx, cy, side)
    ctx = normalise_intensity(_resize(ctx, spec.context_size)[None], *pct)[0]
    ctx_mask = _resize(ctx_mask, spec.context_size) > 0.5
    return _to_uint8(coarse), coarse_mask, _to_uint8(ctx), ctx_mask


def scene_views(frames: np.ndarray, masks: np.ndarray, picked: np.ndarray, spec: ViewSpec
                ) -> tuple[list[tuple[np.ndarray, ...]], np.ndarray]:
    """Stored views of the `picked` frames of one scene, and the scene's beat statistics.

    frames (T, H, W[, C]), masks (T, H, W) bool: every frame of the scene. Every context is
    cut around the box of all the scene's masks together (centre and side), as inference
    crops a chunk. Returns the `make_views` tuples of the picked frames and (2, Sx, Sx)
    float16: the temporal std and median of all frames' contexts (in [0, 1]).
    """
    box = mask_box(np.logical_or.reduce(np.asarray(masks, dtype=bool), axis=0))
    h, w = masks.shape[1:]
    cx, cy, side = box if box is not None else (w / 2.0, h / 2.0, min(h, w) / spec.context_scale)
    views = [make_views(frames[i], masks[i], spec, side, (cx, cy)) for i in range(len(frames))]
    contexts = np.stack([v[2] for v in views]).astype(np.float32) / 255.0
    stats = np.stack([contexts.std(axis=0), np.median(contexts, axis=0)]).astype(np.float16)
    return [views[int(i)] for i in picked], stats


def fine_sample(context: np.ndarray, context_mask: np.ndarray, rng: np.random.Generator,
                spec: ViewSpec, augment: AugmentConfig | None, off_target: float = 0.0,
                stats: np.ndarray | None = None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """A jittered crop around the heart as the fine pass sees it: (size, size) float32, bool,
    and with a scene's `stats` (see `scene_views`) its beat planes (2, size, size) float32.

    `augment=None` gives the deterministic crop (scale = mean of crop_scale, no jitter). With
    probability `off_target` (augmented samples only) the crop is centred OFF_TARGET_RANGE
    box sides away from the heart in a random direction, as a crop of a wrong candidate (an
    atrium, a look-alike) is: its mask is whatever of the heart it holds, often a part at the
    edge, sometimes nothing. With `stats` the crop is centred on the scene's box (the
    context's centre) and sized from it, as one crop serves a whole chunk at inference.
    """
    sx = context.shape[0]
    box_side = sx / spec.context_scale  # the context was built around this box
    cx = cy = sx / 2.0
    box = mask_box(context_mask)
    if box is not None and stats is None:
        cx, cy = box[0], box[1]
        if not spec.recording_box:
            box_side = max(box[2], box_side * 0.25)
    if augment is None:
        scale, dx, dy = float(np.mean(spec.crop_scale)), 0.0, 0.0
    else:
        scale = rng.uniform(*spec.crop_scale)
        dx, dy = rng.uniform(-spec.crop_jitter, spec.crop_jitter, size=2)
        if off_target > 0 and rng.random() < off_target:  # offset in box sides, then in crop sides
            angle, far = rng.uniform(0, 2 * np.pi), rng.uniform(*OFF_TARGET_RANGE)
            dx, dy = far * np.cos(angle) / scale, far * np.sin(angle) / scale
    side = box_side * scale
    x, y = cx + dx * side, cy + dy * side
    img = _resize(crop_square(context.astype(np.float32) / 255.0, x, y, side), spec.size)
    msk = _resize(crop_square(context_mask.astype(np.float32), x, y, side), spec.size) > 0.5
    beat = None
    if stats is not None:
        std, median = (_resize(crop_square(p.astype(np.float32), x, y, side), spec.size)
                       for p in stats)
        beat = beat_planes(img[None], median, std)[0]
    if augment is not None:
        img, msk, beat = augment_pair(img, msk, rng, augment, beat)
        if beat is not None:
            beat = jitter_beat(beat, rng, augment)
    pct = (spec.low_percentile, spec.high_percentile)
    return normalise_intensity(img[None], *pct)[0].astype(np.float32), msk, beat


def coarse_sample(coarse: np.ndarray, coarse_mask: np.ndarray, rng: np.random.Generator,
                  spec: ViewSpec, augment: AugmentConfig | None, p_heart: float = 0.8,
                  motion: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """A size x size window of the whole-frame view (normalised on the whole frame).

    With probability `p_heart` the window contains the heart's centre. `motion` (Sc, Sc) uint8
    (see `scene_motion`) is warped and cut like the image and randomised (`jitter_motion`).
    Returns (image float32, mask bool, motion float32 | None).
    """
    img = coarse.astype(np.float32) / 255.0
    msk = coarse_mask
    mot = None if motion is None else motion.astype(np.float32) / 255.0
    if augment is not None:
        height, width = img.shape
        matrix = random_affine(rng, height, width, augment)
        if mot is not None:
            mot = jitter_motion(warp_pair(mot, msk, matrix)[0], rng, augment)
        img, msk = warp_pair(img, msk, matrix)
    box = mask_box(msk)
    if augment is not None:  # clutter only where it does not hide a small heart
        large = box is not None and 0 < augment.coarse_clutter_min_px <= box[2]
        img = photometric(img, rng, augment, coarse=not large)
    pct = (spec.low_percentile, spec.high_percentile)
    img = normalise_intensity(img[None], *pct)[0].astype(np.float32)
    n, s = img.shape[0], spec.size
    if n <= s:
        return img, msk, mot
    if box is not None and rng.random() < p_heart:
        lo_x, lo_y = box[0] - s + 1, box[1] - s + 1
        x0 = int(np.clip(rng.uniform(lo_x, box[0]), 0, n - s))
        y0 = int(np.clip(rng.uniform(lo_y, box[1]), 0, n - s))
    else:
        x0, y0 = (int(v) for v in rng.integers(0, n - s + 1, size=2))
    window = (slice(y0, y0 + s), slice(x0, x0 + s))
    return img[window], msk[window], None if mot is None else mot[window]
