"""Plate heat map: heart rate and EF per well of a multi-well plate (`OUT/plate.png`)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from ..schema import USABLE_STATUSES

PLATE_LAYOUTS = {96: (8, 12), 384: (16, 24)}  # wells -> (rows, columns)
_WELL = re.compile(r"^\s*([A-Za-z])\s*0*(\d+)\s*$")


def parse_well(well: str) -> tuple[int, int] | None:
    """'D012', 'D12' or 'd 12' -> (row 3, column 11), 0-based; None if not a well name."""
    m = _WELL.match(str(well))
    if m is None or int(m[2]) < 1:
        return None
    return ord(m[1].upper()) - ord("A"), int(m[2]) - 1


def plate_layout(wells: pd.Series) -> tuple[int, int] | None:
    """(rows, columns) of the smallest standard plate holding every parsable well, else None."""
    parsed = [p for p in (parse_well(w) for w in wells.dropna()) if p is not None]
    if not parsed:
        return None
    rows = max(r for r, _ in parsed) + 1
    cols = max(c for _, c in parsed) + 1
    for shape in PLATE_LAYOUTS.values():
        if rows <= shape[0] and cols <= shape[1]:
            return shape
    return None


def plate_grid(summary: pd.DataFrame, metric: str, shape: tuple[int, int],
               well_column: str = "well") -> np.ndarray:
    """(rows, cols) float array of `metric` per well (mean over a well's analysed videos)."""
    grid = np.full(shape, np.nan)
    usable = summary[summary["status"].isin(USABLE_STATUSES)]
    values = pd.to_numeric(usable[metric], errors="coerce")
    sums, counts = np.zeros(shape), np.zeros(shape)
    for well, value in zip(usable[well_column], values, strict=True):
        pos = parse_well(well)
        if pos is None or not np.isfinite(value) or pos[0] >= shape[0] or pos[1] >= shape[1]:
            continue
        sums[pos] += value
        counts[pos] += 1
    np.divide(sums, counts, out=grid, where=counts > 0)
    return grid


def failed_wells(summary: pd.DataFrame, well_column: str = "well") -> set[tuple[int, int]]:
    """Wells none of whose videos could be analysed."""
    ok = {parse_well(w) for w in summary.loc[summary["status"].isin(USABLE_STATUSES),
                                             well_column]}
    bad = {parse_well(w) for w in summary.loc[summary["status"] == "failed", well_column]}
    return {w for w in bad - ok if w is not None}


def plot_plate(summary: pd.DataFrame, path: str | Path, *, well_column: str = "well",
               metrics: tuple[tuple[str, str], ...] = (("hr_bpm", "heart rate (bpm)"),
                                                       ("ef_pct", "ejection fraction (%)")),
               ) -> Path | None:
    """Write one heat map per metric (wells as a plate) to `path`; None if no wells are known."""
    if well_column not in summary.columns:
        return None
    shape = plate_layout(summary[well_column])
    if shape is None:
        return None
    from matplotlib.figure import Figure  # a bare Figure draws with Agg: no display, no pyplot

    from .figure import save_png

    rows, cols = shape
    fig = Figure(figsize=(5.2 * len(metrics), 0.45 * rows + 1.4), layout="constrained")
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    failed = failed_wells(summary, well_column)
    for ax, (metric, label) in zip(axes, metrics, strict=True):
        grid = plate_grid(summary, metric, shape, well_column)
        image = ax.imshow(np.ma.masked_invalid(grid), cmap="viridis", aspect="equal")
        fig.colorbar(image, ax=ax, label=label, shrink=0.8)
        for r, c in failed:
            ax.text(c, r, "x", ha="center", va="center", color="red", fontsize=9)
        ax.set_xticks(range(cols), [str(c + 1) for c in range(cols)], fontsize=7)
        ax.set_yticks(range(rows), [chr(ord("A") + r) for r in range(rows)], fontsize=7)
        ax.set_facecolor("0.85")
        ax.set_title(label)
    fig.suptitle(f"{rows * cols}-well plate (grey: no data, x: failed)", fontsize=9)
    return save_png(fig, path, dpi=110)  # never a half-written picture
