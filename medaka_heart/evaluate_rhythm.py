"""How well a beat train follows the true rhythm (pure numpy/pandas).

The errors do not depend on which phase of the beat the prediction times it by: per-beat
timing is judged after removing the typical delay between predicted and true beats.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from .rhythm import phase_offset_s


@dataclass(frozen=True)
class RhythmErrors:
    """Rhythm of one prediction against the truth.

    hr_err_pct : |60 / mean predicted interval - 60 / mean true interval|, % of the truth.
    beat_hr_err_pct_median : median over predicted intervals of the error of their rate
        against the true interval at their midpoint, %.
    timing_err_frames_median : median |predicted beat time - nearest true beat - typical
        delay|, frames.
    n_beats_pred, n_beats_true : beats in each train.
    """

    hr_err_pct: float
    beat_hr_err_pct_median: float
    timing_err_frames_median: float
    n_beats_pred: int
    n_beats_true: int

    def to_dict(self) -> dict:
        return asdict(self)


def rate_error_pct(pred_bpm: float, true_bpm: float) -> float:
    """|pred - true| / true in %; NaN where either is unknown."""
    if not (np.isfinite(pred_bpm) and np.isfinite(true_bpm) and true_bpm > 0):
        return float("nan")
    return float(100.0 * abs(pred_bpm - true_bpm) / true_bpm)


def rhythm_errors(pred_times_s, true_times_s, fps: float) -> RhythmErrors:
    """Compare two (n,) beat-time trains (s, any fixed phase of the beat) at `fps`."""
    pred = np.sort(np.asarray(pred_times_s, dtype=float)[np.isfinite(pred_times_s)])
    true = np.sort(np.asarray(true_times_s, dtype=float)[np.isfinite(true_times_s)])
    nan = float("nan")
    if true.size < 2:
        return RhythmErrors(nan, nan, nan, int(pred.size), int(true.size))
    true_rate = 60.0 / np.diff(true).mean()
    if pred.size < 2:
        return RhythmErrors(nan, nan, nan, int(pred.size), int(true.size))
    hr_err = rate_error_pct(60.0 / np.diff(pred).mean(), true_rate)
    mid = (pred[1:] + pred[:-1]) / 2
    k = np.clip(np.searchsorted(true, mid) - 1, 0, true.size - 2)
    inside = (mid >= true[0]) & (mid <= true[-1])
    beat_err = 100.0 * np.abs(np.diff(true)[k] / np.diff(pred) - 1.0)
    nearest = true[np.argmin(np.abs(pred[:, None] - true[None, :]), axis=1)]
    period = float(np.median(np.diff(true)))
    residual = pred - nearest - phase_offset_s(pred, true, period)
    residual = (residual + period / 2) % period - period / 2
    return RhythmErrors(
        hr_err_pct=hr_err,
        beat_hr_err_pct_median=float(np.median(beat_err[inside])) if inside.any() else nan,
        timing_err_frames_median=float(np.median(np.abs(residual)) * fps),
        n_beats_pred=int(pred.size),
        n_beats_true=int(true.size),
    )


def true_beat_times(beats: pd.DataFrame) -> np.ndarray:
    """End-systole times (s) of a truth beats.csv (the ED where no ES is given)."""
    es = np.asarray(beats["es_time_s"], dtype=float)
    ed = np.asarray(beats["ed_time_s"], dtype=float)
    return np.where(np.isfinite(es), es, ed)
