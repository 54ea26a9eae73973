"""Per-frame ventricle features in physical units from binary masks (pure).

Masks must be at the video's native frame geometry (square pixels of `pixel_size_um`).
Where a mask has several connected components, the one that overlaps the region kept
in the previous frame is kept (else the one nearest to it, else the largest), so a
spurious blob does not replace the ventricle for a frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from skimage.measure import label, regionprops

from .cardiac import prolate_spheroid_volume_pl
from .schema import FRAME_COLUMNS

FEATURES = FRAME_COLUMNS[2:]  # everything but frame and time_s


@dataclass(frozen=True)
class TrackState:
    """The region kept in the last frame seen: its mask (bool, H x W) and centroid (row, col px)."""

    mask: np.ndarray
    centroid: tuple[float, float]


def select_component(mask: np.ndarray, previous: TrackState | None) -> tuple[np.ndarray, int]:
    """The temporally consistent connected component of a 2-D mask, and the component count."""
    labels, n = label(mask, connectivity=2, return_num=True)
    if n <= 1:
        return labels > 0, n
    counts = np.bincount(labels.ravel())[1:]
    if previous is not None:
        overlap = np.bincount(labels[previous.mask].ravel(), minlength=n + 1)[1:]
        if overlap.max() > 0:
            return labels == 1 + int(np.argmax(overlap)), n
        props = regionprops(labels)
        dist = [np.hypot(p.centroid[0] - previous.centroid[0], p.centroid[1] - previous.centroid[1])
                for p in props]
        return labels == props[int(np.argmin(dist))].label, n
    return labels == 1 + int(np.argmax(counts)), n


def region_features(mask: np.ndarray, pixel_size_um: float) -> dict[str, float]:
    """Features of the single region in a 2-D bool mask, in um; NaN for an empty mask."""
    if not mask.any():
        return {name: np.nan for name in FEATURES if name != "n_components"}
    rows, cols = np.nonzero(mask)
    r0, r1, c0, c1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    crop = mask[r0:r1, c0:c1].astype(np.uint8)
    prop = regionprops(crop, spacing=(pixel_size_um, pixel_size_um))[0]
    major, minor = prop.axis_major_length, prop.axis_minor_length
    cy, cx = prop.centroid
    return {
        "area_um2": float(prop.area),
        "major_um": float(major),
        "minor_um": float(minor),
        "volume_pl": float(prolate_spheroid_volume_pl(major, minor)),
        "equiv_diameter_um": float(prop.equivalent_diameter_area),
        "orientation_rad": float(prop.orientation),
        "centroid_x_um": float(cx + c0 * pixel_size_um),
        "centroid_y_um": float(cy + r0 * pixel_size_um),
        "solidity": float(prop.solidity),
    }


def measure_masks(
    masks: np.ndarray,
    pixel_size_um: float,
    *,
    first_frame: int = 0,
    previous: TrackState | None = None,
) -> tuple[pd.DataFrame, TrackState | None]:
    """Per-frame features of a (T, H, W) mask stack; chain chunks through `previous`.

    Returns a DataFrame with `frame` and every feature column of `schema.FRAME_COLUMNS`
    except `time_s`, and the tracking state to pass with the next chunk.
    """
    masks = np.asarray(masks)
    if masks.ndim != 3:
        raise ValueError(f"masks must be (T, H, W), got shape {masks.shape}")
    rows = []
    for t, mask in enumerate(masks.astype(bool, copy=False)):
        kept, n_components = select_component(mask, previous)
        features = region_features(kept, pixel_size_um)
        features["n_components"] = n_components
        features["frame"] = first_frame + t
        rows.append(features)
        if kept.any():
            cy, cx = np.argwhere(kept).mean(axis=0)
            previous = TrackState(kept, (float(cy), float(cx)))
    columns = ["frame", *FEATURES]
    return pd.DataFrame(rows, columns=columns), previous
