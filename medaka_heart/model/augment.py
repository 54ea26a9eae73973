"""Training augmentation: one random affine warp for image and mask, then photometric jitter.

Geometric ranges follow Schutera et al. 2019 (flips, zoom 0.1, shift 0.05, rotation 0.2 rad,
shear 0.1); borders are filled by replication ("nearest"). Image and mask are warped with
the same 2x3 matrix, so they stay aligned. Photometric changes (gamma, contrast, brightness,
blur, noise, tissue texture, distractor blobs) touch the image only. The texture and blobs
are domain randomisation: real tissue is far more textured than a phantom, so the network
must not rely on smooth regions. Randomness comes from a numpy Generator passed in.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..phantom.texture import smooth_noise


@dataclass(frozen=True)
class AugmentConfig:
    """Augmentation ranges; a range of 0 (or False) disables that transform.

    zoom, shift, shear : fractions (shift of the image side); rotation_rad : radians.
    gamma : log-range, gamma = exp(U(-gamma, gamma)); contrast, brightness : fractions.
    illumination : maximal relative change of a linear illumination ramp across the image.
    blur_sigma_px : maximal Gaussian blur sigma (pixels at network size); noise_std : maximal
    Gaussian noise std on the [0, 1] image. texture : maximal amplitude of a multiplicative
    random field (features 2-24 px wide at network size) over the whole image, heart included.
    blobs : maximal number of soft dark or bright ellipses (distractors, up to 30 % of the side)
    drawn anywhere. texture_in_coarse : texture and blobs also on whole-frame (coarse pass)
    samples; off by default, as they hide the small hearts of plate wells at coarse scale (the
    coarse pass then learned nothing). coarse_clutter_min_px : texture and blobs on the coarse
    samples whose heart is at least this wide (px at coarse size; 0 = none), so the coarse pass
    learns to find a large heart in cluttered tissue while a small one stays visible. p_* :
    probability a photometric step is applied.
    motion_* (motion planes of three-channel models, see `jitter_motion`): gain is a log-range
    of the plane's scale; blobs the maximal number of moving look-alikes (drifting blobs,
    debris) added; noise the maximal std of added frame-to-frame noise; p_no_motion the share
    of zeroed planes (still images). beat_sign_flip (beat planes of four-channel models, see
    `jitter_beat`): probability that the deviation plane changes sign, so the network cannot
    lean on which way the ventricle's contrast goes in the phantoms.
    """

    hflip: bool = True
    vflip: bool = True
    zoom: float = 0.1
    shift: float = 0.05
    rotation_rad: float = 0.2
    shear: float = 0.1
    gamma: float = 0.4
    contrast: float = 0.3
    brightness: float = 0.1
    illumination: float = 0.2
    blur_sigma_px: float = 1.5
    noise_std: float = 0.05
    texture: float = 0.0
    blobs: int = 0
    texture_in_coarse: bool = False
    coarse_clutter_min_px: int = 0
    p_blur: float = 0.3
    p_noise: float = 0.5
    p_texture: float = 0.5
    p_blobs: float = 0.5
    motion_gain: float = 0.5
    motion_blobs: int = 0
    motion_noise: float = 0.0
    p_no_motion: float = 0.1
    p_motion_clutter: float = 0.5
    beat_sign_flip: float = 0.0


def random_affine(rng: np.random.Generator, height: int, width: int,
                  config: AugmentConfig = AugmentConfig()) -> np.ndarray:
    """A random (2, 3) float64 affine matrix (output -> input pixel map is its inverse).

    Composition about the image centre: flips, rotation, shear, anisotropic zoom, then shift.
    """
    c = config
    sx = -1.0 if c.hflip and rng.random() < 0.5 else 1.0
    sy = -1.0 if c.vflip and rng.random() < 0.5 else 1.0
    zx, zy = 1.0 + rng.uniform(-c.zoom, c.zoom, size=2)
    theta = rng.uniform(-c.rotation_rad, c.rotation_rad)
    shear = rng.uniform(-c.shear, c.shear)
    tx, ty = rng.uniform(-c.shift, c.shift, size=2) * (width, height)
    cos, sin = np.cos(theta), np.sin(theta)
    rot = np.array([[cos, -sin], [sin, cos]])
    linear = rot @ np.array([[1.0, shear], [0.0, 1.0]]) @ np.diag([zx * sx, zy * sy])
    centre = np.array([(width - 1) / 2.0, (height - 1) / 2.0])
    offset = centre - linear @ centre + (tx, ty)
    return np.hstack([linear, offset[:, None]])


def warp_pair(image: np.ndarray, mask: np.ndarray, matrix: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
    """Apply one (2, 3) affine matrix to image (H, W) float32 and mask (H, W) bool/0-1.

    The mask is warped bilinearly and re-thresholded at 0.5 (smoother edges than nearest).
    Returns (image float32, mask bool), both (H, W).
    """
    h, w = image.shape
    flags = cv2.INTER_LINEAR
    img = cv2.warpAffine(np.ascontiguousarray(image, dtype=np.float32), matrix, (w, h),
                         flags=flags, borderMode=cv2.BORDER_REPLICATE)
    msk = cv2.warpAffine(np.ascontiguousarray(mask, dtype=np.float32), matrix, (w, h),
                         flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    return img, msk > 0.5


def tissue_texture(rng: np.random.Generator, shape: tuple[int, int], amplitude: float
                   ) -> np.ndarray:
    """Multiplicative (H, W) float32 field 1 + a * noise, a ~ U(0, amplitude); two scales of
    `smooth_noise` (2-24 px features) mixed at random."""
    scales = np.exp(rng.uniform(np.log(2.0), np.log(24.0), size=2))
    weight = rng.uniform(0.0, 1.0)
    field = (weight * smooth_noise(rng, shape, scales[0])
             + (1.0 - weight) * smooth_noise(rng, shape, scales[1]))
    field /= max(float(field.std()), 1e-6)
    return 1.0 + np.float32(rng.uniform(0.0, amplitude)) * field


def draw_blobs(image: np.ndarray, rng: np.random.Generator, count: int) -> np.ndarray:
    """`image` (H, W) float32 with `count` soft ellipses, each darker or brighter by up to 0.3."""
    h, w = image.shape
    layer = np.zeros((h, w), np.float32)
    for _ in range(count):
        centre = (int(rng.uniform(0, w) * 16), int(rng.uniform(0, h) * 16))
        axes = (max(16, int(rng.uniform(0.03, 0.3) * w * 16)),
                max(16, int(rng.uniform(0.03, 0.2) * h * 16)))
        cv2.ellipse(layer, centre, axes, rng.uniform(0, 180), 0, 360,
                    float(rng.uniform(-0.3, 0.3)), -1, cv2.LINE_AA, 4)
    sigma = rng.uniform(0.5, 0.02 * max(h, w) + 0.5)
    return image + cv2.GaussianBlur(layer, (0, 0), sigma)


def photometric(image: np.ndarray, rng: np.random.Generator,
                config: AugmentConfig = AugmentConfig(), *, coarse: bool = False) -> np.ndarray:
    """Jitter a (H, W) float32 image in [0, 1]: tissue texture, distractor blobs, gamma,
    contrast, brightness, illumination ramp, blur, noise; clipped to [0, 1]. `coarse`: the
    image is a whole-frame view of a small heart (texture and blobs only with
    `texture_in_coarse`)."""
    c = config
    out = np.clip(image, 0.0, 1.0).astype(np.float32, copy=True)
    clutter = c.texture_in_coarse or not coarse
    if clutter and c.texture > 0 and rng.random() < c.p_texture:
        out *= tissue_texture(rng, out.shape, c.texture)
    if clutter and c.blobs > 0 and rng.random() < c.p_blobs:
        out = draw_blobs(out, rng, int(rng.integers(1, c.blobs + 1)))
    np.clip(out, 0.0, 1.0, out=out)
    if c.gamma > 0:
        out **= np.float32(np.exp(rng.uniform(-c.gamma, c.gamma)))
    if c.contrast > 0 or c.brightness > 0:
        gain = 1.0 + rng.uniform(-c.contrast, c.contrast)
        bias = rng.uniform(-c.brightness, c.brightness)
        mean = float(out.mean())
        out = (out - mean) * np.float32(gain) + np.float32(mean + bias)
    if c.illumination > 0:
        h, w = out.shape
        angle = rng.uniform(0.0, 2.0 * np.pi)
        ramp = (np.cos(angle) * np.linspace(-1, 1, w, dtype=np.float32)[None, :]
                + np.sin(angle) * np.linspace(-1, 1, h, dtype=np.float32)[:, None])
        out *= 1.0 + np.float32(rng.uniform(0.0, c.illumination)) * ramp
    if c.blur_sigma_px > 0 and rng.random() < c.p_blur:
        sigma = rng.uniform(0.3, c.blur_sigma_px)
        out = cv2.GaussianBlur(out, (0, 0), sigmaX=sigma)
    if c.noise_std > 0 and rng.random() < c.p_noise:
        std = rng.uniform(0.0, c.noise_std)
        out += rng.normal(0.0, std, size=out.shape).astype(np.float32)
    return np.clip(out, 0.0, 1.0, out=out)


def jitter_motion(plane: np.ndarray, rng: np.random.Generator,
                  config: AugmentConfig = AugmentConfig()) -> np.ndarray:
    """Domain randomisation of a (H, W) float32 motion plane in [0, 1]; returns a new one.

    Zeroed with probability p_no_motion; else, each with probability p_motion_clutter, up to
    `motion_blobs` soft blobs of motion anywhere (what drifts or floats in a real dish moves
    too) and half-normal noise of std up to `motion_noise`; then the scale is jittered by
    exp(U(-motion_gain, motion_gain)) and the plane clipped to [0, 1].
    """
    c = config
    out = np.array(plane, dtype=np.float32, copy=True)
    if rng.random() < c.p_no_motion:
        return np.zeros_like(out)
    if c.motion_blobs > 0 and rng.random() < c.p_motion_clutter:
        blobs = draw_blobs(np.zeros_like(out), rng, int(rng.integers(1, c.motion_blobs + 1)))
        out += np.abs(blobs) / np.float32(0.3)  # draw_blobs' largest amplitude -> 1
    if c.motion_noise > 0 and rng.random() < c.p_motion_clutter:
        std = rng.uniform(0.0, c.motion_noise)
        out += np.abs(rng.normal(0.0, std, size=out.shape)).astype(np.float32)
    out *= np.float32(np.exp(rng.uniform(-c.motion_gain, c.motion_gain)))
    return np.clip(out, 0.0, 1.0, out=out)


def augment_pair(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator,
                 config: AugmentConfig = AugmentConfig(), planes: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Random affine warp of (image, mask) then photometric jitter of the image.

    image : (H, W) float32 in [0, 1]; mask : (H, W) bool; planes : (C, H, W) float32 other
    inputs warped with them (beat planes), or None. Returns the same shapes/dtypes.
    """
    height, width = image.shape
    matrix = random_affine(rng, height, width, config)
    img, msk = warp_pair(image, mask, matrix)
    if planes is not None:
        planes = np.stack([warp_pair(p, msk, matrix)[0] for p in planes])
    return photometric(img, rng, config), msk, planes


def jitter_beat(planes: np.ndarray, rng: np.random.Generator,
                config: AugmentConfig = AugmentConfig()) -> np.ndarray:
    """Domain randomisation of (2, H, W) beat planes (`inputs.beat_planes`); a new array.

    Zeroed with probability p_no_motion (a still); else, with probability p_motion_clutter
    each, up to `motion_blobs` soft blobs of change anywhere (debris, blood, a drifting
    neighbour) and noise of std up to `motion_noise`; the scale is jittered by
    exp(U(-motion_gain, motion_gain)), the deviation's sign flipped with probability
    `beat_sign_flip`, then the planes are clipped to their ranges.
    """
    c = config
    out = np.array(planes, dtype=np.float32, copy=True)
    if rng.random() < c.p_no_motion:
        return np.zeros_like(out)
    if c.motion_blobs > 0 and rng.random() < c.p_motion_clutter:
        blobs = draw_blobs(np.zeros_like(out[0]), rng, int(rng.integers(1, c.motion_blobs + 1)))
        blobs /= np.float32(0.3)  # draw_blobs' largest amplitude -> 1
        out[0] += np.abs(blobs)
        out[1] += blobs * np.float32(rng.uniform(-0.5, 0.5))
    if c.motion_noise > 0 and rng.random() < c.p_motion_clutter:
        std = rng.uniform(0.0, c.motion_noise)
        noise = rng.normal(0.0, std, size=out.shape).astype(np.float32)
        out[0] += np.abs(noise[0])
        out[1] += noise[1]
    out *= np.float32(np.exp(rng.uniform(-c.motion_gain, c.motion_gain)))
    if c.beat_sign_flip > 0 and rng.random() < c.beat_sign_flip:
        out[1] *= -1
    np.clip(out[0], 0.0, 1.0, out=out[0])
    np.clip(out[1], -1.0, 1.0, out=out[1])
    return out
