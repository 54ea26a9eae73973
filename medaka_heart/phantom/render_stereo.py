"""Setting "stereo": colour stereomicroscope view of a medaka hatchling's heart (RGB uint8).

The scene is drawn once per video on a canvas with a margin (background, out-of-focus body,
yolk with specular highlights, melanophores, static red vessels); each frame pastes the two
beating chambers (granular moving blood, myocardial rim) into the heart's patch, moves the
whole animal by a rigid transform, then applies camera effects (vignetting, flicker, blur,
Poisson-Gaussian noise) and floating particles. Everything is vectorised (OpenCV, float32).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .heart import ATRIUM_OPACITY, ATRIUM_WALL, VENTRICLE_WALL, HeartLayout, random_layout
from .presets import PhantomParams
from .shape import rasterize
from .texture import NoiseBank, granular, poisson_gaussian, smooth_noise, vignette_map

MARGIN = 48  # canvas margin around the frame, px (room for drift and jerks)


@dataclass(frozen=True)
class FrameDraws:
    """Per-frame random draws of a scene, made once so any frame renders alone."""

    flicker: np.ndarray  # (T,) illumination gain
    noise: np.ndarray  # (T, 3) uniforms for the noise window
    defocus: np.ndarray  # (T,) blur sigma of the whole frame, px (0 = sharp)
    particles: np.ndarray  # (P, 7) floating particles: t0, t1, x0, y0, vx, vy, radius


@dataclass(frozen=True)
class StereoScene:
    """Everything static of one stereo phantom video."""

    params: PhantomParams
    layout: HeartLayout
    canvas: np.ndarray  # (H + 2M, W + 2M, 3) uint8 RGB, the static scene
    patch_box: tuple[int, int, int, int]  # y0, y1, x0, x1 of the heart patch in the canvas
    patch_base: np.ndarray  # (h, w, 3) float32, canvas under the heart
    blood: np.ndarray  # (h + 2G, w + 2G) float32 granular texture in [0, 1]
    absorption: np.ndarray  # (2, 3) float32: light absorbed by (atrium, ventricle) blood, RGB
    rim_gain: np.ndarray  # (2,) float32: brightness of the myocardial wall of each chamber
    rim_px: float  # wall thickness, px
    wall_scale: np.ndarray  # (2,) float32: wall thickness of (atrium, ventricle) / rim_px
    depth_px: int  # box size for the blood-thickness shading, px
    vignette: np.ndarray  # (H, W, 3) float32, illumination falloff / 255 (uint8 -> [0, 1])
    noise: NoiseBank
    particle_colour: np.ndarray  # (3,) float32

    @property
    def margin(self) -> int:
        return MARGIN

    @property
    def center(self) -> tuple[float, float]:
        """Rotation centre of the animal motion (canvas px): the frame centre."""
        h, w = self.params.frame_shape
        return (w / 2 + MARGIN, h / 2 + MARGIN)


def build_stereo_scene(params: PhantomParams, rng: np.random.Generator) -> StereoScene:
    """Draw the static scene and the heart layout of one stereo video."""
    h, w = params.frame_shape
    hc, wc = h + 2 * MARGIN, w + 2 * MARGIN
    major_px = params.major_um / params.pixel_size_um
    heart_center = np.array(
        [wc / 2 + rng.uniform(-0.22, 0.22) * w, hc / 2 + rng.uniform(-0.2, 0.2) * h]
    )
    layout = random_layout(
        rng,
        center=heart_center,
        major_px=major_px,
        angle=rng.uniform(-np.pi, np.pi),
        aspect=params.aspect,
        irregularity=params.irregularity,
        bend=params.bend,
    )
    # body axes of the scene: "ventral" points from the heart towards the yolk
    ventral_angle = rng.uniform(-np.pi, np.pi)
    canvas = _static_scene(rng, (hc, wc), layout, ventral_angle, major_px, params)
    canvas = _apply_contrast(canvas, params.contrast)

    # heart patch: both chambers at their largest plus room for the rim and blur
    pts = np.vstack([layout.ventricle(), layout.atrium(0.0)])
    pad = int(np.ceil(0.12 * major_px + 4 * params.blur_sigma_px + 6))
    x0, y0 = np.floor(pts.min(axis=0)).astype(int) - pad
    x1, y1 = np.ceil(pts.max(axis=0)).astype(int) + pad
    x0, y0 = max(x0, 0), max(y0, 0)
    x1, y1 = min(x1, wc), min(y1, hc)
    patch_base = canvas[y0:y1, x0:x1].astype(np.float32)
    grain = rng.uniform(4.0, 9.0) / params.pixel_size_um  # blood cells are ~5-10 um
    g = int(0.3 * major_px) + 8
    blood = granular(rng, (y1 - y0 + 2 * g, x1 - x0 + 2 * g), grain)
    # blood absorbs green and blue more than red: a reddish-brown, often faint, tint
    absorption = np.array([0.05, 0.25, 0.25]) * rng.uniform(0.6, 1.5) * rng.uniform(0.8, 1.2, 3)
    # the atrium is thin-walled and translucent, the ventricle compact and thick-walled:
    # its blood absorbs less and its wall is thinner (the cue that tells the chambers apart)
    atrium_absorption = absorption * rng.uniform(0.8, 1.15, 3) * rng.uniform(*ATRIUM_OPACITY)
    absorption = np.stack([atrium_absorption, absorption])
    absorption = np.clip(absorption * params.contrast, 0.0, 0.95)
    return StereoScene(
        params=params,
        layout=layout,
        canvas=canvas,
        patch_box=(int(y0), int(y1), int(x0), int(x1)),
        patch_base=patch_base,
        blood=blood,
        absorption=absorption.astype(np.float32),
        rim_gain=rng.uniform(0.92, 1.08, 2).astype(np.float32),
        rim_px=float(max(1.0, 0.03 * major_px * rng.uniform(0.6, 1.4))),
        wall_scale=np.array([rng.uniform(*ATRIUM_WALL), rng.uniform(*VENTRICLE_WALL)],
                            np.float32),
        depth_px=max(3, int(0.15 * major_px)),
        vignette=np.repeat(
            vignette_map((h, w), params.vignette, rng)[:, :, None] / 255.0, 3, axis=2
        ).astype(np.float32),
        noise=NoiseBank(rng, (h, w, 3)),
        particle_colour=rng.uniform([30, 25, 20], [90, 80, 70]).astype(np.float32),
    )


def frame_draws(params: PhantomParams, n_frames: int, rng: np.random.Generator) -> FrameDraws:
    """Per-frame random draws: flicker, noise windows, defocused frames, floating particles."""
    flicker = 1.0 + params.flicker * rng.standard_normal(n_frames)
    defocus = np.where(
        rng.random(n_frames) < params.defocus_rate, rng.uniform(1.5, 4.0, n_frames), 0.0
    )
    duration = n_frames / params.fps
    n_particles = rng.poisson(params.occlusion_rate * duration * 1.5)
    h, w = params.frame_shape
    particles = np.zeros((n_particles, 7))
    for i in range(n_particles):
        t0 = rng.uniform(-1.0, duration)
        speed = rng.uniform(0.3, 1.0) * max(h, w)  # crosses the frame in 1-3 s
        heading = rng.uniform(0, 2 * np.pi)
        start = np.array([w / 2, h / 2]) - 0.8 * max(h, w) * np.array(
            [np.cos(heading), np.sin(heading)]
        )
        start = start + rng.uniform(-0.3, 0.3, 2) * np.array([w, h])
        particles[i] = [
            t0,
            t0 + 2 * max(h, w) / speed,
            start[0],
            start[1],
            speed * np.cos(heading),
            speed * np.sin(heading),
            rng.uniform(0.05, 0.2) * min(h, w),
        ]
    return FrameDraws(
        flicker=flicker.astype(np.float32),
        noise=rng.random((n_frames, 3)),
        defocus=defocus,
        particles=particles,
    )


def render_stereo(
    scene: StereoScene,
    ventricle: np.ndarray,
    atrium: np.ndarray,
    contraction: float,
    matrix: np.ndarray,
    frame: int,
    draws: FrameDraws,
    *,
    moving: bool = False,
) -> np.ndarray:
    """One frame, (H, W, 3) uint8 RGB.

    Parameters
    ----------
    scene : StereoScene
    ventricle, atrium : (N, 2) arrays
        Chamber polygons in canvas px for this frame.
    contraction : float
        Ventricular contraction c in [0, 1] (thickens the myocardial rim, moves the blood).
    matrix : (2, 3) array
        Canvas -> image affine map of this frame (the animal's motion).
    frame : int
        Frame index (selects the per-frame draws).
    draws : FrameDraws
    moving : bool
        True during a jerk: the frame gets motion blur.
    """
    p = scene.params
    t = frame / p.fps
    y0, y1, x0, x1 = scene.patch_box
    patch = scene.patch_base.copy()
    off = np.array([x0, y0], float)
    g = (scene.blood.shape[0] - patch.shape[0]) // 2
    shape = patch.shape[:2]
    for k, (poly, flow) in enumerate(((atrium, 1.0 - contraction), (ventricle, contraction))):
        local = poly - off
        # myocardial wall: a band around the chamber, lighter or darker than the tissue
        wall = np.zeros(shape, np.float32)
        thickness = scene.rim_px * scene.wall_scale[k] * (1.0 + 0.6 * contraction if k else 1.0)
        pts = [np.round(local * 16).astype(np.int32)]
        cv2.polylines(wall, pts, True, 1.0, max(1, round(2 * thickness)), cv2.LINE_AA, 4)
        patch *= (1.0 + (scene.rim_gain[k] - 1.0) * wall)[:, :, None]
        # blood: absorbs more where the chamber is thicker (towards its middle)
        inside = cv2.GaussianBlur(rasterize(local, shape).astype(np.float32), (0, 0), 0.8)
        depth = cv2.blur(cv2.blur(inside, (scene.depth_px, scene.depth_px)), (scene.depth_px,) * 2)
        # blood cells drift slowly and surge with the beat
        dy = int(g + (g - 1) * np.sin(0.7 * t + 2.0 * k) * 0.6 + 0.35 * g * flow)
        dx = int(g + (g - 1) * np.cos(0.5 * t + k) * 0.6 - 0.25 * g * flow)
        tex = scene.blood[dy : dy + shape[0], dx : dx + shape[1]]
        amount = p.blood_opacity * inside * (0.5 + 0.5 * depth) * (0.6 + 0.8 * tex)
        patch *= 1.0 - amount[:, :, None] * scene.absorption[k]
    if p.blur_sigma_px > 0:
        patch = cv2.GaussianBlur(patch, (0, 0), p.blur_sigma_px)
    canvas = scene.canvas.copy()
    canvas[y0:y1, x0:x1] = np.clip(patch, 0, 255).astype(np.uint8)

    h, w = p.frame_shape
    m = np.asarray(matrix, dtype=np.float64).copy()
    m[:, 2] -= MARGIN  # canvas -> frame coordinates
    img = cv2.warpAffine(canvas, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    f = cv2.multiply(img.astype(np.float32), scene.vignette, scale=float(draws.flicker[frame]))
    _draw_particles(f, draws.particles, t, scene.particle_colour / 255.0)
    sigma = float(draws.defocus[frame]) + (1.5 if moving else 0.0)
    if sigma > 0:
        f = cv2.GaussianBlur(f, (0, 0), sigma)
    f = poisson_gaussian(
        f, scene.noise.window(draws.noise[frame]), photons=p.photons, read_noise=p.read_noise
    )
    return cv2.convertScaleAbs(cv2.max(f, 0.0), alpha=255.0)


def _draw_particles(f: np.ndarray, particles: np.ndarray, t: float, colour: np.ndarray) -> None:
    """Translucent out-of-focus debris crossing the view (in place; not part of the mask)."""
    for t0, t1, x, y, vx, vy, radius in particles:
        if not t0 <= t <= t1:
            continue
        cx, cy = x + vx * (t - t0), y + vy * (t - t0)
        r = int(radius * 2)
        ix0, iy0 = max(int(cx) - r, 0), max(int(cy) - r, 0)
        ix1, iy1 = min(int(cx) + r, f.shape[1]), min(int(cy) + r, f.shape[0])
        if ix1 <= ix0 or iy1 <= iy0:
            continue
        yy, xx = np.mgrid[iy0:iy1, ix0:ix1].astype(np.float32)
        a = 0.6 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * (0.6 * radius) ** 2))
        region = f[iy0:iy1, ix0:ix1]
        region *= 1.0 - a[:, :, None]
        region += a[:, :, None] * colour


def _apply_contrast(image: np.ndarray, contrast: float, pivot: float = 150.0) -> np.ndarray:
    out = pivot + (np.asarray(image, np.float32) - pivot) * np.float32(contrast)
    if image.dtype == np.uint8:
        return np.clip(out, 0, 255).astype(np.uint8)
    return np.clip(out, 0, 255)


def _colour(rng: np.random.Generator, lightness, warmth, tint) -> np.ndarray:
    """An RGB colour of random lightness (0-255) and warmth along a tint direction."""
    value = rng.uniform(*lightness) * (1.0 + rng.uniform(*warmth) * np.asarray(tint))
    return np.clip(value, 0, 255).astype(np.float32)


def _ellipse(image: np.ndarray, center, semi_axes, angle_deg: float, value: float) -> None:
    """Fill an anti-aliased ellipse (sub-pixel centre and axes, px) into `image` in place."""
    box = (
        (float(center[0]), float(center[1])),
        (2.0 * semi_axes[0], 2.0 * semi_axes[1]),
        angle_deg,
    )
    cv2.ellipse(image, box, float(value), -1, cv2.LINE_AA)


def _static_scene(
    rng: np.random.Generator,
    shape: tuple[int, int],
    layout: HeartLayout,
    ventral_angle: float,
    major_px: float,
    params: PhantomParams,
) -> np.ndarray:
    """The still parts of the picture, (H, W, 3) uint8 RGB.

    Drawn at half resolution (the scene is out of focus anyway) in full-resolution pixel
    units, then upsampled and given a fine full-resolution texture. Long on purpose: one
    drawing recipe whose random draws come in a fixed order (the phantom's seed contract).
    """
    hc, wc = shape
    f = 0.5
    small = (int(np.ceil(hc * f)), int(np.ceil(wc * f)))
    yy, xx = (np.mgrid[0 : small[0], 0 : small[1]].astype(np.float32) + 0.5) / f - 0.5
    hx, hy = layout.ventricle_center
    ux, uy = np.cos(ventral_angle), np.sin(ventral_angle)  # towards the yolk
    u = (xx - hx) * ux + (yy - hy) * uy  # along the ventral direction from the heart, px
    v = -(xx - hx) * uy + (yy - hy) * ux  # across it, px
    S = major_px

    def noise(scale_px: float) -> np.ndarray:
        return smooth_noise(rng, small, scale_px * f)

    def to_canvas(x: float, y: float) -> tuple[float, float]:
        return (hx + x * ux - y * uy, hy + x * uy + y * ux)

    # medium: pale bluish grey
    bg = _colour(rng, (140, 200), (0.0, 1.2), (-0.10, 0.0, 0.12))
    img = bg * (1.0 + 0.06 * noise(300))[:, :, None]

    # body: everything on one side of a wavy edge (dorsal side of the heart), with out of
    # focus fibrous fins along the edge
    edge_dir = ventral_angle + np.pi + rng.uniform(-1.2, 1.2)
    dist = (xx - hx) * np.cos(edge_dir) + (yy - hy) * np.sin(edge_dir)
    edge = rng.uniform(1.3, 4.0) * S + 0.4 * S * noise(2.0 * S)
    body_a = 1.0 / (1.0 + np.exp((dist - edge) / (0.06 * S + 3.0)))
    fibres = cv2.GaussianBlur(
        rng.standard_normal(small, dtype=np.float32), (0, 0), sigmaX=1.0, sigmaY=6.0
    )
    angle = np.degrees(edge_dir)
    rot = cv2.getRotationMatrix2D((small[1] / 2, small[0] / 2), -angle, 1.0)
    fibres = cv2.warpAffine(fibres, rot, small[::-1], borderMode=cv2.BORDER_REFLECT)
    fibres /= max(float(fibres.std()), 1e-6)  # type: ignore[misc]  # cv2 stubs: float32 here
    fuzz = np.exp(-(((dist - edge) / (0.5 * S)) ** 2))
    body_a = np.clip(body_a + 0.3 * fuzz * fibres, 0, 1)[:, :, None]
    tissue = _colour(rng, (125, 200), (-0.3, 1.6), (0.08, 0.0, -0.10))
    cells = np.abs(noise(0.07 * S))  # a faint network of cell borders
    shading = 1.0 + 0.10 * noise(0.8 * S) + 0.05 * noise(0.2 * S) - 0.06 * np.exp(-4 * cells)
    body = tissue * shading[:, :, None]
    cast = np.clip(noise(1.5 * S), 0, None)[:, :, None]  # brownish-green gut, pigment
    body = body * (1.0 - 0.2 * cast) + np.array([125, 115, 70], np.float32) * (0.2 * cast)
    img = img * (1 - body_a) + body * body_a

    # pericardial cavity: a little clearer around the heart
    peri = np.exp(-((u / (1.1 * S)) ** 2 + (v / (1.3 * S)) ** 2))[:, :, None]
    img = img * (1.0 + rng.uniform(0.0, 0.12) * peri)

    # yolk: large, bright, on the ventral side, with specular highlights
    yolk_gap = rng.uniform(0.7, 1.5) * S
    ya, yb = rng.uniform(1.8, 3.5) * S, rng.uniform(0.8, 1.4) * S
    yv = rng.uniform(-1.0, 1.0) * S
    rr = np.sqrt(((u - yolk_gap - yb) / yb) ** 2 + ((v - yv) / ya) ** 2)
    yolk_m = (1.0 / (1.0 + np.exp((rr - 1.0) * 30.0)))[:, :, None]
    yolk_col = _colour(rng, (195, 245), (-0.5, 1.5), (0.05, 0.0, -0.08))
    yolk = yolk_col * (np.clip(1.15 - 0.45 * rr**2, 0.55, 1.1) + 0.04 * noise(0.3 * S))[:, :, None]
    membrane = np.exp(-(((rr - 1.0) * 14.0) ** 2))[:, :, None]
    yolk = yolk * (1 - 0.45 * membrane) + np.array([125, 80, 60], np.float32) * (0.45 * membrane)
    img = img * (1 - yolk_m) + yolk * yolk_m
    glare = np.zeros(small, np.float32)
    for _ in range(rng.integers(2, 7)):
        cx, cy = to_canvas(yolk_gap + yb * rng.uniform(0.3, 1.5), yv + ya * rng.uniform(-0.7, 0.7))
        axes = (rng.uniform(0.05, 0.5) * S * f, rng.uniform(0.03, 0.15) * S * f)
        tilt = np.degrees(ventral_angle) + 90 + rng.uniform(-30, 30)
        _ellipse(glare, ((cx + 0.5) * f - 0.5, (cy + 0.5) * f - 0.5), axes, tilt, 1.0)
    glare = cv2.GaussianBlur(glare, (0, 0), 0.04 * S * f + 1.0) * yolk_m[:, :, 0]
    img = img + rng.uniform(60, 120) * glare[:, :, None]

    # eyes, far anterior (often out of the field): two in ventral view, one in lateral view
    n_eyes = (2 if params.view == "ventral" else 1) * int(rng.random() < 0.35)
    for i in range(n_eyes):
        ex, ey = to_canvas(
            -rng.uniform(2.8, 4.5) * S,
            (i - 0.5) * 2.6 * S if n_eyes == 2 else rng.uniform(-2, 2) * S,
        )
        radius = rng.uniform(0.9, 1.3) * S
        eye = (1.0 / (1.0 + np.exp((np.hypot(xx - ex, yy - ey) - radius) / 3.0)))[:, :, None]
        iris = np.array([40, 36, 33], np.float32) * rng.uniform(0.6, 1.4)
        img = img * (1 - eye) + iris * (1.0 + 0.15 * noise(0.1 * S))[:, :, None] * eye

    # blood outside the heart: vessels and a reddish organ (distractors that are red but still)
    red: np.ndarray = np.zeros(small, np.float32)
    for _ in range(rng.integers(1, 4)):
        start = np.array([hx, hy]) + rng.uniform(-2.5, 2.5, 2) * S
        if np.hypot(*(start - (hx, hy))) < 0.8 * S:
            continue
        heading = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.normal(0, 0.08, 60))
        steps = 0.08 * S * np.column_stack([np.cos(heading), np.sin(heading)])
        path = start + np.cumsum(steps, axis=0)
        pts = np.round(((path + 0.5) * f - 0.5) * 16).astype(np.int32)
        width = max(1, int(rng.uniform(0.03, 0.1) * S * f))
        cv2.polylines(red, [pts], False, rng.uniform(0.3, 0.8), width, cv2.LINE_AA, 4)
    if rng.random() < 0.5:
        cx, cy = to_canvas(
            rng.uniform(-1.5, 0.5) * S, rng.choice([-1, 1]) * rng.uniform(1.0, 2.0) * S
        )
        axes = (rng.uniform(0.4, 1.0) * S * f, rng.uniform(0.25, 0.5) * S * f)
        centre = ((cx + 0.5) * f - 0.5, (cy + 0.5) * f - 0.5)
        _ellipse(red, centre, axes, rng.uniform(0, 180), rng.uniform(0.3, 0.8))
    red = cv2.GaussianBlur(red, (0, 0), 1.5)[:, :, None]
    absorb = np.array([0.1, 0.4, 0.4], np.float32) * rng.uniform(0.5, 1.2)
    img = img * (1.0 - red * absorb)

    # melanophores: dark dendritic cells on the body, off the ventricle
    mel = np.zeros(small, np.float32)
    for _ in range(rng.integers(3, 25)):
        c = np.array([hx, hy]) + rng.uniform(-4, 4, 2) * S
        if np.hypot(*(c - (hx, hy))) < 0.9 * S:
            continue
        cs = (c + 0.5) * f - 0.5
        core = rng.uniform(0.03, 0.1) * S * f
        cv2.circle(
            mel, (int(cs[0] * 16), int(cs[1] * 16)), max(1, int(core * 16)), 1.0, -1, cv2.LINE_AA, 4
        )
        for _arm in range(rng.integers(3, 9)):
            a = rng.uniform(0, 2 * np.pi)
            tip = cs + rng.uniform(0.08, 0.35) * S * f * np.array([np.cos(a), np.sin(a)])
            cv2.line(
                mel,
                (int(cs[0] * 16), int(cs[1] * 16)),
                (int(tip[0] * 16), int(tip[1] * 16)),
                1.0,
                max(1, int(rng.uniform(0.015, 0.04) * S * f)),
                cv2.LINE_AA,
                4,
            )
    mel = cv2.GaussianBlur(mel, (0, 0), 1.0) * body_a[:, :, 0] * rng.uniform(0.5, 0.85)
    img = img * (1 - mel[:, :, None]) + np.array([45, 35, 30], np.float32) * mel[:, :, None]

    img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.4, 1.0))  # half-resolution px
    img = cv2.resize(img, (wc, hc), interpolation=cv2.INTER_LINEAR)
    fine = smooth_noise(rng, (hc, wc), 2.5)  # full-resolution grain of the tissue
    img = img * (1.0 + rng.uniform(0.01, 0.03) * fine)[:, :, None]
    img = img * rng.uniform(0.95, 1.05, 3).astype(np.float32)  # camera white balance
    return np.clip(img, 0, 255).astype(np.uint8)
