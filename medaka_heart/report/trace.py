"""`trace.png`: the two beat signals, the fused beats, and the RR intervals.

The volume and area panels show every frame (gaps where the mask was empty, shaded) with the
refined ED (red) and ES (blue) of each beat the masks timed; the model-free panel shows the
intensity beat trace (`frames.csv` column `intensity_signal`) with every beat of the fused
train at its time, coloured by the signal that timed it (`hr_source`); the interval panel
shows each beat's RR interval at its beat time, with the median and the skipped-beat limit
(`skipped_ratio` x median) dashed, so an irregular rhythm, a missed beat or a double-counted
one is seen at a glance.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .figure import agg_figure, save_png

ED_COLOR, ES_COLOR = "tab:red", "tab:blue"
SOURCE_COLORS = {"both": "tab:green", "segmentation": "tab:purple", "intensity": "tab:orange"}


def empty_spans(time_s: np.ndarray, empty: np.ndarray, dt: float) -> list[tuple[float, float]]:
    """(start, end) times, s, of the runs of True in `empty`, each frame +-dt/2 wide."""
    step = np.diff(np.r_[0, np.asarray(empty, dtype=int), 0])
    starts, stops = np.flatnonzero(step == 1), np.flatnonzero(step == -1) - 1
    return [(float(time_s[a] - dt / 2), float(time_s[b] + dt / 2))
            for a, b in zip(starts, stops, strict=True)]


def plot_trace(frames: pd.DataFrame, beats: pd.DataFrame, path: str | Path, *, title: str = "",
               subtitle: str = "", skipped_ratio: float = 1.6) -> Path:
    """Write trace.png for one video.

    frames : frames.csv table (time_s, volume_pl, area_um2, ...).
    beats : beats.csv table (ed/es times, edv/esv, ed/es area, rr_s).
    title, subtitle : lines above the plot (video name; rates, EF and QC).
    skipped_ratio : the interval panel marks RR above this x the median RR.
    """
    t = frames["time_s"].to_numpy(dtype=float)
    dt = float(np.median(np.diff(t))) if t.size > 1 else 1.0
    empty = ~np.isfinite(frames["area_um2"].to_numpy(dtype=float))
    spans = empty_spans(t, empty, dt)
    fig = agg_figure(10, 7.6, layout=None)  # fixed margins: half the drawing time
    ax_v, ax_a, ax_i, ax_rr = fig.subplots(4, 1, sharex=True, height_ratios=[3, 2, 1.8, 1.6])
    fig.subplots_adjust(left=0.08, right=0.985, bottom=0.065, top=0.87, hspace=0.1)
    panels = ((ax_v, "volume_pl", "edv_pl", "esv_pl", "volume (pl)"),
              (ax_a, "area_um2", "ed_area_um2", "es_area_um2", "area (um²)"))
    for ax, column, ed_col, es_col, label in panels:
        ax.plot(t, frames[column].to_numpy(dtype=float), color="0.25", lw=1.0)
        ax.plot(beats["ed_time_s"], beats[ed_col], "v", color=ED_COLOR, ms=6, label="ED")
        ax.plot(beats["es_time_s"], beats[es_col], "^", color=ES_COLOR, ms=6, label="ES")
        for a, b in spans:
            ax.axvspan(a, b, color="0.85", lw=0, zorder=0)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    handles = ax_v.get_legend_handles_labels()[0]
    if spans:
        from matplotlib.patches import Patch

        handles.append(Patch(color="0.85", label="no ventricle"))
    ax_v.legend(handles=handles, loc="lower right", bbox_to_anchor=(1.0, 1.0), fontsize=8,
                ncols=3, frameon=False, borderaxespad=0.1)
    _plot_intensity(ax_i, frames, beats)
    _plot_intervals(ax_rr, beats, skipped_ratio)
    ax_rr.set_xlabel("time (s)")
    if t.size:
        ax_rr.set_xlim(t[0] - dt / 2, t[-1] + dt / 2)
    fig.suptitle("\n".join(s for s in (title, subtitle) if s), fontsize=10)
    return save_png(fig, path)


def _beat_times(beats: pd.DataFrame) -> np.ndarray:
    """Each beat's time: its fused-train time where known, else its ED time."""
    column = "beat_time_s" if "beat_time_s" in beats.columns else "ed_time_s"
    return beats[column].to_numpy(dtype=float)


def _plot_intensity(ax, frames: pd.DataFrame, beats: pd.DataFrame) -> None:
    """The model-free beat trace and the fused beats on it, coloured by their source."""
    ax.set_ylabel("model-free\n(z)")
    ax.grid(alpha=0.3)
    if "intensity_signal" not in frames.columns or frames["intensity_signal"].isna().all():
        ax.text(0.5, 0.5, "no model-free beat signal", transform=ax.transAxes, ha="center",
                va="center", color="0.4")
        return
    t = frames["time_s"].to_numpy(dtype=float)
    trace = frames["intensity_signal"].to_numpy(dtype=float)
    ax.plot(t, trace, color="0.35", lw=0.9)
    times = _beat_times(beats)
    level = np.interp(times, t, np.nan_to_num(trace)) if times.size else times
    sources = beats["hr_source"] if "hr_source" in beats.columns else pd.Series(dtype=str)
    for source, color in SOURCE_COLORS.items():
        pick = (sources == source).to_numpy()
        if pick.any():
            ax.plot(times[pick], level[pick], "o", color=color, ms=5, label=f"beat: {source}")
    if sources.size:
        ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), fontsize=8, ncols=3,
                  frameon=False, borderaxespad=0.1)


def _plot_intervals(ax, beats: pd.DataFrame, skipped_ratio: float) -> None:
    rr_ms = 1000 * beats["rr_s"].to_numpy(dtype=float)
    t = _beat_times(beats)
    ok = np.isfinite(rr_ms)
    ax.set_ylabel("RR (ms)")
    ax.grid(alpha=0.3)
    if not ok.any():
        ax.text(0.5, 0.5, "no beat intervals", transform=ax.transAxes, ha="center",
                va="center", color="0.4")
        return
    median = float(np.median(rr_ms[ok]))
    skipped = ok & (rr_ms > skipped_ratio * median)
    ax.plot(t[ok], rr_ms[ok], "o-", color="0.3", ms=4, lw=0.8)
    ax.plot(t[skipped], rr_ms[skipped], "o", color="tab:orange", ms=7,
            label=f"RR > {skipped_ratio:g}x median")
    ax.axhline(median, color="0.5", ls="--", lw=0.8)
    ax.axhline(skipped_ratio * median, color="tab:orange", ls=":", lw=0.8)
    if skipped.any():
        ax.legend(loc="upper right", fontsize=8)
    ax.set_ylim(0, max(skipped_ratio * median, np.nanmax(rr_ms)) * 1.15)
