"""Ground-truth tables of a phantom, exactly from the generating law (pure).

Per-frame features come from the ventricle polygon of each frame (Green's theorem), beat
values from the law's continuous ED and ES instants: nothing is measured on masks or frames.
The columns are the analysis schema (`medaka_heart.schema`).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from ..cardiac import fractional_shortening_pct, prolate_spheroid_volume_pl
from ..schema import BEAT_COLUMNS, FRAME_COLUMNS
from .law import HeartLaw
from .shape import place, polygon_features


def frame_table(polygons: Iterable[np.ndarray], fps: float, pixel_size_um: float) -> pd.DataFrame:
    """One row per frame with the columns of `schema.FRAME_COLUMNS`.

    Parameters
    ----------
    polygons : iterable of (N, 2) arrays
        The ventricle outline of each frame, (x, y) in image px.
    fps : float
        Frames per second.
    pixel_size_um : float
        um per px.
    """
    px = float(pixel_size_um)
    rows = []
    for i, poly in enumerate(polygons):
        f = polygon_features(poly)
        rows.append(
            {
                "frame": i,
                "time_s": i / fps,
                "area_um2": f.area * px**2,
                "major_um": f.major * px,
                "minor_um": f.minor * px,
                "equiv_diameter_um": f.equiv_diameter * px,
                "orientation_rad": f.orientation,
                "centroid_x_um": f.centroid_x * px,
                "centroid_y_um": f.centroid_y * px,
                "solidity": f.solidity,
                "n_components": 1,
            }
        )
    table = pd.DataFrame(rows, columns=list(FRAME_COLUMNS))
    table["volume_pl"] = prolate_spheroid_volume_pl(table["major_um"], table["minor_um"])
    return table.astype({"frame": int, "n_components": int})


def beat_table(
    law: HeartLaw,
    outline: np.ndarray,
    major_px: float,
    *,
    fps: float,
    n_frames: int,
    pixel_size_um: float,
) -> pd.DataFrame:
    """One row per beat whose ED and following ES both lie inside the video.

    Values at ED and ES are those of the ventricle polygon at the law's exact instants
    (c = 0 and c = 1), not frame samples. ``ed_frame``/``es_frame`` are the nearest frames,
    ``rr_s`` the interval to the next row's ED (NaN for the last row).

    Parameters
    ----------
    law : HeartLaw
    outline : (N, 2) array
        Ventricle outline in its principal frame, unit major axis (`shape.lobed_outline`).
    major_px : float
        Full major axis length at end-diastole, px.
    fps, n_frames
        The video's frame rate (frames/s) and frame count; the video spans
        [0, (n_frames - 1) / fps] s.
    pixel_size_um : float
        um per px.
    """
    t_end = (n_frames - 1) / fps
    ed = law.ed_times_s[:-1]
    es = law.es_times_s
    inside = np.flatnonzero((ed >= 0) & (es <= t_end))
    px = float(pixel_size_um)
    rows = []
    for beat, k in enumerate(inside):
        row = {
            "beat": beat,
            "ed_frame": int(np.rint(ed[k] * fps)),
            "es_frame": int(np.rint(es[k] * fps)),
            "ed_time_s": float(ed[k]),
            "es_time_s": float(es[k]),
        }
        for phase, s_major, s_minor in (
            ("ed", 1.0, 1.0),
            ("es", 1.0 - law.major_shortening[k], 1.0 - law.minor_shortening[k]),
        ):
            f = polygon_features(place(outline, major=major_px, s_major=s_major, s_minor=s_minor))
            row[f"{phase}_area_um2"] = f.area * px**2
            row[f"{phase}_major_um"] = f.major * px
            row[f"{phase}_minor_um"] = f.minor * px
        rows.append(row)
    beats = pd.DataFrame(rows, columns=list(BEAT_COLUMNS))
    if len(beats):
        rr = np.append(np.diff(beats["ed_time_s"].to_numpy()), np.nan)
        beats["rr_s"] = rr
        beats["hr_bpm"] = 60.0 / rr
        beats["edv_pl"] = prolate_spheroid_volume_pl(beats["ed_major_um"], beats["ed_minor_um"])
        beats["esv_pl"] = prolate_spheroid_volume_pl(beats["es_major_um"], beats["es_minor_um"])
        beats["sv_pl"] = beats["edv_pl"] - beats["esv_pl"]
        beats["ef_pct"] = fractional_shortening_pct(beats["edv_pl"], beats["esv_pl"])
        beats["fs_minor_pct"] = fractional_shortening_pct(
            beats["ed_minor_um"], beats["es_minor_um"]
        )
        beats["fs_major_pct"] = fractional_shortening_pct(
            beats["ed_major_um"], beats["es_major_um"]
        )
        beats["fac_pct"] = fractional_shortening_pct(beats["ed_area_um2"], beats["es_area_um2"])
    return beats.astype({"beat": int, "ed_frame": int, "es_frame": int})
