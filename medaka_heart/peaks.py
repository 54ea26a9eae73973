"""Peaks of a 1-D signal, as `scipy.signal.find_peaks(x, distance=d)` and the bases of
`scipy.signal.peak_prominences` give them, without importing scipy.signal: its import (most
of it scipy.stats) is about 0.6 s of every process's start-up, for two small functions. The
tests check both against scipy on random signals, plateaus and NaN included.
"""

from __future__ import annotations

import numpy as np


def local_maxima(x: np.ndarray) -> np.ndarray:
    """Indices of the maxima of `x`: each run of equal values higher than the values on
    both sides of it (so never at the first or last sample) gives its middle (the left one
    of an even run). NaN is never a maximum and ends a run."""
    x = np.asarray(x, dtype=float)
    if x.ndim != 1:
        raise ValueError(f"a signal must be 1-D, got shape {x.shape}")
    if x.size < 3:
        return np.zeros(0, dtype=np.intp)
    starts = np.flatnonzero(np.r_[True, x[1:] != x[:-1]])  # runs of equal values (NaN: own)
    ends = np.r_[starts[1:] - 1, x.size - 1]
    value = x[starts]
    inner = np.arange(1, starts.size - 1)
    higher = (value[inner - 1] < value[inner]) & (value[inner + 1] < value[inner])
    peak = inner[higher]
    return ((starts[peak] + ends[peak]) // 2).astype(np.intp)


def find_peaks(x: np.ndarray, distance: float | None = None) -> np.ndarray:
    """`local_maxima` of `x`, at least `distance` samples apart (>= 1): the highest are kept
    first, and each removes the lower ones closer than `distance` to it (ties in the order
    `np.argsort` gives, as scipy)."""
    x = np.asarray(x, dtype=float)
    if distance is not None and not distance >= 1:
        raise ValueError(f"distance must be at least 1, got {distance}")
    peaks = local_maxima(x)
    if distance is None or peaks.size < 2:
        return peaks
    reach = np.ceil(distance)
    keep = np.ones(peaks.size, dtype=bool)
    for j in np.argsort(x[peaks])[::-1]:
        if not keep[j]:
            continue
        near = np.abs(peaks - peaks[j]) < reach
        near[j] = False
        keep[near] = False
    return peaks[keep]


def prominence_bases(x: np.ndarray, peaks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(left, right) bases of each peak of `x`: on each side, the lowest sample before the
    signal rises above the peak (or ends), the one nearest the peak among equals."""
    x = np.asarray(x, dtype=float)
    peaks = np.asarray(peaks, dtype=np.intp)
    left, right = np.empty_like(peaks), np.empty_like(peaks)
    for k, peak in enumerate(peaks):
        top = x[peak]
        above = np.flatnonzero(~(x[:peak] <= top))  # NaN stops the search, as a rise does
        start = above[-1] + 1 if above.size else 0
        side = x[start:peak + 1]
        left[k] = start + side.size - 1 - int(np.argmin(side[::-1]))
        above = np.flatnonzero(~(x[peak:] <= top))
        side = x[peak:peak + above[0]] if above.size else x[peak:]
        right[k] = peak + int(np.argmin(side))
    return left, right
