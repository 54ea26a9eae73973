"""What an evaluation prints and checks: the paper's "pred (truth)" beat table with its summary
rows (mean, std, median, q1, q3), and the metric thresholds of ``evaluate --fail-under/over``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .evaluate import ErrorSummary


def describe_table(table: pd.DataFrame) -> pd.DataFrame:
    """Rows mean, std, median, q1, q3 of the numeric columns (the paper's summary rows)."""
    num = table.select_dtypes(include=[np.number]).drop(
        columns=[c for c in ("beat", "pred_beat") if c in table], errors="ignore"
    )
    rows = {}
    summaries: tuple[tuple[str, str | float], ...] = (
        ("mean", "mean"), ("std", "std"), ("median", "median"), ("q1", 0.25), ("q3", 0.75))
    for label, how in summaries:
        vals = {}
        for name in num.columns:
            v = np.asarray(num[name], dtype=float)
            v = v[np.isfinite(v)]
            if v.size == 0 or (how == "std" and v.size < 2):
                vals[name] = math.nan
            elif how == "mean":
                vals[name] = float(np.mean(v))
            elif how == "std":
                vals[name] = float(np.std(v, ddof=1))
            elif how == "median":
                vals[name] = float(np.median(v))
            else:
                vals[name] = float(np.quantile(v, float(how)))
        rows[label] = vals
    return pd.DataFrame.from_dict(rows, orient="index", columns=list(num.columns))


def failed_thresholds(
    summary: ErrorSummary,
    fail_under: dict[str, float] | None = None,
    fail_over: dict[str, float] | None = None,
) -> list[str]:
    """Descriptions of the thresholds `summary` violates (NaN metrics always fail).

    `fail_under[m] = v` fails if metric m < v; `fail_over[m] = v` fails if m > v.
    """
    values = summary.to_dict()
    failed = []
    for name, limit in (fail_under or {}).items():
        v = float(values[name])
        if not v >= limit:
            failed.append(f"{name}={v:.4g} < {limit:g}")
    for name, limit in (fail_over or {}).items():
        v = float(values[name])
        if not v <= limit:
            failed.append(f"{name}={v:.4g} > {limit:g}")
    return failed


# (beats_vs_truth column stem, heading, decimals) of the printed "pred (truth)" table
PAPER_COLUMNS = (
    ("ed_frame", "ED frame", 0),
    ("es_frame", "ES frame", 0),
    ("hr_bpm", "HR [bpm]", 1),
    ("ef_pct", "EF [%]", 1),
    ("edv_pl", "EDV [pl]", 1),
    ("esv_pl", "ESV [pl]", 1),
    ("fs_minor_pct", "FS minor [%]", 1),
    ("fs_major_pct", "FS major [%]", 1),
)


def _fmt(value: float, decimals: int) -> str:
    return "-" if not np.isfinite(value) else f"{value:.{decimals}f}"


def paper_table(comparison: pd.DataFrame) -> pd.DataFrame:
    """The pred-vs-truth table as strings "pred (truth)", one row per true beat, then rows
    mean, std, median, q1, q3 of each column (statistics of pred and of truth separately).
    """
    stats = describe_table(comparison)
    rows = []
    for _, beat in comparison.iterrows():
        row = {"video": str(beat.get("video", "")), "beat": str(int(beat["beat"]))}
        for stem, head, dec in PAPER_COLUMNS:
            row[head] = (f"{_fmt(float(beat[f'{stem}_pred']), dec)} "
                         f"({_fmt(float(beat[f'{stem}_true']), dec)})")
        rows.append(row)
    for label in stats.index:
        row = {"video": label, "beat": ""}
        for stem, head, dec in PAPER_COLUMNS:
            dec = max(dec, 1)
            pred, true = (stats.at[label, c] if c in stats else math.nan
                          for c in (f"{stem}_pred", f"{stem}_true"))
            row[head] = f"{_fmt(pred, dec)} ({_fmt(true, dec)})"
        rows.append(row)
    return pd.DataFrame(rows, columns=["video", "beat", *(h for _, h, _ in PAPER_COLUMNS)])
