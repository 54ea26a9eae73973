"""Phantom videos: the law, the geometry, the renderer and the exact truth, put together.

>>> from medaka_heart.phantom import generate_video
>>> video = generate_video("typical", seed=0, duration_s=2.0)
>>> video.frames.shape, video.masks.shape         # (T, H, W, 3) uint8, (T, H, W) bool
>>> video.frame_table, video.beat_table            # truth in the analysis schema

`make_phantom` builds the same thing without rendering it: frames are then drawn one at a time
(`Phantom.image(i)`, `Phantom.mask(i)`, `Phantom.iter_frames()`), which is what the writer and
the training-pair generator use. Every random draw comes from the seed, in separate streams for
the parameters, the law, the scene and the per-frame draws.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import __version__
from .heart import HeartLayout
from .law import HeartLaw, beat_intervals, make_law, shortenings_for_ef
from .motion import affine_matrices, apply_affine, rigid_motion
from .presets import PhantomParams, PhantomPreset, load_preset, sample_params
from .render_hts import HtsScene, build_hts_scene, hts_frame_draws, render_hts
from .render_stereo import StereoScene, build_stereo_scene, frame_draws, render_stereo
from .shape import polygon_features, rasterize
from .truth import beat_table, frame_table


@dataclass(frozen=True)
class Phantom:
    """One phantom video, ready to render frame by frame, with its exact truth."""

    params: PhantomParams
    seed: int | None
    n_frames: int
    law: HeartLaw
    layout: HeartLayout  # chambers in canvas px
    matrices: np.ndarray  # (T, 2, 3) canvas -> image maps (the animal's motion)
    moving: np.ndarray  # (T,) bool, frames during a jerk
    scene: Any = field(repr=False)  # StereoScene or HtsScene
    draws: Any = field(repr=False)  # per-frame random draws of the renderer

    @property
    def fps(self) -> float:
        return self.params.fps

    @property
    def pixel_size_um(self) -> float:
        return self.params.pixel_size_um

    @property
    def frame_shape(self) -> tuple[int, int]:
        """(H, W) px."""
        return self.params.frame_shape

    @property
    def times_s(self) -> np.ndarray:
        """(T,) frame times, s."""
        return np.arange(self.n_frames) / self.fps

    def ventricle_polygon(self, i: int) -> np.ndarray:
        """(N, 2) ventricle outline (x, y) in image px at frame `i`."""
        s_major, s_minor = self.law.axis_scales(i / self.fps)
        canvas_poly = self.layout.ventricle(float(s_major), float(s_minor))
        return apply_affine(self._image_matrix(i), canvas_poly)

    def mask(self, i: int) -> np.ndarray:
        """(H, W) bool ventricle mask at frame `i` (pixel centres inside the outline)."""
        return rasterize(self.ventricle_polygon(i), self.frame_shape)

    def image(self, i: int) -> np.ndarray:
        """Frame `i`: (H, W, 3) uint8 RGB (stereo) or (H, W) uint16 (hts)."""
        t = i / self.fps
        s_major, s_minor = self.law.axis_scales(t)
        ventricle = self.layout.ventricle(float(s_major), float(s_minor))
        atrium = self.layout.atrium(float(self.law.atrial_contraction(t)))
        c = float(self.law.contraction(t))
        render = render_hts if self.params.setting == "hts" else render_stereo
        return render(
            self.scene,
            ventricle,
            atrium,
            c,
            self.matrices[i],
            i,
            self.draws,
            moving=bool(self.moving[i]),
        )

    def iter_frames(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(image, mask) for each frame in order."""
        for i in range(self.n_frames):
            yield self.image(i), self.mask(i)

    def frame_table(self) -> pd.DataFrame:
        """Per-frame truth, columns `schema.FRAME_COLUMNS`, exact from the polygons."""
        return frame_table(
            (self.ventricle_polygon(i) for i in range(self.n_frames)),
            self.fps,
            self.pixel_size_um,
        )

    def beat_table(self) -> pd.DataFrame:
        """Per-beat truth, columns `schema.BEAT_COLUMNS`, at the law's exact ED/ES times."""
        return beat_table(
            self.law,
            self.layout.ventricle_outline,
            self.layout.ventricle_major_px,
            fps=self.fps,
            n_frames=self.n_frames,
            pixel_size_um=self.pixel_size_um,
        )

    def meta(self) -> dict[str, Any]:
        """Every generating parameter, JSON-ready (for ``meta.json``)."""
        law = self.law
        ed_f = polygon_features(self.layout.ventricle())
        return {
            "generator": "medaka_heart.phantom",
            "version": __version__,
            "preset": self.params.preset,
            "seed": self.seed,
            "setting": self.params.setting,
            "fps": self.fps,
            "pixel_size_um": self.pixel_size_um,
            "n_frames": self.n_frames,
            "frame_shape": list(self.frame_shape),
            "duration_s": self.n_frames / self.fps,
            "params": self.params.to_dict(),
            "law": {
                "ed_times_s": law.ed_times_s.tolist(),
                "es_times_s": law.es_times_s.tolist(),
                "rr_s": law.rr_s.tolist(),
                "systole_s": law.systole_s.tolist(),
                "early_fill_s": law.early_fill_s.tolist(),
                "kick_s": law.kick_s.tolist(),
                "kick_fraction": law.kick_fraction.tolist(),
                "ef": law.ef.tolist(),
                "major_shortening": law.major_shortening.tolist(),
                "minor_shortening": law.minor_shortening.tolist(),
                "waveform": "half-cosine ejection, half-cosine early filling, diastasis, "
                "half-cosine atrial kick ending at ED; axes scale 1 - a * c",
            },
            "ventricle": {
                "outline_unit_major": self.layout.ventricle_outline.tolist(),
                "major_px_at_ed": self.layout.ventricle_major_px,
                "major_um_at_ed": ed_f.major * self.pixel_size_um,
                "minor_um_at_ed": ed_f.minor * self.pixel_size_um,
                "angle_rad": self.layout.ventricle_angle,
                "center_canvas_px": self.layout.ventricle_center.tolist(),
            },
            "motion": {"canvas_to_image": self._image_matrices().tolist()},
        }

    def _image_matrix(self, i: int) -> np.ndarray:
        m = np.array(self.matrices[i], dtype=float)
        m[:, 2] -= self.scene.margin
        return m

    def _image_matrices(self) -> np.ndarray:
        m = np.array(self.matrices, dtype=float)
        m[:, :, 2] -= self.scene.margin
        return m


@dataclass(frozen=True)
class PhantomVideo:
    """A rendered phantom: frames, masks and the truth tables."""

    frames: np.ndarray  # (T, H, W, 3) uint8 RGB (stereo) or (T, H, W) uint16 (hts)
    masks: np.ndarray  # (T, H, W) bool ventricle masks
    fps: float  # frames/s
    pixel_size_um: float  # um/px
    frame_table: pd.DataFrame  # schema.FRAME_COLUMNS
    beat_table: pd.DataFrame  # schema.BEAT_COLUMNS
    meta: dict[str, Any]


def make_phantom(
    preset: str | Path | PhantomPreset = "typical",
    seed: int | None = 0,
    *,
    rng: np.random.Generator | None = None,
    duration_s: float | None = None,
    n_frames: int | None = None,
    **overrides,
) -> Phantom:
    """Build a phantom video (nothing rendered yet).

    Parameters
    ----------
    preset : str, Path or PhantomPreset
        A shipped preset name ("clean", "typical", "hard", "hts"), a TOML path, or a preset.
    seed : int or None
        Seed of every random draw (ignored when `rng` is given).
    rng : numpy.random.Generator, optional
        Draw from this generator instead (for streams of training phantoms).
    duration_s, n_frames
        Override the preset's duration (s) or give the frame count directly.
    **overrides
        Fix any `PhantomParams` field, e.g. ``fps=20.0, hr_bpm=120.0, ef_pct=50.0``.
    """
    if not isinstance(preset, PhantomPreset):
        preset = load_preset(preset)
    if rng is None:
        streams = np.random.SeedSequence(seed).spawn(4)
    else:
        streams = np.random.SeedSequence(rng.integers(2**63)).spawn(4)
    rng_params, rng_law, rng_scene, rng_frames = (np.random.default_rng(s) for s in streams)
    params = sample_params(preset, rng_params, duration_s=duration_s, **overrides)
    if n_frames is None:
        n_frames = max(round(params.duration_s * params.fps), 2)
    duration = n_frames / params.fps

    law = _draw_law(params, duration, rng_law)
    scene: HtsScene | StereoScene
    if params.setting == "hts":
        scene = build_hts_scene(params, rng_scene)
        draws = hts_frame_draws(params, n_frames, rng_frames)
    else:
        scene = build_stereo_scene(params, rng_scene)
        draws = frame_draws(params, n_frames, rng_frames)
    law = _fit_axis_order(law, scene.layout)
    shift, angle, moving = rigid_motion(
        n_frames,
        params.fps,
        rng_frames,
        drift_px_s=params.drift_px_s,
        jerk_rate_hz=params.jerk_rate_hz,
        jerk_px=params.jerk_px,
    )
    matrices = affine_matrices(shift, angle, scene.center)
    return Phantom(
        params=params,
        seed=seed if rng is None else None,
        n_frames=int(n_frames),
        law=law,
        layout=scene.layout,
        matrices=matrices,
        moving=moving,
        scene=scene,
        draws=draws,
    )


def _draw_law(params: PhantomParams, duration_s: float, rng: np.random.Generator) -> HeartLaw:
    ed, nominal = beat_intervals(
        duration_s,
        params.hr_bpm,
        rng,
        hrv_cv=params.hrv_cv,
        hr_drift=params.hr_drift,
        p_arrhythmia=params.p_arrhythmia,
    )
    k = len(nominal)
    ef = params.ef_pct / 100.0 * (1.0 + params.ef_beat_cv * rng.standard_normal(k))
    return make_law(
        ed,
        nominal,
        ef=np.clip(ef, 0.05, 0.85),
        major_to_minor=params.major_to_minor_shortening,
        systole_fraction=params.systole_fraction,
        early_fill_fraction=params.early_fill_fraction,
        kick_duration_fraction=params.kick_duration_fraction,
        kick_fraction=params.kick_fraction,
    )


def _fit_axis_order(law: HeartLaw, layout: HeartLayout) -> HeartLaw:
    """Keep the major axis the major axis at ES: shorten it less if needed (same EF).

    With the outline's minor/major ratio q, the axes keep their order while
    (1 - a_major) > 1.05 * q * (1 - a_minor); beats that break it get a smaller
    major-to-minor shortening ratio, solved again for the same EF.
    """
    q = polygon_features(layout.ventricle_outline).minor  # the outline has a unit major axis
    a_major, a_minor = law.major_shortening.copy(), law.minor_shortening.copy()
    ratio = a_major / a_minor
    for _ in range(100):
        bad = (1 - a_major) <= 1.05 * q * (1 - a_minor)
        if not bad.any():
            break
        ratio[bad] *= 0.9
        a_major[bad], a_minor[bad] = shortenings_for_ef(law.ef[bad], ratio[bad])
    return dataclasses.replace(law, major_shortening=a_major, minor_shortening=a_minor)


def generate_video(
    preset: str | Path | PhantomPreset = "typical",
    seed: int | None = 0,
    **kwargs,
) -> PhantomVideo:
    """Render a whole phantom video in memory (see `make_phantom` for the arguments).

    Returns
    -------
    PhantomVideo
        frames (T, H, W, 3) uint8 RGB or (T, H, W) uint16, masks (T, H, W) bool, fps,
        pixel_size_um, the truth tables and the generating parameters.
    """
    phantom = make_phantom(preset, seed, **kwargs)
    frames, masks = [], []
    for image, mask in phantom.iter_frames():
        frames.append(image)
        masks.append(mask)
    return PhantomVideo(
        frames=np.stack(frames),
        masks=np.stack(masks),
        fps=phantom.fps,
        pixel_size_um=phantom.pixel_size_um,
        frame_table=phantom.frame_table(),
        beat_table=phantom.beat_table(),
        meta=phantom.meta(),
    )
