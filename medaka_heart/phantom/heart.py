"""Heart geometry in the scene: where the ventricle and the atrium sit and how they scale."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .shape import lobed_outline, place

# How the chambers look apart (ranges drawn per video): the atrium is thin-walled and
# translucent, the ventricle compact with a thick wall.
ATRIUM_OPACITY = (0.45, 0.85)  # atrial blood opacity / ventricular
ATRIUM_WALL = (0.5, 0.8)  # atrial wall thickness / the renderer's wall thickness
VENTRICLE_WALL = (1.1, 1.6)  # ventricular wall thickness / the renderer's wall thickness


@dataclass(frozen=True)
class HeartLayout:
    """Both chambers in canvas px (x, y); outlines in their principal frames, unit major axis."""

    ventricle_outline: np.ndarray  # (N, 2)
    ventricle_major_px: float  # full major axis at end-diastole
    ventricle_angle: float  # rad, major axis from x towards y
    ventricle_center: np.ndarray  # (2,) centroid
    atrium_outline: np.ndarray
    atrium_major_px: float  # at its largest (end of ventricular systole)
    atrium_angle: float
    atrium_center: np.ndarray
    atrium_shortening: float  # axes at the atrium's smallest = (1 - this) * largest

    def ventricle(self, s_major=1.0, s_minor=1.0) -> np.ndarray:
        """(N, 2) ventricle polygon in canvas px at the law's axis scales."""
        return place(
            self.ventricle_outline,
            major=self.ventricle_major_px,
            s_major=s_major,
            s_minor=s_minor,
            angle=self.ventricle_angle,
            center=self.ventricle_center,
        )

    def atrium(self, contraction=0.0) -> np.ndarray:
        """(N, 2) atrium polygon in canvas px at atrial contraction in [0, 1]."""
        s = 1.0 - self.atrium_shortening * contraction
        return place(
            self.atrium_outline,
            major=self.atrium_major_px,
            s_major=s,
            s_minor=s,
            angle=self.atrium_angle,
            center=self.atrium_center,
        )


def _radius(outline: np.ndarray, major: float, angle_in_body: float) -> float:
    """Distance from the centroid to the outline along a direction (body frame), px."""
    theta = np.arctan2(outline[:, 1], outline[:, 0])
    r = np.hypot(outline[:, 0], outline[:, 1]) * major
    d = np.angle(np.exp(1j * (theta - angle_in_body)))
    return float(r[np.argmin(np.abs(d))])


def random_layout(
    rng: np.random.Generator,
    *,
    center,
    major_px: float,
    angle: float,
    aspect: float,
    irregularity: float,
    bend: float,
    atrium_side: float | None = None,
) -> HeartLayout:
    """A ventricle at `center` (canvas px) and an atrium touching it on one side.

    The atrium is 0.7-1.1 times the ventricle, rounder, placed along a direction 60-130
    degrees from the ventricle's major axis (`atrium_side` +1 or -1 picks the side).
    """
    v_outline = lobed_outline(rng, aspect=aspect, irregularity=irregularity, bend=bend)
    a_outline = lobed_outline(
        rng, aspect=rng.uniform(1.1, 1.6), irregularity=irregularity * 1.3, bend=0.0
    )
    a_major = major_px * rng.uniform(0.7, 1.1)
    side = atrium_side if atrium_side is not None else rng.choice([-1.0, 1.0])
    direction = side * np.deg2rad(rng.uniform(60, 130))  # in the ventricle's frame
    a_angle = angle + direction + rng.uniform(-0.6, 0.6)
    r_v = _radius(v_outline, major_px, direction)
    r_a = _radius(a_outline, a_major, direction + np.pi - (a_angle - angle))
    dist = (r_v + r_a) * rng.uniform(0.9, 1.05)
    world = angle + direction
    a_center = np.asarray(center, float) + dist * np.array([np.cos(world), np.sin(world)])
    return HeartLayout(
        ventricle_outline=v_outline,
        ventricle_major_px=float(major_px),
        ventricle_angle=float(angle),
        ventricle_center=np.asarray(center, float),
        atrium_outline=a_outline,
        atrium_major_px=float(a_major),
        atrium_angle=float(a_angle),
        atrium_center=a_center,
        atrium_shortening=float(rng.uniform(0.2, 0.35)),
    )
