"""`montage.png`: frames at end-diastole and end-systole of a few beats, segmentation drawn on.

ED and ES are known only after the whole video has streamed, so while it streams a
`FrameReservoir` keeps small copies (longest side `max_side` px) of the first frames and
their masks, as many as fit in `budget_mb` (about 200 frames of a 640x480 video: several
beats at any usual frame rate). Memory stays flat however long the video is. Afterwards the
montage shows the beats inside that stretch whose EF is closest to the video's median EF;
if it holds no whole beat, its largest and smallest ventricle (or, with no ventricle at all,
a few of its frames) are shown instead, and the title says so.
"""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from ..preprocess import shrink
from .figure import agg_figure, save_png
from .overlay import OUTLINE_RGB, display_levels, ellipse_axes_px, to_rgb8

OUTLINE = tuple(c / 255 for c in OUTLINE_RGB)


class FrameReservoir:
    """Small copies of a video's first frames and their masks, within a memory budget.

    height, width : the video's frame size, px.
    max_side : longest side of a kept frame, px (frames are only ever shrunk).
    budget_mb : memory for the kept frames (counted as RGB) and masks, MB; it sets how many
        frames are kept.

    Frames are kept shrunk in their own dtype; only those the montage shows are made 8-bit
    RGB (`rgb`), with display levels taken from the first frames offered.
    """

    def __init__(self, height: int, width: int, *, max_side: int = 320, budget_mb: float = 48.0):
        self.scale = min(1.0, max_side / max(height, width))
        self.size = (max(1, round(width * self.scale)), max(1, round(height * self.scale)))
        per_frame = self.size[0] * self.size[1] * 4  # RGB + mask, uint8
        self.capacity = max(1, int(budget_mb * 2**20 // per_frame))
        self.frames: list[np.ndarray] = []  # (h, w[, 3]) in the video's dtype
        self.masks: list[np.ndarray] = []  # (h, w) bool
        self._levels: tuple[float, float] | None = None

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def full(self) -> bool:
        return len(self.frames) >= self.capacity

    def add(self, frames: np.ndarray, masks: np.ndarray) -> None:
        """Offer the next (t, H, W[, 3]) frames and (t, H, W) bool masks; kept while room."""
        room = self.capacity - len(self.frames)
        if room <= 0:
            return
        frames, masks = frames[:room], masks[:room]
        if self.scale < 1.0:  # shrink first: levels and colour conversion on small frames
            frames = np.stack([shrink(f, *self.size) for f in frames])
            masks = np.stack([cv2.resize(np.asarray(m, dtype=np.uint8), self.size,
                                         interpolation=cv2.INTER_NEAREST) for m in masks])
        if self._levels is None:
            self._levels = display_levels(frames)
        self.frames.extend(np.array(f) for f in frames)
        self.masks.extend(m.astype(bool) for m in masks)

    def rgb(self, index: int) -> np.ndarray:
        """Kept frame `index` as (h, w, 3) uint8, stretched to the display levels."""
        assert self._levels is not None  # set by the first `add` that kept a frame
        return to_rgb8(self.frames[index][None], self._levels)[0]


def montage_frames(beats: pd.DataFrame, frames: pd.DataFrame, n_kept: int, *, n_beats: int = 3,
                   signal: str = "volume_pl") -> tuple[list[tuple[str, int]], str]:
    """Which kept frames to show: ([(label, frame index), ...], note for the title).

    The ED and ES frames of up to `n_beats` beats that lie within the first `n_kept` frames,
    those with EF closest to the median EF of all beats, in time order. Without such a beat,
    the largest and smallest `signal` among the kept frames; without any, 3 evenly spaced
    kept frames.
    """
    inside = beats[(beats["ed_frame"] >= 0) & (beats["es_frame"] >= 0)
                   & (beats["ed_frame"] < n_kept) & (beats["es_frame"] < n_kept)]
    if len(inside):
        ef = beats["ef_pct"].to_numpy(dtype=float)
        median = np.nanmedian(ef) if np.isfinite(ef).any() else 0.0
        distance = (inside["ef_pct"].astype(float) - median).abs().fillna(np.inf)
        nearest = distance.sort_values(kind="stable").index[:n_beats]
        chosen = inside.loc[nearest].sort_values("beat")
        picks = []
        for _, b in chosen.iterrows():
            picks += [(f"beat {int(b['beat'])} ED", int(b["ed_frame"])),
                      (f"beat {int(b['beat'])} ES", int(b["es_frame"]))]
        return picks, ""
    values = frames[signal].to_numpy(dtype=float)[:n_kept]
    if np.isfinite(values).any():
        return ([("largest", int(np.nanargmax(values))), ("smallest", int(np.nanargmin(values)))],
                "no whole beat among the first frames: largest and smallest ventricle shown")
    n = max(1, min(3, n_kept))
    picks = [(f"frame {i}", int(i)) for i in np.linspace(0, n_kept - 1, n).round().astype(int)]
    return picks, "no ventricle found"


BEAT_VALUES = {"volume_pl": ("edv_pl", "esv_pl"), "area_um2": ("ed_area_um2", "es_area_um2")}


def beat_value(beats: pd.DataFrame, label: str, signal: str) -> float | None:
    """The beats.csv value (EDV or ESV, or the ED/ES area) behind a pick labelled "beat k ED"
    or "beat k ES", so the montage shows the number of the table (read at the beat's refined
    extremum), not the one of the frame nearest to it; None for other picks."""
    found = re.fullmatch(r"beat (\d+) (ED|ES)", label)
    if found is None or signal not in BEAT_VALUES:
        return None
    row = beats[beats["beat"] == int(found[1])]
    column = BEAT_VALUES[signal][found[2] == "ES"]
    return float(row[column].iloc[0]) if len(row) else None


def crop_box(masks: list[np.ndarray], shape: tuple[int, int], *, margin: float = 0.6,
             min_side: int = 24) -> tuple[int, int, int, int]:
    """(row0, row1, col0, col1) around the union of the masks, `margin` of its size added on
    each side (at least `min_side` px in all); the whole frame where no mask has a pixel."""
    h, w = shape
    union = np.logical_or.reduce([np.asarray(m, dtype=bool) for m in masks]) if masks else None
    if union is None or not union.any():
        return 0, h, 0, w
    rows, cols = np.flatnonzero(union.any(axis=1)), np.flatnonzero(union.any(axis=0))
    box = []
    for lo, hi, n in ((rows[0], rows[-1] + 1, h), (cols[0], cols[-1] + 1, w)):
        side = max(min_side, (hi - lo) * (1 + 2 * margin))
        centre = (lo + hi) / 2
        a = int(np.clip(round(centre - side / 2), 0, max(0, n - 1)))
        b = int(np.clip(round(centre + side / 2), a + 1, n))
        box += [a, b]
    top, bottom, left, right = box
    return top, bottom, left, right


def plot_montage(reservoir: FrameReservoir, frames: pd.DataFrame, beats: pd.DataFrame,
                 path: str | Path, *, pixel_size_um: float, n_beats: int = 3, title: str = "",
                 signal: str = "volume_pl") -> Path:
    """Write montage.png: the chosen frames (see `montage_frames`), cropped around the
    ventricle, with the mask outline (yellow) and the fitted ellipse (dashed) with its major
    (red) and minor (cyan) axes from frames.csv."""
    picks, note = montage_frames(beats, frames, len(reservoir), n_beats=n_beats, signal=signal)
    if not picks:
        raise ValueError("no frames were kept for the montage")
    pairs = not note  # ED above ES, one column per beat
    n_cols = len(picks) // 2 if pairs else len(picks)
    n_rows = 2 if pairs else 1
    r0, r1, c0, c1 = crop_box([reservoir.masks[i] for _, i in picks], reservoir.frames[0].shape[:2])
    tile = 2.4  # inches, the longer side of a tile
    tile_w, tile_h = (tile, tile * (r1 - r0) / (c1 - c0)) if c1 - c0 >= r1 - r0 else (
        tile * (c1 - c0) / (r1 - r0), tile)
    caption_in, title_in, gap_in = 0.42, 0.45, 0.1  # room for tile captions and the title
    width = (tile_w + gap_in) * n_cols + gap_in
    height = (tile_h + caption_in) * n_rows + title_in
    fig = agg_figure(width, height, layout=None)  # fixed margins: faster than constrained
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    fig.subplots_adjust(left=gap_in / width, right=1 - gap_in / width, bottom=0.02,
                        top=1 - (title_in + caption_in) / height,
                        wspace=gap_in / tile_w, hspace=caption_in / tile_h)
    table = frames.set_index("frame")
    for k, (label, i) in enumerate(picks):
        ax = axes[k % 2, k // 2] if pairs else axes[0, k]
        extent = (c0 - 0.5, c1 - 0.5, r1 - 0.5, r0 - 0.5)
        ax.imshow(reservoir.rgb(i)[r0:r1, c0:c1], extent=extent, interpolation="lanczos")
        mask = reservoir.masks[i][r0:r1, c0:c1]
        if mask.any() and not mask.all():  # the outline, sub-pixel: the mask's 0.5 contour
            ax.contour(np.arange(c0, c1), np.arange(r0, r1), mask.astype(float), levels=[0.5],
                       colors=[OUTLINE], linewidths=1.2)
        ax.set_xticks([])
        ax.set_yticks([])
        caption = f"{label} (frame {i})"
        if i in table.index and np.isfinite(table.at[i, "major_um"]):
            _draw_ellipse(ax, table.loc[i], pixel_size_um, reservoir.scale)
            value = beat_value(beats, label, signal)
            if value is not None:  # the beat's number, as in beats.csv
                caption += f"\n{BEAT_VALUES[signal][label.endswith('ES')]} {value:.4g}"
            else:
                caption += f"\n{signal} {table.at[i, signal]:.4g}"
        ax.set_xlim(c0 - 0.5, c1 - 0.5)
        ax.set_ylim(r1 - 0.5, r0 - 0.5)
        ax.set_title(caption, fontsize=8)
    fig.suptitle("\n".join(t for t in (title, note) if t), fontsize=9, y=1 - 0.05 / height,
                 va="top")
    return save_png(fig, path)


def _draw_ellipse(ax, row: pd.Series, pixel_size_um: float, scale: float) -> None:
    """The frame's moment ellipse and its axes, in the coordinates of a kept (scaled) frame."""
    major, minor = ellipse_axes_px(row["centroid_x_um"], row["centroid_y_um"],
                                   row["orientation_rad"], row["major_um"], row["minor_um"],
                                   pixel_size_um)
    major, minor = (major + 0.5) * scale - 0.5, (minor + 0.5) * scale - 0.5
    centre = major.mean(axis=0)
    u, v = (major[1] - major[0]) / 2, (minor[1] - minor[0]) / 2
    t = np.linspace(0, 2 * np.pi, 73)[:, None]
    ring = centre + np.cos(t) * u + np.sin(t) * v
    ax.plot(ring[:, 0], ring[:, 1], color="white", lw=0.8, ls="--", alpha=0.8)
    ax.plot(major[:, 0], major[:, 1], color="red", lw=1.2)
    ax.plot(minor[:, 0], minor[:, 1], color="cyan", lw=1.2)
