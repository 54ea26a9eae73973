"""Ventricle outlines as polygons: random lobed shapes, exact moments, rasterisation.

Coordinates are (x, y) = (column, row) in pixels, pixel centres at integers (the convention of
OpenCV drawing and of scikit-image's region properties). Features are computed exactly from
the polygon with Green's theorem, not measured on masks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import ConvexHull


@dataclass(frozen=True)
class PolygonFeatures:
    """Region features of a polygon, in pixels (skimage regionprops conventions)."""

    area: float  # px^2
    centroid_x: float  # column, px
    centroid_y: float  # row, px
    major: float  # full major axis length of the moment ellipse, 4 * sqrt(lambda_1), px
    minor: float  # full minor axis length, 4 * sqrt(lambda_2), px
    orientation: float  # rad, angle between the row axis and the major axis, (-pi/2, pi/2]
    solidity: float  # area / convex hull area

    @property
    def equiv_diameter(self) -> float:
        """Diameter of the disc with the same area, px."""
        return float(np.sqrt(4.0 * self.area / np.pi))


def polygon_moments(xy) -> tuple[float, float, float, float, float, float]:
    """Exact area and second moments of a simple polygon (any winding).

    Parameters
    ----------
    xy : (N, 2) array
        Vertices (x, y); the polygon is closed implicitly.

    Returns
    -------
    area, cx, cy, var_x, var_y, cov_xy
        Area (px^2), centroid and the central second moments divided by the area (px^2).
    """
    p = np.asarray(xy, dtype=float)
    ref = p.mean(axis=0)
    x, y = (p - ref).T
    x1, y1 = np.roll(x, -1), np.roll(y, -1)
    cross = x * y1 - x1 * y
    a2 = cross.sum()  # twice the signed area
    if a2 == 0:
        raise ValueError("degenerate polygon (zero area)")
    cx = ((x + x1) * cross).sum() / (3.0 * a2)
    cy = ((y + y1) * cross).sum() / (3.0 * a2)
    sxx = ((x * x + x * x1 + x1 * x1) * cross).sum() / (6.0 * a2)
    syy = ((y * y + y * y1 + y1 * y1) * cross).sum() / (6.0 * a2)
    sxy = ((x * y1 + 2 * x * y + 2 * x1 * y1 + x1 * y) * cross).sum() / (12.0 * a2)
    return (
        abs(a2) / 2.0,
        cx + ref[0],
        cy + ref[1],
        sxx - cx * cx,
        syy - cy * cy,
        sxy - cx * cy,
    )


def polygon_features(xy) -> PolygonFeatures:
    """Area, centroid, moment-ellipse axes, orientation and solidity of a polygon, px."""
    area, cx, cy, vxx, vyy, cxy = polygon_moments(xy)
    # covariance in (row, col) = (y, x) order, as skimage's inertia tensor
    half_trace = 0.5 * (vxx + vyy)
    root = np.hypot(0.5 * (vyy - vxx), cxy)
    lam1, lam2 = half_trace + root, max(half_trace - root, 0.0)
    if vyy - vxx == 0:
        orientation = np.pi / 4 if cxy > 0 else -np.pi / 4
    else:
        orientation = 0.5 * np.arctan2(2.0 * cxy, vyy - vxx)
    hull_area = ConvexHull(np.asarray(xy, dtype=float)).volume
    return PolygonFeatures(
        area=float(area),
        centroid_x=float(cx),
        centroid_y=float(cy),
        major=float(4.0 * np.sqrt(lam1)),
        minor=float(4.0 * np.sqrt(lam2)),
        orientation=float(orientation),
        solidity=float(min(area / hull_area, 1.0)),
    )


def ellipse_polygon(a: float, b: float, n: int = 720) -> np.ndarray:
    """(n, 2) vertices of the ellipse with semi-axes a along x and b along y."""
    phi = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.column_stack([a * np.cos(phi), b * np.sin(phi)])


def principal_frame(xy) -> np.ndarray:
    """The polygon moved to its centroid and rotated so its major moment axis lies along x."""
    p = np.asarray(xy, dtype=float)
    _, cx, cy, vxx, vyy, cxy = polygon_moments(p)
    angle = 0.5 * np.arctan2(2.0 * cxy, vxx - vyy)  # major axis angle from x towards y
    c, s = np.cos(angle), np.sin(angle)
    q = p - (cx, cy)
    return np.column_stack([c * q[:, 0] + s * q[:, 1], -s * q[:, 0] + c * q[:, 1]])


def lobed_outline(
    rng: np.random.Generator,
    *,
    aspect: float = 1.7,
    irregularity: float = 0.05,
    bend: float = 0.1,
    n_harmonics: int = 7,
    n_vertices: int = 256,
) -> np.ndarray:
    """A random smooth, lobed, slightly bean-shaped outline in its principal frame.

    An ellipse (semi-axes `aspect` and 1) modulated by random radial harmonics 2..n_harmonics
    with amplitudes ~ `irregularity` / k, then bent along its long axis by `bend`. The result
    is rotated so its moment ellipse is axis-aligned (major along x), centred at 0 and scaled
    to a full major axis length of 1.

    Returns
    -------
    (n_vertices, 2) ndarray, counter-clockwise in (x, y), simple (not self-intersecting).
    """
    phi = np.linspace(0, 2 * np.pi, n_vertices, endpoint=False)
    k = np.arange(2, n_harmonics + 1)[:, None]
    amp = irregularity * rng.standard_normal((2, len(k), 1)) / k
    r = 1.0 + (amp[0] * np.cos(k * phi) + amp[1] * np.sin(k * phi)).sum(axis=0)
    r = np.clip(r, 0.6, None)  # keeps the outline star-shaped, hence simple
    x = aspect * r * np.cos(phi)
    y = r * np.sin(phi)
    # bend: a shear y += f(x) maps simple polygons to simple polygons
    y = y + bend * ((x / aspect) ** 2 - 0.5) * rng.choice([-1.0, 1.0])
    p = principal_frame(np.column_stack([x, y]))
    return p / polygon_features(p).major


def place(outline, *, major: float, s_major=1.0, s_minor=1.0, angle: float = 0.0, center=(0, 0)):
    """Outline (principal frame, unit major axis) scaled and placed in the image.

    Parameters
    ----------
    outline : (N, 2) array
        From `lobed_outline`.
    major : float
        Full major axis length at end-diastole, px.
    s_major, s_minor : float
        Axis scale factors from the law (1 at end-diastole).
    angle : float
        Rotation of the major axis from the x (column) axis towards y (rows), rad.
    center : (2,) array
        Position of the centroid (x, y), px.
    """
    q = np.asarray(outline, dtype=float) * (major * s_major, major * s_minor)
    c, s = np.cos(angle), np.sin(angle)
    return np.column_stack(
        [c * q[:, 0] - s * q[:, 1] + center[0], s * q[:, 0] + c * q[:, 1] + center[1]]
    )


def rasterize(xy, shape: tuple[int, int], *, offset=(0.0, 0.0)) -> np.ndarray:
    """Mask of the pixels whose centres lie inside the polygon (exact, even-odd rule).

    Scanline fill: for each pixel row, the crossings of the row centre with the polygon
    edges (half-open in y, so a vertex on a row is counted once) bound the runs of pixel
    centres inside.

    Parameters
    ----------
    xy : (N, 2) array
        Vertices (x, y) in px.
    shape : (H, W)
        Mask shape.
    offset : (2,) float
        Subtracted from the vertices first (to draw into a crop).

    Returns
    -------
    (H, W) bool ndarray
    """
    h, w = shape
    p = np.asarray(xy, dtype=float) - np.asarray(offset, dtype=float)
    x0, y0 = p.T
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    lo, hi = np.minimum(y0, y1), np.maximum(y0, y1)
    first = np.clip(np.ceil(lo), 0, h).astype(np.int64)  # rows j with lo <= j < hi
    last = np.clip(np.ceil(hi), 0, h).astype(np.int64)
    counts = np.maximum(last - first, 0)
    edge = np.repeat(np.arange(len(p)), counts)
    if edge.size == 0:
        return np.zeros(shape, bool)
    starts = np.repeat(first - np.cumsum(counts) + counts, counts)
    rows = np.arange(edge.size) + starts
    t = (rows - y0[edge]) / (y1[edge] - y0[edge])
    xs = x0[edge] + t * (x1[edge] - x0[edge])
    order = np.lexsort((xs, rows))
    rows, xs = rows[order], xs[order]
    left = np.clip(np.ceil(xs[0::2]), 0, w).astype(np.int64)  # first centre >= crossing
    right = np.clip(np.ceil(xs[1::2]), 0, w).astype(np.int64)  # first centre >= exit
    row = rows[0::2]
    keep = right > left
    mask = np.zeros(shape, bool)
    if not keep.any():
        return mask
    row, left, right = row[keep], left[keep], right[keep]
    r0, r1, c0, c1 = row.min(), row.max() + 1, left.min(), right.max()
    runs = np.zeros((r1 - r0, c1 - c0 + 1), np.int16)  # the bounding box only
    np.add.at(runs, (row - r0, left - c0), 1)
    np.add.at(runs, (row - r0, right - c0), -1)
    mask[r0:r1, c0:c1] = np.cumsum(runs[:, :-1], axis=1, dtype=np.int16) > 0
    return mask


def draw_polygon(image: np.ndarray, xy, value) -> None:
    """Fill the polygon `xy` (x, y px) into `image` in place with `value` (pixel centres)."""
    image[rasterize(xy, image.shape[:2])] = value
