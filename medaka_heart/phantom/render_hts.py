"""Setting "hts": a medaka embryo in its chorion in a 96-well plate, top-down brightfield.

Grayscale, 16-bit, square frames. The chorion (a thin dark ring with filaments), the embryo in
any orientation curled around its yolk (oil droplets, melanophores), two dark pigmented eyes,
and the heart: a small, slightly darker, granular region between the eyes and the yolk whose
ventricle and atrium beat out of phase. Static parts are drawn once per video; each frame
pastes the chambers, moves the embryo a little and adds camera effects.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .heart import ATRIUM_OPACITY, ATRIUM_WALL, VENTRICLE_WALL, HeartLayout, random_layout
from .presets import PhantomParams
from .render_stereo import FrameDraws, frame_draws
from .shape import rasterize
from .texture import NoiseBank, granular, poisson_gaussian, smooth_noise, vignette_map

MARGIN = 24  # canvas margin around the frame, px


@dataclass(frozen=True)
class HtsScene:
    """Everything static of one hts phantom video."""

    params: PhantomParams
    layout: HeartLayout
    canvas: np.ndarray  # (S + 2M, S + 2M) float32 in [0, 1]: transmitted light
    patch_box: tuple[int, int, int, int]  # y0, y1, x0, x1
    blood: np.ndarray  # (h + 2G, w + 2G) float32 granular texture in [0, 1]
    blood_level: float  # transmission of blood-filled chambers relative to the tissue
    wall_level: float  # transmission of the chamber walls
    chamber_opacity: np.ndarray  # (2,) float32: blood opacity of (atrium, ventricle), relative
    wall_scale: np.ndarray  # (2,) float32: wall thickness of (atrium, ventricle), relative
    vignette: np.ndarray  # (S, S) float32
    noise: NoiseBank
    full_scale: float  # camera counts at transmission 1

    @property
    def margin(self) -> int:
        return MARGIN

    @property
    def center(self) -> tuple[float, float]:
        s = self.params.size_px
        return (s / 2 + MARGIN, s / 2 + MARGIN)


def hts_frame_draws(params: PhantomParams, n_frames: int, rng: np.random.Generator) -> FrameDraws:
    """Per-frame draws (flicker, noise windows, defocus); no floating particles in a well."""
    draws = frame_draws(params, n_frames, rng)
    return FrameDraws(
        flicker=draws.flicker,
        noise=draws.noise,
        defocus=draws.defocus,
        particles=np.zeros((0, 7)),
    )


def build_hts_scene(params: PhantomParams, rng: np.random.Generator) -> HtsScene:
    """Draw the static well, chorion and embryo and the heart layout of one hts video.

    Long on purpose: one drawing recipe, layer over layer, each step using the random draws
    of the steps before it in a fixed order (the order is the phantom's seed contract: split
    it and every phantom set changes).
    """
    size = params.size_px
    sc = size + 2 * MARGIN
    shape = (sc, sc)
    yy, xx = np.mgrid[0:sc, 0:sc].astype(np.float32)
    px = params.pixel_size_um
    # chorion: ~1.0-1.25 mm across, kept between half the frame and the whole frame
    radius = np.clip(rng.uniform(500, 625) / px, 0.25 * size, 0.5 * size)
    cx, cy = sc / 2 + rng.uniform(-0.06, 0.06, 2) * size

    img = np.float32(rng.uniform(0.8, 0.95)) * (1.0 + 0.03 * smooth_noise(rng, shape, size / 2))
    if rng.random() < 0.35:  # the dark wall of the well in a corner
        a = rng.uniform(0, 2 * np.pi)
        wx, wy = sc / 2 + np.cos(a) * size * 1.3, sc / 2 + np.sin(a) * size * 1.3
        d = np.hypot(xx - wx, yy - wy) - size * rng.uniform(0.55, 0.75)
        img = img * (1.0 - 0.7 / (1.0 + np.exp(d / 6.0)))

    r = np.hypot(xx - cx, yy - cy)
    inside = 1.0 / (1.0 + np.exp((r - radius) / 1.5))
    ring_w = max(1.2, 0.012 * radius)
    ring = np.exp(-(((r - radius) / ring_w) ** 2))
    fine = smooth_noise(rng, shape, 2.0)
    img = img * (1.0 - 0.04 * inside) * (1.0 - rng.uniform(0.3, 0.55) * ring * (1 + 0.3 * fine))
    filaments = np.zeros(shape, np.float32)
    for _ in range(rng.integers(0, 5)):
        a0 = rng.uniform(0, 2 * np.pi)
        arc = a0 + np.cumsum(rng.normal(0.05, 0.03, 12))
        rad = radius * (1.0 + np.cumsum(np.abs(rng.normal(0.02, 0.02, 12))))
        pts = np.column_stack([cx + rad * np.cos(arc), cy + rad * np.sin(arc)])
        cv2.polylines(filaments, [np.round(pts * 16).astype(np.int32)], False, 1.0, 1, 16, 4)
    img = img * (1.0 - 0.35 * cv2.GaussianBlur(filaments, (0, 0), 0.7))

    # embryo frame: head direction theta; yolk opposite the head
    theta = rng.uniform(-np.pi, np.pi)
    hx_, hy_ = np.cos(theta), np.sin(theta)
    yolk_r = radius * rng.uniform(0.55, 0.7)
    yx, yy_c = cx - hx_ * radius * 0.12, cy - hy_ * radius * 0.12
    ry = np.hypot(xx - yx, yy - yy_c)
    yolk = 1.0 / (1.0 + np.exp((ry - yolk_r) / 2.0))
    yolk_tex = 0.03 * smooth_noise(rng, shape, 0.15 * yolk_r) + 0.015 * smooth_noise(
        rng, shape, 3.0
    )
    yolk_edge = np.exp(-(((ry - yolk_r) / 2.5) ** 2))
    img = img * (1.0 - yolk * (0.08 - yolk_tex)) * (1.0 - 0.25 * yolk_edge)

    # body: a band curled around the yolk, from the head on, darker and textured
    ang = np.arctan2(yy - yy_c, xx - yx) - theta
    ang = (ang + np.pi) % (2 * np.pi) - np.pi  # -pi..pi, 0 at the head
    side = rng.choice([-1.0, 1.0])
    extent = rng.uniform(1.2, 2.0) * np.pi  # angular length of the body
    along = (side * ang) % (2 * np.pi)
    width = radius * rng.uniform(0.16, 0.26) * np.clip(1.2 - along / extent, 0.15, 1.0)
    band = np.exp(-(((ry - yolk_r - 0.4 * width) / np.maximum(width, 1.0)) ** 4))
    band = band * (along < extent) * np.clip((ry - 0.8 * yolk_r) / (0.2 * yolk_r), 0, 1)
    band = cv2.GaussianBlur(band.astype(np.float32), (0, 0), 2.0)
    body_tex = 0.03 * smooth_noise(rng, shape, 5.0) + 0.05 * smooth_noise(rng, shape, 0.1 * radius)
    img = img * (1.0 - band * (rng.uniform(0.12, 0.3) + body_tex))

    # eyes: two dark pigmented discs on the head, side by side across the body axis
    head = np.array([yx + hx_ * (yolk_r + 0.25 * radius), yy_c + hy_ * (yolk_r + 0.25 * radius)])
    eye_r = radius * rng.uniform(0.13, 0.21)
    across = np.array([-hy_, hx_])
    for sgn in (-1.0, 1.0):
        e = head + across * sgn * eye_r * rng.uniform(0.9, 1.3) - 0.3 * eye_r * np.array([hx_, hy_])
        e = e + rng.normal(0, 0.15 * eye_r, 2)
        win, ly, lx = _local(e, 1.3 * eye_r + 6, shape)
        re = np.hypot(lx - e[0], ly - e[1])
        eye = 1.0 / (1.0 + np.exp((re - eye_r) / (0.04 * eye_r + 1.0)))
        level = rng.uniform(0.06, 0.2) * (
            1.0
            + 0.25 * smooth_noise(rng, re.shape, 0.15 * eye_r)
            + 0.6 * np.exp(-((re / eye_r) ** 2))
        )
        img[win] *= 1.0 - eye + eye * level

    # oil droplets on the yolk: dark rims, bright centres, one sometimes large
    for k in range(rng.integers(3, 12)):
        rd = yolk_r * (
            rng.uniform(0.15, 0.3) if k == 0 and rng.random() < 0.6 else rng.uniform(0.03, 0.09)
        )
        a = rng.uniform(0, 2 * np.pi)
        dist = rng.uniform(0.0, yolk_r - rd)
        dx, dy = yx + dist * np.cos(a), yy_c + dist * np.sin(a)
        win, ly, lx = _local((dx, dy), rd + 8, shape)
        rdd = np.hypot(lx - dx, ly - dy) / rd
        rim = np.exp(-(((rdd - 1.0) * rd / 1.5) ** 2))
        core = 1.0 / (1.0 + np.exp((rdd - 0.85) * rd / 1.2))
        img[win] *= (1.0 - 0.35 * rim) * (1.0 + 0.08 * core)

    # melanophores: small dark stars on yolk and body
    mel = np.zeros(shape, np.float32)
    for _ in range(rng.integers(10, 60)):
        a, d = rng.uniform(0, 2 * np.pi), rng.uniform(0, 1.05) * yolk_r
        c = np.array([yx + d * np.cos(a), yy_c + d * np.sin(a)])
        for _arm in range(rng.integers(2, 6)):
            b = rng.uniform(0, 2 * np.pi)
            tip = c + rng.uniform(1.5, 6.0) * np.array([np.cos(b), np.sin(b)])
            cv2.line(
                mel,
                (int(c[0] * 16), int(c[1] * 16)),
                (int(tip[0] * 16), int(tip[1] * 16)),
                1.0,
                1,
                cv2.LINE_AA,
                4,
            )
    img = img * (1.0 - rng.uniform(0.3, 0.7) * cv2.GaussianBlur(mel, (0, 0), 0.6))

    # heart: between the eyes and the yolk, ventral side of the head
    major_px = params.major_um / px
    hc = (
        head
        - np.array([hx_, hy_]) * (0.9 * eye_r + 0.6 * major_px)
        + across * rng.uniform(-1.0, 1.0) * eye_r
    )
    layout = random_layout(
        rng,
        center=hc,
        major_px=major_px,
        angle=rng.uniform(-np.pi, np.pi),
        aspect=params.aspect,
        irregularity=params.irregularity,
        bend=params.bend,
    )
    # pericardium: a clearer sac around the heart
    win, ly, lx = _local(hc, 4 * major_px, shape)
    peri = np.exp(-((np.hypot(lx - hc[0], ly - hc[1]) / (1.3 * major_px)) ** 2))
    img[win] *= 1.0 + 0.05 * peri

    img = cv2.GaussianBlur(img.astype(np.float32), (0, 0), rng.uniform(0.5, 1.0))
    img = 0.9 + (img - 0.9) * np.float32(params.contrast)
    pts = np.vstack([layout.ventricle(), layout.atrium(0.0)])
    pad = int(np.ceil(0.15 * major_px + 4 * params.blur_sigma_px + 6))
    x0, y0 = np.floor(pts.min(axis=0)).astype(int) - pad
    x1, y1 = np.ceil(pts.max(axis=0)).astype(int) + pad
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, sc), min(y1, sc)
    g = int(0.3 * major_px) + 8
    grain = rng.uniform(1.5, 3.0)
    return HtsScene(
        params=params,
        layout=layout,
        canvas=np.clip(img, 0, 1.2).astype(np.float32),
        patch_box=(int(y0), int(y1), int(x0), int(x1)),
        blood=granular(rng, (y1 - y0 + 2 * g, x1 - x0 + 2 * g), grain),
        blood_level=float(rng.uniform(0.6, 0.85)),
        wall_level=float(rng.uniform(0.75, 0.92)),
        chamber_opacity=np.array([rng.uniform(*ATRIUM_OPACITY), 1.0], np.float32),
        wall_scale=np.array([rng.uniform(*ATRIUM_WALL), rng.uniform(*VENTRICLE_WALL)],
                            np.float32),
        vignette=vignette_map((size, size), params.vignette, rng),
        noise=NoiseBank(rng, (size, size)),
        full_scale=float(rng.uniform(18000, 40000)),
    )


def _local(center, reach: float, shape: tuple[int, int]):
    """Window of `shape` within `reach` px of `center` (x, y): (slices, rows, cols) grids."""
    x0 = int(np.clip(np.floor(center[0] - reach), 0, shape[1]))
    x1 = int(np.clip(np.ceil(center[0] + reach) + 1, x0, shape[1]))
    y0 = int(np.clip(np.floor(center[1] - reach), 0, shape[0]))
    y1 = int(np.clip(np.ceil(center[1] + reach) + 1, y0, shape[0]))
    ly, lx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    return (slice(y0, y1), slice(x0, x1)), ly, lx


def render_hts(
    scene: HtsScene,
    ventricle: np.ndarray,
    atrium: np.ndarray,
    contraction: float,
    matrix: np.ndarray,
    frame: int,
    draws: FrameDraws,
    *,
    moving: bool = False,
) -> np.ndarray:
    """One frame, (S, S) uint16 (see `render_stereo.render_stereo` for the arguments)."""
    p = scene.params
    t = frame / p.fps
    y0, y1, x0, x1 = scene.patch_box
    canvas = scene.canvas.copy()
    patch = canvas[y0:y1, x0:x1]
    off = np.array([x0, y0], float)
    g = (scene.blood.shape[0] - patch.shape[0]) // 2
    for k, (poly, flow) in enumerate(((atrium, 1.0 - contraction), (ventricle, contraction))):
        local = poly - off
        wall = np.zeros(patch.shape, np.float32)
        thick = max(1, round(0.08 * scene.layout.ventricle_major_px * scene.wall_scale[k]
                             * (1 + 0.5 * flow)))
        pts = [np.round(local * 16).astype(np.int32)]
        cv2.polylines(wall, pts, True, 1.0, thick, cv2.LINE_AA, 4)
        patch *= 1.0 - (1.0 - scene.wall_level) * wall
        inside = cv2.GaussianBlur(rasterize(local, patch.shape).astype(np.float32), (0, 0), 0.7)
        dy = int(g + 0.6 * (g - 1) * np.sin(0.9 * t + 2 * k) + 0.35 * g * flow)
        dx = int(g + 0.6 * (g - 1) * np.cos(0.6 * t + k) - 0.25 * g * flow)
        tex = scene.blood[dy : dy + patch.shape[0], dx : dx + patch.shape[1]]
        level = scene.blood_level * (0.85 + 0.3 * tex)
        alpha = p.blood_opacity * scene.chamber_opacity[k] * inside
        patch *= 1.0 - alpha * (1.0 - level)
    if p.blur_sigma_px > 0:
        canvas[y0:y1, x0:x1] = cv2.GaussianBlur(patch, (0, 0), p.blur_sigma_px)
    s = p.size_px
    m = np.asarray(matrix, dtype=np.float64).copy()
    m[:, 2] -= MARGIN
    img = cv2.warpAffine(canvas, m, (s, s), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    img = cv2.multiply(img, scene.vignette, scale=float(draws.flicker[frame]))
    sigma = float(draws.defocus[frame]) + (1.0 if moving else 0.0)
    if sigma > 0:
        img = cv2.GaussianBlur(img, (0, 0), sigma)
    img = poisson_gaussian(
        img, scene.noise.window(draws.noise[frame]), photons=p.photons, read_noise=p.read_noise
    )
    return np.clip(img * scene.full_scale + 0.5, 0, 65535).astype(np.uint16)
